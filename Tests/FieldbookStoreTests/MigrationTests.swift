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
            // Not pushed yet, their inserts are given the new fields' defaults, as a server gives
            // them to an insert of the earlier version (a record pushed before gets no value).
            #expect(record["town"] == "城厢区")
            #expect(record["visits"] == 0)
            #expect(record["parent"] == .null)
        }
        let added = try store.insert("site", ["name": "新院"])
        #expect(try store.record("site", id: added)?["town"] == "城厢区")
        #expect(try store.record("site", id: added)?["visits"] == 0)
        try store.write { try $0.increment("site", id: ids[0], "visits") }
        #expect(try store.record("site", id: ids[0])?["visits"] == 1)
        #expect(
            try store.pendingChanges(limit: 1).first?.fields.map(\.field) == ["name", "kind", "beds", "town", "visits"])
        let visit = try store.insert("visit", ["site": .text(ids[0]), "on": "2021-09-02"])
        #expect(try store.record("visit", id: visit)?["site"] == .text(ids[0]))
        try store.update("site", id: ids[1], ["kind": "canteen", "name": .text(String(repeating: "长", count: 150))])
        // The changes made before the migration are still pending, in order.
        #expect(try store.pendingChanges(limit: 100).map(\.sequence) == Array(1...54))
        // Opening again with the same version changes nothing.
        #expect(try open(Self.v2).fetch(Query("site")).count == 51)
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
            "site.owner: a new required field needs a default (devices of earlier versions do not write it)",
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
        #expect(
            removed?.description.contains("site: removing an entity would lose its records; retire it instead") == true)
    }

    @Test("a field cannot become required, even when every record has a value: older devices may leave it empty")
    func becomingRequired() throws {
        let store = try open(Self.v1)
        let site = try store.insert("site", ["name": "幸福院"])
        try store.update("site", id: site, ["beds": 12])
        let required = Self.v1.replacingOccurrences(of: "\"version\": 1", with: "\"version\": 2")
            .replacingOccurrences(
                of: #""name": "beds", "type": "integer","#,
                with: #""name": "beds", "type": "integer", "required": true,"#)
        let error = expectStoreError(.migrationRefused) { _ = try open(required) }
        #expect(error?.description.contains("site.beds: a field cannot become required") == true)
        #expect(try open(Self.v1).schema.version == 1)
    }

    @Test("a renamed field keeps its values and its pending changes under the new name; a retired one is read only")
    func renameAndRetire() throws {
        var ids: [String] = []
        do {
            let store = try open(Self.v1)
            for n in 0..<20 {
                ids.append(
                    try store.insert("site", ["name": .text("养老院\(n)"), "kind": "home", "beds": .integer(Int64(n))]))
            }
            try store.update("site", id: ids[3], ["beds": 33])
        }
        let v2 = Self.v1.replacingOccurrences(of: "\"version\": 1", with: "\"version\": 2")
            .replacingOccurrences(
                of: #""name": "beds", "type": "integer","#,
                with: #""name": "bed_count", "renamedFrom": "beds", "type": "integer","#
            )
            .replacingOccurrences(
                of: #""name": "kind", "type": "enum","#, with: #""name": "kind", "retired": true, "type": "enum","#)
        let store = try open(v2)
        #expect(store.schema.version == 2)
        let records = try store.fetch(Query("site"))
        #expect(records.count == 20)
        for record in records {
            let n = ids.firstIndex(of: record.id)!
            #expect(record["bed_count"] == .integer(n == 3 ? 33 : Int64(n)))
            #expect(record["kind"] == "home", "a retired field's values stay readable")
            #expect(record["beds"] == nil)
        }
        // The changes not yet pushed name the field by its new name.
        let pending = try store.pendingChanges(limit: 100)
        #expect(pending.count == 21)
        #expect(pending.allSatisfy { change in !change.fields.contains { $0.field == "beds" } })
        #expect(pending.last?.fields.map(\.field) == ["bed_count"])
        // A retired field is not written here (devices of earlier versions may still write it).
        let refused = expectStoreError(.immutable) { try store.update("site", id: ids[0], ["kind": "cemetery"]) }
        #expect(refused?.description.contains("retired in schema version 2") == true)
        expectStoreError(.immutable) { _ = try store.insert("site", ["name": "x", "kind": "home"]) }
        let added = try store.insert("site", ["name": "新院", "bed_count": 5])
        #expect(try store.record("site", id: added)?["kind"] == .null)
        try store.update("site", id: ids[0], ["bed_count": 7])
        #expect(try store.record("site", id: ids[0])?["bed_count"] == 7)
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

    @Test("a retired entity's records stay readable; this version writes none")
    func retiredEntity() throws {
        let id = try open(Self.v1).insert("site", ["name": "公墓", "kind": "cemetery"])
        let retired = Self.v1.replacingOccurrences(of: "\"version\": 1", with: "\"version\": 2")
            .replacingOccurrences(
                of: #"{"name": "site", "fields""#, with: #"{"name": "site", "retired": true, "fields""#)
        let store = try open(retired)
        #expect(try store.record("site", id: id)?["name"] == "公墓")
        expectStoreError(.immutable) { _ = try store.insert("site", ["name": "新"]) }
        expectStoreError(.immutable) { try store.update("site", id: id, ["beds": 3]) }
        expectStoreError(.immutable) { try store.delete("site", id: id) }
        #expect(try store.fetch(Query("site")).count == 1)
    }

    @Test("upgradeProblems says beforehand whether a later version opens the store; a refused one changes nothing")
    func upgradeProblems() throws {
        let store = try open(Self.v1)
        try store.insert("site", ["name": "公墓", "kind": "cemetery", "beds": 2])
        func version(_ n: Int, _ replacing: String, _ with: String) throws -> Schema {
            try Schema(
                json: Self.v1.replacingOccurrences(of: "\"version\": 1", with: "\"version\": \(n)")
                    .replacingOccurrences(of: replacing, with: with))
        }
        let renamed = try version(2, #"{"name": "beds", "type""#, #"{"name": "places", "renamedFrom": "beds", "type""#)
        #expect(try store.upgradeProblems(to: renamed).isEmpty)
        // Renamed again in a version after one this store never fetched: the path is unknown.
        let twice = try version(3, #"{"name": "beds", "type""#, #"{"name": "spaces", "renamedFrom": "places", "type""#)
        let problems = try store.upgradeProblems(to: twice)
        #expect(problems.contains { $0.contains("site.beds") }, "\(problems)")
        #expect(try store.upgradeProblems(to: Schema(json: Self.v1)).count == 1, "not a later version")
        expectStoreError(.migrationRefused) { _ = try Store(path: dir.path("store.sqlite"), schema: twice) }
        let upgraded = try Store(path: dir.path("store.sqlite"), schema: renamed)
        #expect(try upgraded.fetch(Query("site")).first?["places"] == .integer(2))
        #expect(try upgraded.earlierNames(entity: "site") == ["places": ["beds"]])
    }
}
