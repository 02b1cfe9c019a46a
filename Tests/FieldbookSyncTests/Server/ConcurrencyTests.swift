import FieldbookCore
import FieldbookServer
import FieldbookServerPostgres
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import Logging
import Synchronization
import Testing

/// DESIGN invariant 4 under real concurrency: PostgreSQL only (SQLite has one writer by construction).
@Suite("Sync: concurrent pushes never let a pull skip a change", .tags(.server, .slow), .fullRunOnly)
struct ConcurrencyTests {
    @Test(
        "writers delayed at random inside their transactions, readers pulling all the while: every reader sees every change exactly once",
        .enabled(if: postgresURL != nil, "set FIELDBOOK_POSTGRES_URL"))
    func concurrentPushesAndPulls() async throws {
        let dir = TemporaryDirectory()
        var logger = Logger(label: "test-postgres")
        logger.logLevel = .warning
        // Every push sleeps 0–20 ms after inserting its changes, before it commits: the window in which a
        // later-numbered change could commit first if numbers were not handed out one transaction at a time.
        let storage = try PostgresSyncStorage(
            client: await postgresClient(), schema: schema, namespace: dir.namespace, logger: logger,
            insideTransaction: { try await Task.sleep(for: .milliseconds(Int.random(in: 0...20))) })
        try await storage.migrate()
        let writers = 8
        let readers = 3
        let rounds = 15
        for n in 0..<(writers + readers) { _ = try await storage.createToken(name: "设备\(n)") }
        let writing = Countdown(writers)

        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<writers {
                group.addTask {
                    defer { writing.done() }
                    let store = try Store(path: dir.path("writer\(n).sqlite"), schema: schema)
                    let transport = FlakyTransport(
                        storage: storage, identity: Identity(tokenID: Int64(n + 1), name: "设备\(n)"), seed: 0,
                        faults: false)
                    var options = SyncOptions()
                    options.pushBatch = 3
                    for round in 0..<rounds {
                        for k in 0..<Int.random(in: 1...4) {
                            try store.insert("site", ["name": .text("敬老院\(n)-\(round)-\(k)"), "kind": "elderly_home"])
                        }
                        _ = try await store.sync(transport, options: options)
                    }
                }
            }
            for r in 0..<readers {
                group.addTask {
                    let identity = Identity(tokenID: Int64(writers + r + 1), name: "设备\(writers + r)")
                    let device = "0190c4e0-0000-7000-8000-\(String(format: "%012d", r))"
                    var cursor: Int64 = 0
                    var seen = Set<String>()
                    var duplicates = 0
                    var lastServerSequence: Int64 = 0
                    func drain() async throws {
                        while true {
                            let request = PullRequest(
                                schema: SchemaVersion(schema), device: device, cursor: cursor, limit: 7)
                            let page = try await storage.pull(request, identity: identity)
                            for change in page.changes {
                                let serverSequence = try #require(change.serverSequence)
                                #expect(serverSequence > lastServerSequence, "server order")
                                lastServerSequence = serverSequence
                                if !seen.insert("\(change.device)/\(change.sequence)").inserted { duplicates += 1 }
                            }
                            cursor = page.cursor
                            if !page.more { return }
                        }
                    }
                    while writing.remaining > 0 {
                        try await drain()
                        try await Task.sleep(for: .milliseconds(Int.random(in: 0...3)))
                    }
                    try await drain()
                    #expect(duplicates == 0, "reader \(r) saw a change twice")
                    #expect(seen.count == (try await storage.changeCount()), "reader \(r) skipped changes")
                }
            }
            try await group.waitForAll()
        }
        // The writers converge with the server too.
        let server = try await snapshot(storage)
        var written = 0
        for n in 0..<writers {
            let store = try Store(path: dir.path("writer\(n).sqlite"), schema: schema)
            let transport = FlakyTransport(
                storage: storage, identity: Identity(tokenID: Int64(n + 1), name: "设备\(n)"), seed: 0, faults: false)
            _ = try await store.sync(transport)
            #expect(try snapshot(store) == server)
            written += try store.changeCount()
        }
        #expect(try await storage.changeCount() == written)
    }
}

/// How many writers are still writing.
final class Countdown: Sendable {
    let count: Atomic<Int>
    init(_ count: Int) { self.count = Atomic(count) }
    func done() { count.subtract(1, ordering: .sequentiallyConsistent) }
    var remaining: Int { count.load(ordering: .sequentiallyConsistent) }
}
