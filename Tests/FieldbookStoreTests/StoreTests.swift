import FieldbookCore
import FieldbookStore
import FieldbookTesting
import Foundation
import GRDB
import Synchronization
import Testing

@Suite("Store: records", .tags(.store))
struct StoreRecordTests {
    let dir = TemporaryDirectory()

    @Test("insert, get, update, delete; Chinese text byte for byte")
    func crud() throws {
        let store = try makeStore(dir)
        let name = "新度镇社会工作服务站（省级示范点）"
        let site = try store.insert("site", ["name": .text(name), "kind": "social_work_station", "star_rating": 4])
        #expect(UUIDText.canonical(site) == site)
        let record = try #require(try store.record("site", id: site))
        #expect(record["name"] == .text(name))
        #expect(Array(record["name"].text!.utf8) == Array(name.utf8))
        #expect(record["star_rating"] == 4)
        #expect(record["illegal_graves_found"] == 0, "counters start at 0")
        #expect(record["town"] == .null)

        try store.update("site", id: site, ["town": "新度镇", "tags": .set(["示范", "四星"])])
        let updated = try #require(try store.record("site", id: site))
        #expect(updated["town"] == "新度镇")
        #expect(updated["tags"] == .textSet(["四星", "示范"].sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }))
        #expect(updated["name"] == .text(name))

        try store.delete("site", id: site)
        #expect(try store.record("site", id: site) == nil)
    }

    @Test("text survives a reopen byte for byte, including combining marks and emoji")
    func utf8AcrossReopen() throws {
        let texts = ["养老机构", "e\u{301}", "👩🏽‍⚕️", "line\nbreak\t\"quoted\"\\", ""]
        var ids: [String] = []
        do {
            let store = try makeStore(dir)
            for t in texts {
                ids.append(try store.insert("inspection_round", ["title": .text(t), "team": "第一巡察组", "unit": "区民政局"]))
            }
        }
        let store = try makeStore(dir)
        for (id, t) in zip(ids, texts) {
            let title = try #require(try store.record("inspection_round", id: id))["title"].text
            #expect(title.map { Array($0.utf8) } == Array(t.utf8))
        }
    }

    @Test("defaults apply on insert; ids may be given and are lower-cased")
    func defaultsAndIDs() throws {
        let store = try makeStore(dir)
        let id = "0190B4B6-1C2D-7ABC-8DEF-0123456789AB"
        let finding = try store.insert("finding", ["title": "擅自改变养老服务设施用途"], id: id)
        #expect(finding == id.lowercased())
        let record = try #require(try store.record("finding", id: id))
        #expect(record["status"] == "not_started")
        #expect(record["long_term"] == false)
        #expect(record["reopen_count"] == 0)
        expectStoreError(.duplicateID) { try store.insert("finding", ["title": "x"], id: id) }
    }

    @Test("queries: filters, order, limit, offset, set membership, null")
    func queries() throws {
        let store = try makeStore(dir)
        let round = try store.insert("inspection_round", ["title": "2021 巡察", "team": "区委第一巡察组", "unit": "区民政局"])
        let deadlines = ["2022-03-31", "2021-12-31", "2022-06-30", "2021-12-31"]
        for (n, d) in deadlines.enumerated() {
            try store.insert(
                "finding",
                [
                    "round": .text(round), "title": .text("问题\(n)"), "deadline": .text(d),
                    "status": n == 0 ? "completed" : "in_progress",
                ])
        }
        try store.insert("finding", ["title": "无期限"])
        let open = try store.fetch(
            Query("finding").filter("status", .notEqual, "completed").filter("deadline", .less, "2022-06-30")
                .sorted(by: "deadline"))
        #expect(open.map { $0["title"] } == ["问题1", "问题3"])
        let byDeadline = try store.fetch(Query("finding").sorted(by: "deadline", descending: true).limit(2, offset: 1))
        #expect(byDeadline.map { $0["deadline"] } == ["2022-03-31", "2021-12-31"])
        #expect(try store.fetch(Query("finding").filter("deadline", .equal, .null)).map { $0["title"] } == ["无期限"])
        #expect(try store.fetch(Query("finding").filter("round", .equal, .text(round.uppercased()))).count == 4)
        #expect(try store.fetch(Query("finding").filter("title", .contains, "问题")).count == 4)

        let site = try store.insert("site", ["name": "敬老院", "kind": "elderly_home", "tags": .set(["公建民营", "护理"])])
        try store.insert("site", ["name": "幸福院", "kind": "happiness_home", "tags": .set(["六有"])])
        #expect(try store.fetch(Query("site").filter("tags", .contains, "护理")).map(\.id) == [site])
        expectStoreError(.unknownField) { _ = try store.fetch(Query("site").filter("colour", .equal, "red")) }
        expectStoreError(.badFormat) { _ = try store.fetch(Query("finding").filter("deadline", .less, "next week")) }
    }

