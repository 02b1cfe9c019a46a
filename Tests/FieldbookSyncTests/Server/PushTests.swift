import AsyncHTTPClient
import FieldbookCore
import FieldbookHTTP
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import GRDB
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// The push algorithm (`PushPlan`) through each server store: repeats, gaps and reuse, within one
/// request and across requests, answered the same way by every store.
@Suite("Server: one push algorithm for every store", .tags(.server))
struct PushTests {
    /// A device with `count` changes of its own, and a store with a token for it.
    func setUp(_ backend: Backend, _ dir: TemporaryDirectory, count: Int) async throws -> (
        storage: any SyncStorage, identity: Identity, device: Store, changes: [Change]
    ) {
        let storage = try await makeStorage(dir, backend)
        let identity = try #require(try await storage.authenticate(token: try await storage.createToken(name: "王芳")))
        let device = try Store(path: dir.path("device.sqlite"), schema: schema)
        let site = try device.insert("site", ["name": "幸福院", "kind": "happiness_home"])
        for i in 1..<count { try device.update("site", id: site, ["town": .text("镇\(i)")]) }
        return (storage, identity, device, try device.pendingChanges(limit: count))
    }

    func request(_ device: Store, _ changes: [Change]) -> PushRequest {
        PushRequest(schema: SchemaVersion(schema), device: device.deviceID, changes: changes)
    }

    @Test(
        "a new SQLite server store has 16 KiB pages and merge states without rowids; a store made before keeps its layout and works"
    )
    func fileLayout() async throws {
        let dir = TemporaryDirectory()
        func layout(_ path: String) throws -> (pageSize: Int?, statesWithoutRowID: Bool?) {
            try DatabaseQueue(path: path).read { db in
                (
                    try Int.fetchOne(db, sql: "PRAGMA page_size"),
                    try Bool.fetchOne(db, sql: "SELECT wr FROM pragma_table_list WHERE name = 'records'")
                )
            }
        }
        _ = try SQLiteSyncStorage(path: dir.path("new.sqlite"), schema: schema)
        #expect(try layout(dir.path("new.sqlite")) == (16384, true))

        // A store as made before: 4 KiB pages (a file that has pages keeps their size) and a
        // rowid table of merge states. The same statements read and write it.
        var wal = Configuration()
        wal.journalMode = .wal
        try await DatabaseQueue(path: dir.path("server.sqlite"), configuration: wal).write { db in
            try db.execute(sql: "PRAGMA page_size = 4096; CREATE TABLE earlier (x)")
        }
        let (storage, identity, device, changes) = try await setUp(.sqlite, dir, count: 4)
        try await DatabaseQueue(path: dir.path("server.sqlite")).write { db in
            try db.execute(
                sql: """
                    CREATE TABLE records_rowid (
                        entity TEXT NOT NULL, id TEXT NOT NULL, state TEXT NOT NULL, live INTEGER NOT NULL,
                        PRIMARY KEY (entity, id)) STRICT;
                    DROP TABLE records;
                    ALTER TABLE records_rowid RENAME TO records;
                    """)
        }
        #expect(try layout(dir.path("server.sqlite")) == (4096, false))
        _ = try await storage.push(request(device, Array(changes[..<2])), identity: identity)
        let response = try await storage.push(request(device, Array(changes[2...])), identity: identity)
        #expect(response.assigned.map(\.sequence) == [3, 4])
        #expect(try await storage.changeCount() == 4)
        #expect(try await storage.records("site").map { $0.values["town"] } == [.text("镇3")])
    }

