import FieldbookCore
import FieldbookStore
import FieldbookTesting
import Foundation
import GRDB
import Synchronization
import Testing

@Suite("Store: changelog and clock", .tags(.store))
struct ChangelogTests {
    let dir = TemporaryDirectory()

    @Test("every write logs field-level changes with HLC, device and gap-free sequence")
    func fieldLevelChanges() throws {
        let store = try makeStore(dir)
        let site = try store.insert("site", ["name": "城厢区敬老院", "kind": "elderly_home", "beds_total": 120])
        try store.update("site", id: site, ["beds_total": 118, "observed_on": "2021-09-02"])
        try store.write { try $0.increment("site", id: site, "illegal_graves_found", by: 3) }
        try store.update("site", id: site, ["illegal_graves_found": 1])
        try store.delete("site", id: site)

        let changes = try store.pendingChanges()
        #expect(changes.map(\.sequence) == [1, 2, 3, 4, 5])
        #expect(changes.map(\.operation) == [.insert, .update, .update, .update, .delete])
        #expect(changes.allSatisfy { $0.device == store.deviceID && $0.recordID == site && $0.entity == "site" })
        #expect(zip(changes, changes.dropFirst()).allSatisfy { $0.timestamp < $1.timestamp })
        #expect(
            changes[0].fields == [
                FieldChange(field: "name", kind: .set("城厢区敬老院")),
                FieldChange(field: "kind", kind: .set("elderly_home")),
                FieldChange(field: "beds_total", kind: .set(120)),
                FieldChange(field: "illegal_graves_found", kind: .set(0)),
            ])
        #expect(
            changes[1].fields == [
                FieldChange(field: "beds_total", kind: .set(118), observedAt: "2021-09-02"),
                FieldChange(field: "observed_on", kind: .set("2021-09-02")),
            ], "an observed field carries its observation date")
        #expect(changes[2].fields == [FieldChange(field: "illegal_graves_found", kind: .add(3))])
        #expect(
            changes[3].fields == [FieldChange(field: "illegal_graves_found", kind: .add(-2))],
            "setting a counter logs the delta")
        #expect(changes[4].fields.isEmpty)
    }

    @Test("sets log members added and removed; observed and epoch fields carry their annotation")
    func relativeChanges() throws {
        let store = try makeStore(dir)
        let site = try store.insert(
            "site", ["name": "幸福院", "kind": "happiness_home", "tags": .set(["六有", "示范"]), "observed_on": "2021-09-01"])
        try store.update("site", id: site, ["tags": .set(["示范", "星级"])])
        try store.update("site", id: site, ["beds_total": 40])
        let finding = try store.insert("finding", ["title": "问题", "status": "completed"])
        try store.write { try $0.increment("finding", id: finding, "reopen_count") }
        try store.update("finding", id: finding, ["status": "in_progress"])
        let changes = try store.pendingChanges()
        #expect(changes[0].fields.first { $0.field == "tags" }?.kind == .members(added: ["六有", "示范"], removed: []))
        #expect(changes[1].fields == [FieldChange(field: "tags", kind: .members(added: ["星级"], removed: ["六有"]))])
        #expect(changes[2].fields == [FieldChange(field: "beds_total", kind: .set(40), observedAt: "2021-09-01")])
        #expect(
            changes[3].fields.first { $0.field == "status" }
                == FieldChange(field: "status", kind: .set("completed"), epoch: 0))
        #expect(changes[5].fields == [FieldChange(field: "status", kind: .set("in_progress"), epoch: 1)])
        #expect(try store.record("site", id: site)?["tags"] == .set(["示范", "星级"]))
        // History still shows whole values.
        let tags = try store.history(of: site).filter { $0.field == "tags" }.map(\.new)
        #expect(tags == [.set(["六有", "示范"]), .set(["示范", "星级"])])
    }

    @Test("history: field, old → new, when, which device")
    func history() throws {
        let store = try makeStore(dir)
        let finding = try store.insert("finding", ["title": "42户56穴", "deadline": "2021-12-31"])
        try store.update("finding", id: finding, ["title": "42户56墓", "status": "completed"])
        let history = try store.history(of: finding)
        let titles = history.filter { $0.field == "title" }.map { "\($0.old) → \($0.new)" }
        #expect(titles == [" → 42户56穴", "42户56穴 → 42户56墓"])
        let status = try #require(history.last(where: { $0.field == "status" }))
        #expect(status.old == "not_started")
        #expect(status.new == "completed")
        #expect(status.device == store.deviceID)
        #expect(status.operation == .update)
        #expect(history.allSatisfy { $0.timestamp.millis > 1_600_000_000_000 })
    }

    @Test("pending changes are listed in order and acknowledged up to a sequence number")
    func pendingAndAcknowledge() throws {
        let store = try makeStore(dir)
        for n in 0..<10 {
            try store.insert("inspection_round", ["title": .text("第\(n)轮"), "team": "一组", "unit": "民政局"])
        }
        #expect(try store.pendingChanges(limit: 4).map(\.sequence) == [1, 2, 3, 4])
        try store.acknowledge(through: 6)
        #expect(try store.pendingChanges().map(\.sequence) == [7, 8, 9, 10])
        try store.acknowledge(through: 3)  // never backwards
        #expect(try store.pendingCount() == 4)
    }

    @Test("the clock never goes backwards: wall clock jumping back, and across a restart")
    func clockAcrossRestart() throws {
        let wall = Mutex<UInt64>(2_000_000_000_000)
        var configuration = Store.Configuration()
        configuration.wallClock = { wall.withLock { $0 } }
        var stamps: [HybridTimestamp] = []
        do {
            let store = try makeStore(dir, configuration: configuration)
            try store.insert("inspection_round", ["title": "a", "team": "t", "unit": "u"])
            wall.withLock { $0 -= 3_600_000 }  // an hour back
            try store.insert("inspection_round", ["title": "b", "team": "t", "unit": "u"])
        }
        wall.withLock { $0 -= 86_400_000 }  // and a day back, while the device was off
        let store = try makeStore(dir, configuration: configuration)
        try store.insert("inspection_round", ["title": "c", "team": "t", "unit": "u"])
        stamps = try store.pendingChanges().map(\.timestamp)
        #expect(stamps.count == 3)
        #expect(stamps[0] < stamps[1] && stamps[1] < stamps[2])
        #expect(stamps[2].millis == 2_000_000_000_000)
    }

    @Test("the device id is made once and kept")
    func deviceID() throws {
        let first = try makeStore(dir).deviceID
        let second = try makeStore(dir).deviceID
        #expect(first == second)
        #expect(UUIDText.canonical(first) == first)
        let other = try makeStore(dir, name: "other.sqlite").deviceID
        #expect(other != first)
    }
}

