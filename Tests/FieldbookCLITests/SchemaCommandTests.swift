import FieldbookCore
import FieldbookJSON
import FieldbookSchemas
import FieldbookServerProcess
import FieldbookTesting
import Foundation
import Testing

/// `fieldbook-server schema publish|list|show` through the real binaries, against a running server.
@Suite("fieldbook-server CLI: schema versions", .tags(.endToEnd))
struct SchemaCommandTests {
    @Test(
        "a malformed, huge or incompatible file is refused with why and changes nothing; a compatible one is published and served"
    )
    func publish() throws {
        let world = try CLIWorld()
        let database = world.server.databaseArguments
        let bundled = try Schema(json: BundledSchemas.inspection)
        func server(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
            try BuiltProducts.run("fieldbook-server", arguments + database)
        }
        func versions() throws -> [JSON] {
            let list = try server(["schema", "list", "--json"])
            #expect(list.status == 0, "\(list.stderr)")
            return try JSON(parsing: list.stdout).array
        }
        func file(_ name: String, _ text: String) throws -> String {
            let path = world.path(name)
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }
        let token = try world.token("王芳")
        #expect(try world.fieldbook("desk", ["init", "--server", world.url, "--token", token]).status == 0)
        try world.fieldbook("desk", ["add", "site", "name=城关敬老院", "kind=elderly_home", "town=新度镇"])
        #expect(try world.fieldbook("desk", ["sync"]).status == 0)
        // Two inspectors' devices of the current version, synced once, then offline.
        for device in ["field", "slow"] {
            #expect(try world.fieldbook(device, ["init", "--server", world.url, "--token", token]).status == 0)
            #expect(try world.fieldbook(device, ["sync"]).status == 0)
        }
        let offline = try world.fieldbook(
            "field", ["add", "site", "name=山头村幸福院", "kind=happiness_home", "town=新度镇", "village=山头村"]
        ).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try world.fieldbook("slow", ["add", "site", "name=后山公墓", "kind=cemetery", "village=后山村"])

        let initial = try versions()
        #expect(initial.count == 1)
        #expect(initial.first?["version"]?.int == Int64(bundled.version))
        #expect(initial.first?["current"] == .bool(true))

        let text = String(decoding: BundledSchemas.inspection, as: UTF8.self)
        let next = text.replacingOccurrences(
            of: "\"version\": \(bundled.version),", with: "\"version\": \(bundled.version + 1),")
        for (name, contents, expected) in [
            ("broken.json", "{\"schema\": \"inspection\", ", "is not a valid schema"),
            ("huge.json", String(repeating: " ", count: 2 << 20), "larger than 1024 KiB"),
            (
                "incompatible.json",
                next.replacingOccurrences(
                    of:
                        #"{"name": "results", "label": "现阶段成效 Results", "type": "text", "maxLength": 4000, "policy": "lww"},"#,
                    with: ""
                ).replacingOccurrences(of: #""status", "results", "next_steps""#, with: #""status", "next_steps""#),
                "finding.results: removing a field would lose its values; retire it"
            ),
            ("same.json", text, "holds schema version \(bundled.version) already"),
        ] {
            let refused = try server(["schema", "publish", try file(name, contents)])
            #expect(refused.status != 0, "\(name)")
            #expect(refused.stderr.contains(expected), "\(name): \(refused.stderr)")
            #expect(refused.stderr.contains("nothing was changed") || name == "same.json", "\(name)")
            #expect(try versions() == initial, "\(name) changed nothing")
        }

        // A compatible version: a field renamed, one added.
        let renamed = next.replacingOccurrences(
            of: #"{"name": "village", "label": "村/社区 Village", "type": "text", "maxLength": 100, "policy": "lww"},"#,
            with:
                #"{"name": "community", "renamedFrom": "village", "label": "村/社区 Village", "type": "text", "maxLength": 100, "policy": "lww"}, {"name": "phone", "type": "text", "policy": "lww"},"#
        )
        .replacingOccurrences(of: #""update": ["village", "operator","#, with: #""update": ["community", "operator","#)
        #expect(renamed.contains("renamedFrom") && !renamed.contains(#""village", "operator""#))
        let path = try file("next.json", renamed)
        let published = try server(["schema", "publish", path, "--json"])
        try #require(published.status == 0, "\(published.stderr)")
        #expect(
            try JSON(parsing: published.stdout)
                == .object([
                    ("name", .string("inspection")), ("version", .int(Int64(bundled.version + 1))),
                    ("previous", .int(Int64(bundled.version))),
                ]))
        let after = try versions()
        #expect(after.map { $0["version"]?.int } == [Int64(bundled.version), Int64(bundled.version + 1)])
        #expect(after.map { $0["current"] } == [.bool(false), .bool(true)])
        let shown = try server(["schema", "show", String(bundled.version + 1)])
        #expect(shown.stdout.contains("community\ttext, lww, renamed from village"))
        let document = try server(["schema", "show", String(bundled.version + 1), "--json"])
        #expect(try Schema(json: document.stdout) == Schema(json: renamed))
        let missing = try server(["schema", "show", "99"])
        #expect(missing.status != 0 && missing.stderr.contains("no version 99"))

        // The running server takes the new version at its next request: a device of it syncs, and
        // receives the site under the renamed field.
        #expect(
            try world.fieldbook("phone", ["init", "--server", world.url, "--token", token, "--schema", path]).status
                == 0)
        let sync = try world.fieldbook("phone", ["sync"])
        #expect(sync.status == 0, "\(sync.stderr)")
        #expect(try world.json("phone", ["list", "site"]).array.count == 1)

        // The offline device syncs: its change (of the earlier version) is pushed, then the device
        // moves to the new version, and nothing is lost.
        let upgraded = try world.fieldbook("field", ["sync"])
        #expect(upgraded.status == 0, "\(upgraded.stderr)")
        #expect(upgraded.stdout.contains("upgraded from schema version \(bundled.version) to \(bundled.version + 1)"))
        let status = try world.json("field", ["status"])
        #expect(status["schema_version"]?.int == Int64(bundled.version + 1))
        #expect(status["pending"]?.int == 0)
        #expect(status["newest_schema"] == .null)
        let site = try world.json("field", ["get", "site", offline])
        #expect(site["community"]?.string == "山头村")
        #expect(try world.fieldbook("phone", ["sync"]).status == 0)
        #expect(try world.json("phone", ["get", "site", offline])["community"]?.string == "山头村")
        try world.fieldbook("field", ["set", "site", offline, "phone=0594-1234567"])
        #expect(try world.fieldbook("field", ["sync"]).status == 0)
        // Its history shows the renamed field under its name, with the name it was set under.
        let history = try world.fieldbook("field", ["history", "site", offline])
        #expect(history.stdout.contains("community (formerly village)"), "\(history.stdout)")
        let entries = try world.json("field", ["history", "site", offline]).array
        #expect(entries.contains { $0["field"]?.string == "community" && $0["formerly"]?.string == "village" })

        // Another stays on its version: it pushes and pulls in it, and is told a newer one is published.
        let stayed = try world.fieldbook("slow", ["sync", "--stay", "--json"])
        #expect(stayed.status == 0, "\(stayed.stderr)")
        let report = try JSON(parsing: stayed.stdout)
        #expect(report["schema_version"]?.int == Int64(bundled.version))
        #expect(report["newest_schema"]?.int == Int64(bundled.version + 1))
        #expect(report["pushed"]?.int == 1)
        #expect(try world.json("slow", ["get", "site", offline])["village"]?.string == "山头村")
        let slowStatus = try world.fieldbook("slow", ["status"])
        #expect(slowStatus.stdout.contains("version \(bundled.version + 1) is published; 'fieldbook sync' upgrades"))
        #expect(try world.fieldbook("phone", ["sync"]).status == 0)
        #expect(try world.json("phone", ["list", "site"]).array.count == 3)
    }

