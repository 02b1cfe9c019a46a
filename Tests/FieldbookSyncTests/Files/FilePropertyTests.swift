import Crypto
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

/// Devices attach and detach photos at random — the same photo on several devices among them —
/// and sync through a real server on loopback over connections cut mid-transfer, a device's store
/// dropped mid-download and opened again; then quiet rounds, and a collection past the grace period.
@Suite("Files: property test over attachments, cut transfers and collection", .tags(.device, .server))
struct FilePropertyTests {
    /// Cases: FIELDBOOK_FILE_CASES (default 200 per store; 10 in the fast tier); FIELDBOOK_FILE_SEED replays one.
    static let seeds: [UInt64] = {
        let env = ProcessInfo.processInfo.environment
        if let seed = env["FIELDBOOK_FILE_SEED"].flatMap(UInt64.init) { return [seed] }
        let count = env["FIELDBOOK_FILE_CASES"].flatMap(Int.init) ?? TestTier.cases(full: 200, fast: 10)
        return (0..<UInt64(count)).map { $0 }
    }()

    /// Cut transfers over all cases: the resumes were exercised.
    static let cuts = Atomic<Int>(0)
    /// Files referenced after the quiet rounds, and files the collection removed, over all cases.
    static let referencedFiles = Atomic<Int>(0)
    static let collected = Atomic<Int>(0)
    static let chunk = 1024

    /// An HTTP transport that counts the bytes of each file it moves, and cuts uploads and
    /// downloads at random when `faults` is on.
    final class Counting: SyncTransport, @unchecked Sendable {
        let inner: HTTPTransport
        let faults: Bool
        let lock = Mutex<(rng: SeededGenerator, up: [String: Int64], down: [String: Int64])>(
            (SeededGenerator(seed: 0), [:], [:]))

        init(_ inner: HTTPTransport, seed: UInt64, faults: Bool) {
            self.inner = inner
            self.faults = faults
            lock.withLock { $0.rng = SeededGenerator(seed: seed) }
        }

        func roll(_ odds: Int) -> Bool {
            faults && lock.withLock { Int.random(in: 0..<odds, using: &$0.rng) == 0 }
        }

        func push(_ request: PushRequest) async throws -> PushResponse { try await inner.push(request) }
        func push(encoded: EncodedPush) async throws -> PushResponse { try await inner.push(encoded: encoded) }
        func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse {
            try await inner.pull(request, schema: schema)
        }
        func fileStatus(_ sha256: String) async throws -> ServerFileStatus { try await inner.fileStatus(sha256) }
        func uploadFile(_ sha256: String, size: Int64, offset: Int64, chunk: [UInt8]) async throws -> Int64 {
            if roll(4) {
                FilePropertyTests.cuts.add(1, ordering: .relaxed)
                throw SyncError(.network, "cut before the chunk")
            }
            lock.withLock { $0.up[sha256, default: 0] += Int64(chunk.count) }
            let held = try await inner.uploadFile(sha256, size: size, offset: offset, chunk: chunk)
            if roll(6) {
                FilePropertyTests.cuts.add(1, ordering: .relaxed)
                throw SyncError(.network, "answer lost")
            }
            return held
        }
        func downloadFile(_ sha256: String, from offset: Int64, _ receive: ([UInt8]) throws -> Void) async throws {
            let cutAt = roll(3) ? Int64(Int.random(in: 1...3000)) : .max
            var got: Int64 = 0
            try await inner.downloadFile(sha256, from: offset) { piece in
                let kept = Array(piece.prefix(Int(min(Int64(piece.count), cutAt - got))))
                try receive(kept)
                got += Int64(kept.count)
                lock.withLock { $0.down[sha256, default: 0] += Int64(kept.count) }
                if got >= cutAt {
                    FilePropertyTests.cuts.add(1, ordering: .relaxed)
                    throw SyncError(.network, "cut mid-download")
                }
            }
        }
    }

    @Test(
        "every referenced file arrives whole on every device; no orphan outlives the grace period; a resumed transfer never moves a file twice",
        arguments: Backend.all)
    func files(backend: Backend) async throws {
        try await runCases(Self.seeds, label: "\(backend)", replay: "FIELDBOOK_FILE_SEED") { seed in
            try await Self.scenario(seed: seed, backend: backend)
        }
        // Not vacuous: transfers were cut, files arrived, and orphans were collected.
        if Self.seeds.count >= 10 {
            #expect(Self.cuts.load(ordering: .relaxed) > 0)
            #expect(Self.referencedFiles.load(ordering: .relaxed) > 0)
            #expect(Self.collected.load(ordering: .relaxed) > 0)
        }
    }

