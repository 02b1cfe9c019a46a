import FieldbookCore
import FieldbookStore
import FieldbookTesting
import Foundation
import Testing

@Suite("Store: migrations", .tags(.store))
struct MigrationTests {
    let dir = TemporaryDirectory()

    static let v1 = """
        {"schema": "ledger", "version": 1, "entities": [
          {"name": "site", "fields": [
            {"name": "name", "type": "text", "required": true, "maxLength": 100, "policy": "lww"},
            {"name": "kind", "type": "enum", "values": ["home", "cemetery"], "policy": "lww"},
            {"name": "beds", "type": "integer", "policy": "lww"}
          ]}
        ]}
        """

    /// v1 plus: a field with a default, a counter, an optional reference, an enum value, and a new entity.
    static let v2 = """
        {"schema": "ledger", "version": 2, "entities": [
          {"name": "site", "fields": [
            {"name": "name", "type": "text", "required": true, "maxLength": 200, "policy": "lww"},
            {"name": "kind", "type": "enum", "values": ["home", "cemetery", "canteen"], "policy": "lww"},
            {"name": "beds", "type": "integer", "policy": "lww"},
            {"name": "town", "type": "text", "required": true, "default": "城厢区", "policy": "lww"},
            {"name": "visits", "type": "integer", "policy": "counter"},
            {"name": "parent", "type": "reference", "entity": "site", "policy": "lww"}
          ]},
          {"name": "visit", "fields": [
            {"name": "site", "type": "reference", "entity": "site", "required": true, "policy": "lww"},
            {"name": "on", "type": "date", "policy": "lww"}
          ]}
        ]}
        """

    func open(_ text: String) throws -> Store {
        try Store(path: dir.path("store.sqlite"), schema: try Schema(json: text))
    }

    @Test("a newer version adds entities and fields; every record keeps its data")
    func addsEntitiesAndFields() throws {
        var ids: [String] = []
        do {
            let store = try open(Self.v1)
            for n in 0..<50 {
                ids.append(
                    try store.insert("site", ["name": .text("敬老院\(n)"), "kind": "home", "beds": .integer(Int64(n))]))
            }
        }
        let store = try open(Self.v2)
        #expect(store.schema.version == 2)
        let records = try store.fetch(Query("site").sorted(by: "beds"))
        #expect(records.count == 50)
        for (n, record) in records.enumerated() {
            #expect(record.id == ids[n])
            #expect(record["name"] == .text("敬老院\(n)"))
            #expect(record["beds"] == .integer(Int64(n)))
            #expect(record["town"] == "城厢区", "new field filled with its default")
            #expect(record["visits"] == 0, "new counter starts at 0")
            #expect(record["parent"] == .null)
        }
        let visit = try store.insert("visit", ["site": .text(ids[0]), "on": "2021-09-02"])
        #expect(try store.record("visit", id: visit)?["site"] == .text(ids[0]))
        try store.update("site", id: ids[1], ["kind": "canteen", "name": .text(String(repeating: "长", count: 150))])
        // The changes made before the migration are still pending, in order.
        #expect(try store.pendingChanges(limit: 100).map(\.sequence) == Array(1...52))
        // Opening again with the same version changes nothing.
        #expect(try open(Self.v2).fetch(Query("site")).count == 50)
    }

    @Test("unsafe changes are refused, all listed, and nothing changes")
    func refusesUnsafeChanges() throws {
        do {
            let store = try open(Self.v1)
            try store.insert("site", ["name": "公墓", "kind": "cemetery"])
        }
        let unsafe = """
            {"schema": "ledger", "version": 2, "entities": [
              {"name": "site", "fields": [
                {"name": "name", "type": "text", "required": true, "maxLength": 50, "policy": "lww"},
                {"name": "kind", "type": "enum", "values": ["home"], "policy": "lww"},
                {"name": "beds", "type": "text", "policy": "lww"},
                {"name": "owner", "type": "text", "required": true, "policy": "lww"}
              ]},
              {"name": "visit", "fields": [{"name": "on", "type": "date", "policy": "lww"}]}
            ]}
            """
        let error = expectStoreError(.migrationRefused) { _ = try open(unsafe) }
        let message = error?.description ?? ""
        for expected in [
            "site.name: lowering maxLength from 100",
            "site.kind: removing enum values (cemetery)",
            "site.beds: changing the type from an integer to text",
            "site.owner: a new required field needs a default while 1 records exist",
        ] {
            #expect(message.contains(expected), "missing: \(expected)")
        }
        // Nothing changed: the v1 store opens and holds its record; the new entity was not created.
        let store = try open(Self.v1)
        #expect(try store.fetch(Query("site")).map { $0["name"] } == ["公墓"])
        #expect(throws: StoreError.self) { try store.fetch(Query("visit")) }
        // Removing a field or an entity is refused too.
        let removal =
            #"{"schema": "ledger", "version": 3, "entities": [{"name": "other", "fields": [{"name": "x", "type": "text", "policy": "lww"}]}]}"#
        let removed = expectStoreError(.migrationRefused) { _ = try open(removal) }
        #expect(removed?.description.contains("site: removing an entity would lose its records") == true)
    }

    @Test("a field may become required only when no record lacks it")
    func becomingRequired() throws {
        let store = try open(Self.v1)
        let site = try store.insert("site", ["name": "幸福院"])
        let required = Self.v1.replacingOccurrences(of: "\"version\": 1", with: "\"version\": 2")
            .replacingOccurrences(
                of: #""name": "beds", "type": "integer","#,
                with: #""name": "beds", "type": "integer", "required": true,"#)
        expectStoreError(.migrationRefused) { _ = try open(required) }
        try store.update("site", id: site, ["beds": 12])
        #expect(try open(required).schema.version == 2)
    }

    @Test("same version with other content, an older version, another schema: refused")
    func versionChecks() throws {
        _ = try open(Self.v2)
        let sameVersion = Self.v2.replacingOccurrences(
            of: "\"on\", \"type\": \"date\"", with: "\"on\", \"type\": \"timestamp\"")
        expectStoreError(.migrationRefused) { _ = try open(sameVersion) }
        let older = expectStoreError(.incompatibleStore) { _ = try open(Self.v1) }
        #expect(older?.description.contains("newer than version 1") == true)
        let other =
            #"{"schema": "other", "version": 5, "entities": [{"name": "x", "fields": [{"name": "y", "type": "text", "policy": "lww"}]}]}"#
        expectStoreError(.incompatibleStore) { _ = try open(other) }
    }
}
