import FieldbookCore
import FieldbookTesting
import Testing

@testable import fieldbook

/// The CLI's `field=value` and `field:=JSON` arguments (also run by `scripts/fuzz assignment`).
@Suite("field=value arguments", .tags(.core))
struct FieldAssignmentTests {
    let entity: Entity = try! Schema(
        json: #"""
            {"schema": "t", "version": 1, "entities": [{"name": "e", "fields": [
              {"name": "title", "type": "text", "policy": "lww"},
              {"name": "n", "type": "integer", "policy": "counter"},
              {"name": "r", "type": "real", "policy": "lww"},
              {"name": "ok", "type": "boolean", "policy": "lww"},
              {"name": "d", "type": "date", "policy": "max"},
              {"name": "k", "type": "enum", "values": ["a", "b"], "policy": "manual"},
              {"name": "tags", "type": "set", "policy": "union"}
            ]}]}
            """#
    ).entity("e")!

    func parse(_ argument: String) throws(FieldAssignment.Problem) -> FieldAssignment {
        try FieldAssignment(parsing: argument, entity: entity)
    }

    func problem(_ argument: String) -> FieldAssignment.Problem? {
        do {
            _ = try parse(argument)
            return nil
        } catch {
            return error
        }
    }

    @Test("each type read from its text; an empty value is null")
    func types() throws {
        #expect(try parse("title=新度镇敬老院") == FieldAssignment(field: "title", value: "新度镇敬老院"))
        #expect(try parse("n=-120").value == .integer(-120))
        #expect(try parse("r=25131.5").value == 25131.5)
        #expect(try parse("ok=是").value == true)
        #expect(try parse("ok=No").value == false)
        #expect(try parse("d=2022-06-30").value == "2022-06-30")
        #expect(try parse("k=b").value == "b")
        #expect(try parse("tags= 消防 ,公建民营,,\u{3000}示范\t").value == .set(["公建民营", "消防", "示范"]))
        #expect(try parse("title=").value == .null)
        #expect(try parse(#"tags:=["乙","甲"]"#).value == .set(["甲", "乙"]))
        #expect(try parse("n:=7").value == 7)
    }

    @Test("a refused argument says whether it is not field=value or the value does not fit")
    func problems() {
        #expect(problem("title")?.kind == .syntax)
        #expect(problem("=x")?.kind == .syntax)
        #expect(problem(":=1")?.kind == .syntax)
        #expect(problem("colour=red")?.message == "e has no field 'colour'; fields: title, n, r, ok, d, k, tags")
        #expect(problem("tags:=[1,2")?.kind == .syntax)
        #expect(problem("tags:=[1,2]")?.kind == .value)
        #expect(problem("n=很多")?.message == "e.n expects a whole number, e.g. 120")
        #expect(problem("r=inf")?.kind == .value)
        #expect(problem("d=2022-02-30")?.kind == .value)
        #expect(problem("k=c")?.message == "e.k expects one of: a, b")
    }

    @Test("the split is at the first '=': a value may hold '=' and ':='")
    func valueWithEquals() throws {
        #expect(try parse("title=a=b:=c") == FieldAssignment(field: "title", value: "a=b:=c"))
        #expect(try parse("title:=\"x:=y\"").value == "x:=y")
    }

    @Test("a value that begins with a combining mark is the field's value, byte for byte")
    func combiningMarkAfterEquals() throws {
        // "=" and U+0301 make one Character: a split on Characters finds no "=" here.
        let assignment = try parse("title=\u{301}注")
        #expect(assignment.field == "title")
        #expect(assignment.value.text.map { Array($0.utf8) } == Array("\u{301}注".utf8))
        #expect(try parse("tags=a,\u{301}b").value == .set(["a", "\u{301}b"]))
    }
}
