import FieldbookCore
import FieldbookJSON
import FieldbookTesting
import Foundation
import Testing

@Suite(
    "fieldbook config: a device re-pointed at another address keeps its identity, cursor and pending changes",
    .tags(.endToEnd))
struct ConfigTests {
    @Test("config set server moves the device; its changes reach the server; the token is never shown")
    func repoint() throws {
        let world = try CLIWorld()
        let token = try world.token("李明")
        #expect(
            try world.fieldbook("a", ["init", "--server", "http://127.0.0.1:9", "--token", token, "--name", "李明的手机"])
                .status == 0)
        let file = world.path("a") + "/config.json"
        #expect(try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int == 0o600)
        let device = try world.json("a", ["status"])["device"]?.string
        try world.fieldbook("a", ["add", "site", "name=新度镇敬老院", "kind=elderly_home"])
        #expect(try world.fieldbook("a", ["sync", "--timeout", "0"]).status == 69)

        // A bad address is refused and changes nothing.
        let bad = try world.fieldbook("a", ["config", "set", "server", "ftp://x"])
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("http(s) URL"))
        #expect(try world.json("a", ["config"])["server"]?.string == "http://127.0.0.1:9")

        let shown = try world.json("a", ["config", "set", "server", world.url])
        #expect(shown["server"]?.string == world.url)
        #expect(shown["name"]?.string == "李明的手机")
        #expect(try String(contentsOfFile: file, encoding: .utf8).contains(token))
        #expect(try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int == 0o600)
        let plain = try world.fieldbook("a", ["config", "show"])
        #expect(!plain.stdout.contains(token) && !plain.stdout.contains("fbt_"), "the token is never printed")

        let sync = try world.json("a", ["sync"])
        #expect(sync["pushed"]?.int == 1)
        let status = try world.json("a", ["status"])
        #expect(status["device"]?.string == device)
        #expect(status["pending"]?.int == 0)

        // After a sync the cursor is kept too: a second device's change is the only one pulled next time.
        #expect(
            try world.fieldbook("b", ["init", "--server", world.url, "--token", try world.token("王芳")]).status == 0)
        try world.fieldbook("b", ["add", "site", "name=西天尾镇公墓", "kind=cemetery"])
        #expect(try world.json("b", ["sync"])["pushed"]?.int == 1)
        #expect(try world.json("a", ["config", "set", "name", "办公室"])["name"]?.string == "办公室")
        #expect(try world.json("a", ["sync"])["pulled"]?.int == 1)
    }
}
