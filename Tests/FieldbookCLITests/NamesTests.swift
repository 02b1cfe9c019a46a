import FieldbookCore
import FieldbookJSON
import FieldbookTesting
import Foundation
import Testing

@Suite("fieldbook shows people, not hex: authors and device ids that differ", .tags(.endToEnd))
struct NamesTests {
    @Test(
        "a conflict seen from the office: each side's author, and short device ids that differ for devices made together"
    )
    func conflictSides() throws {
        let world = try CLIWorld()
        // Made within the same second: their UUIDv7 ids share the first 8 hex digits.
        for (device, name) in [("b", "李明"), ("c", "张伟"), ("office", "办公室")] {
            #expect(
                try world.fieldbook(
                    device, ["init", "--server", world.url, "--token", try world.token(name), "--name", name]
                ).status == 0)
        }
        let idB = try #require(try world.json("b", ["status"])["device"]?.string)
        let idC = try #require(try world.json("c", ["status"])["device"]?.string)
        let finding = try #require(
            try world.json("b", ["add", "finding", "title=消防通道堆放杂物", "deadline=2022-06-30"])["id"]?.string)
        for device in ["b", "c"] { #expect(try world.fieldbook(device, ["sync"]).status == 0) }
        #expect(try world.fieldbook("b", ["set", "finding", finding, "deadline=2022-08-31"]).status == 0)
        #expect(try world.fieldbook("c", ["set", "finding", finding, "deadline=2022-12-31"]).status == 0)
        for device in ["b", "c", "office", "b"] { #expect(try world.fieldbook(device, ["sync"]).status == 0) }

        let shortB = String(idB.filter(\.isHexDigit).suffix(8))
        let shortC = String(idC.filter(\.isHexDigit).suffix(8))
        #expect(shortB != shortC)
        let conflicts = try world.json("office", ["conflicts"]).array
        let id = try #require(conflicts.first?["id"]?.string)
        let shown = try world.fieldbook("office", ["conflicts", "show", id])
        #expect(shown.stdout.contains("李明") && shown.stdout.contains("张伟"), "\(shown.stdout)")
        #expect(shown.stdout.contains(shortB) && shown.stdout.contains(shortC), "\(shown.stdout)")
        let list = try world.fieldbook("office", ["conflicts"])
        #expect(
            list.stdout.contains("李明") && list.stdout.contains("张伟") && list.stdout.contains(shortC), "\(list.stdout)")
        // --json keeps the full ids, with the authors.
        let sides = conflicts.first?["sides"]?.array ?? []
        #expect(Set(sides.compactMap { $0["device"]?.string }) == [idB, idC])
        #expect(Set(sides.compactMap { $0["author"]?.string }) == ["李明", "张伟"])
        // On b, its own side before and after its change is stamped: its author either way.
        let mine = try world.json("b", ["conflicts", "show", id])["sides"]?.array.first { $0["mine"] == .bool(true) }
        #expect(mine?["author"]?.string == "李明")
        // History shows the short ids too.
        let history = try world.fieldbook("office", ["history", "finding", finding])
        #expect(history.stdout.contains(shortB) && history.stdout.contains(shortC), "\(history.stdout)")
    }

    @Test(
        "the name each device was given at init reaches the others: conflicts, history and --json show it beside the author"
    )
    func deviceNames() throws {
        let world = try CLIWorld()
        // One person, two devices: the token (the author) is the same, the device names differ.
        let token = try world.token("李明")
        for (device, name) in [("phone", "李明的手机"), ("tablet", "李明的平板")] {
            #expect(
                try world.fieldbook(device, ["init", "--server", world.url, "--token", token, "--name", name]).status
                    == 0)
        }
        #expect(
            try world.fieldbook(
                "office", ["init", "--server", world.url, "--token", try world.token("办公室"), "--name", "办公室"]
            ).status == 0)
        let phone = try #require(try world.json("phone", ["status"])["device"]?.string)
        let tablet = try #require(try world.json("tablet", ["status"])["device"]?.string)
        #expect(try world.json("phone", ["status"])["short_id"]?.string == String(phone.filter(\.isHexDigit).suffix(8)))
        let finding = try #require(
            try world.json("phone", ["add", "finding", "title=床位超员", "deadline=2022-06-30"])["id"]?.string)
        for device in ["phone", "tablet"] { #expect(try world.fieldbook(device, ["sync"]).status == 0) }
        #expect(try world.fieldbook("phone", ["set", "finding", finding, "deadline=2022-08-31"]).status == 0)
        #expect(try world.fieldbook("tablet", ["set", "finding", finding, "deadline=2022-12-31"]).status == 0)
        for device in ["phone", "tablet", "office"] { #expect(try world.fieldbook(device, ["sync"]).status == 0) }

        let id = "\(finding)/deadline"
        let shown = try world.fieldbook("office", ["conflicts", "show", id])
        #expect(shown.stdout.contains("李明的手机") && shown.stdout.contains("李明的平板"), "\(shown.stdout)")
        let list = try world.fieldbook("office", ["conflicts"])
        #expect(list.stdout.contains("李明的平板"), "\(list.stdout)")
        let sides = try world.json("office", ["conflicts", "show", id])["sides"]?.array ?? []
        #expect(
            Set(sides.map { "\($0["device"]?.string ?? "") \($0["device_name"]?.string ?? "")" }) == [
                "\(phone) 李明的手机", "\(tablet) 李明的平板",
            ])
        #expect(Set(sides.compactMap { $0["author"]?.string }) == ["李明"])
        let history = try world.fieldbook("office", ["history", "finding", finding])
        #expect(history.stdout.contains("李明的手机") && history.stdout.contains("李明的平板"), "\(history.stdout)")
        let entries = try world.json("office", ["history", "finding", finding]).array
        #expect(entries.contains { $0["device_name"]?.string == "李明的平板" })
        // A renamed device: the next sync takes the new name to the others.
        #expect(try world.fieldbook("tablet", ["config", "set", "name", "李明的新平板"]).status == 0)
        #expect(try world.fieldbook("tablet", ["set", "finding", finding, "responsible_person=李明"]).status == 0)
        for device in ["tablet", "office"] { #expect(try world.fieldbook(device, ["sync"]).status == 0) }
        #expect(try world.fieldbook("office", ["history", "finding", finding]).stdout.contains("李明的新平板"))
        #expect(
            try world.fieldbook("tablet", ["config", "set", "name", String(repeating: "名", count: 101)]).status == 64)
    }
}
