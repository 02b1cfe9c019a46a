import FieldbookCore
import FieldbookHTTP
import FieldbookJSON
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Sends a raw request to the live server; returns the status, the error code if any, and the body.
func send(
    _ url: URL, _ path: String, method: String = "POST", headers: [String: String] = [:], body: [UInt8]?
) async throws -> (status: Int, code: String?, body: [UInt8]) {
    var request = URLRequest(url: url.appendingPathComponent(path))
    request.httpMethod = method
    for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
    if let body { request.httpBody = Data(body) }
    let (data, response) = try await URLSession.shared.data(for: request)
    let status = (response as? HTTPURLResponse)?.statusCode ?? 0
    let code: String? = (try? JSON(parsing: Array(data))).flatMap { json in
        if case .string(let c)? = json["error"]?["code"] { c } else { nil }
    }
    return (status, code, Array(data))
}

/// Sends raw bytes to the live server; returns the status and the error code, if any.
func post(_ url: URL, _ path: String, token: String?, body: [UInt8]) async throws -> (status: Int, code: String?) {
    let answer = try await send(url, path, headers: token.map { ["Authorization": "Bearer \($0)"] } ?? [:], body: body)
    return (answer.status, answer.code)
}

let device = "0190c4e0-0000-7000-8000-0000000000aa"
let record = "0190c4e0-0000-7000-8000-000000000001"
/// Another device, of another token.
let otherDevice = "0190c4e0-0000-7000-8000-0000000000bb"

func pushBody(
    _ changes: String, protocol version: Int = 1, schemaVersion: Int = schema.version, device: String = device
) -> [UInt8] {
    Array(
        #"{"protocol":\#(version),"schema":{"name":"inspection","version":\#(schemaVersion)},"device":"\#(device)","changes":[\#(changes)]}"#
            .utf8)
}

func change(
    seq: Int = 1, entity: String = "site", op: String = "insert", id: String = record,
    fields: String = #"{"name":"新度镇敬老院","kind":"elderly_home"}"#
) -> String {
    #"{"seq":\#(seq),"entity":"\#(entity)","id":"\#(id)","op":"\#(op)","hlc":1000,"base":0,"fields":\#(fields)}"#
}

/// A push of the owner device's next change (seq 2) with `fields`.
func next(_ fields: String, entity: String = "site", op: String = "insert") -> [UInt8] {
    pushBody(change(seq: 2, entity: entity, op: op, fields: fields))
}

