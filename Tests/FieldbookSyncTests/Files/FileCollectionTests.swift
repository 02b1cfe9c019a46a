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

@Suite("Files: the server collects files no record refers to, after a grace period", .tags(.server))
struct FileCollectionTests {
    @Test(
        "referenced files stay; detached and never-referenced ones go once the grace period has passed, stale partial uploads too",
        arguments: Backend.all)
    func collect(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let token = try await storage.createToken(name: "李明")
        let device = try Store(path: dir.path("device.sqlite"), schema: schema)
        for n in 1...4 { try FileSyncTests.photo(dir.path("\(n).jpg"), size: 3000 + n, seed: UInt64(n)) }
        let kept = try device.insert("finding", ["title": "消防通道堵塞"])
        let photo1 = try device.attach("finding", id: kept, field: "evidence", files: [dir.path("1.jpg")])[0]
        let dropped = try device.insert("finding", ["title": "标识缺失"])
        let photo2 = try device.attach("finding", id: dropped, field: "evidence", files: [dir.path("2.jpg")])[0]
        let files = try FileDirectory(root: dir.path("server.files"))
        let photo3 = try device.importFile(at: dir.path("3.jpg"))
        let photo4 = try device.importFile(at: dir.path("4.jpg"))
        try await withServer(storage: storage, configure: { $0.filesDirectory = files.root }) { url in
            let transport = HTTPTransport(server: url, token: token)
            _ = try await device.sync(transport)
            try device.detach("finding", id: dropped, field: "evidence", sha256: photo2.sha256)
            _ = try await device.sync(transport)
            // Uploaded and never referenced; and half an upload, abandoned.
            let three = try Data(contentsOf: URL(fileURLWithPath: dir.path("3.jpg")))
            _ = try await transport.uploadFile(photo3.sha256, size: photo3.size, offset: 0, chunk: Array(three))
            let four = try Data(contentsOf: URL(fileURLWithPath: dir.path("4.jpg")))
            _ = try await transport.uploadFile(
                photo4.sha256, size: photo4.size, offset: 0, chunk: Array(four.prefix(1000)))
        }
        #expect(Set(files.stored().map(\.sha256)) == [photo1.sha256, photo2.sha256, photo3.sha256])
        #expect(files.partials().count == 1)

        // Within the grace period: nothing goes.
        let early = try await FileCollection.collect(storage: storage, directory: files, grace: .seconds(86_400))
        #expect(early.removed.isEmpty && early.partialsRemoved == 0 && early.kept == 3)
        // After it: what no record refers to goes; a dry run first deletes nothing.
        let later = Date().addingTimeInterval(2 * 86_400)
        let dry = try await FileCollection.collect(
            storage: storage, directory: files, grace: .seconds(86_400), now: later, dryRun: true)
        #expect(Set(dry.removed) == [photo2.sha256, photo3.sha256] && files.stored().count == 3)
        let report = try await FileCollection.collect(
            storage: storage, directory: files, grace: .seconds(86_400), now: later)
        #expect(Set(report.removed) == [photo2.sha256, photo3.sha256])
        #expect(report.partialsRemoved == 1 && report.kept == 1)
        #expect(files.stored().map(\.sha256) == [photo1.sha256] && files.partials().isEmpty)
        // What the records refer to now: the one photo still attached.
        let referenced = try await FileCollection.referenced(by: storage)
        #expect(referenced == [photo1.sha256])
    }
}
