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
    /// The name the field had in the schema's previous version, when this version renames it
    /// (`renamedFrom`); kept in later versions, where it changes nothing.
    public let renamedFrom: String?
    /// Whether the field is retired (`retired`): its values are kept and readable, devices of
    /// earlier versions may still write it, but a store of this version refuses new writes to it.
    public let retired: Bool

    init(
        name: String, label: String?, type: FieldType, required: Bool, maxLength: Int?, defaultValue: Value?,
        policy: MergePolicy, onDelete: ReferencePolicy = .conflict, renamedFrom: String? = nil, retired: Bool = false
    ) {
        self.renamedFrom = renamedFrom
        self.retired = retired
        self.name = name
        self.label = label
        self.type = type
        self.required = required
        self.maxLength = maxLength
        self.defaultValue = defaultValue
        self.policy = policy
        self.onDelete = onDelete
    }

    /// What an insert stores when it gives no value: the schema default; 0 for a counter.
    public var insertDefault: Value? {
        if let defaultValue { return defaultValue }
        return policy == .counter ? .integer(0) : nil
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
                && lhs.onDelete == rhs.onDelete && lhs.renamedFrom == rhs.renamedFrom && lhs.retired == rhs.retired)
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
    /// One file (``Attachment``): its reference, as text.
    case attachment
    /// A set of files (``Attachment``): their references, as a set of text.
    case attachments

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
        case .attachment: "attachment"
        case .attachments: "attachments"
        }
    }

    /// Whether values of this type are sets (``Value/textSet(_:)``): `set` and `attachments`.
    public var isSet: Bool { self == .textSet || self == .attachments }

    /// Whether values of this type refer to files (``Attachment``): `attachment` and `attachments`.
    public var isAttachment: Bool { self == .attachment || self == .attachments }

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
