import FieldbookCore
import FieldbookJSON
import FieldbookSchemas
import FieldbookServerProcess
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import Testing

/// A live `fieldbook-server` process and device directories driven through the `fieldbook` binary.
final class CLIWorld {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fieldbook-cli-\(UUID().uuidString)")
    let server: ServerProcess
    var url: String { server.url.absoluteString }

    init() throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        server = try ServerProcess(database: dir.appendingPathComponent("server.sqlite").path)
    }

    deinit {
        server.stop()
        try? FileManager.default.removeItem(at: dir)
    }

    /// A token for `name`, the office's unless `role` says otherwise, seeing everything unless
    /// `scopes` says otherwise.
    func token(_ name: String, role: String = "office", scopes: [String] = ["all"]) throws -> String {
        try server.token(name: name, role: role, scopes: scopes)
    }

    func path(_ device: String) -> String { dir.appendingPathComponent(device).path }

    /// Runs `fieldbook --store DEVICE ARGS…`.
    @discardableResult
    func fieldbook(_ device: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try BuiltProducts.run("fieldbook", ["--store", path(device)] + arguments)
    }

    /// Runs with `--json` and parses stdout, expecting success.
    func json(_ device: String, _ arguments: [String]) throws -> JSON {
        let result = try fieldbook(device, ["--json"] + arguments)
        #expect(result.status == 0, "\(arguments): \(result.stderr)")
        return try JSON(parsing: result.stdout)
    }

    /// The device's whole store, as text: to check that a failed command changed nothing.
    func dump(_ device: String) throws -> String {
        let store = try Store(
            path: path(device) + "/device.sqlite", schema: try Schema(json: BundledSchemas.inspection))
        let records = try store.schema.entities.flatMap { try store.fetch(Query($0.name)).map(\.json.serialized) }
        return records.joined(separator: "\n") + "\npending \(try store.pendingCount())"
    }
}

extension JSON {
    var string: String? { if case .string(let s) = self { s } else { nil } }
    var int: Int64? { if case .int(let i) = self { i } else { nil } }
    var array: [JSON] { if case .array(let a) = self { a } else { [] } }
}

@Suite("fieldbook CLI: three devices against a live server", .tags(.endToEnd))
struct CLITests {
    @Test("offline work, sync, a conflict seen everywhere, resolved on one device, converged")
    func story() throws {
        let world = try CLIWorld()
        for (device, name) in [("a", "王芳"), ("b", "李明"), ("c", "张伟")] {
            let result = try world.fieldbook(
                device, ["init", "--server", world.url, "--token", try world.token(name), "--name", name])
            #expect(result.status == 0, "\(result.stderr)")
        }
        let site = try world.fieldbook(
            "a", ["add", "site", "name=城厢区公建民营敬老院", "kind=elderly_home", "beds_total=300", "tags=公建民营,消防"])
        #expect(site.status == 0)
        let siteID = site.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let finding = try world.json(
            "a", ["add", "finding", "title=消防通道堆放杂物", "site=\(siteID)", "deadline=2022-06-30"])
        let findingID = try #require(finding["id"]?.string)
        #expect(finding["status"]?.string == "not_started")
        for device in ["a", "b", "c"] {
            let sync = try world.fieldbook(device, ["sync"])
            #expect(sync.status == 0)
            // Piped: no progress bar, no colour.
            #expect(!sync.stderr.contains("syncing") && !sync.stdout.contains("\u{1B}"))
        }
        #expect(try world.json("b", ["get", "finding", findingID])["title"]?.string == "消防通道堆放杂物")

        // Offline on b and c: the same deadline, different values.
        #expect(
            try world.fieldbook("b", ["set", "finding", findingID, "deadline=2022-08-31", "results=已清理"]).status == 0)
        #expect(try world.fieldbook("c", ["set", "finding", findingID, "deadline=2022-12-31"]).status == 0)
        #expect(try world.json("b", ["status"])["pending"]?.int == 1)
        for device in ["b", "c", "a", "b"] { #expect(try world.fieldbook(device, ["sync"]).status == 0) }
        var conflictID = ""
        for device in ["a", "b", "c"] {
            let conflicts = try world.json(device, ["conflicts"]).array
            #expect(conflicts.count == 1)
            #expect(conflicts.first?["field"]?.string == "deadline")
            #expect(conflicts.first?["base"]?.string == "2022-06-30")
            conflictID = conflicts.first?["id"]?.string ?? ""
        }
        let shown = try world.fieldbook("c", ["conflicts", "show", String(conflictID.prefix(12))])
        #expect(shown.status == 0)
        #expect(
            shown.stdout.contains("2022-08-31") && shown.stdout.contains("2022-12-31") && shown.stdout.contains("base"))

