import FieldbookCore
import FieldbookJSON
import FieldbookSchemas
import FieldbookTesting
import Testing

@Suite("Schema loading", .tags(.core))
struct SchemaTests {
    @Test("the bundled inspection schema loads and has the domain's entities")
    func inspectionSchemaLoads() throws {
        let schema = try Schema(json: BundledSchemas.inspection)
        #expect(schema.name == "inspection")
        #expect(schema.version >= 3)  // roles (2), scopes (3)
        for name in [
            "site", "inspection_round", "visit", "finding", "measure", "accountability_action", "progress_note",
        ] {
            #expect(schema.entity(name) != nil, "missing \(name)")
        }
        let status = try #require(schema.entity("finding")?.field("status"))
        #expect(
            status.policy == .max(order: ["not_started", "in_progress", "completed", "closed"], epoch: "reopen_count"))
        #expect(schema.roles.map(\.name) == ["office", "inspector", "auditor"])
        #expect(status.defaultValue == .text("not_started"))
        #expect(schema.entity("site")?.field("beds_total")?.policy == .observed(by: "observed_on"))
        #expect(schema.entity("progress_note")?.appendOnly == true)
        #expect(schema.entity("progress_note")?.fields.allSatisfy { $0.policy == .append } == true)
    }

    @Test("the canonical JSON of a schema loads back to the same schema")
    func canonicalRoundTrip() throws {
        let schema = try Schema(json: BundledSchemas.inspection)
        let again = try Schema(json: schema.json.serialized)
        #expect(again == schema)
        #expect(again.json.serialized == schema.json.serialized)
    }

    func schema(fields: String, extraEntities: String = "") -> String {
        """
        {"schema": "t", "version": 1, "entities": [
          {"name": "finding", "fields": [\(fields)]}\(extraEntities)
        ]}
        """
    }

    @Test(
        "every mistake is reported with where it is",
        arguments: [
            (
                #"{"name": "status", "type": "enum", "values": ["a", "b"], "policy": "max"}"#,
                "finding.status: policy 'max' needs an order"
            ),
            (
                #"{"name": "status", "type": "enum", "values": ["a", "b"], "policy": "max", "order": ["a"]}"#,
                "finding.status: policy 'max' needs an order that lists each enum value once"
            ),
            (
                #"{"name": "x", "type": "texts", "policy": "lww"}"#,
                "finding.x: unknown type 'texts' (one of: text, integer, real, boolean, date, timestamp, enum, reference, set, attachment, attachments)"
            ),
            (
                #"{"name": "x", "type": "text", "policy": "newest"}"#,
                "finding.x: unknown policy 'newest' (one of: lww, observed, max, union, counter, append, manual)"
            ),
            (
                #"{"name": "x", "type": "text"}"#,
                "finding.x: missing 'policy' (lww, observed, max, union, counter, append or manual)"
            ),
            (
                #"{"name": "x", "type": "text", "policy": "union"}"#,
                "finding.x: policy 'union' is only for set and attachments fields"
            ),
            (
                #"{"name": "x", "type": "text", "policy": "counter"}"#,
                "finding.x: policy 'counter' is only for integer fields"
            ),
            (
                #"{"name": "x", "type": "integer", "policy": "observed"}"#,
                "finding.x: policy 'observed' needs 'observedBy' (the date or timestamp field that carries the domain time)"
            ),
            (
                #"{"name": "x", "type": "integer", "policy": "observed", "observedBy": "nope"}"#,
                "finding.x: policy 'observed' names unknown field 'nope' in 'observedBy'"
            ),
            (
                #"{"name": "x", "type": "reference", "entity": "sites", "policy": "lww"}"#,
                "finding.x: references unknown entity 'sites'"
            ),
            (#"{"name": "x", "type": "enum", "policy": "lww"}"#, "finding.x: type 'enum' needs 'values'"),
            (
                #"{"name": "x", "type": "text", "maxLength": 0, "policy": "lww"}"#,
                "finding.x: 'maxLength' must be an integer from 1 to 1000000"
            ),
            (
                #"{"name": "x", "type": "integer", "maxLength": 5, "policy": "lww"}"#,
                "finding.x: 'maxLength' is only for text and set fields"
            ),
            (
                #"{"name": "x", "type": "date", "default": "2021-13-01", "policy": "lww"}"#,
                "finding.x: 'default' is not a valid date: must be a date written YYYY-MM-DD, e.g. 2021-11-16"
            ),
            (
                #"{"name": "x", "type": "text", "policy": "lww", "colour": "red"}"#,
                "finding.x: unknown key 'colour' (allowed: default, description, entity, epoch, label, maxLength, name, observedBy, onDelete, order, policy, renamedFrom, required, retired, type, values)"
            ),
            (#"{"name": "id", "type": "text", "policy": "lww"}"#, "finding.id: 'id' is reserved for the record id"),
            (
                #"{"name": "Title", "type": "text", "policy": "lww"}"#,
                "finding.Title: field name must be a lower-case identifier (a-z, 0-9, _), at most 63 long"
            ),
            (
                #"{"name": "n", "type": "text", "policy": "max"}"#,
                "finding.n: policy 'max' is for enums with an order, or integer, real, boolean, date and timestamp fields"
            ),
        ])
    func reportsMistake(field: String, expected: String) {
        #expect(issues(schema(fields: field)) == [expected])
    }

    @Test("all mistakes at once, not just the first")
    func reportsAll() {
        let found = issues(
            schema(
                fields: #"""
                    {"name": "status", "type": "enum", "values": ["a"], "policy": "max"},
                    {"name": "status", "type": "text", "policy": "lww"},
                    {"name": "n", "type": "integer", "policy": "union"}
                    """#))
        #expect(
            found == [
                "finding.status: policy 'max' needs an order",
                "finding.status: field defined twice",
                "finding.n: policy 'union' is only for set and attachments fields",
            ])
    }

    @Test("top-level mistakes")
    func topLevel() {
        #expect(
            issues(#"{"version": 0, "entities": []}"#) == [
                "missing 'schema' (the schema's name)", "'version' must be a positive integer", "'entities' is empty",
            ])
        #expect(
            issues(
                #"{"schema": "t", "version": 1, "entities": [{"name": "a", "fields": []}, {"name": "a", "fields": [{"name": "x", "type": "text", "policy": "lww"}]}]}"#
            )
                == ["a: entity defined twice (#2)", "a: 'fields' is empty"])
        #expect(
            issues(
                #"{"schema": "t", "version": 1, "entities": [{"name": "n", "appendOnly": true, "fields": [{"name": "x", "type": "text", "policy": "lww"}]}]}"#
            )
                == ["n.x: fields of an append-only entity have policy 'append'"])
    }

    @Test("a file that is not JSON is a parse error with its offset")
    func notJSON() {
        #expect(throws: JSONParseError.self) { try Schema(json: "{\"schema\": ") }
    }
}

/// The mistakes a schema file has, as `path: message` lines (empty for a valid file).
func issues(_ text: String) -> [String] {
    do {
        _ = try Schema(json: text)
        return []
    } catch let error as SchemaError {
        return error.issues.map(\.description)
    } catch {
        return ["not a schema error: \(error)"]
    }
}
