import FieldbookCore
import FieldbookServer
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import GRDB
import Testing

@Suite("Server: the embedded store's scope index", .tags(.server))
struct ScopeIndexLayoutTests {
    @Test(
        "a store whose scope index named records by entity and id (the earlier layout) builds it again when opened: the same pages"
    )
    func earlierLayout() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path("server.sqlite")
        let desk = try Store(path: dir.path("office.sqlite"), schema: schema)
        let round = try desk.insert("inspection_round", ["title": "第一轮", "team": "第一巡察组", "unit": "民政局"])
        let siteA = try desk.insert("site", ["name": "甲院", "kind": "happiness_home", "town": "甲镇"])
        let siteB = try desk.insert("site", ["name": "乙院", "kind": "cemetery", "town": "乙镇"])
        for n in 0..<6 {
            let finding = try desk.insert(
                "finding", ["site": .text(n % 2 == 0 ? siteA : siteB), "round": .text(round), "title": .text("问题\(n)")])
            try desk.update("finding", id: finding, ["responsible_person": "张伟"])
        }
        try desk.update("site", id: siteB, ["town": "甲镇"])  // the other site's findings enter 甲镇

        var secret = ""
        func pages(_ storage: SQLiteSyncStorage) async throws -> [PullResponse] {
            let identity = try #require(try await storage.authenticate(token: secret))
            var pages: [PullResponse] = []
            var cursor: Int64 = 0
            repeat {
                var request = PullRequest(
                    schema: SchemaVersion(schema), device: "d", cursor: cursor, limit: 3)
                request.scopeGeneration = identity.scopeGeneration
                pages.append(try await storage.pull(request, identity: identity))
                cursor = pages.last!.cursor
            } while pages.last!.more
            return pages
        }
        let before: [PullResponse]
        do {
            let storage = try SQLiteSyncStorage(path: path, schema: schema)
            let office = try #require(
                try await storage.authenticate(token: try await storage.createToken(name: "王芳", role: "office")))
            secret = try await storage.createToken(name: "李明", role: "inspector", scopes: ["town=甲镇"])
            _ = try await storage.push(
                PushRequest(
                    schema: SchemaVersion(schema), device: desk.deviceID, changes: try desk.pendingChanges(limit: 100)),
                identity: office)
            before = try await pages(storage)
        }
        let records = Set(before.flatMap { $0.changes.map(\.recordID) + $0.entered.map(\.record.id) })
        #expect(records.count == 9)  // the round, both sites, six findings

        // The earlier layout: no record numbers, no members; its rows are not read again.
        try await DatabaseQueue(path: path).write { db in
            try db.execute(
                sql: """
                    DROP TABLE scope_records; DROP TABLE scope_members; DROP TABLE scope_log;
                    CREATE TABLE scope_records (
                        entity TEXT NOT NULL, id TEXT NOT NULL, entry TEXT NOT NULL, PRIMARY KEY (entity, id)) STRICT, WITHOUT ROWID;
                    CREATE TABLE scope_log (
                        key TEXT NOT NULL, sseq INTEGER NOT NULL, entity TEXT NOT NULL, id TEXT NOT NULL, kind INTEGER NOT NULL,
                        PRIMARY KEY (key, sseq, entity, id, kind)) STRICT, WITHOUT ROWID;
                    INSERT INTO scope_log VALUES ('town=甲镇', 1, 'site', 'stale', 0);
                    """)
        }
        let storage = try SQLiteSyncStorage(path: path, schema: schema)
        #expect(try await pages(storage) == before)
        let columns = try await DatabaseQueue(path: path).read { db in try db.columns(in: "scope_log").map(\.name) }
        #expect(columns == ["key", "sseq", "rid", "kind"])
    }
}
