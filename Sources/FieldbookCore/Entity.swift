import FieldbookJSON

/// One kind of record, e.g. `finding`: a table on the device and on the server.
///
/// A class, immutable: hot paths pass entities and fields around without copying their contents.
public final class Entity: Sendable, Hashable {
    /// The entity's name; also its table name.
    public let name: String
    /// A name for people, e.g. `问题 Finding`.
    public let label: String?
    /// Records are only ever inserted: never updated or deleted (progress notes).
    public let appendOnly: Bool
    /// What happens when a delete meets a concurrent update.
    public let onDelete: DeletePolicy
    /// The fields in file order (the record id is implicit and not listed).
    public let fields: [Field]
    /// What each role may write, by role name; nil when the entity declares no rules (every role may
    /// write it). A role not named may not write it. See ``refusal(role:_:fields:current:)``.
    public let access: [String: EntityAccess]?
    /// The reference fields whose records this entity's records follow into scopes: a record has
    /// the scope keys of the records these fields name (see ``Scope``).
    public let follows: [String]
    /// Whether every token sees this entity's records, whatever its scope (reference data, such as
    /// inspection rounds).
    public let everyone: Bool
    /// Whether the entity is retired (`retired`): its records are kept and readable, devices of
    /// earlier versions may still write them, but a store of this version refuses new writes.
    public let retired: Bool
    /// The evidence a record must hold before a field takes certain values (`requires`): see
    /// ``Requirement`` and ``requirementRefusal(_:role:changed:before:after:)``.
    public let requirements: [Requirement]
    /// Whether the entity has `attachment` or `attachments` fields: its changes may refer to files.
    public let refersToFiles: Bool
    private let index: [String: Int]
    /// Each field's name as UTF-8, in ``fields`` order: compared with names in JSON text without making strings.
    package let fieldNames: [[UInt8]]
    /// The fields as merge states lay them out: by position in ``fields``.
    package let layout: FieldLayout
    /// ``name`` as UTF-8: compared with names in JSON text without making strings.
    package let nameUTF8: [UInt8]

    init(
        name: String, label: String?, appendOnly: Bool, onDelete: DeletePolicy, fields: [Field],
        access: [String: EntityAccess]? = nil, follows: [String] = [], everyone: Bool = false, retired: Bool = false,
        requirements: [Requirement] = []
    ) {
        self.retired = retired
        self.requirements = requirements
        refersToFiles = fields.contains { $0.type.isAttachment }
        self.follows = follows
        self.everyone = everyone
        self.name = name
        self.label = label
        self.appendOnly = appendOnly
        self.onDelete = onDelete
        self.fields = fields
        self.access = access
        fieldNames = fields.map { Array($0.name.utf8) }
        layout = FieldLayout(names: fields.map(\.name))
        nameUTF8 = Array(name.utf8)
        var index: [String: Int] = [:]
        for (n, f) in fields.enumerated() { index[f.name] = n }
        self.index = index
    }

    /// Whether a requirement binds a writer with `role` (``Requirement/binds(_:)``): only then is a
    /// write checked against them.
    public func hasRequirements(binding role: String?) -> Bool {
        requirements.contains { $0.binds(role) }
    }

    /// The field called `name`, if there is one.
    public func field(_ name: String) -> Field? {
        index[name].map { fields[$0] }
    }

    /// The position of the field called `name` in ``fields``.
    public func fieldIndex(_ name: String) -> Int? {
        index[name]
    }

    /// The position of the field called `name`, looking at `hint` first: changes name their fields
    /// in schema order, so the position after the one found last is usually the next.
    package func position(of name: String, hint: Int) -> Int? {
        if hint < fields.count, fields[hint].name == name { return hint }
        return index[name]
    }

    /// Equal when the names, labels, append-only flags, delete policies, fields, access rules,
    /// scope declarations, retirement and requirements are equal.
    public static func == (lhs: Entity, rhs: Entity) -> Bool {
        lhs.name == rhs.name && lhs.label == rhs.label && lhs.appendOnly == rhs.appendOnly
            && lhs.onDelete == rhs.onDelete
            && lhs.fields == rhs.fields && lhs.access == rhs.access && lhs.follows == rhs.follows
            && lhs.everyone == rhs.everyone && lhs.retired == rhs.retired && lhs.requirements == rhs.requirements
    }

    /// Hashes the name and fields.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(fields)
    }
}

/// An entity's field names by position: how a ``RecordState`` lays out its fields. One per
/// entity, shared by every state of its records, so a state knows its layout by identity.
package final class FieldLayout: Sendable {
    package let names: [String]
    /// The positions in ascending name order: the order a stored state lists its fields in.
    package let byName: [Int]
    /// Each name as a JSON object key, `"name":`, ready to write.
    package let keys: [[UInt8]]

    /// The layout of a state no write has touched yet.
    package static let empty = FieldLayout(names: [])

    package init(names: [String]) {
        self.names = names
        byName = names.indices.sorted { names[$0] < names[$1] }
        keys = names.map { name in
            var key: [UInt8] = []
            JSON.writeString(name, to: &key)
            key.append(UInt8(ascii: ":"))
            return key
        }
    }

    package func position(_ name: String) -> Int? {
        names.firstIndex(of: name)
    }
}
