import FieldbookCore
import FieldbookJSON
import FieldbookServerProcess
import FieldbookSync
import FieldbookTesting
import Foundation
import Testing

@Suite("fieldbook CLI: a server whose identity is renewed", .tags(.endToEnd))
struct ServerIdentityCLITests {
    @Test("after 'fieldbook-server identity renew', devices sync again with it, nothing lost or doubled")
    func renewed() throws {
        let world = try CLIWorld()
        let database = ["--database", world.server.database]
        for (device, name) in [("a", "王芳"), ("b", "李明")] {
            #expect(
                try world.fieldbook(device, ["init", "--server", world.url, "--token", try world.token(name)]).status
                    == 0)
        }
        #expect(try world.json("a", ["status"])["server_identity"] == .null, "not synced yet")
        let site = try world.fieldbook(
            "a", ["add", "site", "name=东海镇农村幸福院", "kind=happiness_home", "illegal_graves_found=2"]
        )
        .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        for device in ["a", "b"] { #expect(try world.fieldbook(device, ["sync"]).status == 0) }
        let identity = try world.server.admin(["identity", "show"] + database)
        #expect(try world.json("a", ["status"])["server_identity"]?.string == identity)
        #expect(try world.fieldbook("b", ["status"]).stdout.contains("server id      \(identity)"))

        let renewed = try world.server.admin(["identity", "renew"] + database)
        #expect(renewed != identity && UUIDText.canonical(renewed) == renewed)
        #expect(try world.server.admin(["identity", "show"] + database) == renewed)
        #expect(try world.fieldbook("b", ["set", "site", site, "illegal_graves_found=5", "town=城关镇"]).status == 0)
        for device in ["b", "a", "b"] {
            let sync = try world.fieldbook(device, ["sync"])
            #expect(sync.status == 0, "\(sync.stderr)")
        }
        for device in ["a", "b"] {
            #expect(try world.json(device, ["status"])["server_identity"]?.string == renewed)
            #expect(try world.json(device, ["status"])["pending"]?.int == 0)
            let record = try world.json(device, ["get", "site", site])
            #expect(record["illegal_graves_found"]?.int == 5 && record["town"]?.string == "城关镇")
        }
    }
}
