import FieldbookCore
import FieldbookHTTP
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import Testing

/// A record deleted on one device while another refers to it: never a silent dangling reference.
/// A progress note (`onDelete: cascade`) goes with its finding; a measure (`onDelete: conflict`)
/// keeps its finding, as a delete conflict any device settles.
@Suite("Sync: a delete against a reference made concurrently", .tags(.device))
struct DeleteReferenceTests {
    @Test(
        "a note follows its finding deleted concurrently; a measure keeps its finding as a conflict, settled from a third device; in either order",
        arguments: Backend.all, [true, false])
    func deleteAgainstReference(_ backend: Backend, deleterFirst: Bool) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let a = try Store(path: dir.path("a.sqlite"), schema: schema)
        let b = try Store(path: dir.path("b.sqlite"), schema: schema)
        let office = try Store(path: dir.path("office.sqlite"), schema: schema)
        let devices = [a, b, office]
        let tokens = [
            try await storage.createToken(name: "王芳"), try await storage.createToken(name: "李明"),
            try await storage.createToken(name: "办公室"),
        ]
        try await withServer(storage: storage) { url in
            let transports = tokens.map { HTTPTransport(server: url, token: $0) }
            func syncAll() async throws {
                for (device, transport) in zip(devices + devices, transports + transports) {
                    _ = try await device.sync(transport)
                }
            }
            let noted = try a.insert("finding", ["title": "消防通道堵塞", "status": "not_started"])
            let measured = try a.insert("finding", ["title": "台账不全", "status": "not_started"])
            try await syncAll()

            // A deletes both findings; B, not knowing, notes progress on one and adds a measure to the other.
            try a.delete("finding", id: noted)
            try a.delete("finding", id: measured)
            let note = try b.insert("progress_note", ["finding": .text(noted), "text": "已清理"])
            let measure = try b.insert("measure", ["finding": .text(measured), "description": "补齐台账"])
            let order =
                deleterFirst ? [(a, transports[0]), (b, transports[1])] : [(b, transports[1]), (a, transports[0])]
            for (device, transport) in order { _ = try await device.sync(transport) }
            try await syncAll()

            let server = try await snapshot(storage)
            #expect(danglingReferences(server).isEmpty, "\(danglingReferences(server))")
            // The note went with its finding, everywhere; the measure kept its finding, as a conflict.
            #expect(server["finding"]?[noted] == nil && server["progress_note"]?[note] == nil)
            #expect(server["finding"]?[measured] != nil && server["measure"]?[measure] != nil)
            let conflicts = try await storage.conflicts()
            #expect(conflicts.map(\.id) == ["\(measured)/-"])
            #expect(
                conflicts.first?.sides.contains { $0.referrer == Conflict.Referrer(entity: "measure", record: measure) }
                    == true)
            for device in devices {
                #expect(try snapshot(device) == server)
                #expect(try device.conflicts().map(\.id) == ["\(measured)/-"])
            }
            // The note is still in B's history: hidden, not lost.
            #expect(try !b.history(of: note).isEmpty)

            // The office, which wrote no side, cannot delete the finding while the measure refers to it
            // (the error says what to do first); once it deletes the measure, nothing holds the
            // finding, and its delete stands: the conflict is settled.
            let conflict = try #require(try office.conflicts().first)
            let refused = #expect(throws: StoreError.self) { try office.resolve(conflict, with: .delete) }
            #expect(refused?.code == .referenced)
            try office.delete("measure", id: measure)
            #expect(try office.conflicts().isEmpty)
            #expect(try office.record("finding", id: measured) == nil)
            try await syncAll()
            let settled = try await snapshot(storage)
            #expect(settled["finding"]?[measured] == nil && settled["measure"]?[measure] == nil)
            #expect(try await storage.conflicts().isEmpty)
            for device in devices {
                #expect(try snapshot(device) == settled)
                #expect(try device.conflicts().isEmpty)
            }
        }
    }

    @Test(
        "a note hidden with its finding comes back when the finding's delete is contested and the finding kept",
        arguments: Backend.all)
    func noteComesBack(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let a = try Store(path: dir.path("a.sqlite"), schema: schema)
        let b = try Store(path: dir.path("b.sqlite"), schema: schema)
        let tokens = [try await storage.createToken(name: "王芳"), try await storage.createToken(name: "李明")]
        try await withServer(storage: storage) { url in
            let ta = HTTPTransport(server: url, token: tokens[0])
            let tb = HTTPTransport(server: url, token: tokens[1])
            let finding = try a.insert("finding", ["title": "消防通道堵塞", "status": "not_started"])
            let note = try a.insert("progress_note", ["finding": .text(finding), "text": "已通知"])
            _ = try await a.sync(ta)
            _ = try await b.sync(tb)
            // A deletes the finding (its note goes with it, locally too); B edits it meanwhile.
            try a.delete("finding", id: finding)
            #expect(try a.record("progress_note", id: note) == nil)
            try b.update("finding", id: finding, ["responsible_person": "张伟"])
            _ = try await a.sync(ta)
            _ = try await b.sync(tb)
            _ = try await a.sync(ta)
            // The delete is contested: the finding stays, and so does its note, on both devices.
            for device in [a, b] {
                #expect(try device.record("progress_note", id: note) != nil)
                #expect(try device.conflicts().map(\.id) == ["\(finding)/-"])
            }
            #expect(try await snapshot(storage)["progress_note"]?[note] != nil)
            // B settles it by deleting: the note goes again, everywhere.
            try b.resolve(try #require(try b.conflicts().first), with: .delete)
            _ = try await b.sync(tb)
            _ = try await a.sync(ta)
            let server = try await snapshot(storage)
            #expect(server["progress_note"]?[note] == nil && server["finding"]?[finding] == nil)
            for device in [a, b] {
                #expect(try snapshot(device) == server)
                #expect(try device.conflicts().isEmpty)
            }
        }
    }
}
