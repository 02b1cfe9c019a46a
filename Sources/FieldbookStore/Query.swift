public import FieldbookCore

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

    /// One condition: the field, how it compares, and the value.
    public struct Filter: Sendable, Hashable {
        /// The field compared (`id` for the record id).
        public var field: String
        /// How it compares.
        public var op: Operator
        /// `Value/null` with `.equal` or `.notEqual` tests for a missing value.
        public var value: Value
    }

    /// One sort key.
    public struct SortKey: Sendable, Hashable {
        /// The field sorted by (`id` for the record id).
        public var field: String
        /// Greatest first.
        public var descending: Bool
    }

    /// The entity queried.
    public var entity: String
    /// The conditions, all of which a record meets.
    public var filters: [Filter] = []
    /// The sort keys, in order; the record id breaks ties.
    public var sort: [SortKey] = []
    /// At most this many records (nil: all).
    public var limitCount: Int?
    /// Records skipped before the first returned.
    public var offsetCount: Int = 0

    /// Every record of `entity`, in id order.
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
