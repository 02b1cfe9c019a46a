import FieldbookJSON

/// A data model read from a schema file: named, versioned, a list of entities.
///
/// Load one with ``Schema/init(json:)``; every mistake in the file is reported
/// at once, each with where it is (see ``SchemaError``). A loaded schema is
/// valid: references point at entities that exist, policies fit their types.
///
/// ## Topics
/// - ``Entity``
/// - ``Field``
/// - ``FieldType``
/// - ``MergePolicy``
public struct Schema: Sendable, Hashable {
    /// The schema's name, e.g. `inspection`.
    public let name: String
    /// The schema's version. A store migrates forward to a higher version and refuses a lower one.
    public let version: Int
    /// The entities in file order.
    public let entities: [Entity]
    private let index: [String: Int]

    /// Builds a schema from parts that are already valid. ``Schema/init(json:)`` is the checked way in.
    init(name: String, version: Int, entities: [Entity]) {
        self.name = name
        self.version = version
        self.entities = entities
        var index: [String: Int] = [:]
        for (n, e) in entities.enumerated() { index[e.name] = n }
        self.index = index
    }

    /// The entity called `name`, if there is one.
    public func entity(_ name: String) -> Entity? {
        index[name].map { entities[$0] }
    }

    /// Equal when the names, versions and entities are equal.
    public static func == (lhs: Schema, rhs: Schema) -> Bool {
        lhs.name == rhs.name && lhs.version == rhs.version && lhs.entities == rhs.entities
    }

    /// Hashes the name, version and entities.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(version)
        hasher.combine(entities)
    }
}

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
    private let index: [String: Int]
    /// Each field's name as UTF-8, in ``fields`` order: compared with names in JSON text without making strings.
    package let fieldNames: [[UInt8]]
    /// The fields as merge states lay them out: by position in ``fields``.
    package let layout: FieldLayout
    /// ``name`` as UTF-8: compared with names in JSON text without making strings.
    package let nameUTF8: [UInt8]

    init(name: String, label: String?, appendOnly: Bool, onDelete: DeletePolicy, fields: [Field]) {
        self.name = name
        self.label = label
        self.appendOnly = appendOnly
        self.onDelete = onDelete
        self.fields = fields
        fieldNames = fields.map { Array($0.name.utf8) }
        layout = FieldLayout(names: fields.map(\.name))
        nameUTF8 = Array(name.utf8)
        var index: [String: Int] = [:]
        for (n, f) in fields.enumerated() { index[f.name] = n }
        self.index = index
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

    /// Equal when the names, labels, append-only flags, delete policies and fields are equal.
    public static func == (lhs: Entity, rhs: Entity) -> Bool {
        lhs.name == rhs.name && lhs.label == rhs.label && lhs.appendOnly == rhs.appendOnly
            && lhs.onDelete == rhs.onDelete
            && lhs.fields == rhs.fields
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

/// What a delete does against a concurrent update of the same record.
public enum DeletePolicy: String, Sendable, Hashable {
    /// The two become a conflict that a person resolves (the default).
    case conflict
    /// The delete wins; the concurrent update is kept in the history only.
    case deleteWins = "delete-wins"
}

/// What a reference field does when the record it names is deleted concurrently (the field's
/// `onDelete` in the schema file). A reference set knowing of the delete is refused on every peer.
public enum ReferencePolicy: String, Sendable, Hashable {
    /// A change that set the reference without knowing of the delete contests it: the record stays,
    /// and the delete is a conflict a person settles, as against an update (the default).
    case conflict
    /// The referring record follows the record it names: while that one does not exist, neither
    /// does this one (its changes are kept, and it comes back if the record does). For records that
    /// only make sense with their parent, such as append-only progress notes.
    case cascade
}

/// One field of an entity. Immutable.
public final class Field: Sendable, Hashable {
    /// The field's name; also its column name.
    public let name: String
    /// A name for people, e.g. `整改期限 deadline`.
    public let label: String?
    /// What values the field holds.
    public let type: FieldType
    /// An insert must give a value (or the schema a default), and it can never be set to null.
    public let required: Bool
    /// The longest text allowed, in characters (grapheme clusters), for text fields.
    public let maxLength: Int?
    /// The value an insert takes when it gives none.
    public let defaultValue: Value?
    /// How concurrent changes to this field merge.
    public let policy: MergePolicy
    /// For a reference field: what a concurrent delete of the record it names does.
    public let onDelete: ReferencePolicy

    init(
        name: String, label: String?, type: FieldType, required: Bool, maxLength: Int?, defaultValue: Value?,
        policy: MergePolicy, onDelete: ReferencePolicy = .conflict
    ) {
        self.name = name
        self.label = label
        self.type = type
        self.required = required
        self.maxLength = maxLength
        self.defaultValue = defaultValue
        self.policy = policy
        self.onDelete = onDelete
    }

    /// The entity this field refers to, if it is a reference field.
    public var target: String? {
        if case .reference(let entity) = type { entity } else { nil }
    }

    /// Equal when they are the same object, or when every property is equal.
    public static func == (lhs: Field, rhs: Field) -> Bool {
        lhs === rhs
            || (lhs.name == rhs.name && lhs.label == rhs.label && lhs.type == rhs.type && lhs.required == rhs.required
                && lhs.maxLength == rhs.maxLength && lhs.defaultValue == rhs.defaultValue && lhs.policy == rhs.policy
                && lhs.onDelete == rhs.onDelete)
    }

    /// Hashes the name, type and merge policy.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(type)
        hasher.combine(policy)
    }
}

/// The type of a field's values.
public enum FieldType: Sendable, Hashable {
    case text
    case integer
    case real
    case boolean
    /// A calendar date, `YYYY-MM-DD`.
    case date
    /// An instant in UTC, `YYYY-MM-DDTHH:MM:SS.sssZ` (milliseconds optional on input).
    case timestamp
    /// One of a fixed list of text values.
    case enumeration([String])
    /// The id of a record of the named entity.
    case reference(String)
    /// A set of text values.
    case textSet

    /// The name used in schema files.
    public var name: String {
        switch self {
        case .text: "text"
        case .integer: "integer"
        case .real: "real"
        case .boolean: "boolean"
        case .date: "date"
        case .timestamp: "timestamp"
        case .enumeration: "enum"
        case .reference: "reference"
        case .textSet: "set"
        }
    }

    /// Whether values of this type have a natural order (`max` needs no declared order).
    var isNaturallyOrdered: Bool {
        switch self {
        case .integer, .real, .date, .timestamp, .boolean: true
        default: false
        }
    }
}

/// How concurrent changes to one field are merged (docs/protocol.md, "Merge").
public enum MergePolicy: Sendable, Hashable {
    /// The latest hybrid-logical-clock timestamp wins; ties go to the higher device id.
    case lww
    /// The change with the latest domain time wins; `by` names the date or timestamp field carrying it.
    case observed(by: String)
    /// The greater value wins: in the declared `order` for enums, natural order otherwise.
    /// With an `epoch` counter field, a higher epoch wins first (a reopened finding).
    case max(order: [String]?, epoch: String?)
    /// Sets merge by adding what each side added and removing what each side removed.
    case union
    /// Integer deltas from each side add up.
    case counter
    /// Set once when the record is inserted, never changed: never conflicts.
    case append
    /// Concurrent different values become a conflict that a person resolves.
    case manual

    /// The name used in schema files.
    public var name: String {
        switch self {
        case .lww: "lww"
        case .observed: "observed"
        case .max: "max"
        case .union: "union"
        case .counter: "counter"
        case .append: "append"
        case .manual: "manual"
        }
    }
}