    @Test(
        "typed errors name entity and field; nothing is written",
        arguments: [
            ("unknown entity", StoreError.Code.unknownEntity, "sites", ["name": Value.text("x")], nil as String?),
            ("unknown field", .unknownField, "site", ["name": "x", "kind": "cemetery", "colour": "red"], "colour"),
            ("wrong type", .wrongType, "site", ["name": "x", "kind": "cemetery", "beds_total": "many"], "beds_total"),
            ("enum value not allowed", .notAllowed, "site", ["name": "x", "kind": "castle"], "kind"),
            ("missing required", .required, "site", ["kind": "cemetery"], "name"),
            ("required set to null", .required, "site", ["name": .null, "kind": "cemetery"], "name"),
            (
                "text over its limit", .tooLong, "site",
                ["name": .text(String(repeating: "墓", count: 201)), "kind": "cemetery"], "name"
            ),
            ("NUL in text", .badFormat, "site", ["name": "a\u{0}b", "kind": "cemetery"], "name"),
            (
                "bad date", .badFormat, "site", ["name": "x", "kind": "cemetery", "observed_on": "2021/09/02"],
                "observed_on"
            ),
            (
                "missing reference", .missingReference, "visit",
                ["site": "0190b4b6-1c2d-7abc-8def-0123456789ab", "visited_on": "2021-09-02"], "site"
            ),
            ("bad reference", .badFormat, "visit", ["site": "敬老院", "visited_on": "2021-09-02"], "site"),
        ])
    func insertErrors(_ what: String, code: StoreError.Code, entity: String, values: [String: Value], field: String?)
        throws
    {
        let store = try makeStore(dir)
        let before = try contents(store)
        let error = expectStoreError(code) { try store.insert(entity, values) }
        #expect(error?.entity == entity)
        #expect(error?.field == field)
        #expect(try contents(store) == before)
        // The description names where, never the value given.
        for value in values.values where value.description.count > 2 {
            #expect(!(error?.description.contains(value.description) ?? false))
        }
    }

    @Test("update and delete errors leave the record as it was")
    func updateErrors() throws {
        let store = try makeStore(dir)
        let finding = try store.insert("finding", ["title": "问题", "deadline": "2021-12-31"])
        let note = try store.insert("progress_note", ["finding": .text(finding), "text": "已约谈"])
        _ = try store.insert("measure", ["finding": .text(finding), "description": "约谈负责人"])
        let before = try contents(store)
        expectStoreError(.notAllowed) {
            try store.update("finding", id: finding, ["deadline": "2022-01-31", "status": "done"])
        }
        expectStoreError(.unknownField) {
            try store.update("finding", id: finding, ["deadline": "2022-01-31", "owner": "x"])
        }
        expectStoreError(.notFound) { try store.update("finding", id: UUID().uuidString, ["title": "x"]) }
        expectStoreError(.badFormat) { try store.update("finding", id: "42", ["title": "x"]) }
        expectStoreError(.immutable) { try store.update("progress_note", id: note, ["text": "改"]) }
        expectStoreError(.immutable) { try store.delete("progress_note", id: note) }
        let error = expectStoreError(.referenced) { try store.delete("finding", id: finding) }
        #expect(error?.description.contains("measure.finding") == true)
        expectStoreError(.notFound) { try store.delete("finding", id: UUID().uuidString) }
        // A transaction that fails part-way writes nothing at all.
        expectStoreError(.notAllowed) {
            try store.write { tx in
                try tx.update("finding", id: finding, ["title": "改了"])
                try tx.insert("finding", ["title": "新问题"])
                try tx.update("finding", id: finding, ["status": "abandoned"])
            }
        }
        #expect(try contents(store) == before)
    }

