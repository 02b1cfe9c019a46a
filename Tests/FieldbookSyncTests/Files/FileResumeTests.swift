import FieldbookCore
import FieldbookFiles
import FieldbookHTTP
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import Synchronization
import Testing

/// Cut connections mid-transfer: the next sync resumes where the transfer stopped and sends or
/// receives only the rest.
@Suite("Files: transfers cut off resume where they stopped", .tags(.device, .server))
struct FileResumeTests {
    /// Passes everything to an HTTP transport, but cuts the connection once `chunks` chunks have
    /// been uploaded, or `bytes` bytes of a download received.
    final class Cutting: SyncTransport {
        let inner: HTTPTransport
        let chunks: Int
        let bytes: Int64
        let sent = Atomic<Int>(0)

        init(inner: HTTPTransport, chunks: Int = .max, bytes: Int64 = .max) {
            self.inner = inner
            self.chunks = chunks
            self.bytes = bytes
        }

        func push(_ request: PushRequest) async throws -> PushResponse { try await inner.push(request) }
        func push(encoded: EncodedPush) async throws -> PushResponse { try await inner.push(encoded: encoded) }
        func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse {
            try await inner.pull(request, schema: schema)
        }
        func fileStatus(_ sha256: String) async throws -> ServerFileStatus { try await inner.fileStatus(sha256) }
        func uploadFile(_ sha256: String, size: Int64, offset: Int64, chunk: [UInt8]) async throws -> Int64 {
            guard sent.add(1, ordering: .relaxed).newValue <= chunks else { throw SyncError(.network, "cut") }
            return try await inner.uploadFile(sha256, size: size, offset: offset, chunk: chunk)
        }
        func downloadFile(_ sha256: String, from offset: Int64, _ receive: ([UInt8]) throws -> Void) async throws {
            var received: Int64 = 0
            try await inner.downloadFile(sha256, from: offset) { piece in
                let room = bytes - received
                if room <= 0 { throw SyncError(.network, "cut") }
                let kept = Array(piece.prefix(Int(min(room, Int64(piece.count)))))
                try receive(kept)
                received += Int64(kept.count)
                if kept.count < piece.count { throw SyncError(.network, "cut") }
            }
        }
    }

    @Test(
        "an upload cut after three chunks, and a download cut half-way, each resume and move only the rest",
        arguments: Backend.all)
    func resume(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let tokens = [try await storage.createToken(name: "李明"), try await storage.createToken(name: "王芳")]
        let inspector = try Store(path: dir.path("inspector.sqlite"), schema: schema)
        let office = try Store(path: dir.path("office.sqlite"), schema: schema)
        let size = 6 << 20
        try FileSyncTests.photo(dir.path("合同扫描.jpg"), size: size, seed: 9)
        let finding = try inspector.insert("finding", ["title": "合同未签订"])
        let attachment = try inspector.attach(
            "finding", id: finding, field: "evidence", files: [dir.path("合同扫描.jpg")])[0]
        let options = {
            var options = SyncOptions()
            options.fileChunkBytes = 1 << 20
            options.attempts = 1
            return options
        }()
        try await withServer(storage: storage, configure: { $0.filesDirectory = dir.path("server.files") }) { url in
            let plain = [HTTPTransport(server: url, token: tokens[0]), HTTPTransport(server: url, token: tokens[1])]
            // Cut after three of six chunks: the sync fails, nothing is pushed, the server keeps 3 MiB.
            let cut = Cutting(inner: plain[0], chunks: 3)
            await #expect(throws: SyncError.self) { _ = try await inspector.sync(cut, options: options) }
            #expect(try await storage.standing(device: inspector.deviceID).head == 0)
            #expect(
                try await plain[0].fileStatus(attachment.sha256) == ServerFileStatus(complete: false, held: 3 << 20))
            // The next sync sends the other three, then the changes.
            let resumed = try await inspector.sync(plain[0], options: options)
            #expect(resumed.fileBytesUploaded == 3 << 20)
            #expect(resumed.filesUploaded == 1 && resumed.pushed == 2)

            // The office's download is cut at 2.5 MiB: the records arrive, the file waits.
            let half = Cutting(inner: plain[1], bytes: 5 << 19)
            let first = try await office.sync(half, options: options)
            #expect(first.pulled == 2 && first.filesDownloaded == 0 && first.filesWaiting == 1)
            #expect(try office.record("finding", id: finding)?["evidence"].attachments == [attachment])
            #expect(try !office.holdsFile(attachment.sha256))
            let second = try await office.sync(plain[1], options: options)
            #expect(second.filesDownloaded == 1 && second.filesWaiting == 0)
            #expect(second.fileBytesDownloaded == Int64(size) - (5 << 19))
        }
        let path = try #require(try office.filePath(attachment.sha256))
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: path))
                == Data(contentsOf: URL(fileURLWithPath: dir.path("合同扫描.jpg"))))
    }

    @Test("a download whose bytes are not the file is dropped, never kept; the next one starts again and succeeds")
    func corruptDownload() async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, .sqlite)
        let tokens = [try await storage.createToken(name: "李明"), try await storage.createToken(name: "王芳")]
        let inspector = try Store(path: dir.path("inspector.sqlite"), schema: schema)
        let office = try Store(path: dir.path("office.sqlite"), schema: schema)
        try FileSyncTests.photo(dir.path("a.jpg"), size: 300_000, seed: 5)
        let finding = try inspector.insert("finding", ["title": "标识缺失"])
        let attachment = try inspector.attach("finding", id: finding, field: "evidence", files: [dir.path("a.jpg")])[0]
        let serverFiles = dir.path("server.files")
        try await withServer(storage: storage, configure: { $0.filesDirectory = serverFiles }) { url in
            _ = try await inspector.sync(HTTPTransport(server: url, token: tokens[0]))
            // The server's copy is damaged on its disk (a bit flipped): the office's check catches it.
            let stored = try FileDirectory(root: serverFiles).path(of: attachment.sha256)
            var bytes = try Data(contentsOf: URL(fileURLWithPath: stored))
            bytes[200_000] ^= 0x01
            try bytes.write(to: URL(fileURLWithPath: stored))
            let report = try await office.sync(HTTPTransport(server: url, token: tokens[1]))
            #expect(report.filesDownloaded == 0 && report.filesWaiting == 1)
            #expect(try !office.holdsFile(attachment.sha256))
            let error = await #expect(throws: StoreError.self) {
                try await office.downloadFile(attachment.sha256, HTTPTransport(server: url, token: tokens[1]))
            }
            #expect(error?.code == .file)
            // Restored from a backup on the server: the next sync fetches it whole and keeps it.
            try FileManager.default.removeItem(atPath: stored)
            try FileManager.default.copyItem(atPath: dir.path("a.jpg"), toPath: stored)
            let again = try await office.sync(HTTPTransport(server: url, token: tokens[1]))
            #expect(again.filesDownloaded == 1 && again.fileBytesDownloaded == 300_000)
            #expect(try office.holdsFile(attachment.sha256))
        }
    }
}
