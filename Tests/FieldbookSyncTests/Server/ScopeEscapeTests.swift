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

/// An inspector's token tries to escape its town through the HTTP interface: claims in the body,
/// a guessed id, a reference into another town, a record moved into or out of its scope.
@Suite("Server: a scoped token cannot leave its scope", .tags(.server))
struct ScopeEscapeTests {
    @Test("forged role and scope claims are ignored; guessed ids, references and moves across scopes are rejected")
    func escapes() async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, .sqlite)
        let office = try await storage.createToken(name: "王芳", role: "office", scopes: nil)
        let inspector = try await storage.createToken(name: "李明", role: "office", scopes: ["town=新度镇"])
        let desk = try Store(path: dir.path("office.sqlite"), schema: schema)
        let home = try desk.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home", "town": "新度镇"])
        let cemetery = try desk.insert("site", ["name": "西天尾镇公墓", "kind": "cemetery", "town": "西天尾镇"])
        let graves = try desk.insert("finding", ["site": .text(cemetery), "title": "散埋乱葬"])
        try await withServer(storage: storage) { url in
            _ = try await desk.sync(HTTPTransport(server: url, token: office))
            let auth = ["Authorization": "Bearer \(inspector)"]

            // A pull that claims to see everything, as the office, sees its town only.
            let pull = try await send(
                url, "v1/pull", headers: auth,
                body: Array(
                    #"{"protocol":1,"schema":{"name":"inspection","version":\#(schema.version)},"device":"\#(device)","cursor":0,"limit":100,"scopes":["all"],"role":"office","author":"王芳"}"#
                        .utf8))
            #expect(pull.status == 200)
            let page = try PullResponse(utf8: pull.body, schema: schema)
            #expect(Set(page.changes.map(\.recordID)) == [home])
            #expect(page.scopes == ["town=新度镇"])

            // A push that claims to be the office's: a guessed id of the other town's finding, a
            // finding referring to its site, and the other town's site moved into this one.
            func change(_ seq: Int, _ op: String, _ entity: String, _ id: String, _ fields: String) -> String {
                #"{"seq":\#(seq),"entity":"\#(entity)","id":"\#(id)","op":"\#(op)","hlc":\#(seq),"base":\#(page.cursor),"fields":\#(fields)}"#
            }
            let body =
                #"{"protocol":1,"schema":{"name":"inspection","version":\#(schema.version)},"device":"\#(device)","role":"office","scopes":null,"author":"王芳","changes":["#
                + [
                    change(1, "update", "finding", graves, #"{"title":"改"}"#),
                    change(
                        2, "insert", "finding", "0190c4e0-0000-7000-8000-0000000000f1",
                        #"{"site":"\#(cemetery)","title":"越界","status":"not_started","long_term":false,"reopen_count":0}"#
                    ),
                    change(3, "update", "site", cemetery, #"{"town":"新度镇"}"#),
                    change(4, "update", "site", home, #"{"town":"西天尾镇"}"#),
                    change(5, "update", "site", home, #"{"village":"前村"}"#),
                ].joined(separator: ",") + "]}"
            let push = try await send(url, "v1/push", headers: auth, body: Array(body.utf8))
            #expect(push.status == 200, "\(String(decoding: push.body, as: UTF8.self))")
            let answer = try PushResponse(utf8: push.body)
            #expect(answer.rejected.map(\.sequence) == [1, 2, 3, 4])
            #expect(answer.rejected.allSatisfy { $0.rule.hasSuffix(".scope") })
            #expect(answer.rejected.allSatisfy { !$0.message.contains("新度镇") && !$0.message.contains("西天尾镇") })

            // Nothing outside its scope changed; the allowed change was merged, stamped with its own name.
            let records = try await snapshot(storage)
            #expect(records["finding"]?[graves]?["title"] == .text("散埋乱葬"))
            #expect(records["finding"]?["0190c4e0-0000-7000-8000-0000000000f1"] == nil)
            #expect(records["site"]?[cemetery]?["town"] == .text("西天尾镇"))
            #expect(records["site"]?[home]?["town"] == .text("新度镇"))
            #expect(records["site"]?[home]?["village"] == .text("前村"))
            let all = try await storage.pull(
                PullRequest(schema: SchemaVersion(schema), device: device, cursor: 0, limit: 100),
                identity: try #require(try await storage.authenticate(token: office)))
            #expect(all.changes.last?.author == "李明")

            // A conflict on the other town's finding (two office devices set its deadline apart) is
            // listed for the office, not for this token.
            let desk2 = try Store(path: dir.path("office2.sqlite"), schema: schema)
            let asOffice = HTTPTransport(server: url, token: office)
            _ = try await desk2.sync(asOffice)
            try desk.update("finding", id: graves, ["deadline": "2022-06-30"])
            try desk2.update("finding", id: graves, ["deadline": "2022-12-31"])
            _ = try await desk.sync(asOffice)
            _ = try await desk2.sync(asOffice)
            func conflicts(_ token: String) async throws -> Int {
                let answer = try await send(
                    url, "v1/conflicts", method: "GET", headers: ["Authorization": "Bearer \(token)"], body: nil)
                #expect(answer.status == 200)
                guard case .array(let list)? = try JSON(parsing: answer.body)["conflicts"] else { return -1 }
                return list.count
            }
            #expect(try await conflicts(office) == 1)
            #expect(try await conflicts(inspector) == 0)
        }
    }
}
