/// What a change did to a record.
public enum ChangeOperation: Int, Sendable, Hashable, CustomStringConvertible {
    case insert = 0
    case update = 1
    case delete = 2

    public var description: String {
        switch self {
        case .insert: "insert"
        case .update: "update"
        case .delete: "delete"
        }
    }
}

/// The change to one field: a new value, or for a `counter` field the amount added.
public struct FieldChange: Sendable, Hashable {
    /// A new value, or an amount added to a counter.
    public enum Kind: Sendable, Hashable {
        case set(Value)
        case add(Int64)
    }

    public var field: String
    public var kind: Kind

    public init(field: String, kind: Kind) {
        self.field = field
        self.kind = kind
    }

    /// The field's value after this change, given its value before.
    public func applied(to old: Value) -> Value {
        switch kind {
        case .set(let value): return value
        case .add(let delta):
            if case .integer(let i) = old { return .integer(i &+ delta) }
            return .integer(delta)
        }
    }
}

/// One entry of a device's changelog: one write to one record, as field-level
/// changes that share the write's timestamp, device and sequence number.
///
/// `(device, sequence)` identifies a change everywhere; `base` is the server
/// cursor the device had pulled to when it wrote — every server change at or
/// below it was visible to the writer, so only later ones are concurrent.
public struct Change: Sendable, Hashable {
    /// The device's sequence number for this change: 1, 2, 3, … with no gaps.
    public var sequence: Int64
    /// The id of the device that made the change.
    public var device: String
    public var entity: String
    public var recordID: String
    public var operation: ChangeOperation
    public var timestamp: HybridTimestamp
    /// The server sequence number the device had pulled to when it wrote.
    public var base: Int64
    /// The fields written, in schema order. Empty for a delete.
    public var fields: [FieldChange]

    public init(
        sequence: Int64, device: String, entity: String, recordID: String, operation: ChangeOperation,
        timestamp: HybridTimestamp, base: Int64, fields: [FieldChange]
    ) {
        self.sequence = sequence
        self.device = device
        self.entity = entity
        self.recordID = recordID
        self.operation = operation
        self.timestamp = timestamp
        self.base = base
        self.fields = fields
    }
}

extension FieldChange {
    /// Writes field changes as one JSON object: `{"status":"completed","reopen_count":{"+":1}}`.
    public static func encode(_ changes: [FieldChange], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        for (n, change) in changes.enumerated() {
            if n > 0 { out.append(UInt8(ascii: ",")) }
            JSON.writeString(change.field, to: &out)
            out.append(UInt8(ascii: ":"))
            switch change.kind {
            case .set(let value): value.writeJSON(to: &out)
            case .add(let delta):
                out.append(contentsOf: Array(#"{"+":"#.utf8))
                JSON.writeInt(delta, to: &out)
                out.append(UInt8(ascii: "}"))
            }
        }
        out.append(UInt8(ascii: "}"))
    }

    /// Reads the JSON object written by ``encode(_:to:)`` for a record of `entity`.
    public static func decode(_ json: JSON, entity: Entity) throws -> [FieldChange] {
        guard case .object(let pairs) = json else {
            throw ValueProblem(kind: .wrongType, reason: "field changes must be an object")
        }
        return try pairs.map { pair in
            guard let field = entity.field(pair.key) else {
                throw ValueProblem(kind: .notAllowed, reason: "unknown field '\(pair.key)' of '\(entity.name)'")
            }
            if case .object = pair.value {
                guard case .int(let delta)? = pair.value["+"], field.policy == .counter else {
                    throw ValueProblem(kind: .wrongType, reason: "\(entity.name).\(field.name): bad counter delta")
                }
                return FieldChange(field: pair.key, kind: .add(delta))
            }
            return FieldChange(field: pair.key, kind: .set(try Value(json: pair.value, for: field.type)))
        }
    }
}
