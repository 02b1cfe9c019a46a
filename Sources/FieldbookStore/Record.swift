public import FieldbookCore
public import FieldbookJSON

/// One record: its entity, id, and a value for each of the entity's fields.
public struct Record: Sendable, Hashable {
    /// The entity this record belongs to.
    public let entity: Entity
    /// The record's id: a lower-case UUID.
    public let id: String
    /// One value per field, in the order of `Entity/fields`.
    public let values: [Value]

    /// The value of the field called `field` (`Value/null` for a field not in the entity).
    public subscript(field: String) -> Value {
        entity.fieldIndex(field).map { values[$0] } ?? .null
    }

    /// The record as a JSON object: `id` first, then every field in schema order.
    public var json: JSON {
        .object([("id", .string(id))] + zip(entity.fields, values).map { ($0.name, $1.json) })
    }

    public static func == (lhs: Record, rhs: Record) -> Bool {
        lhs.entity.name == rhs.entity.name && lhs.id == rhs.id && lhs.values == rhs.values
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(values)
    }
}

/// A selection of records of one entity: filters, an order, a limit.
///
/// ```swift
/// let open = Query("finding")
///     .filter("status", .notEqual, "completed")
///     .filter("deadline", .less, "2022-01-01")
///     .sorted(by: "deadline")
///     .limit(20)
/// ```
public struct Query: Sendable, Hashable {
    /// A comparison.
    public enum Operator: String, Sendable, Hashable, CaseIterable {
        case equal = "="
        case notEqual = "!="
        case less = "<"
        case lessOrEqual = "<="
        case greater = ">"
        case greaterOrEqual = ">="
        /// For text: contains the value as a substring. For a set: has the value as a member.
        case contains = "~"
    }

    public struct Filter: Sendable, Hashable {
        public var field: String
        public var op: Operator
        /// `Value/null` with `.equal` or `.notEqual` tests for a missing value.
        public var value: Value
    }

    public struct SortKey: Sendable, Hashable {
        public var field: String
        public var descending: Bool
    }

    public var entity: String
    public var filters: [Filter] = []
    public var sort: [SortKey] = []
    public var limitCount: Int?
    public var offsetCount: Int = 0

    public init(_ entity: String) { self.entity = entity }

    /// Adds a filter; all filters must hold.
    public func filter(_ field: String, _ op: Operator = .equal, _ value: Value) -> Query {
        var q = self
        q.filters.append(Filter(field: field, op: op, value: value))
        return q
    }

    /// Adds a sort key; records tie-break by id, so the order is always the same.
    public func sorted(by field: String, descending: Bool = false) -> Query {
        var q = self
        q.sort.append(SortKey(field: field, descending: descending))
        return q
    }

    /// At most `count` records, after skipping `offset`.
    public func limit(_ count: Int, offset: Int = 0) -> Query {
        var q = self
        q.limitCount = count
        q.offsetCount = offset
        return q
    }
}
