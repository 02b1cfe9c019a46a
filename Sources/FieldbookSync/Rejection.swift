public import FieldbookCore
import FieldbookJSON

/// A pushed change the server took but did not merge, because the schema's access rules do not let
/// the pushing token's role make it. It keeps its server sequence number and is never pulled; the
/// device that made it undoes it locally and shows it to its user, who may discard it.
public struct Rejection: Sendable, Hashable {
    /// The change's device sequence number.
    public var sequence: Int64
    /// The rule that refused it (``AccessRefusal/rule``), e.g. `finding.delete`.
    public var rule: String
    /// The role it was refused for.
    public var role: String
    /// What was refused and what to do, naming no field's value.
    public var message: String

    /// The rejection of the change with device sequence number `sequence`, by `refusal`.
    public init(sequence: Int64, refusal: AccessRefusal) {
        self.init(sequence: sequence, rule: refusal.rule, role: refusal.role, message: refusal.message)
    }

    /// A rejection from its parts.
    public init(sequence: Int64, rule: String, role: String, message: String) {
        self.sequence = sequence
        self.rule = rule
        self.role = role
        self.message = message
    }

    /// What a store keeps of it (the change has the sequence): `{"rule","role","message"}`.
    package var storedText: String {
        JSON.object([("rule", .string(rule)), ("role", .string(role)), ("message", .string(message))]).serialized
    }

    /// Reads what ``storedText`` wrote, for the change with device sequence number `sequence`.
    package init?(sequence: Int64, stored text: String) {
        guard case .object(let pairs)? = try? JSON(parsing: Array(text.utf8)) else { return nil }
        var values: [String: String] = [:]
        for (key, value) in pairs { if case .string(let s) = value { values[key] = s } }
        guard let rule = values["rule"], let role = values["role"], let message = values["message"] else {
            return nil
        }
        self.init(sequence: sequence, rule: rule, role: role, message: message)
    }

    /// The rejection as a push answer lists it: `{"seq","rule","role","message"}`.
    var json: JSON {
        .object([
            ("seq", .int(sequence)), ("rule", .string(rule)), ("role", .string(role)), ("message", .string(message)),
        ])
    }

    /// Reads the rejection at `index` of `tape`.
    init(_ tape: JSONTape, at index: Int) throws(WireError) {
        guard tape.kind(index) == .object, let seq = tape.member(index, "seq").flatMap(tape.int),
            let rule = tape.member(index, "rule").flatMap(tape.string),
            let role = tape.member(index, "role").flatMap(tape.string),
            let message = tape.member(index, "message").flatMap(tape.string)
        else {
            throw WireError(.badMessage, "'rejected' holds objects with 'seq', 'rule', 'role' and 'message'")
        }
        self.init(sequence: seq, rule: rule, role: role, message: message)
    }
}