    @Test(
        "deleting a record takes the records that follow it (onDelete: cascade) along; a conflict reference blocks it")
    func cascade() throws {
        let store = try makeStore(dir)
        let finding = try store.insert("finding", ["title": "问题"])
        let notes = try (0..<3).map {
            try store.insert("progress_note", ["finding": .text(finding), "text": .text("进展\($0)")])
        }
        let other = try store.insert("finding", ["title": "另一问题"])
        let kept = try store.insert("progress_note", ["finding": .text(other), "text": "进展"])
        let measure = try store.insert("measure", ["finding": .text(other), "description": "措施"])
        try store.delete("finding", id: finding)
        for note in notes { #expect(try store.record("progress_note", id: note) == nil) }
        #expect(try store.fetch(Query("progress_note")).map(\.id) == [kept])
        // A measure refers to the other finding: its delete is refused, and nothing changes.
        expectStoreError(.referenced) { try store.delete("finding", id: other) }
        #expect(try store.record("progress_note", id: kept) != nil)
        try store.delete("measure", id: measure)
        try store.delete("finding", id: other)
        #expect(try store.fetch(Query("progress_note")).isEmpty)
        // Nothing was logged for the notes: they follow the finding; their history stays.
        #expect(try !store.history(of: notes[0]).isEmpty)
    }

    @Test("SQLite's failures reach the caller as StoreError 'database', with SQLite's error underneath")
    func databaseErrors() throws {
        let dir = TemporaryDirectory()
        let garbage = dir.path("garbage.sqlite")
        try Data(repeating: 0x42, count: 8192).write(to: URL(fileURLWithPath: garbage))
        let opening = expectStoreError(.database) { _ = try Store(path: garbage, schema: inspectionSchema) }
        #expect(opening?.underlying is DatabaseError)
        #expect(opening?.message.contains("SQLite error 26") == true, "\(String(describing: opening))")

        let store = try makeStore(dir)
        var configuration = Store.Configuration()
        configuration.readOnly = true
        let readOnly = try makeStore(dir, configuration: configuration)
        let writing = expectStoreError(.database) {
            _ = try readOnly.insert("site", ["name": "公墓", "kind": "cemetery"])
        }
        #expect(writing?.underlying is DatabaseError)
        // An error of the app's own, thrown inside a transaction, passes unchanged.
        struct Mine: Error {}
        #expect(throws: Mine.self) { try store.write { _ in throw Mine() } }
    }
}

@Suite("Store: threads", .tags(.store))
struct StoreThreadTests {
    let dir = TemporaryDirectory()

    /// How many of `count` stores' write transactions run at once when all are started together
    /// and each keeps its thread busy for 50 ms; every store's write must have committed.
    func concurrentWrites(count: Int, sharedWorkers: Bool) async throws -> Int {
        var configuration = Store.Configuration()
        configuration.sharedWorkers = sharedWorkers
        let stores = try (0..<count).map {
            try makeStore(dir, name: "\(sharedWorkers)-\($0).sqlite", configuration: configuration)
        }
        final class Running: Sendable {
            let counts = Mutex((now: 0, most: 0))
        }
        let running = Running()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for store in stores {
                group.addTask {
                    try await store.write { tx in
                        running.counts.withLock {
                            $0.now += 1
                            $0.most = max($0.most, $0.now)
                        }
                        defer { running.counts.withLock { $0.now -= 1 } }
                        let end = ContinuousClock.now + .milliseconds(50)
                        while ContinuousClock.now < end {}
                        _ = try tx.insert("inspection_round", ["title": "2021年巡察", "team": "第一巡察组", "unit": "区民政局"])
                    }
                }
            }
            try await group.waitForAll()
        }
        for store in stores { #expect(try store.fetch(Query("inspection_round")).count == 1) }
        return running.counts.withLock { $0.most }
    }

    @Test("stores with shared workers run their database work on about as many threads as cores, not one each")
    func sharedWorkers() async throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let count = max(16, 3 * cores)
        let shared = try await concurrentWrites(count: count, sharedWorkers: true)
        #expect(shared <= cores + 2, "\(shared) of \(count) writes ran at once on \(cores) cores")
        // Without it each store has a writer thread of its own: the measure tells the two apart.
        let own = try await concurrentWrites(count: count, sharedWorkers: false)
        #expect(own > cores + 2, "only \(own) of \(count) writes ran at once with a thread each")
    }
}
