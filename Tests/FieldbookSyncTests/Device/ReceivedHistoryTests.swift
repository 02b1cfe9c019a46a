import FieldbookCore
import FieldbookHTTP
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import GRDB
import Testing

/// A device keeps every change pulled from other devices (`_received`) and finds a record's
/// through a chain: each change names the one received before it to the same record, and the
/// record's merge state the last (store format 3).
@Suite("Device: the history of the changes pulled from other devices", .tags(.device))
struct ReceivedHistoryTests {
    /// Device A's records, edited in turns so that each pulled page holds changes to several of them.
    struct Edits {
        let site: String
        let findings: [String]

        init(_ a: Store, rounds: Range<Int>, site: String? = nil, findings: [String]? = nil) throws {
            self.site = try site ?? a.insert("site", ["name": "幸福院", "kind": "happiness_home"])
            self.findings =
                try findings
                ?? (0..<3).map { n in
                    try a.insert(
                        "finding", ["title": .text("问题\(n)"), "deadline": "2022-03-31", "responsible_person": "陈静"])
                }
            for round in rounds {
                for (n, finding) in self.findings.enumerated() where (round + n) % 2 == 0 {
                    try a.update("finding", id: finding, ["responsible_person": .text("负责人\(round)")])
                }
                try a.update("site", id: self.site, ["town": .text("镇\(round)")])
            }
        }

        var ids: [String] { [site] + findings }
    }

    /// A history as both devices must show it: the author is the server's stamp, which the
    /// device that made the change does not note.
    func entries(_ store: Store, _ id: String) throws -> [String] {
        try store.history(of: id).map {
            "\($0.device) \($0.sequence) \($0.operation) \($0.field ?? "-") \($0.old) → \($0.new)"
        }
    }

    func options(page: Int) -> SyncOptions {
        var options = SyncOptions()
        options.pageSize = page
        options.pushBatch = 4
        return options
    }