    @Test(
        "a device two versions behind, with a field renamed in each, upgrades through both at one sync and loses nothing"
    )
    func twoRenames() throws {
        let world = try CLIWorld()
        let bundled = try Schema(json: BundledSchemas.inspection)
        let text = String(decoding: BundledSchemas.inspection, as: UTF8.self)
        let field = #"{"name": "village", "label": "村/社区 Village", "type": "text", "maxLength": 100, "policy": "lww"},"#
        let access = #""update": ["village", "operator","#
        #expect(text.contains(field) && text.contains(access))
        func version(_ n: Int, _ name: String, from old: String) -> String {
            text.replacingOccurrences(
                of: "\"version\": \(bundled.version),", with: "\"version\": \(bundled.version + n),"
            )
            .replacingOccurrences(
                of: field,
                with:
                    #"{"name": "\#(name)", "renamedFrom": "\#(old)", "label": "村/社区 Village", "type": "text", "maxLength": 100, "policy": "lww"},"#
            )
            .replacingOccurrences(of: access, with: #""update": ["\#(name)", "operator","#)
        }
        let token = try world.token("王芳")
        for device in ["field", "desk"] {
            #expect(try world.fieldbook(device, ["init", "--server", world.url, "--token", token]).status == 0)
        }
        let pulled = try world.fieldbook(
            "desk", ["add", "site", "name=城关敬老院", "kind=elderly_home", "village=城关村"]
        ).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try world.fieldbook("desk", ["sync"]).status == 0)
        #expect(try world.fieldbook("field", ["sync"]).status == 0)
        // Offline: a site of its own, and a change to the pulled one, both under the first name.
        let own = try world.fieldbook(
            "field", ["add", "site", "name=山头村幸福院", "kind=happiness_home", "village=山头村"]
        ).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try world.fieldbook("field", ["set", "site", pulled, "village=城关社区"])

        // Two versions published meanwhile: village renamed community, then community renamed hamlet.
        for (n, name, old) in [(1, "community", "village"), (2, "hamlet", "community")] {
            let path = world.path("v\(n).json")
            try Data(version(n, name, from: old).utf8).write(to: URL(fileURLWithPath: path))
            let published = try BuiltProducts.run(
                "fieldbook-server", ["schema", "publish", path] + world.server.databaseArguments)
            #expect(published.status == 0, "\(published.stderr)")
        }

        let synced = try world.fieldbook("field", ["sync"])
        #expect(synced.status == 0, "\(synced.stderr)")
        #expect(synced.stdout.contains("upgraded from schema version \(bundled.version) to \(bundled.version + 2)"))
        let status = try world.json("field", ["status"])
        #expect(status["schema_version"]?.int == Int64(bundled.version + 2))
        #expect(status["pending"]?.int == 0)
        #expect(try world.json("field", ["get", "site", own])["hamlet"]?.string == "山头村")
        #expect(try world.json("field", ["get", "site", pulled])["hamlet"]?.string == "城关社区")
        // The office's device, still on the first version, receives both under its name.
        #expect(try world.fieldbook("desk", ["sync", "--stay"]).status == 0)
        #expect(try world.json("desk", ["get", "site", own])["village"]?.string == "山头村")
        #expect(try world.json("desk", ["get", "site", pulled])["village"]?.string == "城关社区")
        let history = try world.fieldbook("field", ["history", "site", own])
        #expect(history.stdout.contains("hamlet (formerly community, village)"), "\(history.stdout)")
        let entries = try world.json("field", ["history", "site", own]).array
        #expect(
            entries.contains {
                $0["formerly"]?.string == "community"
                    && $0["earlier_names"] == .array([.string("community"), .string("village")])
            })
    }
}
