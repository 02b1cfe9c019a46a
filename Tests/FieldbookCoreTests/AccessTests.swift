import FieldbookCore
import FieldbookJSON
import FieldbookSchemas
import FieldbookTesting
import Testing

/// The schema's roles and access rules: loaded, written back, and applied to writes.
@Suite("Access rules", .tags(.core))
struct AccessTests {
    let schema = try! Schema(json: BundledSchemas.inspection)

    /// The refusal of `role` writing `fields` with `operation` to `entity`, whose record has `current` values.
    func refusal(
        _ role: String?, _ operation: ChangeOperation, _ entity: String, _ fields: [String: Value] = [:],
        current: [String: Value] = [:]
    ) -> AccessRefusal? {
        schema.entity(entity)!.refusal(
            role: role, operation, fields: fields.map { ($0.key, $0.value) }, current: { current[$0] })
    }

    @Test("the bundled schema: inspectors log and report, the office verifies and closes off, auditors write nothing")
    func bundled() throws {
        // Inspectors.
        #expect(refusal("inspector", .insert, "visit", ["visited_on": "2024-03-01"]) == nil)
        #expect(refusal("inspector", .insert, "finding", ["title": "消防通道堵塞", "status": "not_started"]) == nil)
        #expect(refusal("inspector", .insert, "progress_note", ["text": "已整改"]) == nil)
        #expect(
            refusal("inspector", .update, "finding", ["status": "completed"], current: ["status": "in_progress"]) == nil
        )
        #expect(refusal("inspector", .update, "finding", ["results": "已完成"], current: ["status": "closed"]) == nil)
        #expect(refusal("inspector", .update, "site", ["illegal_graves_found": 1]) == nil)

        let delete = try #require(refusal("inspector", .delete, "finding"))
        #expect(delete.rule == "finding.delete" && delete.role == "inspector")
        #expect(
            delete.message
                == "the role inspector may not delete finding records; ask someone with the role office to delete one")

        let close = try #require(
            refusal("inspector", .update, "finding", ["status": "closed"], current: ["status": "completed"]))
        #expect(close.rule == "finding.status")
        #expect(close.message.contains("may not set finding.status from completed to closed"))
        #expect(close.message.contains("ask someone with the role office"))
        let closeAtInsert = try #require(refusal("inspector", .insert, "finding", ["title": "x", "status": "closed"]))
        #expect(closeAtInsert.message.contains("from nothing to closed"))
        #expect(
            refusal("inspector", .update, "finding", ["status": "in_progress"], current: ["status": "completed"])?.rule
                == "finding.status")
        // Writing the value a field has is no step.
        #expect(
            refusal(
                "inspector", .update, "finding", ["status": "closed", "results": "x"], current: ["status": "closed"])
                == nil)

        // A field the role may not change: named, its value never quoted.
        let deadline = try #require(refusal("inspector", .update, "finding", ["deadline": "2031-07-15"]))
        #expect(deadline.rule == "finding.deadline")
        #expect(!deadline.message.contains("2031"))
        #expect(refusal("inspector", .update, "site", ["town": "新度镇"])?.rule == "site.town")
        #expect(refusal("inspector", .update, "finding", ["reopen_count": 1])?.rule == "finding.reopen_count")
        let accountability = try #require(refusal("inspector", .insert, "accountability_action", ["person": "张三"]))
        #expect(accountability.rule == "accountability_action.access")
        #expect(!accountability.message.contains("张三"))
        #expect(refusal("inspector", .update, "inspection_round", ["title": "x"])?.rule == "inspection_round.access")

        // The office: everything.
        #expect(refusal("office", .update, "finding", ["status": "closed"], current: ["status": "completed"]) == nil)
        #expect(refusal("office", .delete, "finding") == nil)
        #expect(refusal("office", .insert, "accountability_action", ["person": "张三"]) == nil)

        // Auditors: nothing.
        for entity in schema.entities {
            #expect(refusal("auditor", .insert, entity.name)?.rule == "\(entity.name).access")
            #expect(refusal("auditor", .delete, entity.name) != nil)
        }
        // A writer with no role: everything.
        #expect(refusal(nil, .delete, "inspection_round") == nil)
    }

    @Test("an update with no fields (keeping a record) needs some update right")
    func emptyUpdate() {
        #expect(refusal("inspector", .update, "visit") == nil)
        #expect(refusal("inspector", .update, "progress_note")?.rule == "progress_note.update")
    }

    @Test("roles and access rules are written back in the file format and read again the same")
    func roundTrip() throws {
        let again = try Schema(json: schema.json.serialized)
        #expect(again == schema)
        #expect(again.roles.map(\.label) == schema.roles.map(\.label))
        #expect(again.entity("finding")?.access == schema.entity("finding")?.access)
        #expect(again.entity("finding")?.access?["inspector"]?.transitions["status"]?[""]?.contains("closed") == false)
        // A schema without roles has none, and its entities no rules.
        let plain = try Schema(
            json:
                #"{"schema": "t", "version": 1, "entities": [{"name": "e", "fields": [{"name": "x", "type": "text", "policy": "lww"}]}]}"#
        )
        #expect(plain.roles.isEmpty && plain.entities[0].access == nil)
        #expect(!plain.json.serialized.contains("roles"))
    }

    @Test("mistakes in roles and access rules are reported with where they are")
    func mistakes() {
        let field =
            #"{"name": "s", "type": "enum", "values": ["a", "b"], "policy": "lww"}, {"name": "n", "type": "integer", "policy": "lww"}"#
        func schema(roles: String, access: String) -> String {
            #"{"schema": "t", "version": 1, \#(roles) "entities": [{"name": "e", \#(access) "fields": [\#(field)]}]}"#
        }
        #expect(
            issues(schema(roles: "", access: #""access": {"x": {"insert": true}},"#)).contains(
                "e.access: the schema declares no 'roles'"))
        let roles = #""roles": [{"name": "office"}, {"name": "inspector"}],"#
        #expect(
            issues(schema(roles: roles, access: #""access": {"boss": {"insert": true}},"#)) == [
                "e.access.boss: unknown role 'boss' (declared: office, inspector)"
            ])
        #expect(
            issues(schema(roles: roles, access: #""access": {"office": {"update": ["m"], "create": true}},"#)) == [
                "e.access.office: unknown key 'create' (allowed: delete, insert, transitions, update)",
                "e.access.office.update: unknown field 'm'",
            ])
        #expect(
            issues(
                schema(
                    roles: roles,
                    access: #""access": {"office": {"transitions": {"n": {}, "s": {"c": ["a"], "a": ["z"]}}}},"#)
            )
            .sorted() == [
                "e.access.office.transitions.n: transitions are for enum fields; 'n' is integer",
                "e.access.office.transitions.s: 'c' is not a value of s (\"\" stands for none)",
                "e.access.office.transitions.s: 'z' is not a value of s",
            ])
        #expect(
            issues(schema(roles: #""roles": [{"name": "Office"}, {"name": "a"}, {"name": "a"}],"#, access: "")) == [
                "roles[0]: role name 'Office' must be a lower-case identifier (a-z, 0-9, _), at most 63 long",
                "roles[2]: role 'a' declared twice",
            ])
        #expect(
            issues(schema(roles: #""roles": [],"#, access: "")) == [
                "roles: 'roles' is empty: leave it out for a schema without roles"
            ])
    }
}
