public import FieldbookCore
public import FieldbookJSON

/// Concurrent writes that a person must choose between: different values of a
/// `manual` field, or a delete against an update.
///
/// Every peer that has seen the same changes finds the same conflicts. A
/// conflict is settled by an ordinary change that saw every side.
public struct Conflict: Sendable, Hashable, Identifiable {
    /// One side: a change, and the value it wrote (for a field conflict).
    public struct Side: Sendable, Hashable {
        /// The change that makes this side.
        public var stamp: ChangeStamp
        /// The value the change wrote, for a field conflict; ``Value/null`` for the sides of a delete conflict.
        public var value: Value
        /// True for the delete of a delete-against-update conflict.
        public var deletes: Bool
        /// For a side of a held record's conflict: the record whose reference to this one holds it.
        public var referrer: Referrer?

        /// A side: the change's stamp, the value it wrote, whether it is the delete, and the record holding it.
        public init(stamp: ChangeStamp, value: Value, deletes: Bool, referrer: Referrer? = nil) {
            self.stamp = stamp
            self.value = value
            self.deletes = deletes
            self.referrer = referrer
        }
    }

    /// A record that refers to the conflict's record.
    public struct Referrer: Sendable, Hashable {
        /// The entity of the referring record.
        public var entity: String
        /// The id of the referring record.
        public var record: String

        /// The record with id `record` of `entity`.
        public init(entity: String, record: String) {
            self.entity = entity
            self.record = record
        }
    }

    /// The entity of the conflict's record.
    public var entity: String
    /// The id of the conflict's record.
    public var recordID: String
    /// The field; nil for a delete against an update.
    public var field: String?
    /// The sides, oldest first; the last one's value shows until the conflict is settled.
    public var sides: [Side]

    /// `record-id/field`, or `record-id/-` for a delete conflict: the same on every peer.
    public var id: String { "\(recordID)/\(field ?? "-")" }
}

extension Conflict {
    /// The sides as stored and sent: `[{"device","sequence","hlc","value","delete"}]`, and for a
    /// side that is a reference from another record, `"referrer": {"entity","record"}`.
    public var sidesJSON: JSON {
        .array(
            sides.map { side in
                var pairs: [(key: String, value: JSON)] = [
                    ("device", .string(side.stamp.device)), ("sequence", .int(side.stamp.sequence)),
                    ("hlc", .int(Int64(bitPattern: side.stamp.timestamp.rawValue))), ("value", side.value.json),
                    ("delete", .bool(side.deletes)),
                ]
                if let referrer = side.referrer {
                    pairs.append(
                        (
                            "referrer",
                            .object([("entity", .string(referrer.entity)), ("record", .string(referrer.record))])
                        ))
                }
                return .object(pairs)
            })
    }
}
