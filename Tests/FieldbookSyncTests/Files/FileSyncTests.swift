import FieldbookCore
import FieldbookFiles
import FieldbookHTTP
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import Testing

/// A server store on `backend` with two tokens — the office's, which sees everything, and an
/// inspector's of 新度镇 — and a device for each in `dir`.
func officeAndInspector(_ dir: TemporaryDirectory, _ backend: Backend) async throws -> (
    storage: any SyncStorage, officeToken: String, inspectorToken: String, office: Store, inspector: Store
) {
    let storage = try await makeStorage(dir, backend)
    let officeToken = try await storage.createToken(name: "王芳", role: "office", scopes: nil)
    let inspectorToken = try await storage.createToken(name: "李明", role: "inspector", scopes: ["town=新度镇"])
    return (
        storage, officeToken, inspectorToken, try Store(path: dir.path("office.sqlite"), schema: schema),
        try Store(path: dir.path("inspector.sqlite"), schema: schema)
    )
}

/// Evidence files through a real server on loopback: attached offline, uploaded before the change
/// that refers to them, downloaded and checked on the other device.
@Suite("Files: evidence attached on one device arrives on another", .tags(.device, .server))
struct FileSyncTests {
    /// A JPEG-looking file of `size` bytes (the JPEG signature, then seeded bytes).
    static func photo(_ path: String, size: Int, seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        var bytes: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0]
        bytes.reserveCapacity(size)
        while bytes.count < size { bytes.append(UInt8.random(in: 0...255, using: &random)) }
        try Data(bytes.prefix(size)).write(to: URL(fileURLWithPath: path))
    }

    @Test(
        "a finding's evidence reaches the office; the same photo attached twice is stored once", arguments: Backend.all)
    func evidenceArrives(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let tokens = [try await storage.createToken(name: "李明"), try await storage.createToken(name: "王芳")]
        let inspector = try Store(path: dir.path("inspector.sqlite"), schema: schema)
        let office = try Store(path: dir.path("office.sqlite"), schema: schema)
        try Self.photo(dir.path("消防通道.jpg"), size: 3_000_000, seed: 1)
        try Self.photo(dir.path("呼叫器.jpg"), size: 40_000, seed: 2)

        // Offline: a finding, and two photos attached (one of them twice, under another name too).
        let finding = try inspector.insert("finding", ["title": "消防通道堵塞", "status": "in_progress"])
        let first = try inspector.attach(
            "finding", id: finding, field: "evidence", files: [dir.path("消防通道.jpg"), dir.path("呼叫器.jpg")])
        try inspector.attach("finding", id: finding, field: "evidence", files: [dir.path("消防通道.jpg")])
        #expect(first.map(\.name) == ["消防通道.jpg", "呼叫器.jpg"])
        #expect(first[0].mediaType == "image/jpeg" && first[0].size == 3_000_000)
        let held = try #require(try inspector.record("finding", id: finding))
        #expect(held["evidence"].attachments.count == 2)

        let options = {
            var options = SyncOptions()
            options.fileChunkBytes = 1 << 20  // three chunks for the large photo
            return options
        }()
        try await withServer(storage: storage, configure: { $0.filesDirectory = dir.path("server.files") }) { url in
            let report = try await inspector.sync(HTTPTransport(server: url, token: tokens[0]), options: options)
            #expect(report.filesUploaded == 2 && report.pushed == 3)
            let pulled = try await office.sync(HTTPTransport(server: url, token: tokens[1]), options: options)
            #expect(pulled.filesDownloaded == 2 && pulled.filesWaiting == 0)
        }
        let arrived = try #require(try office.record("finding", id: finding))
        #expect(arrived["evidence"] == held["evidence"])
        for attachment in first {
            let path = try #require(try office.filePath(attachment.sha256))
            #expect(
                try Data(contentsOf: URL(fileURLWithPath: path))
                    == Data(contentsOf: URL(fileURLWithPath: dir.path(attachment.name))))
            #expect(
                FileManager.default.fileExists(
                    atPath: dir.path("server.files/sha256/\(attachment.sha256.prefix(2))/\(attachment.sha256)")))
        }
    }

    @Test(
        "a push that refers to a file the server lacks is refused whole (missing_files), nothing stored",
        arguments: Backend.all)
    func missingFilesRefused(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let token = try await storage.createToken(name: "李明")
        let device = try Store(path: dir.path("device.sqlite"), schema: schema)
        try Self.photo(dir.path("a.jpg"), size: 1000, seed: 3)
        let finding = try device.insert("finding", ["title": "标识缺失"])
        let attachment = try device.attach("finding", id: finding, field: "evidence", files: [dir.path("a.jpg")])[0]
        try await withServer(storage: storage, configure: { $0.filesDirectory = dir.path("server.files") }) { url in
            let transport = HTTPTransport(server: url, token: token)
            // The push alone, without the upload the sync makes first.
            let error = await #expect(throws: SyncError.self) { _ = try await device.push(transport) }
            #expect(error?.refusal == .missingFiles)
            #expect((error?.underlying as? WireError)?.files == [attachment.sha256])
            #expect(try await storage.standing(device: device.deviceID).head == 0)
            // The sync uploads it first, then pushes.
            let report = try await device.sync(transport)
            #expect(report.filesUploaded == 1 && report.pushed == 2)
        }
    }

    @Test(
        "an inspector's finding reported rectified without evidence is rejected by the server (the device did not know its role yet); with evidence it is merged",
        arguments: Backend.all)
    func evidenceRequired(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let token = try await storage.createToken(name: "李明", role: "inspector")
        let device = try Store(path: dir.path("device.sqlite"), schema: schema)
        try Self.photo(dir.path("整改后.jpg"), size: 5000, seed: 4)
        // Offline before its first sync: it does not know its role, so it cannot refuse.
        let bare = try device.insert("finding", ["title": "呼叫器损坏", "status": "completed"])
        let proven = try device.insert("finding", ["title": "消防通道堵塞"])
        try device.attach("finding", id: proven, field: "evidence", files: [dir.path("整改后.jpg")])
        try device.update("finding", id: proven, ["status": "completed"])
        try await withServer(storage: storage, configure: { $0.filesDirectory = dir.path("server.files") }) { url in
            _ = try await device.sync(HTTPTransport(server: url, token: token))
        }
        #expect(try device.rejectedChanges().map(\.rule) == ["finding.requires"])
        #expect(try device.rejectedChanges().first?.recordID == bare)
        #expect(try device.record("finding", id: bare) == nil)
        #expect(try device.record("finding", id: proven)?["status"] == "completed")
        // Now it knows its role: it refuses the same itself.
        let refused = #expect(throws: StoreError.self) {
            try device.insert("finding", ["title": "标识缺失", "status": "completed"])
        }
        #expect(refused?.code == .forbidden)
    }

    @Test("a record that enters a token's scope brings its files: the device downloads them", arguments: Backend.all)
    func enteredRecordsFiles(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let (storage, officeToken, inspectorToken, office, inspector) = try await officeAndInspector(dir, backend)
        try Self.photo(dir.path("消防通道.jpg"), size: 20_000, seed: 6)
        let site = try office.insert("site", ["name": "城关敬老院", "kind": "elderly_home", "town": "城关镇"])
        let finding = try office.insert("finding", ["title": "消防通道堵塞", "site": .text(site)])
        let photo = try office.attach("finding", id: finding, field: "evidence", files: [dir.path("消防通道.jpg")])[0]
        try await withServer(storage: storage, configure: { $0.filesDirectory = dir.path("server.files") }) { url in
            let toOffice = HTTPTransport(server: url, token: officeToken)
            let toInspector = HTTPTransport(server: url, token: inspectorToken)
            _ = try await office.sync(toOffice)
            let before = try await inspector.sync(toInspector)
            let hidden = try inspector.record("finding", id: finding)
            #expect(before.filesDownloaded == 0 && hidden == nil)
            // The site moves into the inspector's town: its finding, and the finding's photo, follow.
            try office.update("site", id: site, ["town": "新度镇"])
            _ = try await office.sync(toOffice)
            let after = try await inspector.sync(toInspector)
            #expect(try inspector.record("finding", id: finding)?["evidence"].attachments == [photo])
            #expect(after.filesDownloaded == 1 && after.filesWaiting == 0)
            #expect(try inspector.holdsFile(photo.sha256))
        }
    }

    @Test(
        "prune deletes only files nothing on the device refers to; one that comes back is downloaded again",
        arguments: Backend.all)
    func prune(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let (storage, officeToken, inspectorToken, office, inspector) = try await officeAndInspector(dir, backend)
        for n in 0..<4 { try Self.photo(dir.path("\(n).jpg"), size: 10_000 + n, seed: UInt64(20 + n)) }
        let site = try office.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home", "town": "新度镇"])
        let finding = try office.insert("finding", ["title": "消防通道堵塞", "site": .text(site)])
        let kept = try office.attach("finding", id: finding, field: "evidence", files: [dir.path("0.jpg")])[0]
        let replaced = try office.attach("finding", id: finding, field: "evidence", files: [dir.path("1.jpg")])[0]
        try office.detach("finding", id: finding, field: "evidence", sha256: replaced.sha256)
        let loose = try office.importFile(at: dir.path("2.jpg"))
        @Sendable func here(_ store: Store) throws -> Set<String> {
            Set(try store.fileDirectory().stored().map(\.sha256))
        }

        // Before the sync, the detached photo is still in a change not yet pushed: kept. The one
        // imported and never attached is kept only within the age given.
        #expect(try office.pruneFiles().isEmpty)
        #expect(try office.pruneFiles(olderThan: .zero, dryRun: true).map(\.sha256) == [loose.sha256])
        #expect(try here(office) == [kept.sha256, replaced.sha256, loose.sha256])
        try await withServer(storage: storage, configure: { $0.filesDirectory = dir.path("server.files") }) { url in
            let toOffice = HTTPTransport(server: url, token: officeToken)
            let toInspector = HTTPTransport(server: url, token: inspectorToken)
            _ = try await office.sync(toOffice)
            // Pushed: the detached photo is referred to by nothing here any more.
            let pruned = try office.pruneFiles(olderThan: .zero)
            #expect(Set(pruned.map(\.sha256)) == [replaced.sha256, loose.sha256])
            #expect(pruned.first { $0.sha256 == replaced.sha256 }?.size == replaced.size)
            #expect(try here(office) == [kept.sha256])
            #expect(try office.files().map(\.sha256) == [kept.sha256])
            var bytes: [UInt8] = []
            try office.readFile(kept.sha256) { bytes += $0 }
            #expect(try Data(bytes) == Data(contentsOf: URL(fileURLWithPath: dir.path("0.jpg"))))

            // The inspector's device holds its town's photo; the site leaves the town, and the photo
            // can go; the site comes back, and the photo is downloaded again.
            _ = try await inspector.sync(toInspector)
            #expect(try here(inspector) == [kept.sha256])
            #expect(try inspector.pruneFiles(olderThan: .zero).isEmpty)
            try office.update("site", id: site, ["town": "城关镇"])
            _ = try await office.sync(toOffice)
            _ = try await inspector.sync(toInspector)
            #expect(try inspector.record("finding", id: finding) == nil)
            #expect(try inspector.pruneFiles(olderThan: .zero).map(\.sha256) == [kept.sha256])
            #expect(try here(inspector).isEmpty)
            try office.update("site", id: site, ["town": "新度镇"])
            _ = try await office.sync(toOffice)
            let back = try await inspector.sync(toInspector)
            #expect(try back.filesDownloaded == 1 && inspector.holdsFile(kept.sha256))
        }
        // A file no row names (a prune stopped between its two steps) goes too.
        let orphan = try office.fileDirectory().importFile(at: dir.path("3.jpg")).sha256
        #expect(try office.pruneFiles(olderThan: .zero).map(\.sha256) == [orphan])
        #expect(try here(office) == [kept.sha256])
    }

    @Test(
        "prune keeps the file an open conflict's other side names, and lets it go once the conflict is settled",
        arguments: Backend.all)
    func pruneKeepsConflictSides(_ backend: Backend) async throws {
        // One photo a record: two devices replacing it at once make a conflict for a person.
        let schema = try Schema(
            json: #"""
                {"schema": "photos", "version": 1, "entities": [{"name": "site", "fields": [
                  {"name": "name", "type": "text", "policy": "lww"},
                  {"name": "photo", "type": "attachment", "policy": "manual"}]}]}
                """#)
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend, schema: schema)
        let (tokenA, tokenB) = (try await storage.createToken(name: "王芳"), try await storage.createToken(name: "李明"))
        let a = try Store(path: dir.path("a.sqlite"), schema: schema)
        let b = try Store(path: dir.path("b.sqlite"), schema: schema)
        for n in 0..<3 { try Self.photo(dir.path("\(n).jpg"), size: 20_000 + n, seed: UInt64(40 + n)) }
        let site = try a.insert("site", ["name": "城关敬老院"])
        let first = try a.attach("site", id: site, field: "photo", files: [dir.path("0.jpg")])[0]
        try await withServer(storage: storage, configure: { $0.filesDirectory = dir.path("server.files") }) { url in
            let toA = HTTPTransport(server: url, token: tokenA)
            let toB = HTTPTransport(server: url, token: tokenB)
            _ = try await a.sync(toA)
            _ = try await b.sync(toB)
            #expect(try b.holdsFile(first.sha256))
            let fromA = try a.attach("site", id: site, field: "photo", files: [dir.path("1.jpg")])[0]
            let fromB = try b.attach("site", id: site, field: "photo", files: [dir.path("2.jpg")])[0]
            _ = try await a.sync(toA)
            let synced = try await b.sync(toB)
            #expect(synced.openConflicts == 1)
            let conflict = try #require(try b.conflicts().first)
            #expect(Set(conflict.sides.map(\.value)) == [.text(fromA.text), .text(fromB.text)])
            #expect(try b.holdsFile(fromA.sha256) && b.holdsFile(fromB.sha256))

            // Both sides' photos stay while the conflict is open, whichever the record shows; the
            // replaced first photo goes.
            #expect(try b.pruneFiles(olderThan: .zero).map(\.sha256) == [first.sha256])
            #expect(try b.holdsFile(fromA.sha256) && b.holdsFile(fromB.sha256))

            // Settled for A's photo and synced: B's own is named by nothing on the device any more.
            try b.resolve(conflict, with: .value(.text(fromA.text)))
            _ = try await b.sync(toB)
            #expect(try b.conflicts().isEmpty)
            #expect(try b.pruneFiles(olderThan: .zero).map(\.sha256) == [fromB.sha256])
            #expect(try b.holdsFile(fromA.sha256) && !b.holdsFile(fromB.sha256))
            #expect(try b.record("site", id: site)?["photo"] == .text(fromA.text))
        }
    }

    @Test(
        "a file gone from the device: the pull runs, nothing is pushed, and the changes go once it is put back",
        arguments: Backend.all)
    func goneFromTheDevice(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let tokens = [try await storage.createToken(name: "李明"), try await storage.createToken(name: "王芳")]
        let inspector = try Store(path: dir.path("inspector.sqlite"), schema: schema)
        let office = try Store(path: dir.path("office.sqlite"), schema: schema)
        try Self.photo(dir.path("现场.jpg"), size: 30_000, seed: 31)
        try Self.photo(dir.path("同一张.jpg"), size: 20_000, seed: 32)
        try Self.photo(dir.path("无关.jpg"), size: 10_000, seed: 33)
        let site = try office.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home"])
        try await withServer(storage: storage, configure: { $0.filesDirectory = dir.path("server.files") }) { url in
            let (toInspector, toOffice) = (
                HTTPTransport(server: url, token: tokens[0]), HTTPTransport(server: url, token: tokens[1])
            )
            _ = try await office.sync(toOffice)
            _ = try await inspector.sync(toInspector)
            let finding = try inspector.insert("finding", ["title": "消防通道堵塞", "site": .text(site)])
            let lost = try inspector.attach("finding", id: finding, field: "evidence", files: [dir.path("现场.jpg")])[0]
            let shared = try inspector.attach("finding", id: finding, field: "evidence", files: [dir.path("同一张.jpg")])[
                0]
            // The office holds the same photo as the second, and uploads it first.
            let own = try office.insert("finding", ["title": "呼叫按钮失灵", "site": .text(site)])
            try office.attach("finding", id: own, field: "evidence", files: [dir.path("同一张.jpg")])
            try office.update("site", id: site, ["name": "新度镇中心敬老院"])
            _ = try await office.sync(toOffice)
            // Both photos are deleted from the inspector's files by hand.
            let directory = try inspector.fileDirectory()
            for file in [lost, shared] { directory.remove(file.sha256) }
            // Known offline: both are not here (smallest first), and the server is not known to hold either.
            #expect(try inspector.pendingFilesNotHere() == [shared.sha256, lost.sha256])

            let report = try await inspector.sync(toInspector)
            // The one the server holds is no loss; the other stops the push, and says which.
            #expect(report.filesMissing == [lost.sha256])
            #expect(report.filesWaiting == 0)  // missing, not "not here yet": the server lacks it too
            #expect(try report.pushed == 0 && inspector.pendingCount() == 3)
            #expect(try await storage.records("finding").map(\.id) == [own])
            // The pull ran all the same.
            #expect(try inspector.record("site", id: site)?["name"] == "新度镇中心敬老院")
            #expect(try !inspector.holdsFile(lost.sha256))
            #expect(try inspector.pendingFilesNotHere() == [lost.sha256])

            // A copy nothing refers to is refused, and not kept.
            #expect(throws: StoreError.self) { try inspector.restoreFile(at: dir.path("无关.jpg")) }
            #expect(directory.stored().isEmpty)
            // Put back from the camera's copy, the changes go.
            #expect(try inspector.restoreFile(at: dir.path("现场.jpg")).sha256 == lost.sha256)
            let after = try await inspector.sync(toInspector)
            #expect(try after.filesMissing.isEmpty && after.pushed == 3 && inspector.pendingCount() == 0)
            _ = try await office.sync(toOffice)
            #expect(try office.record("finding", id: finding)?["evidence"].attachments.count == 2)
            #expect(try office.holdsFile(lost.sha256))
        }
    }

}