@Suite("Store: changelog failures", .tags(.store))
struct ChangelogFailureTests {
    let dir = TemporaryDirectory()

    @Test("if a changelog entry cannot be written, the transaction commits nothing, even when the error is caught")
    func changelogFailureRollsBack() throws {
        let store = try makeStore(dir)
        try store.insert("inspection_round", ["title": "before", "team": "t", "unit": "u"])
        // Sabotage: the changelog refuses entries that mention "boom".
        try DatabaseQueue(path: dir.path("device.sqlite")).write { db in
            try db.execute(
                sql: """
                    CREATE TRIGGER refuse BEFORE INSERT ON _changelog WHEN NEW.fields LIKE '%boom%'
                    BEGIN SELECT RAISE(ABORT, 'refused'); END
                    """)
        }
        let before = try contents(store)
        #expect(throws: (any Error).self) {
            try store.write { tx in
                for n in 0..<100 {
                    // The caller swallows errors and goes on: the commit must still fail.
                    _ = try? tx.insert(
                        "inspection_round", ["title": .text(n == 40 ? "boom" : "ok \(n)"), "team": "t", "unit": "u"])
                }
            }
        }
        #expect(try contents(store) == before)
        #expect(try store.fetch(Query("inspection_round")).count == 1)
    }
}
