import FieldbookCore
import FieldbookHTTP
import FieldbookJSON
import FieldbookSchemas
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import Testing

@Suite("Sync: a fleet on two schema versions", .tags(.server))
struct SchemaFleetTests {
    @Test(
        "a device one version behind keeps syncing: its changes reach the newer version renamed, it receives the newer version's changes in its own",
        arguments: Backend.all)
    func twoVersions(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let token = try await storage.createToken(name: "王芳", role: "office")
        let next = try nextInspectionVersion()
        let old = try Store(path: dir.path("old.sqlite"), schema: schema)
        let site = try old.insert("site", ["name": "城关敬老院", "kind": "elderly_home", "town": "甲镇"])
        let first = try old.insert(
            "finding", ["site": .text(site), "title": "消防通道堵塞", "description": "一楼", "results": "已清理"])
        try await withServer(storage: storage) { url in
            _ = try await old.sync(HTTPTransport(server: url, token: token))
            try await storage.publish(next)
            let new = try Store(path: dir.path("new.sqlite"), schema: next)
            _ = try await new.sync(HTTPTransport(server: url, token: token))
            #expect(try new.record("finding", id: first)?["details"] == "一楼")
            #expect(try new.record("finding", id: first)?["results"] == "已清理", "a retired field keeps its values")

            // The older device writes in its version; the newer one in its.
            let second = try old.insert(
                "finding", ["site": .text(site), "title": "呼叫按钮损坏", "description": "三楼", "results": "待整改"])
            try new.update("finding", id: first, ["details": "一楼东侧", "accepted_on": "2026-12-01"])
            let third = try new.insert("finding", ["site": .text(site), "title": "台账缺失", "details": "办公室"])
            // Both describe the second finding without knowing of each other: a conflict on both.
            _ = try await old.sync(HTTPTransport(server: url, token: token))
            _ = try await new.sync(HTTPTransport(server: url, token: token))
            try old.update("finding", id: second, ["description": "三楼走廊"])
            try new.update("finding", id: second, ["details": "三楼房间"])
            _ = try await old.sync(HTTPTransport(server: url, token: token))
            _ = try await new.sync(HTTPTransport(server: url, token: token))
            _ = try await old.sync(HTTPTransport(server: url, token: token))

            #expect(try old.pendingCount() == 0)
            #expect(try new.pendingCount() == 0)
            #expect(try new.record("finding", id: second)?["results"] == "待整改")
            #expect(try old.record("finding", id: first)?["description"] == "一楼东侧")
            #expect(try old.record("finding", id: first)?.json.serialized.contains("accepted_on") == false)
            #expect(try old.record("finding", id: third)?["description"] == "办公室")
            #expect(try new.record("finding", id: third)?["accepted_on"] == .null)
            #expect(try old.conflicts().map(\.id) == ["\(second)/description"])
            #expect(try new.conflicts().map(\.id) == ["\(second)/details"])
            #expect(
                Set(try old.conflicts().first!.sides.map(\.value))
                    == Set(try new.conflicts().first!.sides.map(\.value)))
            // Every record, projected onto the older version, is the same on both devices.
            for finding in [first, second, third] {
                let newer = try #require(try new.record("finding", id: finding))
                let older = try #require(try old.record("finding", id: finding))
                for field in schema.entity("finding")!.fields {
                    let name = field.name == "description" ? "details" : field.name
                    #expect(older[field.name] == newer[name], "\(field.name)")
                }
            }
        }
    }

    @Test(
        "a device behind learns the newer version at a sync, reads its enum values once opened again, and upgrades with its changes",
        arguments: Backend.all)
    func learnAndUpgrade(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let token = try await storage.createToken(name: "王芳", role: "office")
        let next = try nextInspectionVersion()
        let path = dir.path("old.sqlite")
        let old = try Store(path: path, schema: schema)
        let site = try old.insert("site", ["name": "城关敬老院", "kind": "elderly_home", "town": "甲镇"])
        let first = try old.insert("finding", ["site": .text(site), "title": "消防通道堵塞"])
        let second = try old.insert("finding", ["site": .text(site), "title": "台账缺失"])
        try await withServer(storage: storage) { url in
            _ = try await old.sync(HTTPTransport(server: url, token: token))
        }
        try await storage.publish(next)
        let new = try Store(path: dir.path("new.sqlite"), schema: next)
        try await withServer(storage: storage) { url in
            _ = try await new.sync(HTTPTransport(server: url, token: token))
            try new.update("finding", id: first, ["status": "waived"])
            _ = try await new.sync(HTTPTransport(server: url, token: token))

            // The first sync learns of the version: a page with nothing but the announcement. The
            // finding it adds is given the newer version's default by the server.
            try old.update("finding", id: second, ["description": "档案室"])
            let third = try old.insert("finding", ["site": .text(site), "title": "扶手松动"])
            let learned = try await old.sync(HTTPTransport(server: url, token: token))
            #expect(learned.newestSchema == next.version)
            #expect(learned.pushed == 2)
            #expect(learned.pulled == 0)
            #expect(old.newestSchema == nil, "this store object reads what it was opened with")
            // The pages hold a value only the newer version defines: this object cannot read them.
            let unread = await #expect(throws: SyncError.self) {
                _ = try await old.sync(HTTPTransport(server: url, token: token))
            }
            #expect(unread?.message.contains("opened again") == true)

            // Opened again, it reads the newer values and merges them in the newer order.
            let reopened = try Store(path: path, schema: schema)
            #expect(reopened.newestSchema == next)
            #expect(reopened.schema.version == schema.version)
            _ = try await reopened.sync(HTTPTransport(server: url, token: token))
            #expect(try reopened.record("finding", id: first)?["status"] == "waived")
            #expect(try reopened.record("finding", id: second)?["description"] == "档案室")
            // `closed` is after `waived` in the newer order, which the older device follows.
            try reopened.update("finding", id: first, ["status": "closed"])
            try reopened.update("finding", id: second, ["status": "waived"])
            _ = try await reopened.sync(HTTPTransport(server: url, token: token))
            _ = try await new.sync(HTTPTransport(server: url, token: token))
            #expect(try new.record("finding", id: first)?["status"] == "closed")
            #expect(try new.record("finding", id: second)?["status"] == "waived")

            // Upgrading: the store moves to the newer version with the change it has not pushed.
            try reopened.update("finding", id: second, ["description": "档案室东"])
            let upgraded = try Store(path: path, schema: try #require(reopened.newestSchema))
            #expect(upgraded.schema == next)
            #expect(upgraded.newestSchema == nil)
            #expect(try upgraded.record("finding", id: second)?["details"] == "档案室东")
            #expect(try upgraded.pendingChanges().map { $0.fields.map(\.field) } == [["details"]])
            // Its own finding, added before it knew the field, has the default, as on the server;
            // the findings that existed before the field have none.
            #expect(try upgraded.record("finding", id: third)?["source"] == "巡察")
            #expect(try upgraded.record("finding", id: first)?["source"] == .null)
            let report = try await upgraded.sync(HTTPTransport(server: url, token: token))
            #expect(report.pushed == 1)
            #expect(report.newestSchema == nil)
            _ = try await new.sync(HTTPTransport(server: url, token: token))
            #expect(try new.record("finding", id: second)?["details"] == "档案室东")
            #expect(try new.record("finding", id: third)?["source"] == "巡察")
            #expect(try new.record("finding", id: first)?["source"] == .null)
            for finding in [first, second, third] {
                #expect(try upgraded.record("finding", id: finding) == new.record("finding", id: finding))
            }
        }
    }

    @Test(
        "a device that stayed behind, then upgrades, catches up on what its version left out, and holds what a device of the newer version holds",
        arguments: Backend.all, [nil, 2])
    func catchUp(_ backend: Backend, maxPage: Int?) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let token = try await storage.createToken(name: "王芳", role: "office")
        let next = try nextInspectionVersion()
        let path = dir.path("old.sqlite")
        let first = try Store(path: path, schema: schema)
        let site = try first.insert("site", ["name": "城关敬老院", "kind": "elderly_home", "town": "甲镇"])
        var findings: [String] = []
        for n in 0..<4 {
            findings.append(try first.insert("finding", ["site": .text(site), "title": .text("问题\(n)")]))
        }
        let ids = findings
        // With pages of two changes, the catch-up takes several answers, each applied with where it stopped.
        try await withServer(storage: storage, configure: { if let maxPage { $0.maxPage = maxPage } }) { url in
            _ = try await first.sync(HTTPTransport(server: url, token: token))
            try await storage.publish(next)
            #expect(try await first.sync(HTTPTransport(server: url, token: token)).newestSchema == next.version)
            // It stays: opened again with its own version.
            let stayed = try Store(path: path, schema: schema)
            let new = try Store(path: dir.path("new.sqlite"), schema: next)
            _ = try await new.sync(HTTPTransport(server: url, token: token))
            try new.update("finding", id: ids[0], ["accepted_on": "2026-12-01", "details": "东侧", "status": "waived"])
            try new.update("finding", id: ids[1], ["accepted_on": "2026-12-02"])
            let acceptance = try new.insert("acceptance", ["finding": .text(ids[0]), "passed": true])
            let added = try new.insert("finding", ["site": .text(site), "title": "新问题", "accepted_on": "2026-12-03"])
            _ = try await new.sync(HTTPTransport(server: url, token: token))
            _ = try await stayed.sync(HTTPTransport(server: url, token: token))
            #expect(try stayed.record("finding", id: ids[0])?["description"] == "东侧")
            #expect(try stayed.record("finding", id: added)?["title"] == "新问题")

            // It upgrades: the fields and the entity its version left out come with its next sync.
            let upgraded = try Store(path: path, schema: next)
            #expect(try upgraded.record("finding", id: ids[1])?["accepted_on"] == .null, "not caught up yet")
            #expect(try upgraded.record("acceptance", id: acceptance) == nil)
            _ = try await upgraded.sync(HTTPTransport(server: url, token: token))
            #expect(try upgraded.record("finding", id: ids[1])?["accepted_on"] == "2026-12-02")
            #expect(try upgraded.record("acceptance", id: acceptance)?["passed"] == true)
            _ = try await new.sync(HTTPTransport(server: url, token: token))
            for entity in ["site", "finding", "acceptance"] {
                #expect(try upgraded.fetch(Query(entity)) == new.fetch(Query(entity)), "\(entity)")
            }
            #expect(try upgraded.conflicts() == new.conflicts())
        }
    }
}
