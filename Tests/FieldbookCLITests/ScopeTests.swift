import FieldbookJSON
import FieldbookServerProcess
import FieldbookTesting
import Foundation
import Testing

/// The office, two inspectors of different towns and an auditor, each with a device, through the
/// real binaries: who receives what, a site moved between towns, an inspector rescoped.
@Suite("fieldbook CLI: scopes", .tags(.endToEnd))
struct ScopeTests {
    @Test("each device holds its scope; a moved site follows its town; a rescoped device starts again")
    func scopes() throws {
        let world = try CLIWorld()
        let database = world.server.databaseArguments
        // A token without a scope, or with one the schema lacks: refused, with what to give.
        let missing = try BuiltProducts.run(
            "fieldbook-server", ["token", "create", "--name", "x", "--role", "inspector"] + database)
        #expect(missing.status != 0 && missing.stderr.contains("--scope"))
        let unknown = try BuiltProducts.run(
            "fieldbook-server",
            ["token", "create", "--name", "x", "--role", "inspector", "--scope", "county=某县"] + database)
        #expect(unknown.status != 0 && unknown.stderr.contains("town"))

        for (device, name, role, scope) in [
            ("office", "王芳", "office", "all"), ("li", "李明", "inspector", "town=新度镇"),
            ("zhang", "张伟", "inspector", "town=西天尾镇"), ("audit", "陈静", "auditor", "all"),
        ] {
            let token = try world.token(name, role: role, scopes: [scope])
            #expect(try world.fieldbook(device, ["init", "--server", world.url, "--token", token]).status == 0)
        }
        let tokens = try JSON(parsing: try world.server.admin(["token", "list", "--json"] + database)).array
        // null: all.
        let scopes = tokens.map { $0["scopes"] == .null ? ["all"] : $0["scopes"]?.array.compactMap(\.string) }
        #expect(scopes == [["all"], ["town=新度镇"], ["town=西天尾镇"], ["all"]])

        // The office sets up a site and a finding in each town.
        func add(_ device: String, _ arguments: [String]) throws -> String {
            let result = try world.fieldbook(device, ["add"] + arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let home = try add("office", ["site", "name=新度镇敬老院", "kind=elderly_home", "town=新度镇"])
        let cemetery = try add("office", ["site", "name=西天尾镇公墓", "kind=cemetery", "town=西天尾镇"])
        let fire = try add("office", ["finding", "title=消防通道堆放杂物", "site=\(home)"])
        let graves = try add("office", ["finding", "title=散埋乱葬", "site=\(cemetery)"])
        #expect(try world.fieldbook("office", ["sync"]).status == 0)

        func ids(_ device: String, _ entity: String) throws -> Set<String> {
            Set(try world.json(device, ["list", entity]).array.compactMap { $0["id"]?.string })
        }
        for device in ["li", "zhang", "audit"] { #expect(try world.fieldbook(device, ["sync"]).status == 0) }
        #expect(try ids("li", "site") == [home] && ids("li", "finding") == [fire])
        #expect(try ids("zhang", "site") == [cemetery] && ids("zhang", "finding") == [graves])
        #expect(try ids("audit", "finding") == [fire, graves])
        #expect(try world.json("li", ["status"])["scopes"]?.array.compactMap(\.string) == ["town=新度镇"])
        #expect(try world.json("audit", ["status"])["scopes"]?.string == "all")
        #expect(try world.fieldbook("li", ["status"]).stdout.contains("scope          town=新度镇"))

        // An inspector works in its town; the office sees it.
        let note = try world.fieldbook("li", ["finding", "note", fire, "已清理一半"])
        #expect(note.status == 0, "\(note.stderr)")
        let photo = world.dir.appendingPathComponent("消防通道.jpg").path
        try Data([0xFF, 0xD8, 0xFF, 0xE0] + Array(repeating: 3, count: 9000)).write(to: URL(fileURLWithPath: photo))
        #expect(try world.fieldbook("li", ["attach", "finding", fire, "evidence", photo]).status == 0)
        #expect(try world.fieldbook("li", ["sync"]).status == 0)
        #expect(try world.fieldbook("office", ["sync"]).status == 0)
        #expect(try world.json("office", ["list", "progress_note"]).array.count == 1)
        func photoHere(_ device: String) throws -> [JSON]? {
            try world.json(device, ["attachment", "list", "finding", fire]).array.map { $0["here"] ?? .null }
        }
        #expect(try photoHere("office") == [.bool(true)])
        #expect(try world.json("zhang", ["sync"])["files_downloaded"]?.int == 0)
        // Outside its scope it is refused here, before any sync: a finding of no site or round is
        // in no town's scope.
        let outside = try world.fieldbook("li", ["add", "finding", "title=无主问题"])
        #expect(outside.status == 65, "\(outside.stderr)")
        #expect(outside.stderr.contains("finding.scope") && !outside.stderr.contains("新度镇"))
        #expect(try world.json("li", ["status"])["pending"]?.int == 0)
        // Another town's finding is not on this device: not found, as any unknown id.
        #expect(try world.fieldbook("li", ["set", "finding", graves, "title=改"]).status == 66)

        // The office moves the home to the other town: it leaves 李明's device with its finding and
        // note, and reaches 张伟's, history and all.
        #expect(try world.fieldbook("office", ["set", "site", home, "town=西天尾镇"]).status == 0)
        #expect(try world.fieldbook("office", ["sync"]).status == 0)
        #expect(try world.fieldbook("li", ["sync"]).status == 0)
        #expect(try ids("li", "site").isEmpty && ids("li", "finding").isEmpty && ids("li", "progress_note").isEmpty)
        // Its photo, referred to by nothing on 李明's device now, can go to free space (the office's stays).
        let hash = try #require(try world.json("office", ["attachment", "list"]).array.first?["sha256"]?.string)
        #expect(try world.json("li", ["attachment", "prune"])["deleted"] == .array([]))
        let wouldGo = try world.json("li", ["attachment", "prune", "--older-than", "0", "--dry-run"])
        #expect(wouldGo["would_delete"]?.array.compactMap { $0["sha256"]?.string } == [hash])
        let pruned = try world.json("li", ["attachment", "prune", "--older-than", "0"])
        #expect(pruned["deleted"]?.array.compactMap { $0["sha256"]?.string } == [hash] && pruned["bytes"]?.int == 9004)
        #expect(try world.json("office", ["attachment", "prune", "--older-than", "0"])["deleted"] == .array([]))
        #expect(try world.json("office", ["attachment", "list"]).array.first?["here"] == .bool(true))
        #expect(try world.fieldbook("zhang", ["sync"]).status == 0)
        #expect(try ids("zhang", "site") == [home, cemetery] && ids("zhang", "finding") == [fire, graves])
        #expect(try ids("zhang", "progress_note").count == 1)
        // The finding's photo came with it: the other town's inspector may read it now.
        #expect(try photoHere("zhang") == [.bool(true)])
        let history = try world.json("zhang", ["history", "finding", fire]).array
        #expect(history.contains { $0["who"]?.string == "王芳" })

        // 李明 is given the other town: its device starts again at its next sync and holds it.
        let rescoped = try world.server.admin(
            ["token", "rescope", "--name", "李明", "--scope", "town=西天尾镇"] + database)
        #expect(rescoped.contains("rescoped 1 token"))
        let sync = try world.fieldbook("li", ["sync"])
        #expect(sync.status == 0, "\(sync.stderr)")
        #expect(try ids("li", "site") == [home, cemetery] && ids("li", "finding") == [fire, graves])
        #expect(try world.json("li", ["status"])["scopes"]?.array.compactMap(\.string) == ["town=西天尾镇"])
        #expect(try world.json("li", ["status"])["pending"]?.int == 0)
    }
}
