import FieldbookCore
import FieldbookHTTP
import FieldbookSchemas
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import Testing

@Suite("Server: publishing a schema version", .tags(.server))
struct SchemaPublishTests {
    @Test(
        "a rename reaches every stored change, merge state and conflict; a refused version changes nothing",
        arguments: Backend.all)
    func publish(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let token = try await storage.createToken(name: "王芳", role: "office")
        let desk = try Store(path: dir.path("desk.sqlite"), schema: schema)
        let laptop = try Store(path: dir.path("laptop.sqlite"), schema: schema)
        var findings: [String] = []
        for n in 0..<30 {
            let site = try desk.insert("site", ["name": .text("敬老院\(n)"), "kind": "elderly_home", "town": "甲镇"])
            findings.append(
                try desk.insert(
                    "finding",
                    [
                        "site": .text(site), "title": .text("问题\(n)"), "description": .text("消防通道堵塞\(n)"),
                        "results": .text("已整改\(n)"),
                    ]))
        }
        let first = findings[0]
        try await withServer(storage: storage) { url in
            _ = try await desk.sync(HTTPTransport(server: url, token: token))
            _ = try await laptop.sync(HTTPTransport(server: url, token: token))
            // Two offices describe finding 0 differently without knowing of each other: a conflict.
            try desk.update("finding", id: first, ["description": "楼梯间堆放杂物"])
            try laptop.update("finding", id: first, ["description": "安全出口上锁"])
            _ = try await desk.sync(HTTPTransport(server: url, token: token))
            _ = try await laptop.sync(HTTPTransport(server: url, token: token))
        }
        #expect(try await storage.storedConflicts().map(\.id) == ["\(findings[0])/description"])
        let before = try await fingerprint(storage, dir)

        // Refused: not after the newest; not a compatible evolution. Nothing changes.
        await #expect(throws: SchemaRefusal.self) { try await storage.publish(schema) }
        let dropped = try Schema(
            json: String(decoding: BundledSchemas.inspection, as: UTF8.self)
                .replacingOccurrences(
                    of: "\"version\": \(schema.version),", with: "\"version\": \(schema.version + 1),"
                )
                .replacingOccurrences(of: #""maxLength": 8000, "policy": "manual""#, with: #""policy": "lww""#))
        let refusal = await #expect(throws: SchemaRefusal.self) { try await storage.publish(dropped) }
        #expect(
            refusal?.description.contains(
                "finding.description: changing the policy from manual to lww would merge changes differently") == true)
        #expect(refusal?.description.contains("nothing was changed") == true)
        #expect(try await fingerprint(storage, dir) == before)
        #expect(try await storage.schemaVersions().map(\.schema.version) == [schema.version])
        #expect(storage.schema.version == schema.version)

        let next = try nextInspectionVersion()
        try await storage.publish(next)
        #expect(storage.schema == next)
        #expect(try await storage.schemaVersions().map(\.schema) == [schema, next])
        #expect(try await storage.storedConflicts().map(\.id) == ["\(findings[0])/details"])
        let records = try await snapshot(storage)["finding"] ?? [:]
        #expect(records.count == 30)
        for (n, id) in findings.enumerated().dropFirst() {
            #expect(records[id]?["details"] == .text("消防通道堵塞\(n)"))
            #expect(records[id]?["results"] == .text("已整改\(n)"), "a retired field keeps its values")
            #expect(records[id]?["description"] == nil)
        }
        // The same store, opened again with the earlier version (the bundled one), runs the newest.
        #expect(try await makeStorage(dir, backend).schema == next)

        // A new device of the new version pulls every change under the new name and finds the
        // conflict on the renamed field, with both sides.
        let phone = try Store(path: dir.path("phone.sqlite"), schema: next)
        try await withServer(storage: storage) { url in
            _ = try await phone.sync(HTTPTransport(server: url, token: token))
        }
        #expect(try phone.fetch(Query("finding")).count == 30)
        #expect(try phone.record("finding", id: findings[7])?["details"] == .text("消防通道堵塞7"))
        #expect(try phone.record("finding", id: findings[7])?["results"] == .text("已整改7"))
        let conflict = try #require(try phone.conflicts().first)
        #expect(conflict.id == "\(findings[0])/details")
        #expect(Set(conflict.sides.map(\.value)) == [.text("楼梯间堆放杂物"), .text("安全出口上锁")])
    }

    @Test(
        "a device newer than the server is told which version to publish and keeps every change; a running server takes a version another process publishes",
        arguments: Backend.all)
    func deviceAhead(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let running = try await makeStorage(dir, backend)
        let token = try await running.createToken(name: "王芳", role: "office")
        let next = try nextInspectionVersion()
        let phone = try Store(path: dir.path("phone.sqlite"), schema: next)
        let site = try phone.insert("site", ["name": "幸福院", "kind": "happiness_home", "town": "乙镇"])
        let finding = try phone.insert(
            "finding", ["site": .text(site), "title": "呼叫按钮损坏", "details": "三楼", "accepted_on": "2026-12-01"])
        try await withServer(storage: running) { url in
            let refusal = await #expect(throws: SyncError.self) {
                _ = try await phone.sync(HTTPTransport(server: url, token: token))
            }
            #expect(refusal?.refusal == .schemaAhead)
            #expect(refusal?.message.contains("publish version \(next.version) on the server") == true)
            #expect(try phone.pendingChanges(limit: 10).count == 2, "nothing is lost or marked sent")

            // Another process (an administrator's `schema publish`) publishes the version; the
            // running server takes it at the device's next request.
            let admin = try await makeStorage(dir, backend)
            try await admin.publish(next)
            #expect(running.schema.version == schema.version, "not read yet")
            let report = try await phone.sync(HTTPTransport(server: url, token: token))
            #expect(report.pushed == 2)
            #expect(running.schema == next)
        }
        let records = try await snapshot(running)["finding"] ?? [:]
        #expect(records[finding]?["details"] == .text("三楼"))
        #expect(records[finding]?["accepted_on"] == .text("2026-12-01"))
    }

    @Test(
        "a device of the version before syncs at once after another process publishes: its request is read again in the version the server takes",
        arguments: Backend.all)
    func publishedElsewhere(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let running = try await makeStorage(dir, backend)
        let token = try await running.createToken(name: "王芳", role: "office")
        let old = try Store(path: dir.path("old.sqlite"), schema: schema)
        let site = try old.insert("site", ["name": "幸福院", "kind": "happiness_home", "town": "乙镇"])
        try await withServer(storage: running) { url in
            _ = try await old.sync(HTTPTransport(server: url, token: token))
            try await makeStorage(dir, backend).publish(try nextInspectionVersion())
            _ = try old.insert("finding", ["site": .text(site), "title": "扶手松动", "description": "二楼"])
            let report = try await old.sync(HTTPTransport(server: url, token: token))
            #expect(report.pushed == 1)
            #expect(report.newestSchema == schema.version + 1)
            #expect(running.schema.version == schema.version + 1)
        }
        #expect(try await snapshot(running)["finding"]?.values.first?["details"] == .text("二楼"))
    }
}
