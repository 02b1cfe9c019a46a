import FieldbookCore
import FieldbookHTTP
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import GRDB
import Hummingbird
import Logging
import NIOCore
import Testing

/// Every row of every table of an SQLite file, table by table.
func sqliteFingerprint(_ path: String) throws -> [String: [String]] {
    var configuration = Configuration()
    configuration.readonly = true
    return try DatabaseQueue(path: path, configuration: configuration).read { db in
        var tables: [String: [String]] = [:]
        for table in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") {
            tables[table] = try Row.fetchAll(db, sql: "SELECT * FROM \"\(table)\"").map(\.description).sorted()
        }
        return tables
    }
}

/// A server's answer that breaks the protocol, for a device to refuse.
struct HostileAnswer: Sendable, CustomTestStringConvertible {
    var kind: String
    /// The answer to a push (nil: the device makes no change, so it does not push).
    var push: String?
    /// The answer to a pull after cursor 5.
    var pull: String
    /// The headers of the answer to a pull after cursor 5 (`Fieldbook-Cursor` and the like).
    var pullHeaders: [(name: String, value: String)]
    var testDescription: String { kind }

    init(
        _ kind: String, push: String? = nil, pull: String = #"{"protocol":1,"changes":[],"cursor":5,"more":false}"#,
        pullHeaders: [(name: String, value: String)] = []
    ) {
        self.kind = kind
        self.push = push
        self.pull = pull
        self.pullHeaders = pullHeaders
    }

    static let theirDevice = "0190c4e0-0000-7000-8000-0000000000bb"

