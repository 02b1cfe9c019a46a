import FieldbookCore
import FieldbookStore
import FieldbookTesting
import Foundation
import Testing

/// An update of one field takes its own path (statement and hook request prepared per
/// field, change encoded without arrays); these check it logs and refuses exactly what
/// the path for several fields does.
@Suite("Store: the one-field update path", .tags(.store))
struct UpdatePathTests {
    let dir = TemporaryDirectory()

    @Test("one-field updates log the epoch, the observation date, a counter's delta and a set's members")
    func oneFieldChanges() throws {
        let store = try makeStore(dir)
        let finding = try store.insert("finding", ["title": "问题", "status": "completed"])
        let site = try store.insert(
            "site", ["name": "幸福院", "kind": "happiness_home", "tags": .set(["六有"]), "observed_on": "2021-09-01"])
        try store.write { tx in
            try tx.update("finding", id: finding, ["status": "in_progress"])
            try tx.update("finding", id: finding, ["reopen_count": 2])
            // The epoch is the record's reopen_count when written, in the same transaction too.
            try tx.update("finding", id: finding, ["status": "completed"])
            try tx.update("site", id: site, ["illegal_graves_found": 5])
            try tx.update("site", id: site, ["illegal_graves_found": 3])
            try tx.update("site", id: site, ["tags": .set(["示范", "星级"])])
            try tx.update("site", id: site, ["star_rating": 4])
            try tx.update("site", id: site, ["observed_on": "2021-10-01"])
            try tx.update("finding", id: finding, ["responsible_person": "赵敏"])
        }
        let changes = try store.pendingChanges().dropFirst(2).map(\.fields)
        #expect(
            changes == [
                [FieldChange(field: "status", kind: .set("in_progress"), epoch: 0)],
                [FieldChange(field: "reopen_count", kind: .add(2))],
                [FieldChange(field: "status", kind: .set("completed"), epoch: 2)],
                [FieldChange(field: "illegal_graves_found", kind: .add(5))],
                [FieldChange(field: "illegal_graves_found", kind: .add(-2))],
                [FieldChange(field: "tags", kind: .members(added: ["星级", "示范"], removed: ["六有"]))],
                [FieldChange(field: "star_rating", kind: .set(4), observedAt: "2021-09-01")],
                [FieldChange(field: "observed_on", kind: .set("2021-10-01"))],
                [FieldChange(field: "responsible_person", kind: .set("赵敏"))],
            ])
        let record = try #require(try store.record("finding", id: finding))
        #expect(record["status"] == "completed")
        #expect(record["reopen_count"] == 2)
        #expect(try store.record("site", id: site)?["illegal_graves_found"] == 3)
    }

    @Test("several fields at once: the epoch and observation date are the values after the write")
    func severalFields() throws {
        let store = try makeStore(dir)
        let finding = try store.insert("finding", ["title": "问题"])
        let site = try store.insert("site", ["name": "幸福院", "kind": "happiness_home", "tags": .set(["六有"])])
        try store.update("finding", id: finding, ["status": "in_progress", "reopen_count": 1])
        try store.update("finding", id: finding, ["status": "completed", "title": "问题二"])
        try store.update(
            "site", id: site,
            ["beds_total": 30, "illegal_graves_found": 2, "tags": .set(["示范"]), "observed_on": "2021-09-03"])
        try store.update("site", id: site, ["nursing_beds": 10, "tags": .set(["示范", "星级"])])
        let changes = try store.pendingChanges().dropFirst(2).map(\.fields)
        #expect(
            changes == [
                [
                    FieldChange(field: "status", kind: .set("in_progress"), epoch: 1),
                    FieldChange(field: "reopen_count", kind: .add(1)),
                ],
                [
                    FieldChange(field: "title", kind: .set("问题二")),
                    FieldChange(field: "status", kind: .set("completed"), epoch: 1),
                ],
                [
                    FieldChange(field: "beds_total", kind: .set(30), observedAt: "2021-09-03"),
                    FieldChange(field: "observed_on", kind: .set("2021-09-03")),
                    FieldChange(field: "illegal_graves_found", kind: .add(2)),
                    FieldChange(field: "tags", kind: .members(added: ["示范"], removed: ["六有"])),
                ],
                [
                    FieldChange(field: "nursing_beds", kind: .set(10), observedAt: "2021-09-03"),
                    FieldChange(field: "tags", kind: .members(added: ["星级"], removed: [])),
                ],
            ])
    }

    @Test("one-field updates are validated completely and leave everything as it was")
    func oneFieldErrors() throws {
        let store = try makeStore(dir)
        let finding = try store.insert("finding", ["title": "问题"])
        let visit = try store.insert(
            "visit",
            [
                "site": .text(try store.insert("site", ["name": "院", "kind": "happiness_home"])),
                "visited_on": "2021-09-02",
            ])
        let before = try contents(store)
        expectStoreError(.unknownField) { try store.update("finding", id: finding, ["owner": "x"]) }
        expectStoreError(.notAllowed) { try store.update("finding", id: finding, ["status": "done"]) }
        expectStoreError(.required) { try store.update("finding", id: finding, ["status": nil]) }
        expectStoreError(.wrongType) { try store.update("finding", id: finding, ["reopen_count": "many"]) }
        expectStoreError(.tooLong) {
            try store.update("finding", id: finding, ["responsible_person": .text(String(repeating: "长", count: 51))])
        }
        expectStoreError(.badFormat) { try store.update("finding", id: finding, ["deadline": "next week"]) }
        expectStoreError(.missingReference) {
            try store.update("visit", id: visit, ["site": "0190b4b6-1c2d-7abc-8def-0123456789ab"])
        }
        expectStoreError(.notFound) { try store.update("finding", id: UUID().uuidString, ["status": "completed"]) }
        expectStoreError(.notFound) { try store.update("finding", id: UUID().uuidString, ["reopen_count": 1]) }
        #expect(try contents(store) == before)
        // A failed capture leaves nothing behind for the next update.
        try store.update("finding", id: finding, ["status": "completed"])
        #expect(
            try store.pendingChanges().last?.fields == [FieldChange(field: "status", kind: .set("completed"), epoch: 0)]
        )
    }
}