    static func scenario(seed: UInt64, backend: Backend) async throws {
        var rng = SeededGenerator(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ 7)
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let files = try FileDirectory(root: dir.path("server.files"))
        // A pool of photos; every device may attach any of them (the same file on several devices).
        var photos: [String] = []
        for n in 0..<6 {
            let path = dir.path("photo\(n).jpg")
            try FileSyncTests.photo(path, size: Int.random(in: 1...5000, using: &rng), seed: seed &* 10 &+ UInt64(n))
            photos.append(path)
        }
        let tokens = [
            try await storage.createToken(name: "王芳"), try await storage.createToken(name: "李明"),
            try await storage.createToken(name: "陈静"),
        ]
        var options = SyncOptions()
        options.fileChunkBytes = chunk
        options.attempts = 1
        options.downloadFilesUpTo = Bool.random(using: &rng) ? .max : 2500

        let (pool, start, settings) = (photos, rng, options)
        try await withServer(storage: storage, configure: { $0.filesDirectory = files.root }) { url in
            let (photos, options) = (pool, settings)
            var devices = try (0..<3).map { try Store(path: dir.path("device\($0).sqlite"), schema: schema) }
            let flaky = tokens.enumerated().map { n, token in
                Counting(HTTPTransport(server: url, token: token), seed: seed &+ UInt64(n), faults: true)
            }
            let reliable = tokens.map { Counting(HTTPTransport(server: url, token: $0), seed: 0, faults: false) }
            var rng = start
            for _ in 0..<Int.random(in: 6...16, using: &rng) {
                let n = Int.random(in: 0..<devices.count, using: &rng)
                let findings = try devices[n].fetch(Query("finding"))
                switch Int.random(in: 0..<6, using: &rng) {
                case 0, 1:
                    var id = findings.randomElement(using: &rng)?.id
                    if id == nil { id = try devices[n].insert("finding", ["title": "消防通道堵塞"]) }
                    let picked = (0..<Int.random(in: 1...2, using: &rng)).map { _ in
                        photos.randomElement(using: &rng)!
                    }
                    try devices[n].attach("finding", id: id!, field: "evidence", files: picked)
                case 2:
                    guard let finding = findings.randomElement(using: &rng),
                        let attachment = finding["evidence"].attachments.randomElement(using: &rng)
                    else { continue }
                    try devices[n].detach("finding", id: finding.id, field: "evidence", sha256: attachment.sha256)
                case 3:
                    // The store dropped mid-way (as a killed process leaves it) and opened again.
                    devices[n] = try Store(path: dir.path("device\(n).sqlite"), schema: schema)
                default:
                    _ = try? await devices[n].sync(flaky[n], options: options)
                }
            }
            // Quiet rounds: every device syncs, and fetches what it still wants, until all have everything.
            var quiet = options
            quiet.attempts = 3
            quiet.downloadFilesUpTo = .max
            for _ in 0..<2 {
                for n in devices.indices { _ = try await devices[n].sync(reliable[n], options: quiet) }
            }

            let server = try await snapshot(storage)
            var referenced = Set<String>()
            for (n, device) in devices.enumerated() {
                #expect(try snapshot(device) == server, "seed \(seed): device \(n) differs from the server")
                for finding in try device.fetch(Query("finding")) {
                    for attachment in finding["evidence"].attachments {
                        referenced.insert(attachment.sha256)
                        // Here, and the file itself: its bytes hash to its name.
                        var hasher = SHA256()
                        try device.readFile(attachment.sha256) { hasher.update(data: $0) }
                        #expect(
                            FileDirectory.hex(hasher.finalize()) == attachment.sha256,
                            "seed \(seed): device \(n) holds a file that is not its hash")
                    }
                }
                #expect(try device.filesWanted().filter { referenced.contains($0.sha256) }.isEmpty)
            }
            for hash in referenced { #expect(files.contains(hash), "seed \(seed): the server lacks a referenced file") }
            // Resumed, never moved twice whole: each device sent and received each file at most
            // once in full (a chunk whose answer was lost is sent again: one chunk more at most).
            for (n, transports) in zip(devices.indices, zip(flaky, reliable)) {
                for hash in Set(transports.0.lock.withLock { Array($0.up.keys) + Array($0.down.keys) }) {
                    let known = try devices[n].files().first { $0.sha256 == hash }?.size
                    let size = files.size(of: hash) ?? known ?? 0
                    let up =
                        transports.0.lock.withLock { $0.up[hash] ?? 0 }
                        + transports.1.lock.withLock { $0.up[hash] ?? 0 }
                    let down =
                        transports.0.lock.withLock { $0.down[hash] ?? 0 }
                        + transports.1.lock.withLock { $0.down[hash] ?? 0 }
                    #expect(up <= size + Int64(chunk), "seed \(seed): device \(n) sent a file more than once")
                    #expect(down <= size, "seed \(seed): device \(n) received a file more than once")
                }
            }
            // Past the grace period, only what the records refer to stays on the server.
            referencedFiles.add(referenced.count, ordering: .relaxed)
            let report = try await FileCollection.collect(
                storage: storage, directory: files, grace: .seconds(60), now: Date().addingTimeInterval(120))
            #expect(Set(files.stored().map(\.sha256)) == referenced, "seed \(seed): the server kept an orphan")
            #expect(files.partials().isEmpty)
            collected.add(report.removed.count, ordering: .relaxed)
        }
    }
}