    /// A change of another device, as pulled.
    static func pulled(sseq: Int, entity: String = "site", fields: String = #"{"name":"鱼鳞村公墓","kind":"cemetery"}"#)
        -> String
    {
        let id = String(format: "0190c4e0-0000-7000-8000-%012x", 0x100 + sseq)
        return
            #"{"seq":\#(sseq),"entity":"\#(entity)","id":"\#(id)","op":"insert","hlc":1000,"base":0,"fields":\#(fields),"device":"\#(theirDevice)","sseq":\#(sseq),"author":"李明"}"#
    }

    static func page(_ changes: [String], cursor: Int, more: Bool = false) -> String {
        #"{"protocol":1,"changes":[\#(changes.joined(separator: ","))],"cursor":\#(cursor),"more":\#(more)}"#
    }

    static let catalogue: [HostileAnswer] = [
        .init("pull: malformed JSON", pull: #"{"protocol":1,"changes":["#),
        .init("pull: not JSON", pull: "<html>502 Bad Gateway</html>"),
        .init("pull: empty body", pull: ""),
        .init("pull: another protocol version", pull: #"{"protocol":2,"changes":[],"cursor":5,"more":false}"#),
        .init("pull: cursor missing", pull: #"{"protocol":1,"changes":[],"more":false}"#),
        .init("pull: the cursor goes backwards", pull: page([], cursor: 3)),
        .init("pull: an empty page skips ahead", pull: page([], cursor: 1000)),
        .init("pull: the cursor skips past its last change", pull: page([pulled(sseq: 6)], cursor: 1000)),
        .init("pull: more follow, but none sent", pull: page([], cursor: 5, more: true)),
        .init("pull: changes out of order", pull: page([pulled(sseq: 8), pulled(sseq: 7)], cursor: 8)),
        .init("pull: a change the device already passed", pull: page([pulled(sseq: 4)], cursor: 5)),
        .init("pull: a change for an unknown entity", pull: page([pulled(sseq: 6, entity: "castle")], cursor: 6)),
        .init(
            "pull: a value not in its enum",
            pull: page([pulled(sseq: 6, fields: #"{"name":"x","kind":"castle"}"#)], cursor: 6)),
        .init(
            "pull: a change without its server sequence number",
            pull: page([pulled(sseq: 6).replacingOccurrences(of: #","sseq":6"#, with: "")], cursor: 6)),
        .init(
            "pull: a good change, then a bad one",
            pull: page([pulled(sseq: 6), pulled(sseq: 7, entity: "castle")], cursor: 7)),
        .init(
            "pull: the headers announce another cursor than the page's",
            pull: page([pulled(sseq: 6)], cursor: 6),
            pullHeaders: [(PullResponse.cursorHeader, "7"), (PullResponse.moreHeader, "false")]),
        .init(
            "pull: the headers announce the last page, the page says more follow",
            pull: page([pulled(sseq: 6)], cursor: 6, more: true),
            pullHeaders: [(PullResponse.cursorHeader, "6"), (PullResponse.moreHeader, "false")]),
        .init(
            "pull: the headers announce a scope generation the page does not name",
            pull: page([pulled(sseq: 6)], cursor: 6),
            pullHeaders: [
                (PullResponse.cursorHeader, "6"), (PullResponse.moreHeader, "false"), (PullResponse.scopeHeader, "2"),
            ]),
        .init("push: malformed JSON", push: #"{"protocol":1,"assigned":[[1,"#),
        .init("push: another protocol version", push: #"{"protocol":2,"assigned":[[1,9]]}"#),
        .init("push: no assignment", push: #"{"protocol":1,"assigned":[]}"#),
        .init("push: a sequence number never pushed", push: #"{"protocol":1,"assigned":[[999,9]]}"#),
        .init("push: a server sequence number 0", push: #"{"protocol":1,"assigned":[[1,0]]}"#),
    ]
}

/// A stub sync server on loopback that answers the first pull with one good change (cursor 5),
/// then every request with `answer`'s bodies.
func withHostileServer<T: Sendable>(_ answer: HostileAnswer, _ body: @Sendable (URL) async throws -> T) async throws
    -> T
{
    let router = Router()
    router.post("/v1/push") { _, _ in
        Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: answer.push ?? "")))
    }
    router.post("/v1/pull") { request, _ in
        let bytes = try await request.body.collect(upTo: 1 << 20)
        let pull = try PullRequest(utf8: Array(bytes.readableBytesView), schema: schema)
        let text = pull.cursor == 0 ? HostileAnswer.page([HostileAnswer.pulled(sseq: 5)], cursor: 5) : answer.pull
        var headers = HTTPFields()
        if pull.cursor != 0 {
            for (name, value) in answer.pullHeaders { headers[HTTPFields.Element.Name(name)!] = value }
        }
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
    var logger = Logger(label: "test-stub")
    logger.logLevel = .warning
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    let app = Application(
        router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
    return try await withRunning(app, port: ports, body)
}

@Suite("Device: a hostile server's answer is refused and changes nothing on the device", .tags(.device))
struct HostileServerTests {
    @Test("one hostile answer", arguments: HostileAnswer.catalogue)
    func hostile(answer: HostileAnswer) async throws {
        let dir = TemporaryDirectory()
        let store = try Store(path: dir.path("device.sqlite"), schema: schema)
        try await withHostileServer(answer) { url in
            let transport = HTTPTransport(server: url, token: "fbt_stub")
            var options = SyncOptions()
            options.attempts = 1
            // A first sync against the stub: one change pulled, cursor 5.
            #expect(try await store.sync(transport, options: options).cursor == 5)
            if answer.push != nil { try store.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home"]) }
            // A push first makes its changes durable (it notes how far in `_fieldbook_meta`):
            // done here, so that what must stay as it is is all that is compared.
            try store.flush()
            let before = try sqliteFingerprint(store.path)

            let error = await #expect(throws: SyncError.self) { try await store.sync(transport, options: options) }
            #expect(error?.kind == .badResponse)
            #expect(error?.isRetryable == false)
            #expect(try sqliteFingerprint(store.path) == before)
            #expect(try store.pendingCount() == (answer.push == nil ? 0 : 1))
        }
    }
}