    @Test("a device pushes its stored change text as it is: the body is the request its changes make, byte for byte")
    func splicedBody() async throws {
        let dir = TemporaryDirectory()
        let device = try Store(path: dir.path("device.sqlite"), schema: schema)
        // Every form a field change takes, text that JSON escapes, and a delete.
        let site = try device.insert(
            "site",
            [
                "name": "幸福院 \"东区\"\n第二\t楼 \\ 🌿", "kind": "happiness_home", "beds_total": 40,
                "observed_on": "2021-09-02",
                "tags": .set(["消防", "食堂"]), "meets_six_haves": true,
            ])
        try device.update("site", id: site, ["town": "城关镇", "tags": .set(["消防"]), "beds_total": 42])
        try await device.write { try $0.increment("site", id: site, "illegal_graves_found", by: 3) }
        let other = try device.insert("site", ["name": "公墓", "kind": "cemetery"])
        try device.delete("site", id: other)
        let changes = try device.pendingChanges(limit: 100)
        #expect(changes.count == 5)
        var expected: [UInt8] = []
        PushRequest(schema: SchemaVersion(schema), device: device.deviceID, changes: changes).encode(to: &expected)

        let recorder = PushRecorder()
        #expect(try await device.push(recorder) == 5)
        let bodies = recorder.bodies.withLock { $0 }
        #expect(bodies == [expected])
        // And it reads back as those changes.
        #expect(try PushRequest(utf8: try #require(bodies.first), schema: schema).changes == changes)
    }
}

extension PushTests {
    @Test("a push answer's server sequence numbers are noted change by change, in runs and out of them")
    func acknowledgedNumbers() async throws {
        let dir = TemporaryDirectory()
        let device = try Store(path: dir.path("device.sqlite"), schema: schema)
        let site = try device.insert("site", ["name": "幸福院", "kind": "happiness_home"])
        for i in 1..<8 { try device.update("site", id: site, ["town": .text("镇\(i)")]) }
        // Runs of consecutive numbers (1–3, 4–5, 6–7) and one alone (8), as other devices' pushes between them would leave.
        let numbers: [Int64: Int64] = [1: 10, 2: 11, 3: 12, 4: 20, 5: 21, 6: 7, 7: 8, 8: 30]
        let recorder = PushRecorder(number: { numbers[$0]! })
        #expect(try await device.push(recorder) == 8)
        let noted = try await DatabaseQueue(path: dir.path("device.sqlite")).read { db in
            try Row.fetchAll(db, sql: "SELECT seq, sseq FROM _changelog ORDER BY seq").map { row -> (Int64, Int64?) in
                (row[0], row[1])
            }
        }
        #expect(noted.map(\.0) == Array(1...8))
        #expect(noted.map(\.1) == (1...8).map { numbers[$0] })
        #expect(try device.pendingChanges(limit: 10).isEmpty)
    }

    @Test(
        "a push that reaches the server while the device's push before it is still arriving waits for it",
        arguments: Backend.all)
    func overtakingPushWaits(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let token = try await storage.createToken(name: "王芳")
        let device = try Store(path: dir.path("device.sqlite"), schema: schema)
        let site = try device.insert("site", ["name": "幸福院", "kind": "happiness_home"])
        for i in 1...3 { try device.update("site", id: site, ["town": .text("镇\(i)")]) }
        let changes = try device.pendingChanges(limit: 4)
        func body(_ part: ArraySlice<Change>) -> [UInt8] {
            var bytes: [UInt8] = []
            request(device, Array(part)).encode(to: &bytes)
            return bytes
        }
        let first = body(changes[0...1])
        let second = body(changes[2...3])

        try await withServer(storage: storage) { url in
            // The first push: its head and half its body now, the rest when told.
            let (parts, feed) = AsyncStream<ByteBuffer>.makeStream()
            feed.yield(ByteBuffer(bytes: first[..<(first.count / 2)]))
            var slow = HTTPClientRequest(url: url.appendingPathComponent("v1/push").absoluteString)
            slow.method = .POST
            slow.headers.add(name: "Authorization", value: "Bearer \(token)")
            slow.body = .stream(parts, length: .known(Int64(first.count)))
            async let firstStatus = HTTPClient.shared.execute(slow, timeout: .seconds(30)).status.code
            try await Task.sleep(for: .milliseconds(300))

            // The second reaches the store first. Refused at once, it would be answered `sequence_gap`.
            async let secondAnswer = post(url, "v1/push", token: token, body: second)
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await storage.changeCount() == 0)
            feed.yield(ByteBuffer(bytes: first[(first.count / 2)...]))
            feed.finish()

            let status = try await firstStatus
            #expect(status == 200)
            let answer = try await secondAnswer
            #expect(answer.status == 200 && answer.code == nil)
            #expect(try await storage.changeCount() == 4)
        }
    }

    @Test("a batch refused because it overtook the one before it is sent again once that one is answered")
    func overtakenBatchResent() async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, .sqlite)
        let token = try await storage.createToken(name: "王芳")
        let device = try Store(path: dir.path("device.sqlite"), schema: schema)
        let site = try device.insert("site", ["name": "幸福院", "kind": "happiness_home"])
        for i in 1...5 { try device.update("site", id: site, ["town": .text("镇\(i)")]) }

        try await withServer(storage: storage) { url in
            let transport = Overtaking(HTTPTransport(server: url, token: token))
            var options = SyncOptions()
            options.pushBatch = 2
            let pushed = try await device.push(transport, options: options)
            #expect(pushed == 6)
            // The second and third batches were sent while the first was held back, and refused;
            // then, once the first was answered, sent again one after the other and taken.
            let outcomes = transport.outcomes.withLock { $0 }
            #expect(outcomes.filter { $0.hasPrefix("0-1") } == ["0-1: ok"])
            #expect(outcomes.filter { $0.hasPrefix("2-3") } == ["2-3: sequence_gap", "2-3: ok"])
            #expect(outcomes.filter { $0.hasPrefix("4-5") } == ["4-5: sequence_gap", "4-5: ok"])
            #expect(outcomes.filter { $0.hasSuffix("ok") } == ["0-1: ok", "2-3: ok", "4-5: ok"])
            #expect(try device.pendingChanges(limit: 10).isEmpty)
            #expect(try await storage.changeCount() == 6)
            #expect(try await storage.records("site").first?.values["town"] == .text("镇5"))
        }
    }
}

