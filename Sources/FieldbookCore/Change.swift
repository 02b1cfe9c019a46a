public import FieldbookJSON

/// What a change did to a record.
public enum ChangeOperation: Int, Sendable, Hashable, CustomStringConvertible {
    case insert = 0
    case update = 1
    case delete = 2

    /// The operation's name: `insert`, `update` or `delete`.
    public var description: String {
        switch self {
        case .insert: "insert"
        case .update: "update"
        case .delete: "delete"
        }
    }
}

/// The change to one field: a new value, an amount added to a counter, or
/// members added to and removed from a set.
///
/// A change to an `observed` field carries the domain time it was observed at
/// (the record's `observedBy` value when written); a change to a `max` field
/// with an epoch carries the epoch. Merging compares these, so every peer
/// merges the same change the same way whenever it arrives.
public struct FieldChange: Sendable, Hashable {
    /// What a change does to its field.
    public enum Kind: Sendable, Hashable {
        case set(Value)
        case add(Int64)
        /// For a `union` set: members added and removed (each sorted).
        case members(added: [String], removed: [String])
    }

    /// The name of the field changed.
    public var field: String
    /// What the change does: set a value, add to a counter, or add and remove set members.
    public var kind: Kind
    /// For an `observed` field: the domain time of the observation.
    public var observedAt: String?
    /// For a `max` field with an epoch: the epoch when written.
    public var epoch: Int64?

    /// A change to `field`, with the annotations its policy needs (nil for the others).
    public init(field: String, kind: Kind, observedAt: String? = nil, epoch: Int64? = nil) {
        self.field = field
        self.kind = kind
        self.observedAt = observedAt
        self.epoch = epoch
    }

    /// The value the change sets, or nil for a counter's delta or a set's members.
    public var setValue: Value? {
        if case .set(let value) = kind { return value }
        return nil
    }

