import FieldbookJSON
import FieldbookServerProcess
import FieldbookTesting
import Foundation
import Testing

/// The office, an inspector and an auditor, each with a device, through the real binaries.
@Suite("fieldbook CLI: roles", .tags(.endToEnd))
struct RoleTests {
    @Test(
        "each role writes what it may; a refusal exits 65 and says who may; a rejected change is listed and discarded")
    func roles() throws {
        let world = try CLIWorld()
        for (device, name, role) in [("office", "王芳", "office"), ("li", "李明", "inspector"), ("audit", "陈静", "auditor")]
        {
            let token = try world.token(name, role: role)
            #expect(try world.fieldbook(device, ["init", "--server", world.url, "--token", token]).status == 0)
        }
        let tokens = try JSON(
            parsing: try world.server.admin(["token", "list", "--json"] + world.server.databaseArguments))
        #expect(tokens.array.compactMap { $0["role"]?.string } == ["office", "inspector", "auditor"])
        #expect(!tokens.array.contains { $0["token"] != nil || $0["hash"] != nil })

        // The office sets up a site and a finding.
        let site = try world.fieldbook("office", ["add", "site", "name=新度镇敬老院", "kind=elderly_home"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let finding = try world.fieldbook(
            "office", ["add", "finding", "title=消防通道堆放杂物", "site=\(site)", "deadline=2022-06-30"]
        ).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try world.fieldbook("office", ["sync"]).status == 0)

        // The inspector, offline before its first sync, moves the deadline (the office's to set).
        #expect(try world.fieldbook("li", ["sync"]).status == 0)
        #expect(try world.json("li", ["status"])["role"]?.string == "inspector")
        let deadline = try world.fieldbook("li", ["set", "finding", finding, "deadline=2022-12-31"])
        #expect(deadline.status == 65)
        #expect(deadline.stderr.contains("may not change finding.deadline"))
        #expect(deadline.stderr.contains("office"))
        #expect(!deadline.stderr.contains("2022-12-31"))
        // It reports the finding rectified, which it may, once it has attached evidence; closing it
        // off is the office's.
        let bare = try world.fieldbook("li", ["finding", "close", finding])
        #expect(
            bare.status == 65 && bare.stderr.contains("finding.evidence") && bare.stderr.contains("fieldbook attach"))
        let photo = world.dir.appendingPathComponent("消防通道.jpg").path
        try Data([0xFF, 0xD8, 0xFF, 0xE0] + Array(repeating: 7, count: 5000)).write(to: URL(fileURLWithPath: photo))
        #expect(try world.fieldbook("li", ["attach", "finding", finding, "evidence", photo]).status == 0)
        #expect(try world.fieldbook("li", ["finding", "close", finding]).status == 0)
        let close = try world.fieldbook("li", ["set", "finding", finding, "status=closed"])
        #expect(close.status == 65 && close.stderr.contains("finding.status"))
        #expect(try world.fieldbook("li", ["sync"]).status == 0)

        #expect(try world.fieldbook("office", ["sync"]).status == 0)
        #expect(try world.json("office", ["get", "finding", finding])["status"]?.string == "completed")
        #expect(
            try world.json("office", ["attachment", "list", "finding", finding]).array.map { $0["here"] } == [
                .bool(true)
            ])
        #expect(try world.fieldbook("office", ["set", "finding", finding, "status=closed"]).status == 0)
        #expect(try world.fieldbook("office", ["sync"]).status == 0)

        // The auditor reads everything and writes nothing.
        #expect(try world.fieldbook("audit", ["sync"]).status == 0)
        #expect(try world.json("audit", ["get", "finding", finding])["status"]?.string == "closed")
        let note = try world.fieldbook("audit", ["finding", "note", finding, "已复核"])
        #expect(note.status == 65 && note.stderr.contains("auditor"))
        #expect(try world.json("audit", ["status"])["pending"]?.int == 0)
    }

    @Test("a write made before the device knew its role is rejected by the server, undone, listed and discarded")
    func rejectedOffline() throws {
        let world = try CLIWorld()
        #expect(
            try world.fieldbook(
                "li", ["init", "--server", world.url, "--token", try world.token("李明", role: "inspector")]
            ).status == 0)
        let site = try world.fieldbook("li", ["add", "site", "name=西天尾镇公墓", "kind=cemetery", "town=西天尾镇"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        // Offline and not yet knowing its role: the town is the office's to change.
        #expect(try world.fieldbook("li", ["set", "site", site, "town=新度镇"]).status == 0)
        #expect(try world.fieldbook("li", ["set", "site", site, "village=前村"]).status == 0)
        #expect(try world.fieldbook("li", ["sync"]).status == 0)

        let status = try world.json("li", ["status"])
        #expect(status["pending"]?.int == 0)
        let rejected = status["rejected"]?.array ?? []
        #expect(rejected.map { $0["rule"]?.string } == ["site.town"])
        #expect(try world.json("li", ["get", "site", site])["town"]?.string == "西天尾镇")
        #expect(try world.json("li", ["get", "site", site])["village"]?.string == "前村")
        let listed = try world.fieldbook("li", ["rejected"])
        #expect(
            listed.status == 0 && listed.stdout.contains("site.town") && listed.stdout.contains("1 rejected change"))

        let seq = try #require(rejected.first?["seq"]?.int)
        #expect(try world.fieldbook("li", ["rejected", "discard", "\(seq)"]).status == 0)
        #expect(try world.json("li", ["rejected"]).array.isEmpty)
        #expect(try world.fieldbook("li", ["rejected", "discard", "\(seq)"]).status == 66)
    }
}
