import FieldbookCore
import Foundation
import Testing

@Suite("fieldbook shows people, not hex: authors and device ids that differ")
struct NamesTests {
    @Test("a conflict seen from the office: each side's author, and short device ids that differ for devices made together")
    func conflictSides() throws {
        let world = try CLIWorld()
        // Made within the same second: their UUIDv7 ids share the first 8 hex digits.
        for (device, name) in [("b", "李明"), ("c", "张伟"), ("office", "办公室")] {
            #expect(try world.fieldbook(device, ["init", "--server", world.url, "--token", try world.token(name), "--name", name]).status == 0)
        }
        let idB = try #require(try world.json("b", ["status"])["device"]?.string)
        let idC = try #require(try world.json("c", ["status"])["device"]?.string)
        let finding = try #require(try world.json("b", ["add", "finding", "title=消防通道堆放杂物", "deadline=2022-06-30"])["id"]?.string)
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
        #expect(list.stdout.contains("李明") && list.stdout.contains("张伟") && list.stdout.contains(shortC), "\(list.stdout)")
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
}