/// Bytes spliced into the `name` of an otherwise valid push of the next change.
func nameBytes(_ bytes: [UInt8]) -> [UInt8] {
    let parts = String(decoding: next(#"{"name":"@","kind":"cemetery"}"#), as: UTF8.self).split(separator: "@")
    return Array(parts[0].utf8) + bytes + Array(parts[1].utf8)
}

func pullBody(_ rest: String, protocol version: String = "1", schemaVersion: Int = schema.version) -> [UInt8] {
    Array(
        #"{"protocol":\#(version),"schema":{"name":"inspection","version":\#(schemaVersion)},"device":"\#(device)"\#(rest)}"#
            .utf8)
}

/// One kind of malformed or hostile request, and the answer docs/protocol.md gives it.
struct HostileRequest: Sendable, CustomTestStringConvertible {
    enum Auth: Sendable {
        /// The token that owns the device.
        case owner
        /// The token of another device.
        case other
        /// A token made and then revoked.
        case revoked
        /// This Authorization header, or none.
        case header(String?)
    }

    var kind: String
    var method = "POST"
    var path = "v1/push"
    var auth = Auth.owner
    /// Made when the case runs (some are tens of megabytes).
    var body: @Sendable () -> [UInt8]?
    var status: Int
    var code: String

    var testDescription: String { kind }

    init(
        _ kind: String, _ status: Int, _ code: String, method: String = "POST", path: String = "v1/push",
        auth: Auth = .owner,
        body: @escaping @Sendable () -> [UInt8]?
    ) {
        self.kind = kind
        self.method = method
        self.path = path
        self.auth = auth
        self.body = body
        self.status = status
        self.code = code
    }

    static let catalogue: [HostileRequest] = [
        // The body is not JSON.
        .init("empty body", 400, "malformed_json") { [] },
        .init("truncated JSON", 400, "malformed_json") { Array(#"{"protocol":1,"schema":"#.utf8) },
        .init("truncated in a string", 400, "malformed_json") { Array(next(#"{"name":"新度"#).dropLast(8)) },
        .init("trailing garbage", 400, "malformed_json") {
            next(#"{"name":"x","kind":"cemetery"}"#) + Array(" garbage".utf8)
        },
        .init("two JSON documents", 400, "malformed_json") { next(#"{"name":"x","kind":"cemetery"}"#) + next("{}") },
        .init("not UTF-8", 400, "malformed_json") { [0x7B, 0xFF, 0xFE, 0x7D] },
        .init("invalid UTF-8 in a string", 400, "malformed_json") { nameBytes([0xC3, 0x28]) },
        .init("overlong UTF-8", 400, "malformed_json") { nameBytes([0xC0, 0xAF]) },
        .init("UTF-8 encoded surrogate", 400, "malformed_json") { nameBytes([0xED, 0xA0, 0x80]) },
        .init("lone surrogate escape", 400, "malformed_json") { nameBytes(Array(#"\ud800"#.utf8)) },
        .init("raw NUL byte in a string", 400, "malformed_json") { nameBytes([0x41, 0x00, 0x42]) },
        .init("escaped NUL in text", 400, "invalid_value") { nameBytes(Array(#"A\u0000B"#.utf8)) },
        .init("escaped NUL in a set member", 400, "invalid_value") {
            next(#"{"name":"x","kind":"cemetery","tags":["\u0000"]}"#)
        },
        .init("duplicate keys", 400, "malformed_json") {
            Array(
                #"{"protocol":1,"protocol":2,"schema":{"name":"inspection","version":\#(schema.version)},"device":"\#(device)","changes":[]}"#
                    .utf8)
        },
        .init("deep nesting", 400, "malformed_json") {
            Array((String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)).utf8)
        },
        .init("deep nesting in a value", 400, "malformed_json") {
            next(
                #"{"name":\#(String(repeating: "[", count: 5000))\#(String(repeating: "]", count: 5000)),"kind":"cemetery"}"#
            )
        },
        .init("number too large for a double", 400, "malformed_json") {
            next(#"{"name":"x","kind":"cemetery","beds_total":1e400}"#)
        },
        // The envelope.
        .init("top level an array", 400, "bad_message") { Array("[1,2,3]".utf8) },
        .init("top level a string", 400, "bad_message") { Array(#""push""#.utf8) },
        .init("top level null", 400, "bad_message") { Array("null".utf8) },
        .init("protocol missing", 400, "bad_message") {
            Array(
                #"{"schema":{"name":"inspection","version":\#(schema.version)},"device":"\#(device)","changes":[]}"#
                    .utf8)
        },
        .init("protocol a string", 400, "bad_message") { Array(pullBody(#","changes":[]"#, protocol: #""1""#)) },
        .init("protocol version 0", 409, "protocol_mismatch") { pushBody(change(seq: 2), protocol: 0) },
        .init("protocol version 999", 409, "protocol_mismatch") { pushBody(change(seq: 2), protocol: 999) },
        .init("a newer schema version", 409, "schema_ahead") {
            pushBody(change(seq: 2), schemaVersion: schema.version + 1)
        },
        .init("an older schema version", 409, "schema_mismatch") {
            pushBody(change(seq: 2), schemaVersion: schema.version - 1)
        },
        .init("another schema's name", 409, "schema_mismatch") {
            Array(#"{"protocol":1,"schema":{"name":"payroll","version":1},"device":"\#(device)","changes":[]}"#.utf8)
        },
        .init("schema missing", 400, "bad_message") {
            Array(#"{"protocol":1,"device":"\#(device)","changes":[]}"#.utf8)
        },
        .init("device id not a UUID", 400, "bad_message") { pushBody(change(seq: 2), device: "my-phone") },
        .init("device id with SQL", 400, "bad_message") { pushBody(change(seq: 2), device: "x' OR '1'='1") },
        .init("device name a number", 400, "bad_message") {
            Array(
                #"{"protocol":1,"schema":{"name":"inspection","version":\#(schema.version)},"device":"\#(device)","device_name":7,"changes":[]}"#
                    .utf8)
        },
        .init("device name of 101 characters", 400, "bad_message") {
            Array(
                #"{"protocol":1,"schema":{"name":"inspection","version":\#(schema.version)},"device":"\#(device)","device_name":"\#(String(repeating: "机", count: 101))","changes":[]}"#
                    .utf8)
        },
        .init("changes not an array", 400, "bad_message") { Array(pullBody(#","changes":{"seq":2}"#)) },
        .init("a change not an object", 400, "bad_message") { pushBody("2") },
        // A change's members.
        .init("sequence 0", 400, "bad_message") { pushBody(change(seq: 0)) },
        .init("negative sequence", 400, "bad_message") { pushBody(change(seq: -1)) },
        .init("sequence -0", 400, "bad_message") {
            pushBody(change().replacingOccurrences(of: #""seq":1"#, with: #""seq":-0"#))
        },
        .init("sequence past Int64", 400, "malformed_json") {
            pushBody(change().replacingOccurrences(of: #""seq":1"#, with: #""seq":9223372036854775808"#))
        },
        .init("sequence with a fraction", 400, "bad_message") {
            pushBody(change().replacingOccurrences(of: #""seq":1"#, with: #""seq":2.5"#))
        },
        .init("sequence a boolean", 400, "bad_message") {
            pushBody(change().replacingOccurrences(of: #""seq":1"#, with: #""seq":true"#))
        },
        .init("sequence null", 400, "bad_message") {
            pushBody(change().replacingOccurrences(of: #""seq":1"#, with: #""seq":null"#))
        },
        .init("sequence a string", 400, "bad_message") {
            pushBody(change().replacingOccurrences(of: #""seq":1"#, with: #""seq":"2""#))
        },
        .init("negative hlc", 400, "bad_message") {
            pushBody(change(seq: 2).replacingOccurrences(of: #""hlc":1000"#, with: #""hlc":-1000"#))
        },
        .init("negative base", 400, "bad_message") {
            pushBody(change(seq: 2).replacingOccurrences(of: #""base":0"#, with: #""base":-1"#))
        },
        .init("record id not a UUID", 400, "bad_message") { pushBody(change(seq: 2, id: "1")) },
        .init("record id with SQL", 400, "bad_message") { pushBody(change(seq: 2, id: "'; DELETE FROM records; --")) },
        .init("unknown op", 400, "bad_message") { next(#"{"name":"x","kind":"cemetery"}"#, op: "upsert") },
        .init("entity a number", 400, "bad_message") {
            pushBody(change(seq: 2).replacingOccurrences(of: #""entity":"site""#, with: #""entity":5"#))
        },
        .init("fields missing", 400, "bad_message") {
            pushBody(
                change(seq: 2).replacingOccurrences(of: #","fields":{"name":"新度镇敬老院","kind":"elderly_home"}"#, with: "")
            )
        },
        // Against the schema.
        .init("unknown entity", 400, "unknown_entity") { next(#"{"name":"x"}"#, entity: "castle") },
        .init("entity with SQL", 400, "unknown_entity") {
            next(#"{"name":"x"}"#, entity: "site; DROP TABLE changes; --")
        },
        .init("unknown field", 400, "unknown_field") { next(#"{"name":"x","kind":"cemetery","colour":"red"}"#) },
        .init("field name with SQL", 400, "unknown_field") {
            next(#"{"name":"x","kind":"cemetery","name\" = '' --":"x"}"#)
        },
        .init("text for an integer", 400, "invalid_value") {
            next(#"{"name":"x","kind":"cemetery","beds_total":"many"}"#)
        },
        .init("boolean for an integer", 400, "invalid_value") {
            next(#"{"name":"x","kind":"cemetery","beds_total":true}"#)
        },
        .init("fraction for an integer", 400, "invalid_value") {
            next(#"{"name":"x","kind":"cemetery","beds_total":1.5}"#)
        },
        .init("integer past Int64", 400, "malformed_json") {
            next(#"{"name":"x","kind":"cemetery","beds_total":9223372036854775808}"#)
        },
        .init("number for text", 400, "invalid_value") { next(#"{"name":42,"kind":"cemetery"}"#) },
        .init("object for text", 400, "invalid_value") { next(#"{"name":{"zh":"x"},"kind":"cemetery"}"#) },
        .init("null for a required field", 400, "invalid_value") { next(#"{"name":null,"kind":"cemetery"}"#) },
        .init("enum value not listed", 400, "invalid_value") { next(#"{"name":"x","kind":"castle"}"#) },
        .init("date that does not exist", 400, "invalid_value") {
            next(#"{"name":"x","kind":"cemetery","observed_on":"2021-02-30"}"#)
        },
        .init("date in another format", 400, "invalid_value") {
            next(#"{"name":"x","kind":"cemetery","observed_on":"02/03/2021"}"#)
        },
        .init("timestamp that is not one", 400, "invalid_value") {
            next(#"{"finding":"\#(record)","text":"x","written_at":"yesterday"}"#, entity: "progress_note")
        },
        .init("reference not a record id", 400, "invalid_value") {
            next(#"{"site":"' OR 1=1 --","visited_on":"2021-09-02"}"#, entity: "visit")
        },
        .init("set with a non-text member", 400, "invalid_value") {
            next(#"{"name":"x","kind":"cemetery","tags":["a",1]}"#)
        },
        .init("text over its limit", 400, "invalid_value") {
            next(#"{"name":"\#(String(repeating: "长", count: 201))","kind":"cemetery"}"#)
        },
        .init("huge string (4 MiB)", 400, "invalid_value") {
            next(#"{"name":"x","kind":"cemetery","town":"\#(String(repeating: "x", count: 4 << 20))"}"#)
        },
        .init("missing required field", 400, "invalid_change") { next(#"{"kind":"cemetery"}"#) },
        .init("the same field twice", 400, "malformed_json") { next(#"{"name":"x","name":"y","kind":"cemetery"}"#) },
        .init("counter set in an update", 400, "invalid_change") { next(#"{"illegal_graves_found":5}"#, op: "update") },
        .init("unknown field operation", 400, "invalid_value") {
            next(#"{"illegal_graves_found":{"*":5}}"#, op: "update")
        },
        .init("union set replaced in an update", 400, "invalid_change") { next(#"{"tags":["a"]}"#, op: "update") },
        .init("delete with fields", 400, "invalid_change") { next(#"{"name":"x"}"#, op: "delete") },
        .init("update of an append-only record", 400, "invalid_change") {
            next(#"{"text":"x"}"#, entity: "progress_note", op: "update")
        },
        // Against what the server holds.
        .init("sequence gap", 409, "sequence_gap") { pushBody(change(seq: 5)) },
        .init("sequence reused with other content", 400, "sequence_reused") {
            pushBody(change(seq: 1, fields: #"{"name":"另一个","kind":"elderly_home"}"#))
        },
        .init("half valid: a bad change after a good one", 400, "unknown_entity") {
            pushBody(change(seq: 2, op: "update", fields: #"{"town":"新度镇"}"#) + "," + change(seq: 3, entity: "castle"))
        },
        .init("half valid: a gap after a good change", 409, "sequence_gap") {
            pushBody(
                change(seq: 2, op: "update", fields: #"{"town":"新度镇"}"#) + ","
                    + change(seq: 4, op: "update", fields: "{}"))
        },
        .init("half valid: a reused sequence after a good change", 400, "sequence_reused") {
            pushBody(
                change(seq: 2, op: "update", fields: #"{"town":"新度镇"}"#) + ","
                    + change(seq: 1, op: "delete", fields: "{}"))
        },
        .init("a change stamped 2^63−1", 409, "clock_ahead") {
            pushBody(
                #"{"seq":2,"entity":"site","id":"\#(record)","op":"update","hlc":9223372036854775807,"base":0,"fields":{"town":"新度镇"}}"#
            )
        },
        .init("half valid: a change a day and an hour ahead after a good one", 409, "clock_ahead") {
            let ahead = (UInt64(Date().timeIntervalSince1970 * 1000) + 25 * 3_600_000) << 16
            return pushBody(
                change(seq: 2, op: "update", fields: #"{"town":"新度镇"}"#) + ","
                    + #"{"seq":3,"entity":"site","id":"\#(record)","op":"update","hlc":\#(ahead),"base":0,"fields":{"town":"未来"}}"#
            )
        },
        .init("a push naming another server identity", 409, "server_changed") {
            Array(
                #"{"protocol":1,"schema":{"name":"inspection","version":\#(schema.version)},"device":"\#(device)","server":"0190c4e0-0000-7000-8000-00000000dead","changes":[\#(change(seq: 2, op: "update", fields: #"{"town":"新度镇"}"#))]}"#
                    .utf8)
        },
        .init("a base past the server's last change", 409, "cursor_ahead") {
            pushBody(
                #"{"seq":2,"entity":"site","id":"\#(record)","op":"update","hlc":1000,"base":999,"fields":{"town":"新度镇"}}"#
            )
        },
        .init("batch over the limit", 413, "batch_too_large") {
            pushBody((2...10_002).map { change(seq: $0, op: "update", fields: "{}") }.joined(separator: ","))
        },
        .init("body over the limit", 413, "body_too_large") {
            next(#"{"name":"\#(String(repeating: "x", count: 40 * 1024 * 1024))","kind":"cemetery"}"#)
        },
        .init("3 million JSON values (a 6 MiB body)", 413, "batch_too_large") {
            next(#"{"name":"x","kind":"cemetery","tags":[\#(String(repeating: "0,", count: 3_000_000))0]}"#)
        },
        .init("pull body over its limit", 413, "body_too_large", path: "v1/pull") {
            pullBody(#","cursor":0,"pad":"\#(String(repeating: "x", count: 100_000))""#)
        },
        // References: to a record the server has never seen, though the push adds another site first.
        .init("a finding naming a site never seen", 400, "unknown_reference") {
            pushBody(
                change(seq: 2, id: "0190c4e0-0000-7000-8000-000000000003", fields: #"{"name":"新度镇","kind":"cemetery"}"#)
                    + ","
                    + change(
                        seq: 3, entity: "finding", id: "0190c4e0-0000-7000-8000-000000000004",
                        fields: #"{"title":"问题","status":"not_started","site":"0190c4e0-0000-7000-8000-0000000000ff"}"#)
            )
        },
        .init("a finding naming an inspection round never seen", 400, "unknown_reference") {
            next(
                #"{"title":"问题","status":"not_started","round":"0190c4e0-0000-7000-8000-0000000000ff"}"#,
                entity: "finding")
        },
        // Who is asking.
        .init("no token", 401, "unauthorized", auth: .header(nil)) { next(#"{"name":"x","kind":"cemetery"}"#) },
        .init("another scheme", 401, "unauthorized", auth: .header("Basic d2FuZzpmYW5n")) {
            next(#"{"name":"x","kind":"cemetery"}"#)
        },
        .init("empty bearer token", 401, "unauthorized", auth: .header("Bearer ")) {
            next(#"{"name":"x","kind":"cemetery"}"#)
        },
        .init("forged token", 401, "unauthorized", auth: .header("Bearer fbt_forged")) {
            next(#"{"name":"x","kind":"cemetery"}"#)
        },
        .init("token with SQL", 401, "unauthorized", auth: .header("Bearer ' OR '1'='1")) {
            next(#"{"name":"x","kind":"cemetery"}"#)
        },
        .init("revoked token", 401, "unauthorized", auth: .revoked) { next(#"{"name":"x","kind":"cemetery"}"#) },
        .init("revoked token, pull", 401, "unauthorized", path: "v1/pull", auth: .revoked) {
            pullBody(#","cursor":0"#)
        },
        .init("no token, schema", 401, "unauthorized", method: "GET", path: "v1/schema", auth: .header(nil)) { nil },
        .init("token of another device", 403, "forbidden", auth: .other) { next(#"{"name":"x","kind":"cemetery"}"#) },
        // Where.
        .init("unknown path", 404, "not_found", path: "v1/delete") { next("{}") },
        .init("path traversal", 404, "not_found", method: "GET", path: "v1/../../etc/passwd") { nil },
        .init("GET a push", 405, "method_not_allowed", method: "GET", path: "v1/push") { nil },
        .init("PUT a pull", 405, "method_not_allowed", method: "PUT", path: "v1/pull") { pullBody(#","cursor":0"#) },
        .init("OPTIONS a push", 405, "method_not_allowed", method: "OPTIONS", path: "v1/push") { nil },
        .init("DELETE the health check", 405, "method_not_allowed", method: "DELETE", path: "health") { nil },
        // Pulls.
        .init("negative cursor", 400, "bad_message", path: "v1/pull") { pullBody(#","cursor":-5"#) },
        .init("cursor a string", 400, "bad_message", path: "v1/pull") { pullBody(#","cursor":"x""#) },
        .init("cursor past Int64", 400, "malformed_json", path: "v1/pull") {
            pullBody(#","cursor":9223372036854775808"#)
        },
        .init("cursor 1e400", 400, "malformed_json", path: "v1/pull") { pullBody(#","cursor":1e400"#) },
        .init("cursor missing", 400, "bad_message", path: "v1/pull") { pullBody("") },
        .init("page size 0", 400, "bad_message", path: "v1/pull") { pullBody(#","cursor":0,"limit":0"#) },
        .init("negative page size", 400, "bad_message", path: "v1/pull") { pullBody(#","cursor":0,"limit":-1"#) },
        .init("page size a string", 400, "bad_message", path: "v1/pull") { pullBody(#","cursor":0,"limit":"all""#) },
        .init("pull, protocol version 2", 409, "protocol_mismatch", path: "v1/pull") {
            pullBody(#","cursor":0"#, protocol: "2")
        },
        .init("pull, a newer schema version", 409, "schema_ahead", path: "v1/pull") {
            pullBody(#","cursor":0"#, schemaVersion: schema.version + 1)
        },
    ]
}

/// A server store with two devices that have each pushed a change, and three tokens: the
/// owner's, another device's, a revoked one.
struct HostileFixture {
    let dir = TemporaryDirectory()
    let storage: any SyncStorage
    let owner: String
    let other: String
    let revoked: String

    init(_ backend: Backend) async throws {
        storage = try await makeStorage(dir, backend)
        owner = try await storage.createToken(name: "王芳")
        other = try await storage.createToken(name: "李明")
        revoked = try await storage.createToken(name: "离职")
        _ = try await storage.revokeTokens(name: "离职")
    }

    func setUp(_ url: URL) async throws {
        #expect(try await post(url, "v1/push", token: owner, body: pushBody(change())) == (200, nil))
        let theirs = change(id: "0190c4e0-0000-7000-8000-000000000002", fields: #"{"name":"鱼鳞村公墓","kind":"cemetery"}"#)
        #expect(try await post(url, "v1/push", token: other, body: pushBody(theirs, device: otherDevice)) == (200, nil))
    }

    func token(_ auth: HostileRequest.Auth) -> String? {
        switch auth {
        case .owner: "Bearer \(owner)"
        case .other: "Bearer \(other)"
        case .revoked: "Bearer \(revoked)"
        case .header(let header): header
        }
    }
}

@Suite("Server: hostile input gets its documented error, writes nothing, and the server keeps serving", .tags(.server))
struct BadInputTests {
    @Test("one hostile request", arguments: Backend.all, HostileRequest.catalogue)
    func hostile(backend: Backend, request: HostileRequest) async throws {
        let fixture = try await HostileFixture(backend)
        try await withServer(storage: fixture.storage) { url in
            try await fixture.setUp(url)
            let before = try await fingerprint(fixture.storage, fixture.dir)

            let headers = fixture.token(request.auth).map { ["Authorization": $0] } ?? [:]
            let answer = try await send(
                url, request.path, method: request.method, headers: headers, body: request.body())
            #expect(answer.status == request.status)
            #expect(answer.code == request.code)
            // Every refusal is a protocol error body with a message.
            let error = try #require(WireError(json: try JSON(parsing: answer.body)))
            #expect(!error.message.isEmpty)

            #expect(try await fingerprint(fixture.storage, fixture.dir) == before)
            // Still serving, and nothing moved: the owner's next change is still seq 2, and gets the
            // next server sequence number (a refused push uses none up).
            let good = pushBody(change(seq: 2, op: "update", fields: #"{"town":"新度镇"}"#))
            let ok = try await send(url, "v1/push", headers: ["Authorization": "Bearer \(fixture.owner)"], body: good)
            #expect(ok.status == 200)
            let identity = try await fixture.storage.standing(device: "").identity
            #expect(
                String(decoding: ok.body, as: UTF8.self)
                    == #"{"protocol":1,"assigned":[[2,3]],"server":"\#(identity)"}"#)
            #expect(try await fixture.storage.changeCount() == 3)
        }
    }

    @Test(
        "references to a record the server holds (deleted too), or that the push adds, are accepted",
        arguments: Backend.all)
    func knownReferences(backend: Backend) async throws {
        let fixture = try await HostileFixture(backend)
        try await withServer(storage: fixture.storage) { url in
            try await fixture.setUp(url)
            let theirs = "0190c4e0-0000-7000-8000-000000000002"
            let added = "0190c4e0-0000-7000-8000-000000000003"
            func finding(_ seq: Int, _ n: Int, site: String) -> String {
                change(
                    seq: seq, entity: "finding", id: "0190c4e0-0000-7000-8000-00000000001\(n)",
                    fields: #"{"title":"问题","status":"not_started","site":"\#(site)"}"#)
            }
            // The owner's own site, another device's, one this push adds, one deleted first.
            let changes = [
                finding(2, 1, site: record), finding(3, 2, site: theirs),
                change(seq: 4, id: added, fields: #"{"name":"新度镇","kind":"cemetery"}"#), finding(5, 3, site: added),
                change(seq: 6, op: "delete", id: theirs, fields: "{}"), finding(7, 4, site: theirs),
            ]
            #expect(
                try await post(url, "v1/push", token: fixture.owner, body: pushBody(changes.joined(separator: ",")))
                    == (200, nil))
            // And one in a later push to a site of an earlier push.
            let later = pushBody(finding(8, 5, site: added))
            #expect(try await post(url, "v1/push", token: fixture.owner, body: later) == (200, nil))
            #expect(try await fixture.storage.changeCount() == 9)
        }
    }

    @Test("the catalogue has at least 30 distinct kinds")
    func catalogueSize() {
        #expect(Set(HostileRequest.catalogue.map(\.kind)).count == HostileRequest.catalogue.count)
        #expect(HostileRequest.catalogue.count >= 30)
    }

    @Test("SQL metacharacters in values are data: stored and sent back verbatim", arguments: Backend.all)
    func sqlMetacharacters(backend: Backend) async throws {
        let fixture = try await HostileFixture(backend)
        let hostile = [
            #"'; DROP TABLE changes; --"#, #"" OR 1=1 --"#, #"Robert'); DELETE FROM records; --"#,
            #"\'; SELECT pg_sleep(10); --"#,
            "%_*?[]", "$1 $$ $tag$", "敬老院'); DROP TABLE tokens;--",
        ]
        try await withServer(storage: fixture.storage) { url in
            try await fixture.setUp(url)
            var changes: [String] = []
            for (n, text) in hostile.enumerated() {
                let id = String(format: "0190c4e0-0000-7000-8000-%012x", 100 + n)
                var fields: [(key: String, value: JSON)] = [
                    ("name", .string(text)), ("kind", .string("cemetery")), ("town", .string(text)),
                    ("tags", .array([.string(text)])),
                ]
                fields.sort { $0.key < $1.key }
                changes.append(change(seq: 2 + n, id: id, fields: JSON.object(fields).serialized))
            }
            let answer = try await post(
                url, "v1/push", token: fixture.owner, body: pushBody(changes.joined(separator: ",")))
            #expect(answer == (200, nil))

            let records = Dictionary(
                uniqueKeysWithValues: try await fixture.storage.records("site").map { ($0.id, $0.values) })
            for (n, text) in hostile.enumerated() {
                let values = try #require(records[String(format: "0190c4e0-0000-7000-8000-%012x", 100 + n)])
                #expect(values["name"] == .text(text))
                #expect(values["town"] == .text(text))
                #expect(values["tags"] == .textSet([text]))
            }
            // Every table is still there, and a device pulls the values back byte for byte.
            let tables = try await fingerprint(fixture.storage, fixture.dir)
            for table in ["changes", "records", "tokens", "devices", "conflicts", "meta"] {
                #expect(tables[table] != nil)
            }
            // The fingerprint sees every write: the changes (and the records) pushed are in it.
            #expect(tables["changes"]?.count == 2 + hostile.count)
            #expect(tables["changes"]?.contains { $0.contains("DROP TABLE changes") } == true)
            let store = try Store(path: fixture.dir.path("device.sqlite"), schema: schema)
            _ = try await store.sync(
                HTTPTransport(server: url, token: try await fixture.storage.createToken(name: "张伟")))
            for (n, text) in hostile.enumerated() {
                let site = try #require(
                    try store.record("site", id: String(format: "0190c4e0-0000-7000-8000-%012x", 100 + n)))
                #expect(site["name"] == .text(text))
            }
            #expect(try await post(url, "v1/pull", token: fixture.owner, body: pullBody(#","cursor":0"#)).status == 200)
        }
    }

    @Test("pull edge cases that are not errors", arguments: Backend.all)
    func pullEdges(backend: Backend) async throws {
        let fixture = try await HostileFixture(backend)
        try await withServer(storage: fixture.storage) { url in
            try await fixture.setUp(url)
            let auth = ["Authorization": "Bearer \(fixture.owner)"]
            // At the server's head: an empty page that keeps the cursor (protocol.md: "the request's
            // cursor if the page is empty"), and names the server's identity.
            let identity = try await fixture.storage.standing(device: "").identity
            let atHead = try await send(url, "v1/pull", headers: auth, body: pullBody(#","cursor":2"#))
            #expect(
                String(decoding: atHead.body, as: UTF8.self)
                    == #"{"protocol":1,"changes":[],"cursor":2,"more":false,"server":"\#(identity)"}"#)
            // Past it: refused, never an empty page (the server lost changes the device has seen).
            let beyond = try await send(
                url, "v1/pull", headers: auth, body: pullBody(#","cursor":9223372036854775807"#))
            #expect(beyond.status == 409 && beyond.code == "cursor_ahead")
            // A huge page size is lowered to the server's.
            let huge = try await send(
                url, "v1/pull", headers: auth, body: pullBody(#","cursor":0,"limit":9223372036854775807"#))
            let page = try PullResponse(utf8: huge.body, schema: schema)
            #expect(page.changes.count == 2 && page.cursor == 2 && !page.more)
            // Another Content-Type is not checked: the body is JSON or it is refused.
            var plain = auth
            plain["Content-Type"] = "text/plain"
            #expect(try await send(url, "v1/pull", headers: plain, body: pullBody(#","cursor":0"#)).status == 200)
        }
    }
}