    /// The field's value after this change, given its value before.
    public func applied(to old: Value) -> Value {
        switch kind {
        case .set(let value): return value
        case .add(let delta):
            if case .integer(let i) = old { return .integer(i &+ delta) }
            return .integer(delta)
        case .members(let added, let removed):
            var members: Set<String> = []
            if case .textSet(let current) = old { members = Set(current) }
            members.formUnion(added)
            members.subtract(removed)
            return .set(members)
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
    /// The entity of the record changed.
    public var entity: String
    /// The id of the record changed.
    public var recordID: String
    /// Whether the change inserted, updated or deleted the record.
    public var operation: ChangeOperation
    /// When the device made the change, on its hybrid logical clock.
    public var timestamp: HybridTimestamp
    /// The server sequence number the device had pulled to when it wrote.
    public var base: Int64
    /// The fields written, in schema order. Empty for a delete.
    public var fields: [FieldChange]
    /// The server's sequence number for this change, once the server has accepted it.
    public var serverSequence: Int64?
    /// The authenticated identity the server stamped on the change (a token's name).
    public var author: String?

    /// A change from its parts. `serverSequence` and `author` are nil until the server has accepted it.
    public init(
        sequence: Int64, device: String, entity: String, recordID: String, operation: ChangeOperation,
        timestamp: HybridTimestamp, base: Int64, fields: [FieldChange], serverSequence: Int64? = nil,
        author: String? = nil
    ) {
        self.serverSequence = serverSequence
        self.author = author
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
    /// Writes field changes as one JSON object. A plain value is written as is;
    /// the other forms are objects (field values are never objects):
    /// `{"+":1}` a counter delta, `{"add":[…],"remove":[…]}` set members,
    /// `{"=":…,"at":"2021-09-02","epoch":1}` a value with its annotations.
    public static func encode(_ changes: [FieldChange], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        for (n, change) in changes.enumerated() {
            if n > 0 { out.append(UInt8(ascii: ",")) }
            JSON.writeString(change.field, to: &out)
            out.append(UInt8(ascii: ":"))
            change.writeJSON(to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// This change's value part as a JSON tree (the same form as ``writeJSON(to:)``).
    public var valueJSON: JSON {
        switch kind {
        case .add(let delta): return .object([("+", .int(delta))])
        case .members(let added, let removed):
            return .object([("add", Value.textSet(added).json), ("remove", Value.textSet(removed).json)])
        case .set(let value):
            if observedAt == nil && epoch == nil { return value.json }
            var pairs: [(key: String, value: JSON)] = [("=", value.json)]
            if let observedAt { pairs.append(("at", .string(observedAt))) }
            if let epoch { pairs.append(("epoch", .int(epoch))) }
            return .object(pairs)
        }
    }

    /// The changes as the text ``encode(_:to:)`` writes: what stores keep and compare.
    public static func text(_ changes: [FieldChange]) -> String {
        var bytes: [UInt8] = []
        encode(changes, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes this change's value part (see ``encode(_:to:)``).
    public func writeJSON(to out: inout [UInt8]) {
        switch kind {
        case .add(let delta):
            out.append(contentsOf: #"{"+":"#.utf8)
            JSON.writeInt(delta, to: &out)
            out.append(UInt8(ascii: "}"))
        case .members(let added, let removed):
            out.append(contentsOf: #"{"add":"#.utf8)
            Value.textSet(added).writeJSON(to: &out)
            out.append(contentsOf: #","remove":"#.utf8)
            Value.textSet(removed).writeJSON(to: &out)
            out.append(UInt8(ascii: "}"))
        case .set(let value):
            if observedAt == nil && epoch == nil {
                value.writeJSON(to: &out)
                return
            }
            out.append(contentsOf: #"{"=":"#.utf8)
            value.writeJSON(to: &out)
            if let observedAt {
                out.append(contentsOf: #","at":"#.utf8)
                JSON.writeString(observedAt, to: &out)
            }
            if let epoch {
                out.append(contentsOf: #","epoch":"#.utf8)
                JSON.writeInt(epoch, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Reads the JSON object written by ``encode(_:to:)`` for a record of `entity`,
    /// checking each field exists and each value fits it.
    public static func decode(_ json: JSON, entity: Entity) throws(ValueProblem) -> [FieldChange] {
        var bytes: [UInt8] = []
        json.write(to: &bytes)
        return try decode(utf8: bytes, entity: entity)
    }

    /// Reads the JSON text written by ``encode(_:to:)`` for a record of `entity`,
    /// checking each field exists and each value fits it.
    public static func decode(utf8 bytes: [UInt8], entity: Entity) throws(ValueProblem) -> [FieldChange] {
        let tape: JSONTape
        do {
            tape = try JSONTape(parsing: bytes)
        } catch {
            throw ValueProblem(kind: .wrongType, reason: "field changes must be JSON (\(error))")
        }
        return try decode(tape, 0, entity: entity)
    }

    /// Reads the field changes object at `index` of `tape`.
    package static func decode(_ tape: JSONTape, _ index: Int, entity: Entity) throws(ValueProblem) -> [FieldChange] {
        guard tape.kind(index) == .object else {
            throw ValueProblem(kind: .wrongType, reason: "field changes must be an object")
        }
        var changes: [FieldChange] = []
        changes.reserveCapacity(Int(tape[index].length))
        var hint = 0
        for key in tape.keys(index) {
            guard let field = tape.field(key, in: entity, hint: &hint) else {
                throw ValueProblem(kind: .notAllowed, reason: "\(entity.name) has no field '\(tape.string(key)!)'")
            }
            changes.append(try decode(tape, key + 1, field: field, entity: entity.name))
        }
        return changes
    }

    package static func decode(_ tape: JSONTape, _ index: Int, field: Field, entity: String) throws(ValueProblem)
        -> FieldChange
    {
        func fail(_ reason: String) -> ValueProblem {
            ValueProblem(kind: .wrongType, reason: "\(entity).\(field.name): \(reason)")
        }
        func normalized(_ index: Int) throws(ValueProblem) -> Value {
            do {
                return try field.normalize(Value(tape, index, for: field.type))
            } catch {
                throw ValueProblem(kind: error.kind, reason: "\(entity).\(field.name): \(error.reason)")
            }
        }
        guard tape.kind(index) == .object else {
            return FieldChange(field: field.name, kind: .set(try normalized(index)))
        }
        let plus = tape.member(index, "+")
        let count = Int(tape[index].length)
        if count == 1, let plus {
            guard let delta = tape.int(plus), case .counter = field.policy else {
                throw fail("a counter delta needs an integer and a counter field")
            }
            return FieldChange(field: field.name, kind: .add(delta))
        }
        if count == 2, let add = tape.member(index, "add"), let remove = tape.member(index, "remove") {
            guard case .union = field.policy, case .textSet(let added) = try normalized(add),
                case .textSet(let removed) = try normalized(remove)
            else { throw fail("set members need two lists of text and a union field") }
            return FieldChange(field: field.name, kind: .members(added: added, removed: removed))
        }
        let value = tape.member(index, "=")
        let at = tape.member(index, "at")
        let epoch = tape.member(index, "epoch")
        guard let value, count == 1 + (at == nil ? 0 : 1) + (epoch == nil ? 0 : 1) else {
            let keys = tape.keys(index).map { tape.string($0)! }
            throw fail("unknown change form (keys: \(keys.sorted().joined(separator: ", ")))")
        }
        var change = FieldChange(field: field.name, kind: .set(try normalized(value)))
        if let at {
            switch tape.kind(at) {
            case .string: change.observedAt = tape.string(at)
            case .null: break
            default: throw fail("'at' must be a date or timestamp")
            }
        }
        if let epoch {
            guard let e = tape.int(epoch) else { throw fail("'epoch' must be an integer") }
            change.epoch = e
        }
        return change
    }
}

extension JSONTape {
    /// The field of `entity` named by the string at `index`, compared without making a string.
    /// The search starts at `hint`, the
    /// position after the field found last: changes and states name fields in schema order, so
    /// the next one is usually the first looked at.
    package func field(_ index: Int, in entity: Entity, hint: inout Int) -> Field? {
        fieldPosition(index, in: entity, hint: &hint).map { entity.fields[$0] }
    }

    /// The position in `entity`'s fields of the field named by the string at `index` (see ``field(_:in:hint:)``).
    package func fieldPosition(_ index: Int, in entity: Entity, hint: inout Int) -> Int? {
        let token = self[index]
        guard kind(index) == .string else { return nil }
        if token.escaped {
            guard let n = string(index).flatMap(entity.fieldIndex) else { return nil }
            hint = n + 1
            return n
        }
        let names = entity.fieldNames
        let length = Int(token.length)
        let found: Int? = bytes.withUnsafeBufferPointer { buffer in
            let key = UnsafeBufferPointer(rebasing: buffer[Int(token.start)..<Int(token.start) + length])
            var n = hint < names.count ? hint : 0
            for _ in 0..<names.count {
                let name = names[n]
                if name.count == length && name.withUnsafeBufferPointer({ $0.elementsEqual(key) }) { return n }
                n = n + 1 == names.count ? 0 : n + 1
            }
            return nil
        }
        guard let found else { return nil }
        hint = found + 1
        return found
    }
}

extension UUIDText {
    /// The canonical form of the UUID in the string at `index` of `tape`.
    package static func canonical(_ tape: JSONTape, _ index: Int) -> String? {
        tape.string(index).flatMap { canonical($0) }
    }
}
