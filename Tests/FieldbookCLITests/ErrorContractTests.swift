import FieldbookCore
import FieldbookJSON
import FieldbookServerProcess
import FieldbookTesting
import Foundation
import Testing

/// docs/cli.md: every error is one line `fieldbook: MESSAGE` on stderr, or `{"error", "exit"}` with
/// `--json`; stdout stays empty; the message names the real problem.
@Suite("fieldbook errors: one contract, the parser's errors included, each naming the real problem", .tags(.endToEnd))
struct ErrorContractTests {
    struct Case: Sendable, CustomStringConvertible {
        var arguments: [String]
        var exit: Int32
        var says: String
        var description: String { arguments.joined(separator: " ") }
    }

    static let cases: [Case] = [
        Case(arguments: ["frobnicate"], exit: 64, says: "unknown command 'frobnicate'"),
        Case(arguments: ["list", "site", "--bogus"], exit: 64, says: "Unknown option '--bogus'"),
        Case(
            arguments: ["finding", "close"], exit: 64,
            says: "Missing expected argument '<id>' (see 'fieldbook finding close --help')"),
        Case(
            arguments: ["list", "site", "--limit", "-1"], exit: 64, says: "--limit takes a number of records, 1 or more"
        ),
        Case(arguments: ["list", "site", "--limit", "many"], exit: 64, says: "invalid for '--limit <limit>'"),
        Case(arguments: ["list", "castle"], exit: 64, says: "no entity 'castle'"),
        Case(arguments: ["report", "--today", "2022-02-30"], exit: 65, says: "a day that exists on the calendar"),
        Case(arguments: ["report", "--today", "2022/02/03"], exit: 65, says: "written YYYY-MM-DD"),
        Case(
            arguments: ["finding", "add", "--title", "t", "--deadline", "2022-02-30"], exit: 65,
            says: "a day that exists on the calendar"),
        Case(arguments: ["get", "site", "0190c4e0-0000-7000-8000-000000000001"], exit: 66, says: "no site record"),
        Case(arguments: ["sync", "--timeout", "0"], exit: 69, says: "the changes stay here"),
    ]

    @Test("with and without --json", arguments: cases)
    func contract(_ c: Case) throws {
        let world = try CLIWorld()
        #expect(try world.fieldbook("a", ["init", "--server", "http://127.0.0.1:9", "--token", "fbt_x"]).status == 0)
        let plain = try world.fieldbook("a", c.arguments)
        #expect(plain.status == c.exit, "\(c): \(plain.stderr)")
        #expect(plain.stdout.isEmpty, "\(c): \(plain.stdout)")
        #expect(plain.stderr.hasPrefix("fieldbook: "), "\(c): \(plain.stderr)")
        #expect(plain.stderr.split(separator: "\n").count == 1, "one line: \(plain.stderr)")
        #expect(plain.stderr.contains(c.says), "\(c): \(plain.stderr)")
        #expect(!plain.stderr.contains("Usage:"), "\(c): \(plain.stderr)")

        let json = try world.fieldbook("a", ["--json"] + c.arguments)
        #expect(json.status == c.exit)
        #expect(json.stdout.isEmpty)
        let error = try JSON(parsing: json.stderr.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(error["exit"]?.int == Int64(c.exit), "\(c): \(json.stderr)")
        #expect(error["error"]?.string?.contains(c.says) == true, "\(c): \(json.stderr)")
    }

    @Test("a value written wrong: exit 65, the field named once, the value never")
    func badValue() throws {
        let world = try CLIWorld()
        #expect(try world.fieldbook("a", ["init", "--server", "http://127.0.0.1:9", "--token", "fbt_x"]).status == 0)
        let wrong = try world.fieldbook("a", ["add", "finding", "title=消防通道堵塞", "site=新度镇敬老院"])
        #expect(wrong.status == 65)
        #expect(wrong.stderr == "fieldbook: finding.site: must be a record id (a UUID)\n", "\(wrong.stderr)")
        #expect(try world.fieldbook("a", ["list", "finding"]).stdout.contains("0 records"))
    }

    @Test("a revoked token: exit 77, its advice said once, and how to give the device a new token")
    func revoked() throws {
        let world = try CLIWorld()
        #expect(
            try world.fieldbook("a", ["init", "--server", world.url, "--token", try world.token("王芳")]).status == 0)
        try world.fieldbook("a", ["add", "site", "name=新度镇敬老院", "kind=elderly_home"])
        try world.server.admin(["token", "revoke", "--database", world.server.database, "--name", "王芳"])
        let refused = try world.fieldbook("a", ["sync"])
        #expect(refused.status == 77)
        #expect(refused.stderr.components(separatedBy: "administrator").count == 2, "advice once: \(refused.stderr)")
        #expect(refused.stderr.contains("fieldbook config set token"))
        // The advice works: a new token, and the change goes.
        #expect(try world.fieldbook("a", ["config", "set", "token", try world.token("王芳")]).status == 0)
        #expect(try world.json("a", ["sync"])["pushed"]?.int == 1)
    }
}
