import FieldbookCore
import FieldbookServer
import FieldbookStore
import Foundation
import Testing
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Sends raw bytes to the live server; returns the status and the error code, if any.
func post(_ url: URL, _ path: String, token: String?, body: [UInt8]) async throws -> (status: Int, code: String?) {
    var request = URLRequest(url: url.appendingPathComponent(path))
    request.httpMethod = "POST"
    if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
    request.httpBody = Data(body)
    let (data, response) = try await URLSession.shared.data(for: request)
    let status = (response as? HTTPURLResponse)?.statusCode ?? 0
    let code: String? = (try? JSON(parsing: Array(data))).flatMap { json in
        if case .string(let c)? = json["error"]?["code"] { c } else { nil }
    }
    return (status, code)
}

let device = "0190c4e0-0000-7000-8000-0000000000aa"
let record = "0190c4e0-0000-7000-8000-000000000001"

func pushBody(_ changes: String, protocol version: Int = 1, schemaVersion: Int = 1, device: String = device) -> [UInt8] {
    Array(
        #"{"protocol":\#(version),"schema":{"name":"inspection","version":\#(schemaVersion)},"device":"\#(device)","changes":[\#(changes)]}"#
            .utf8)
}

func change(seq: Int = 1, entity: String = "site", op: String = "insert", fields: String = #"{"name":"新度镇敬老院","kind":"elderly_home"}"#)
    -> String
{
    #"{"seq":\#(seq),"entity":"\#(entity)","id":"\#(record)","op":"\#(op)","hlc":1000,"base":0,"fields":\#(fields)}"#
}

@Suite("Server: bad input gets a clear error and changes nothing")
struct BadInputTests {
    static let cases: [(name: String, body: [UInt8], status: Int, code: String)] = [
        ("truncated JSON", Array(#"{"protocol":1,"schema":"#.utf8), 400, "malformed_json"),
        ("not UTF-8", [0x7B, 0xFF, 0xFE, 0x7D], 400, "malformed_json"),
        ("not an object", Array("[1,2,3]".utf8), 400, "bad_message"),
        ("unknown protocol version", pushBody(change(), protocol: 9), 409, "protocol_mismatch"),
        ("wrong schema version", pushBody(change(), schemaVersion: 2), 409, "schema_mismatch"),
        ("device not a UUID", pushBody(change(), device: "my-phone"), 400, "bad_message"),
        ("unknown entity", pushBody(change(entity: "castle")), 400, "unknown_entity"),
        ("unknown field", pushBody(change(fields: #"{"name":"x","kind":"cemetery","colour":"red"}"#)), 400, "unknown_field"),
        ("wrong type", pushBody(change(fields: #"{"name":"x","kind":"cemetery","beds_total":"many"}"#)), 400, "invalid_value"),
        ("enum value not allowed", pushBody(change(fields: #"{"name":"x","kind":"castle"}"#)), 400, "invalid_value"),
        ("missing required field", pushBody(change(fields: #"{"kind":"cemetery"}"#)), 400, "invalid_change"),
        ("text over its limit", pushBody(change(fields: #"{"name":"\#(String(repeating: "长", count: 201))","kind":"cemetery"}"#)), 400, "invalid_value"),
        ("negative sequence", pushBody(change(seq: -1)), 400, "bad_message"),
        ("sequence gap", pushBody(change(seq: 5)), 409, "sequence_gap"),
        ("counter set in an update", pushBody(change(op: "update", fields: #"{"illegal_graves_found":5}"#)), 400, "invalid_change"),
        ("huge number", pushBody(change(fields: #"{"name":"x","kind":"cemetery","beds_total":1e400}"#)), 400, "malformed_json"),
        ("deep nesting", Array((String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)).utf8), 400, "malformed_json"),
        ("a valid change after an invalid one", pushBody(change() + "," + change(seq: 2, entity: "castle")), 400, "unknown_entity"),
    ]

    @Test("each hostile request gets its code; nothing is written; the server keeps serving", arguments: Backend.all)
    func hostile(backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let token = try await storage.createToken(name: "王芳")
        let revoked = try await storage.createToken(name: "离职")
        _ = try await storage.revokeTokens(name: "离职")
        try await withServer(storage: storage) { url in
            for c in Self.cases {
                let answer = try await post(url, "v1/push", token: token, body: c.body)
                #expect(answer.status == c.status, "\(c.name)")
                #expect(answer.code == c.code, "\(c.name)")
            }
            #expect(try await storage.changeCount() == 0)
            #expect(try await storage.records("site").isEmpty)

            #expect(try await post(url, "v1/push", token: nil, body: pushBody(change())) == (401, "unauthorized"))
            #expect(try await post(url, "v1/push", token: revoked, body: pushBody(change())) == (401, "unauthorized"))
            #expect(try await post(url, "v1/push", token: "fbt_forged", body: pushBody(change())) == (401, "unauthorized"))
            let huge = pushBody(change(fields: #"{"name":"\#(String(repeating: "x", count: 40 * 1024 * 1024))","kind":"cemetery"}"#))
            #expect(try await post(url, "v1/push", token: token, body: huge) == (413, "body_too_large"))
            let many = pushBody((1...10_001).map { change(seq: $0) }.joined(separator: ","))
            #expect(try await post(url, "v1/push", token: token, body: many) == (413, "batch_too_large"))
            #expect(try await storage.changeCount() == 0)

            // Still serving: a good push goes through, and its device id is now the token's.
            #expect(try await post(url, "v1/push", token: token, body: pushBody(change())).status == 200)
            let other = try await storage.createToken(name: "李明")
            #expect(try await post(url, "v1/push", token: other, body: pushBody(change(seq: 2, op: "delete", fields: "{}"))) == (403, "forbidden"))
            // A cursor that is not a number, a negative one.
            let pull = #"{"protocol":1,"schema":{"name":"inspection","version":1},"device":"\#(device)","cursor":"#
            #expect(try await post(url, "v1/pull", token: token, body: Array((pull + #""x"}"#).utf8)) == (400, "bad_message"))
            #expect(try await post(url, "v1/pull", token: token, body: Array((pull + "-5}").utf8)) == (400, "bad_message"))
            #expect(try await storage.changeCount() == 1)
        }
    }
}
