import FieldbookCore
import FieldbookSync
import Foundation
import Testing

/// A one-entity schema at `version` with the given fields (JSON objects).
private func ledger(_ version: Int, _ fields: String) throws -> Schema {
    try Schema(
        json:
            #"{"schema": "ledger", "version": \#(version), "entities": [{"name": "finding", "fields": [\#(fields)]}]}"#)
}

private let v1Fields = """
    {"name": "title", "type": "text", "maxLength": 100, "policy": "lww"},
    {"name": "status", "type": "enum", "values": ["open", "done"], "policy": "max", "order": ["open", "done"]},
    {"name": "notes", "type": "text", "policy": "manual"},
    {"name": "reopened", "type": "integer", "policy": "counter"},
    {"name": "seen_on", "type": "date", "policy": "max"},
    {"name": "beds", "type": "integer", "policy": "observed", "observedBy": "seen_on"}
    """

@Suite("Schema evolution: what a new version may change")
struct EvolutionTests {
    @Test(
        "compatible changes pass",
        arguments: [
            // a new field, optional or required with a default; a counter needs none
            (
                #"{"name": "title", "type": "text", "maxLength": 100, "policy": "lww"}"#,
                #"{"name": "title", "type": "text", "maxLength": 100, "policy": "lww"}, {"name": "x", "type": "date", "policy": "lww"}, {"name": "y", "type": "text", "required": true, "default": "-", "policy": "lww"}, {"name": "z", "type": "integer", "required": true, "policy": "counter"}"#
            ),
            // a longer maxLength, none at all
            (#""maxLength": 100, "policy": "lww"}"#, #""maxLength": 200, "policy": "lww"}"#),
            (#""maxLength": 100, "policy": "lww"}"#, #""policy": "lww"}"#),
            // a new enum value, anywhere in the order
            (
                #""values": ["open", "done"], "policy": "max", "order": ["open", "done"]"#,
                #""values": ["open", "done", "waived"], "policy": "max", "order": ["open", "waived", "done"]"#
            ),
            // a rename, through the fields that name it
            (
                #"{"name": "seen_on", "type": "date", "policy": "max"}"#,
                #"{"name": "observed_on", "renamedFrom": "seen_on", "type": "date", "policy": "max"}"#
            ),
            // retiring
            (
                #"{"name": "notes", "type": "text", "policy": "manual"}"#,
                #"{"name": "notes", "retired": true, "type": "text", "policy": "manual"}"#
            ),
            // a label, a default
            (
                #"{"name": "notes", "type": "text", "policy": "manual"}"#,
                #"{"name": "notes", "label": "备注", "type": "text", "default": "无", "policy": "manual"}"#
            ),
        ])
    func compatible(_ old: String, _ new: String) throws {
        let edited = v1Fields.replacingOccurrences(of: old, with: new)
            .replacingOccurrences(
                of: #""observedBy": "seen_on""#,
                with: new.contains("observed_on") ? #""observedBy": "observed_on""# : #""observedBy": "seen_on""#)
        #expect(edited != v1Fields)
        #expect(try ledger(2, edited).evolutionProblems(from: ledger(1, v1Fields)) == [])
    }

    @Test(
        "incompatible changes are refused, each with the rule it breaks",
        arguments: [
            (
                #"{"name": "notes", "type": "text", "policy": "manual"},"#, "",
                "finding.notes: removing a field would lose its values"
            ),
            (
                #""type": "text", "maxLength": 100"#, #""type": "text", "maxLength": 50"#,
                "finding.title: lowering maxLength from 100"
            ),
            (
                #""type": "text", "policy": "manual"}"#, #""type": "text", "maxLength": 10, "policy": "manual"}"#,
                "finding.notes: adding a maxLength"
            ),
            (
                #""type": "text", "policy": "manual"}"#, #""type": "text", "policy": "lww"}"#,
                "finding.notes: changing the policy from manual to lww"
            ),
            (
                #""type": "text", "policy": "manual"}"#, #""type": "date", "policy": "manual"}"#,
                "finding.notes: changing the type"
            ),
            (
                #""type": "text", "policy": "manual"}"#,
                #""type": "text", "required": true, "default": "x", "policy": "manual"}"#,
                "finding.notes: a field cannot become required"
            ),
            (
                #""values": ["open", "done"], "policy": "max", "order": ["open", "done"]"#,
                #""values": ["open", "done"], "policy": "max", "order": ["done", "open"]"#,
                "finding.status: the order of the existing enum values cannot change"
            ),
            (
                #""values": ["open", "done"], "policy": "max", "order": ["open", "done"]"#,
                #""values": ["open"], "policy": "max", "order": ["open"]"#,
                "finding.status: removing enum values (done)"
            ),
            (
                #""type": "integer", "policy": "counter"}"#, #""type": "integer", "policy": "lww"}"#,
                "finding.reopened: changing the policy from counter to lww"
            ),
            (#""observedBy": "seen_on""#, #""observedBy": "other_on""#, "finding.beds: 'observedBy' cannot change"),
            (
                #"{"name": "title", "type": "text", "maxLength": 100, "policy": "lww"},"#,
                #"{"name": "title", "type": "text", "maxLength": 100, "policy": "lww"}, {"name": "owner", "type": "text", "required": true, "policy": "lww"},"#,
                "finding.owner: a new required field needs a default"
            ),
            (
                #"{"name": "notes", "type": "text", "policy": "manual"},"#,
                #"{"name": "notes", "type": "text", "policy": "manual"}, {"name": "gone", "retired": true, "type": "text", "policy": "lww"},"#,
                "finding.gone: a new field cannot be retired"
            ),
        ])
    func incompatible(_ old: String, _ new: String, _ expected: String) throws {
        var edited = v1Fields.replacingOccurrences(of: old, with: new)
        if expected.contains("observedBy") {
            edited = edited.replacingOccurrences(
                of: #"{"name": "seen_on", "type": "date", "policy": "max"},"#,
                with:
                    #"{"name": "seen_on", "type": "date", "policy": "max"}, {"name": "other_on", "type": "date", "policy": "max"},"#
            )
        }
        #expect(edited != v1Fields)
        let problems = try ledger(2, edited).evolutionProblems(from: ledger(1, v1Fields))
        #expect(problems.contains { $0.hasPrefix(expected) }, "\(problems)")
    }

    @Test("a retired field stays retired; a renamed-away name is not taken again; the version must grow")
    func history() throws {
        let v1 = try ledger(1, v1Fields)
        let v2Fields = v1Fields.replacingOccurrences(
            of: #"{"name": "notes", "type": "text", "policy": "manual"}"#,
            with: #"{"name": "remarks", "renamedFrom": "notes", "type": "text", "policy": "manual"}"#
        ).replacingOccurrences(
            of: #"{"name": "title", "type": "text", "maxLength": 100, "policy": "lww"}"#,
            with: #"{"name": "title", "retired": true, "type": "text", "maxLength": 100, "policy": "lww"}"#)
        let v2 = try ledger(2, v2Fields)
        #expect(v2.evolutionProblems(from: v1) == [])
        #expect(v2.renames(from: v1) == ["finding": ["remarks": "notes"]])

        // v3 keeps `renamedFrom` (it changes nothing now) and renames once more.
        let v3 = try ledger(
            3,
            v2Fields.replacingOccurrences(
                of: #""name": "remarks", "renamedFrom": "notes""#,
                with: #""name": "comments", "renamedFrom": "remarks""#))
        #expect(v3.evolutionProblems(from: v2, earlier: [v1]) == [])
        #expect(try ledger(3, v2Fields).evolutionProblems(from: v2, earlier: [v1]) == [])

        // A new field named as the field was before its rename (in the same file as the rename, the
        // loader refuses it already).
        #expect(throws: SchemaError.self) {
            try ledger(3, v2Fields + #", {"name": "notes", "type": "text", "policy": "lww"}"#)
        }
        let reused = try ledger(
            3,
            v2Fields.replacingOccurrences(of: #""renamedFrom": "notes", "#, with: "")
                + #", {"name": "notes", "type": "text", "policy": "lww"}"#)
        #expect(
            reused.evolutionProblems(from: v2, earlier: [v1]).contains {
                $0.hasPrefix("finding.notes: an earlier version had a field of this name")
            })
        // Un-retiring.
        let unretired = try ledger(3, v2Fields.replacingOccurrences(of: #""retired": true, "#, with: ""))
        #expect(unretired.evolutionProblems(from: v2) == ["finding.title: a retired field stays retired"])
        // Not a later version.
        #expect(v2.evolutionProblems(from: v2) == ["version 2 is not after version 2"])
    }
}
