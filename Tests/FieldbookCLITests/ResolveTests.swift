import FieldbookCore
import FieldbookJSON
import FieldbookSync
import FieldbookTesting
import Foundation
import Testing

/// The office settles conflicts it wrote no side of; every option does what its name says, and a
/// refused one names one that works.
@Suite("fieldbook resolve: any device settles any conflict", .tags(.endToEnd))
struct ResolveTests {
    /// Devices b and c (inspectors) and the office, all synced; a finding and two measures on it.
    func world() throws -> (CLIWorld, finding: String, measures: [String]) {
        let world = try CLIWorld()
        for (device, name) in [("b", "李明"), ("c", "张伟"), ("office", "办公室")] {
            #expect(
                try world.fieldbook(
                    device, ["init", "--server", world.url, "--token", try world.token(name), "--name", name]
                ).status == 0)
        }
        let finding = try #require(
            try world.json("b", ["add", "finding", "title=敬老院消防通道堵塞", "deadline=2022-03-31"])["id"]?.string)
        let measures = try ["清理通道杂物", "设置禁止堆放标识"].map { description in
            try #require(
                try world.json("b", ["add", "measure", "finding=\(finding)", "description=\(description)"])["id"]?
                    .string)
        }
        for device in ["b", "c", "office"] { #expect(try world.fieldbook(device, ["sync"]).status == 0) }
        return (world, finding, measures)
    }

    func syncAll(_ world: CLIWorld) throws {
        for device in ["b", "c", "office", "b", "c"] { #expect(try world.fieldbook(device, ["sync"]).status == 0) }
    }

    @Test(
        "a field conflict settled from the office: --mine and --theirs say what works, --side N settles it everywhere")
    func fieldConflictFromTheOffice() throws {
        let (world, finding, _) = try world()
        #expect(try world.fieldbook("b", ["set", "finding", finding, "deadline=2022-06-30"]).status == 0)
        #expect(try world.fieldbook("c", ["set", "finding", finding, "deadline=2022-09-30"]).status == 0)
        try syncAll(world)
        let id = "\(finding)/deadline"
        let shown = try world.fieldbook("office", ["conflicts", "show", id])
        #expect(shown.stdout.contains("--side N") && !shown.stdout.contains("--mine"), "\(shown.stdout)")
        // Which finding it is, in words: the office may have dozens open.
        #expect(shown.stdout.hasPrefix("finding \(finding) «敬老院消防通道堵塞», field deadline"), "\(shown.stdout)")
        let listed = try world.fieldbook("office", ["conflicts"]).stdout
        #expect(listed.contains("finding 敬老院消防通道堵塞"), "\(listed)")
        #expect(try world.json("office", ["conflicts"]).array.first?["record_title"]?.string == "敬老院消防通道堵塞")

        let mine = try world.fieldbook("office", ["resolve", id, "--mine"])
        #expect(mine.status == 64 && mine.stderr.contains("--side N"), "\(mine.stderr)")
        let theirs = try world.fieldbook("office", ["resolve", id, "--theirs"])
        #expect(
            theirs.status == 64 && theirs.stderr.contains("--side 1") && theirs.stderr.contains("--side 2"),
            "\(theirs.stderr)")
        #expect(theirs.stderr.contains("李明") && theirs.stderr.contains("张伟"), "\(theirs.stderr)")
        let keep = try world.fieldbook("office", ["resolve", id, "--keep"])
        #expect(keep.status == 64 && keep.stderr.contains("--value"), "\(keep.stderr)")
        #expect(try world.fieldbook("office", ["resolve", id, "--side", "3"]).status == 64)

        // The office keeps side 1, whichever device wrote it.
        let sides = try world.json("office", ["conflicts", "show", id])["sides"]?.array ?? []
        let first = try #require(sides.first?["value"]?.string)
        #expect(try world.fieldbook("office", ["resolve", id, "--side", "1"]).status == 0)
        try syncAll(world)
        for device in ["b", "c", "office"] {
            #expect(try world.json(device, ["conflicts"]).array.isEmpty, "\(device)")
            #expect(try world.json(device, ["get", "finding", finding])["deadline"]?.string == first)
        }
    }

    @Test(
        "delete conflicts settled from the office: --value is refused naming --keep and --delete; --delete and --keep work"
    )
    func deleteConflictsFromTheOffice() throws {
        let (world, _, measures) = try world()
        // b deletes both measures while c edits them.
        for measure in measures {
            #expect(try world.fieldbook("b", ["delete", "measure", measure]).status == 0)
            #expect(try world.fieldbook("c", ["set", "measure", measure, "responsible_person=王芳"]).status == 0)
        }
        try syncAll(world)
        let ids = measures.map { "\($0)/-" }
        #expect(Set(try world.json("office", ["conflicts"]).array.compactMap { $0["id"]?.string }) == Set(ids))
        let shown = try world.fieldbook("office", ["conflicts", "show", ids[0]])
        #expect(shown.stdout.contains("--keep | --delete"), "\(shown.stdout)")
        for refused in [["--value", "x"], ["--mine"]] {
            let result = try world.fieldbook("office", ["resolve", ids[0]] + refused)
            #expect(
                result.status == 64 && result.stderr.contains("--keep") && result.stderr.contains("--delete"),
                "\(result.stderr)")
        }
        #expect(try world.fieldbook("office", ["resolve", ids[0], "--delete"]).status == 0)
        #expect(try world.fieldbook("office", ["resolve", ids[1], "--keep"]).status == 0)
        try syncAll(world)
        for device in ["b", "c", "office"] {
            #expect(try world.json(device, ["conflicts"]).array.isEmpty, "\(device)")
            #expect(try world.fieldbook(device, ["get", "measure", measures[0]]).status == 66, "\(device)")
            #expect(try world.json(device, ["get", "measure", measures[1]])["responsible_person"]?.string == "王芳")
        }
    }

    @Test("a field conflict on a record then deleted by a device that saw both sides is settled on every device")
    func deleteSettlesAFieldConflict() throws {
        let (world, _, measures) = try world()
        let measure = measures[0]
        #expect(try world.fieldbook("b", ["set", "measure", measure, "deadline=2022-06-30"]).status == 0)
        #expect(try world.fieldbook("c", ["set", "measure", measure, "deadline=2022-09-30"]).status == 0)
        try syncAll(world)
        let before = try world.json("office", ["conflicts"]).array
        #expect(before.map { $0["id"]?.string } == ["\(measure)/deadline"])
        #expect(try world.fieldbook("office", ["delete", "measure", measure]).status == 0)
        try syncAll(world)
        for device in ["b", "c", "office"] {
            #expect(try world.json(device, ["conflicts"]).array.isEmpty, "\(device)")
            #expect(try world.json(device, ["status"])["open_conflicts"]?.int == 0, "\(device)")
        }
    }
}
