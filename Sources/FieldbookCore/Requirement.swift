import FieldbookJSON

/// A rule that a record must hold evidence before a field takes certain values: a finding is not
/// reported rectified without at least one photo (the entity's `requires` in the schema file).
///
/// ```json
/// "requires": [{"files": "evidence", "when": {"status": ["completed"]}, "atLeast": 1, "roles": ["inspector"]}]
/// ```
///
/// Without `roles` it binds every writer; with it, the writers of those roles (the office may record
/// a finding rectified on paper evidence, say, while an inspector's device must attach it).
///
/// Device and server check it with the same code (``Entity/requirementRefusal(_:role:changed:before:after:)``):
/// the device refuses such a write before it records it; the server rejects a change that breaks
/// it (kept, answered as rejected, never merged), whoever sends it.
public struct Requirement: Sendable, Hashable {
    /// The `attachment` or `attachments` field that must hold files.
    public var files: String
    /// The enum field whose values need them.
    public var field: String
    /// The values of ``field`` that need them.
    public var values: Set<String>
    /// How many files ``files`` must hold (1 unless the schema says otherwise).
    public var atLeast: Int
    /// The roles whose writes it binds; nil: every writer's (a writer with no role included).
    public var roles: Set<String>?

    /// A requirement from its parts.
    public init(files: String, field: String, values: Set<String>, atLeast: Int = 1, roles: Set<String>? = nil) {
        self.files = files
        self.field = field
        self.values = values
        self.atLeast = atLeast
        self.roles = roles
    }

    /// Whether it binds a writer with `role`.
    public func binds(_ role: String?) -> Bool {
        guard let roles else { return true }
        return role.map(roles.contains) ?? false
    }
}

extension Entity {
    /// Why a write breaks one of the entity's ``requirements``, if it does: it sets a field to a
    /// value that needs files (a step: an update that leaves the value as it was is none) while the
    /// record, after the write, holds fewer than required. The message names the rule and what to
    /// do, never a field's value (enum values are the schema's words).
    ///
    /// - Parameters:
    ///   - role: the writer's role, for the refusal (nil: none).
    ///   - changed: the fields the write sets.
    ///   - before: a field's value before the write (nil if none: an insert).
    ///   - after: a field's value after the write.
    public func requirementRefusal(
        _ operation: ChangeOperation, role: String?, changed: Set<String>, before: (String) -> Value?,
        after: (String) -> Value?
    ) -> AccessRefusal? {
        guard operation != .delete else { return nil }
        for requirement in requirements where changed.contains(requirement.field) && requirement.binds(role) {
            guard case .text(let to)? = after(requirement.field), requirement.values.contains(to) else { continue }
            if operation == .update, before(requirement.field) == .text(to) { continue }
            let held = after(requirement.files)?.attachments.count ?? 0
            guard held < requirement.atLeast else { continue }
            let count = requirement.atLeast == 1 ? "at least one file" : "at least \(requirement.atLeast) files"
            return AccessRefusal(
                rule: "\(name).requires", role: role ?? "",
                message:
                    "\(name).\(requirement.field) cannot become \(to) without \(count) in \(name).\(requirement.files); "
                    + "attach the evidence first (fieldbook attach \(name) ID \(requirement.files) FILE…)")
        }
        return nil
    }
}

extension SchemaLoader {
    /// An entity's `requires`: a list of `{"files", "when": {FIELD: [VALUES]}, "atLeast"}`.
    mutating func loadRequirements(_ json: JSON?, entity: String, fields: [Field], declaredRoles: [Role])
        -> [Requirement]
    {
        guard let json else { return [] }
        let path = "\(entity).requires"
        guard case .array(let list) = json else {
            issue(path, "'requires' must be a list of {\"files\", \"when\"}")
            return []
        }
        var result: [Requirement] = []
        for (n, item) in list.enumerated() {
            let itemPath = "\(path)[\(n)]"
            guard let r = object(item, at: itemPath, allowed: ["files", "when", "atLeast", "roles", "description"])
            else {
                continue
            }
            guard let files = string(r["files"], at: itemPath, key: "files") else {
                if r["files"] == nil { issue(itemPath, "missing 'files' (the field that must hold them)") }
                continue
            }
            if fields.first(where: { $0.name == files }).map({ $0.type.isAttachment }) != true {
                issue(itemPath, "'files' must name an attachment or attachments field of \(entity)")
            }
            var atLeast = 1
            if let given = r["atLeast"] {
                if case .int(let v) = given, (1...1000).contains(v) {
                    atLeast = Int(v)
                } else {
                    issue(itemPath, "'atLeast' must be an integer from 1 to 1000")
                }
            }
            if atLeast > 1, fields.first(where: { $0.name == files })?.type == .attachment {
                issue(itemPath, "'atLeast' above 1 needs an attachments field (a set)")
            }
            guard case .object(let when)? = r["when"], when.count == 1, let (fieldName, valuesJSON) = when.first
            else {
                issue(
                    itemPath,
                    "'when' must be an object of one enum field and its values, e.g. {\"status\": [\"completed\"]}")
                continue
            }
            guard case .enumeration(let allowed)? = fields.first(where: { $0.name == fieldName })?.type else {
                issue(itemPath, "'when' must name an enum field of \(entity)")
                continue
            }
            let values = stringList(valuesJSON, at: itemPath, key: "when") ?? []
            if values.isEmpty { issue(itemPath, "'when' lists no values") }
            for value in values where !allowed.contains(value) {
                issue(itemPath, "'\(value)' is not a value of \(fieldName)")
            }
            var roles: Set<String>?
            if r["roles"] != nil {
                let names = stringList(r["roles"], at: itemPath, key: "roles") ?? []
                for name in names where !declaredRoles.contains(where: { $0.name == name }) {
                    issue(itemPath, "unknown role '\(name)'")
                }
                if names.isEmpty { issue(itemPath, "'roles' is empty: leave it out to bind every writer") }
                roles = Set(names)
            }
            result.append(
                Requirement(files: files, field: fieldName, values: Set(values), atLeast: atLeast, roles: roles))
        }
        return result
    }
}

extension Requirement {
    var json: JSON {
        var pairs: [(key: String, value: JSON)] = [
            ("files", .string(files)),
            ("when", .object([(field, .array(values.sorted().map(JSON.string)))])),
        ]
        if atLeast != 1 { pairs.append(("atLeast", .int(Int64(atLeast)))) }
        if let roles { pairs.append(("roles", .array(roles.sorted().map(JSON.string)))) }
        return .object(pairs)
    }
}