        // Closing the finding waits for the conflict to be settled.
        let blocked = try world.fieldbook("c", ["finding", "close", findingID])
        #expect(blocked.status == 67)
        #expect(blocked.stderr.contains("resolve"))

        // c keeps its own value; everyone converges.
        #expect(try world.fieldbook("c", ["resolve", conflictID, "--mine"]).status == 0)
        for device in ["c", "a", "b"] { #expect(try world.fieldbook(device, ["sync"]).status == 0) }
        for device in ["a", "b", "c"] {
            #expect(try world.json(device, ["conflicts"]).array.isEmpty)
            let record = try world.json(device, ["get", "finding", findingID])
            #expect(record["deadline"]?.string == "2022-12-31")
            #expect(record["results"]?.string == "已清理")
        }
        #expect(
            try world.dump("a").replacingOccurrences(of: "pending 0", with: "")
                == world.dump("b").replacingOccurrences(of: "pending 0", with: ""))

        // The history names who changed what.
        let history = try world.json("a", ["history", "finding", findingID]).array
        #expect(history.contains { $0["who"]?.string == "李明" && $0["field"]?.string == "results" })
        #expect(history.contains { $0["who"]?.string == "张伟" && $0["new"]?.string == "2022-12-31" })

        // list with filters, sort and limit.
        try world.fieldbook("a", ["add", "site", "name=黄石镇长者食堂", "kind=elder_canteen"])
        let homes = try world.json("a", ["list", "site", "--where", "kind=elderly_home"]).array
        #expect(homes.count == 1 && homes.first?["name"]?.string == "城厢区公建民营敬老院")
        let sorted = try world.json("a", ["list", "site", "--sort", "name", "--descending", "--limit", "1"]).array
        #expect(sorted.count == 1 && sorted.first?["name"]?.string == "黄石镇长者食堂")
    }

    @Test("bad arguments and values: a clear error, the documented exit code, nothing changed")
    func errors() throws {
        let world = try CLIWorld()
        #expect(try world.fieldbook("a", ["status"]).status == 66, "no device yet")
        #expect(
            try world.fieldbook("a", ["init", "--server", world.url, "--token", try world.token("王芳")]).status == 0)
        let site = try world.fieldbook("a", ["add", "site", "name=东海镇农村幸福院", "kind=happiness_home"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let before = try world.dump("a")
        let cases: [(arguments: [String], status: Int32, says: String)] = [
            (["add", "castle", "name=x"], 64, "entities: site"),
            (["add", "site", "name=x", "kind=elderly_home", "colour=red"], 64, "fields: name, kind"),
            (["add", "site", "name", "kind=elderly_home"], 64, "field=value"),
            (["add", "site", "name=x", "kind=castle"], 65, "one of: elderly_home"),
            (["add", "site", "kind=cemetery"], 65, "required"),
            (["add", "site", "name=x", "kind=cemetery", "beds_total=很多"], 65, "whole number"),
            (["add", "site", "name=x", "kind=cemetery", "observed_on=2021/09/02"], 65, "YYYY-MM-DD"),
            (["add", "site", "name=\(String(repeating: "长", count: 201))", "kind=cemetery"], 65, "200"),
            (["add", "site", "name=x", "kind=cemetery", "tags:=[1,2"], 64, "not JSON"),
            (["add", "finding", "title=x", "site=0190c4e0-0000-7000-8000-000000000001"], 65, "does not exist"),
            (["set", "site", site, "beds_total=many"], 65, "whole number"),
            (["set", "site", "0190c4e0-0000-7000-8000-000000000001", "beds_total=1"], 66, "no record"),
            (["get", "site", "0190c4e0-0000-7000-8000-000000000001"], 66, "no site record"),
            (["delete", "site", "0190c4e0-0000-7000-8000-000000000001"], 66, "no record"),
            (["resolve", "nothing", "--mine"], 66, "no open conflict"),
            (["resolve", "nothing"], 64, "exactly one of"),
            (["list", "site", "--sort", "colour"], 64, "no field 'colour'"),
            (["history", "site", "0190c4e0-0000-7000-8000-000000000001"], 66, "no site record"),
        ]
        for c in cases {
            let result = try world.fieldbook("a", c.arguments)
            #expect(result.status == c.status, "\(c.arguments): \(result.stderr)")
            #expect(result.stderr.contains(c.says), "\(c.arguments): \(result.stderr)")
            #expect(result.stdout.isEmpty, "\(c.arguments): errors go to stderr")
        }
        #expect(try world.dump("a") == before, "failed commands changed nothing")

        // With --json, the error is JSON on stderr and stdout stays empty.
        let json = try world.fieldbook("a", ["--json", "add", "site", "name=x", "kind=castle"])
        #expect(json.status == 65 && json.stdout.isEmpty)
        #expect(try JSON(parsing: json.stderr.trimmingCharacters(in: .whitespacesAndNewlines))["exit"]?.int == 65)

        // A revoked token: exit 77 and how to get a new one; the change stays pending.
        try world.server.admin(["token", "revoke", "--database", world.server.database, "--name", "王芳"])
        let refused = try world.fieldbook("a", ["sync"])
        #expect(refused.status == 77)
        #expect(refused.stderr.contains("token create"))
        #expect(try world.json("a", ["status"])["pending"]?.int == 1)

        // A device on a schema version the server does not hold yet: exit 76, and what to do.
        var schemaText = String(decoding: BundledSchemas.inspection, as: UTF8.self)
        let version = try Schema(json: BundledSchemas.inspection).version
        schemaText = schemaText.replacingOccurrences(
            of: #""version": \#(version)"#, with: #""version": \#(version + 1)"#)
        schemaText = schemaText.replacingOccurrences(
            of: #"{"name": "town", "label""#,
            with: #"{"name": "phone", "type": "text", "policy": "lww"}, {"name": "town", "label""#)
        let schemaFile = world.dir.appendingPathComponent("v2.json")
        try Data(schemaText.utf8).write(to: schemaFile)
        #expect(
            try world.fieldbook(
                "d", ["init", "--server", world.url, "--token", try world.token("张伟"), "--schema", schemaFile.path]
            ).status == 0)
        try world.fieldbook("d", ["add", "site", "name=x", "kind=cemetery", "phone=0594-1234567"])
        let mismatch = try world.fieldbook("d", ["sync"])
        #expect(mismatch.status == 76)
        #expect(
            mismatch.stderr.contains("publish version \(version + 1) on the server (fieldbook-server schema publish"),
            "\(mismatch.stderr)")
        #expect(mismatch.stderr.contains("the device keeps every change until then"))
        #expect(try world.json("d", ["status"])["pending"]?.int == 1)

        // No server: exit 69, nothing lost.
        #expect(try world.fieldbook("b", ["init", "--server", "http://127.0.0.1:9", "--token", "fbt_x"]).status == 0)
        try world.fieldbook("b", ["add", "site", "name=西天尾镇公益性公墓", "kind=cemetery"])
        let offline = try world.fieldbook("b", ["sync"])
        #expect(offline.status == 69)
        #expect(try world.json("b", ["status"])["pending"]?.int == 1)
    }

    @Test("people's commands, the published report and exports, offline")
    func ledger() throws {
        let world = try CLIWorld()
        #expect(
            try world.fieldbook(
                "a", ["init", "--server", "http://127.0.0.1:9", "--token", "fbt_offline", "--name", "王芳"]
            ).status == 0)
        let site = try world.fieldbook("a", ["add", "site", "name=城厢区公建民营敬老院, \"示范\"", "kind=elderly_home"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let visit = try world.json(
            "a", ["visit", "log", site, "--date", "2021-09-06", "--inspectors", "张伟,王芳", "--problems", "14"])
        #expect(visit["inspectors"]?.array.count == 2)
        let late = try world.json(
            "a",
            ["finding", "add", "--title", "呼叫装置未安装", "--site", site, "--deadline", "2022-06-30", "--category", "安全管理"])
        let done = try world.json(
            "a", ["finding", "add", "--title", "违约金未收缴", "--deadline", "2021-12-31", "--category", "合同管理"])
        try world.fieldbook("a", ["finding", "add", "--title", "长效机制", "--category", "党建"])
        #expect(try world.fieldbook("a", ["finding", "close", done["id"]!.string!, "--on", "2021-12-20"]).status == 0)
        #expect(try world.fieldbook("a", ["finding", "note", late["id"]!.string!, "已采购呼叫装置"]).status == 0)
        try world.fieldbook(
            "a", ["add", "accountability_action", "finding=\(done["id"]!.string!)", "person=某某甲", "kind=admonishment"])
        try world.fieldbook(
            "a", ["add", "accountability_action", "finding=\(done["id"]!.string!)", "person=某某乙", "kind=reminder"])
        try world.fieldbook("a", ["set", "visit", visit["id"]!.string!, "penalty_yuan=4000", "recovered_yuan=25131"])

        let report = try world.json("a", ["report", "--today", "2022-07-01"])
        #expect(report["findings"]?.int == 3)
        #expect(report["findings_by_status"]?["completed"]?.int == 1)
        #expect(report["findings_by_status"]?["not_started"]?.int == 2)
        #expect(report["findings_by_category"]?["安全管理"]?.int == 1)
        #expect(report["overdue"]?.array.map { $0["title"]?.string } == ["呼叫装置未安装"])
        #expect(report["accountability_by_kind"]?["admonishment"]?.int == 1)
        #expect(report["accountability_by_kind"]?["reminder"]?.int == 1)
        #expect(report["recovered_yuan"] == .double(25131))
        let human = try world.fieldbook("a", ["report", "--today", "2022-07-01"])
        #expect(human.stdout.contains("Overdue (deadline passed, not completed): 1"))

        let csv = try world.fieldbook("a", ["export", "site", "--format", "csv"])
        #expect(csv.status == 0)
        #expect(csv.stdout.hasPrefix("\u{FEFF}id,name,kind"))
        #expect(csv.stdout.contains("\"城厢区公建民营敬老院, \"\"示范\"\"\""), "a comma and quotes are quoted")
        let all = try world.json("a", ["export", "--format", "json"])
        #expect(all["finding"]?.array.count == 3)
        #expect(all["progress_note"]?.array.first?["text"]?.string == "已采购呼叫装置")
        #expect(try world.fieldbook("a", ["export"]).status == 64, "CSV needs one entity")
    }

    @Test("a delete against an edit, settled with --theirs; a field conflict settled with --value")
    func resolutions() throws {
        let world = try CLIWorld()
        for (device, name) in [("a", "王芳"), ("b", "李明")] {
            #expect(
                try world.fieldbook(
                    device, ["init", "--server", world.url, "--token", try world.token(name), "--name", name]
                ).status == 0)
        }
        let finding = try world.fieldbook("a", ["add", "finding", "title=公墓台账数据不准确", "deadline=2022-03-31"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let measure = try world.fieldbook("a", ["add", "measure", "finding=\(finding)", "description=逐户核对公墓台账"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        for device in ["a", "b"] { try world.fieldbook(device, ["sync"]) }

        // a deletes the measure while b edits it; a and b also set the deadline differently.
        #expect(try world.fieldbook("a", ["delete", "measure", measure]).status == 0)
        #expect(try world.fieldbook("a", ["get", "measure", measure]).status == 66)
        #expect(try world.fieldbook("b", ["set", "measure", measure, "responsible_person=张伟"]).status == 0)
        try world.fieldbook("a", ["set", "finding", finding, "deadline=2022-06-30"])
        try world.fieldbook("b", ["set", "finding", finding, "deadline=2022-09-30"])
        for device in ["a", "b", "a"] { #expect(try world.fieldbook(device, ["sync"]).status == 0) }
        let conflicts = try world.json("a", ["conflicts"]).array
        #expect(conflicts.count == 2)
        let deleteConflict = try #require(conflicts.first { $0["field"] == .null })
        // The measure is back on a, with b's edit, until someone decides.
        #expect(try world.json("a", ["get", "measure", measure])["responsible_person"]?.string == "张伟")
        // a accepts b's side (keep the edited measure) and sets a new deadline.
        #expect(try world.fieldbook("a", ["resolve", deleteConflict["id"]!.string!, "--theirs"]).status == 0)
        let deadline = try #require(conflicts.first { $0["field"]?.string == "deadline" })
        #expect(
            try world.fieldbook("a", ["resolve", deadline["id"]!.string!, "--value", "2022/12/31"]).status == 65,
            "a bad date")
        #expect(try world.fieldbook("a", ["resolve", deadline["id"]!.string!, "--value", "2022-12-31"]).status == 0)
        for device in ["a", "b"] { #expect(try world.fieldbook(device, ["sync"]).status == 0) }
        for device in ["a", "b"] {
            #expect(try world.json(device, ["conflicts"]).array.isEmpty)
            #expect(try world.json(device, ["get", "measure", measure])["responsible_person"]?.string == "张伟")
            #expect(try world.json(device, ["get", "finding", finding])["deadline"]?.string == "2022-12-31")
        }
        // A delete that saw the edit deletes everywhere.
        #expect(try world.fieldbook("b", ["delete", "measure", measure]).status == 0)
        for device in ["b", "a"] { try world.fieldbook(device, ["sync"]) }
        #expect(try world.fieldbook("a", ["get", "measure", measure]).status == 66)
        #expect(
            try world.json("a", ["history", "measure", measure]).array.contains { $0["operation"]?.string == "delete" })
    }
}