/// Holds a device's first push until its second has been answered, so the second reaches the
/// server first; notes each push's changes (by position) and outcome, in the order they end.
final class Overtaking: SyncTransport {
    let inner: HTTPTransport
    let outcomes = Mutex<[String]>([])
    let secondDone: AsyncStream<Void>
    let signal: AsyncStream<Void>.Continuation
    let calls = Mutex(0)

    init(_ inner: HTTPTransport) {
        self.inner = inner
        (secondDone, signal) = AsyncStream<Void>.makeStream()
    }

    func push(_ request: PushRequest) async throws -> PushResponse {
        try await inner.push(request)
    }

    func push(encoded: EncodedPush) async throws -> PushResponse {
        let call = calls.withLock {
            $0 += 1
            return $0
        }
        if call == 1 {
            var wait = secondDone.makeAsyncIterator()
            _ = await wait.next()
        }
        defer { if call == 2 { signal.yield() } }
        let name = "\(encoded.sequences.first! - 1)-\(encoded.sequences.last! - 1)"
        do {
            let response = try await inner.push(encoded: encoded)
            outcomes.withLock { $0.append("\(name): ok") }
            return response
        } catch let error as SyncError {
            if let code = error.refusal { outcomes.withLock { $0.append("\(name): \(code.rawValue)") } }
            throw error
        }
    }

    func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse {
        try await inner.pull(request, schema: schema)
    }
}

/// Answers every push as a server would, keeping each body it was sent.
final class PushRecorder: SyncTransport {
    let bodies = Mutex<[[UInt8]]>([])
    let next = Mutex<Int64>(0)
    /// The server sequence number to answer for a device sequence number; nil: 1, 2, 3, … in the order received.
    let number: (@Sendable (Int64) -> Int64)?

    init(number: (@Sendable (Int64) -> Int64)? = nil) {
        self.number = number
    }

    func push(_ request: PushRequest) async throws -> PushResponse {
        Issue.record("the store sent a decoded request, not its encoded body")
        return PushResponse(assigned: [])
    }

    func push(encoded: EncodedPush) async throws -> PushResponse {
        bodies.withLock { $0.append(encoded.body) }
        return PushResponse(
            assigned: encoded.sequences.map { sequence in
                .init(
                    sequence: sequence,
                    serverSequence: number?(sequence)
                        ?? next.withLock {
                            $0 += 1
                            return $0
                        })
            })
    }

    func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse {
        PullResponse(changes: [], cursor: request.cursor, more: false)
    }
}
