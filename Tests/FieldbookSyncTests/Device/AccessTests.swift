import FieldbookCore
import FieldbookHTTP
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookTesting
import Foundation
import Testing

/// Roles on devices: a device refuses what its role may not write once it knows its role; what it
/// wrote before (or what the office's concurrent change made forbidden) the server rejects, and
/// the device undoes it, lists it, and goes on syncing.
@Suite("Sync: roles on devices", .tags(.device))
struct AccessTests {
    @Test(
        "a forbidden write is refused on the device, or rejected by the server and undone there; nothing blocks, all converge",
        arguments: Backend.all)
    func roles(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let inspectorToken = try await storage.createToken(name: "李明", role: "inspector")
        let officeToken = try await storage.createToken(name: "王芳", role: "office")
        let inspector = try Store(path: dir.path("inspector.sqlite"), schema: schema)
        let office = try Store(path: dir.path("office.sqlite"), schema: schema)
        let photo = dir.path("疏通后.jpg")
        try Data([0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]).write(to: URL(fileURLWithPath: photo))
        try await withServer(storage: storage, configure: { $0.filesDirectory = dir.path("files") }) { url in
            let asInspector = HTTPTransport(server: url, token: inspectorToken)
            let asOffice = HTTPTransport(server: url, token: officeToken)

            // Offline, before its first sync, the device does not know its role: it writes what it
            // may not, and what it may.
            #expect(inspector.role == nil)
            let site = try inspector.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home", "town": "新度镇"])
            let finding = try inspector.insert("finding", ["site": .text(site), "title": "消防通道堵塞"])
            let action = try inspector.insert(
                "accountability_action", ["finding": .text(finding), "person": "张三", "kind": "reminder"])
            try inspector.update("finding", id: finding, ["status": "in_progress"])
            _ = try await inspector.sync(asInspector)

            #expect(inspector.role == "inspector")
            let rejected = try inspector.rejectedChanges()
            #expect(rejected.map(\.rule) == ["accountability_action.access"])
            #expect(rejected.first?.recordID == action && rejected.first?.entity == "accountability_action")
            #expect(try inspector.record("accountability_action", id: action) == nil)
            #expect(try inspector.pendingChanges(limit: 10).isEmpty)

            // Now it knows: refused here, with the rule and who may, and nothing is written.
            let before = try inspector.pendingChanges(limit: 10).count
            let delete = #expect(throws: StoreError.self) { try inspector.delete("finding", id: finding) }
            #expect(delete?.code == .forbidden)
            #expect(delete?.message.contains("finding.delete") == true)
            #expect(delete?.message.contains("office") == true)
            let close = #expect(throws: StoreError.self) {
                try inspector.update("finding", id: finding, ["status": "closed"])
            }
            #expect(close?.code == .forbidden)
            #expect(try inspector.pendingChanges(limit: 10).count == before)
            #expect(try inspector.record("finding", id: finding)?["status"] == "in_progress")

            // The office closes the finding off while the inspector, offline, reports it rectified:
            // the server takes the office's step and rejects the inspector's (closed → completed).
            _ = try await office.sync(asOffice)
            #expect(office.role == "office")
            try office.update("finding", id: finding, ["status": "closed"])
            _ = try await office.sync(asOffice)
            // Reporting it rectified needs evidence: refused here until a photo is attached.
            let bare = #expect(throws: StoreError.self) {
                try inspector.update("finding", id: finding, ["status": "completed", "results": "已疏通"])
            }
            #expect(bare?.code == .forbidden && bare?.message.contains("finding.requires") == true)
            try inspector.attach("finding", id: finding, field: "evidence", files: [photo])
            try inspector.update("finding", id: finding, ["status": "completed", "results": "已疏通"])
            try inspector.update("site", id: site, ["village": "前村"])
            _ = try await inspector.sync(asInspector)
            _ = try await office.sync(asOffice)

            #expect(try inspector.rejectedChanges().map(\.rule) == ["accountability_action.access", "finding.status"])
            #expect(try inspector.record("finding", id: finding)?["status"] == "closed")
            #expect(try inspector.record("finding", id: finding)?["results"] == .null)
            #expect(try office.record("site", id: site)?["village"] == "前村")
            let server = try await snapshot(storage)
            #expect(try snapshot(inspector) == server)
            #expect(try snapshot(office) == server)

            // Discarded: off the list; the history keeps it.
            try inspector.discardRejected(rejected[0].sequence)
            #expect(try inspector.rejectedChanges().map(\.rule) == ["finding.status"])
            #expect(throws: StoreError.self) { try inspector.discardRejected(rejected[0].sequence) }

            // The role survives a reopen.
            #expect(try Store(path: dir.path("inspector.sqlite"), schema: schema).role == "inspector")
        }
    }
}
