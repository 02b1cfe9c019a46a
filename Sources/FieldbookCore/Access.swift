/// What one role may write to one entity, as the schema's `access` declares it.
///
/// ```json
/// "access": {
///   "office": {"insert": true, "update": true, "delete": true},
///   "inspector": {
///     "insert": true, "update": ["title", "status"],
///     "transitions": {"status": {"": ["not_started"], "not_started": ["in_progress", "completed"]}}
///   }
/// }
/// ```
///
/// A role an entity's `access` does not name may not write its records at all. An entity with no
/// `access` may be written by every role.
public struct EntityAccess: Sendable, Hashable {
    /// Whether the role may insert records (setting any field, within ``transitions``).
    public var insert: Bool
    /// The fields the role may change in an update: nil for every field, empty for none.
    public var update: Set<String>?
    /// Whether the role may delete records.
    public var delete: Bool
    /// For enum fields: field → the value it has (`""` for none: on insert, or a field never set)
    /// → the values the role may set it to. A field listed here may be written by the role only
    /// along these steps; writing the value it already has is no step.
    public var transitions: [String: [String: Set<String>]]

    /// What a role may do, from its parts.
    public init(
        insert: Bool = false, update: Set<String>? = [], delete: Bool = false,
        transitions: [String: [String: Set<String>]] = [:]
    ) {
        self.insert = insert
        self.update = update
        self.delete = delete
        self.transitions = transitions
    }

    /// Whether the role may change `field` in an update.
    public func mayUpdate(_ field: String) -> Bool {
        update.map { $0.contains(field) } ?? true
    }
}

/// A write the schema's access rules do not let a role make: which rule, which role, and what
/// to do. Its message names entities, fields, roles and enum values, never a field's value.
public struct AccessRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    /// The rule that refused the write, e.g. `finding.delete` or `finding.status`.
    public var rule: String
    /// The role that may not make it.
    public var role: String
    /// A sentence for people: what was refused and what to do.
    public var message: String

    /// A refusal of `rule` for `role`, explained by `message`.
    public init(rule: String, role: String, message: String) {
        self.rule = rule
        self.role = role
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

extension Entity {
    /// Checks a write by `role` against the entity's access rules.
    ///
    /// Device and server call it with the same arguments for the same write, so they refuse the same
    /// writes: the device before it records one, the server when a push reaches it.
    ///
    /// - Parameters:
    ///   - role: the writer's role; nil for a writer with no role (every write allowed).
    ///   - operation: what the change does.
    ///   - fields: the fields the change writes, and for a plain value the value it sets.
    ///   - current: the value a field has now (nil if none): what a transition starts from.
    /// - Returns: nil if the write is allowed, else why not.
    public func refusal(
        role: String?, _ operation: ChangeOperation, fields: [(name: String, value: Value?)],
        current: (String) -> Value?
    ) -> AccessRefusal? {
        guard let role, let access else { return nil }
        guard let rules = access[role] else {
            return AccessRefusal(
                rule: "\(name).access", role: role,
                message: "the role \(role) may not write \(name) records"
                    + Self.instead(Self.roles(access) { _ in true }, "write them"))
        }
        switch operation {
        case .delete:
            guard rules.delete else {
                return AccessRefusal(
                    rule: "\(name).delete", role: role,
                    message: "the role \(role) may not delete \(name) records"
                        + Self.instead(Self.roles(access) { $0.delete }, "delete one"))
            }
            return nil
        case .insert:
            guard rules.insert else {
                return AccessRefusal(
                    rule: "\(name).insert", role: role,
                    message: "the role \(role) may not add \(name) records"
                        + Self.instead(Self.roles(access) { $0.insert }, "add one"))
            }
        case .update:
            if fields.isEmpty, rules.update?.isEmpty == true {
                return AccessRefusal(
                    rule: "\(name).update", role: role,
                    message: "the role \(role) may not change \(name) records"
                        + Self.instead(Self.roles(access) { $0.update != [] }, "change one"))
            }
            for field in fields where !rules.mayUpdate(field.name) {
                return AccessRefusal(
                    rule: "\(name).\(field.name)", role: role,
                    message: "the role \(role) may not change \(name).\(field.name)"
                        + Self.instead(Self.roles(access) { $0.mayUpdate(field.name) }, "change it"))
            }
        }
        for field in fields {
            guard let steps = rules.transitions[field.name], let value = field.value else { continue }
            let from = Self.enumText(current(field.name))
            let to = Self.enumText(value)
            if operation == .update && from == to { continue }
            if steps[from]?.contains(to) == true { continue }
            let start = from.isEmpty ? "nothing" : from
            let allowed = steps[from].map { $0.sorted().joined(separator: ", ") }
            return AccessRefusal(
                rule: "\(name).\(field.name)", role: role,
                message: "the role \(role) may not set \(name).\(field.name) from \(start) to \(to)"
                    + (allowed.map { $0.isEmpty ? "" : " (from \(start) it may set: \($0))" } ?? "")
                    + Self.instead(
                        Self.roles(access) { other in
                            other.transitions[field.name].map { $0[from]?.contains(to) == true }
                                ?? (operation == .insert ? other.insert : other.mayUpdate(field.name))
                        }, "make this step"))
        }
        return nil
    }

    /// The roles whose rules pass `test`, sorted.
    private static func roles(_ access: [String: EntityAccess], _ test: (EntityAccess) -> Bool) -> [String] {
        access.filter { test($0.value) }.map(\.key).sorted()
    }

    /// What to do: ask someone with one of `roles` to do `what`.
    private static func instead(_ roles: [String], _ what: String) -> String {
        roles.isEmpty
            ? "; no role may \(what)"
            : "; ask someone with the role \(roles.joined(separator: " or ")) to \(what)"
    }

    /// An enum value as a transition names it: its text, or `""` for none.
    private static func enumText(_ value: Value?) -> String {
        if case .text(let text)? = value { return text }
        return ""
    }
}