    /// Runs `body` with a live server on SQLite: device A's store, the path for device B's, each
    /// device's transport, and the server's storage.
    func withDevices(
        _ body:
            @Sendable (
                _ a: Store, _ bPath: String, _ toA: HTTPTransport, _ toB: HTTPTransport, _ storage: any SyncStorage
            ) async throws -> Void
    ) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, .sqlite)
        let a = try Store(path: dir.path("a.sqlite"), schema: schema)
        let tokenA = try await storage.createToken(name: "王芳")
        let tokenB = try await storage.createToken(name: "李明")
        try await withServer(storage: storage) { url in
            try await body(
                a, dir.path("b.sqlite"), HTTPTransport(server: url, token: tokenA),
                HTTPTransport(server: url, token: tokenB), storage)
        }
    }

    @Test("a record's history holds each change pulled to it, in order, whatever the pages held")
    func chained() async throws {
        try await withDevices { a, bPath, toA, toB, _ in
            let b = try Store(path: bPath, schema: schema)
            let edits = try Edits(a, rounds: 0..<6)
            _ = try await a.sync(toA, options: options(page: 5))
            // Pages of 3 split one record's changes across pages and mix records in each.
            _ = try await b.sync(toB, options: options(page: 3))
            for id in edits.ids {
                let history = try entries(b, id)
                #expect(history == (try entries(a, id)))
                #expect(history.count > 1)
            }
            // Changes B makes itself join the history too.
            try b.update("finding", id: edits.findings[0], ["status": "in_progress"])
            let own = try b.history(of: edits.findings[0])
            #expect(own.last?.field == "status" && own.last?.device == b.deviceID)
            #expect(own.count == (try a.history(of: edits.findings[0])).count + 1)
        }
    }

    @Test("a pulled page with this device's own change, its push answer lost, and a change that saw it: no conflict")
    func ownChangeInPage() async throws {
        try await withDevices { a, bPath, transportA, transportB, storage in
            let b = try Store(path: bPath, schema: schema)
            let finding = try a.insert(
                "finding", ["title": "消防通道堵塞", "deadline": "2022-03-31", "responsible_person": "陈静"])
            _ = try await a.sync(transportA)
            _ = try await b.sync(transportB)

            // A's edit reaches the server, but its answer does not reach A: A has no server number for it.
            try a.update("finding", id: finding, ["description": "A的描述"])
            var once = SyncOptions()
            once.attempts = 1
            await #expect(throws: SyncError.self) { _ = try await a.push(AnswerLost(transportA), options: once) }
            #expect(try a.pendingCount() == 1)

            // B pulls A's edit and writes over it, knowing it: no conflict anywhere.
            _ = try await b.sync(transportB)
            try b.update("finding", id: finding, ["description": "B的描述"])
            _ = try await b.sync(transportB)

            // A pulls its own edit (learning its number there) and B's, in one page.
            _ = try await a.pull(transportA)
            #expect(try a.conflicts().isEmpty)
            #expect(try a.record("finding", id: finding)?["description"] == "B的描述")
            #expect(try await storage.conflicts().isEmpty)
        }
    }

    /// Sends each push, then reports its answer lost.
    struct AnswerLost: SyncTransport {
        let inner: HTTPTransport
        init(_ inner: HTTPTransport) { self.inner = inner }
        func push(_ request: PushRequest) async throws -> PushResponse {
            _ = try await inner.push(request)
            throw SyncError(.network, "answer lost")
        }
        func push(encoded: EncodedPush) async throws -> PushResponse {
            _ = try await inner.push(encoded: encoded)
            throw SyncError(.network, "answer lost")
        }
        func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse {
            try await inner.pull(request, schema: schema)
        }
    }

    @Test("a store of format 2 (an index on record keys) is chained when opened; its history is the same, and grows")
    func fromFormat2() async throws {
        try await withDevices { a, bPath, toA, toB, _ in
            let edits = try Edits(a, rounds: 0..<4)
            _ = try await a.sync(toA, options: options(page: 5))
            var before: [String: [String]] = [:]
            do {
                let b = try Store(path: bPath, schema: schema)
                _ = try await b.sync(toB, options: options(page: 3))
                for id in edits.ids { before[id] = try entries(b, id) }
            }
            try Self.makeFormat2(bPath)

            let b = try Store(path: bPath, schema: schema)
            for id in edits.ids { #expect(try entries(b, id) == before[id]) }
            let layout = try Self.layout(bPath)
            #expect(layout.received.contains("prev") && !layout.received.contains("record_key"))
            #expect(layout.state.contains("received"))
            #expect(layout.indexes.isEmpty)
            #expect(layout.format == 7)

            // More changes pulled after the upgrade extend the chains it made.
            _ = try Edits(a, rounds: 4..<7, site: edits.site, findings: edits.findings)
            _ = try await a.sync(toA, options: options(page: 5))
            _ = try await b.sync(toB, options: options(page: 3))
            for id in edits.ids {
                let history = try entries(b, id)
                #expect(history == (try entries(a, id)))
                #expect(history.count > before[id]!.count)
            }
        }
    }

    static func layout(_ path: String) throws -> (received: [String], state: [String], indexes: [String], format: Int?)
    {
        try DatabaseQueue(path: path).read { db in
            (
                received: try db.columns(in: "_received").map(\.name),
                state: try db.columns(in: "_record_state").map(\.name),
                indexes: try db.indexes(on: "_received").map(\.name),
                format: try Int.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'store_format'")
            )
        }
    }

    /// Turns a store back into format 2: `_received` indexed by record key (the record id's
    /// first 16 hex digits as an integer), no chain, no tables of references.
    static func makeFormat2(_ path: String) throws {
        let queue = try DatabaseQueue(path: path)
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "ALTER TABLE _received ADD COLUMN record_key INTEGER NOT NULL DEFAULT 0")
            for (sseq, record) in try Row.fetchAll(db, sql: "SELECT sseq, record FROM _received").map({
                ($0[0] as Int64, $0[1] as String)
            }) {
                let hex = record.filter { $0 != "-" }.prefix(16)
                let key = Int64(bitPattern: UInt64(hex, radix: 16)!)
                try db.execute(sql: "UPDATE _received SET record_key = ? WHERE sseq = ?", arguments: [key, sseq])
            }
            try db.execute(
                sql: """
                    CREATE INDEX _received_record ON _received (record_key);
                    ALTER TABLE _received DROP COLUMN prev;
                    ALTER TABLE _record_state DROP COLUMN received;
                    DROP TABLE _held;
                    DROP TABLE _hidden;
                    DROP TABLE _devices;
                    DROP TABLE _rejected;
                    DROP TABLE _left;
                    DROP TABLE _files;
                    ALTER TABLE _changelog DROP COLUMN rejected;
                    UPDATE _fieldbook_meta SET value = 2 WHERE key = 'store_format';
                    """)
        }
    }
}
