public import FieldbookCore
public import FieldbookJSON

/// A text part of a change for ``Change/encodeWire(to:sequence:entity:recordID:operation:hlc:base:fields:origin:)``:
/// a string, or UTF-8 bytes straight from a database row (no `String` made for them).
package enum WireText {
    case string(String)
    case utf8(UnsafeBufferPointer<UInt8>)

    func write(to out: inout [UInt8]) {
        switch self {
        case .string(let text): JSON.writeString(text, to: &out)
        case .utf8(let bytes): JSON.writeString(utf8: bytes, to: &out)
        }
    }
}

extension Change {
    /// The change as a protocol object. With `withOrigin`, also its device, server sequence number and author.
    public func wireJSON(withOrigin: Bool) -> JSON {
        var pairs: [(key: String, value: JSON)] = [
            ("seq", .int(sequence)),
            ("entity", .string(entity)),
            ("id", .string(recordID)),
            ("op", .string(operation.description)),
            ("hlc", .int(Int64(bitPattern: timestamp.rawValue))),
            ("base", .int(base)),
            ("fields", fieldsJSON),
        ]
        if withOrigin {
            pairs.append(("device", .string(device)))
            if let serverSequence { pairs.append(("sseq", .int(serverSequence))) }
            if let author { pairs.append(("author", .string(author))) }
        }
        return .object(pairs)
    }

    /// Appends the protocol object (the bytes of `wireJSON(withOrigin:).serialized`) to `out`.
    public func encodeWire(to out: inout [UInt8], withOrigin: Bool) {
        Self.encodeWire(
            to: &out, sequence: sequence, entity: .string(entity), recordID: .string(recordID), operation: operation,
            hlc: Int64(bitPattern: timestamp.rawValue), base: base,
            fields: { FieldChange.encode(fields, to: &$0) },
            origin: withOrigin ? (.string(device), serverSequence, author.map(WireText.string)) : nil)
    }

    /// Appends a change's protocol object from its parts; `fields` appends the field changes' object
    /// (for a peer that stores them as the text of ``FieldChange/encode(_:to:)``, that text as it is).
    package static func encodeWire(
        to out: inout [UInt8], sequence: Int64, entity: WireText, recordID: WireText, operation: ChangeOperation,
        hlc: Int64,
        base: Int64, fields: (inout [UInt8]) -> Void,
        origin: (device: WireText, serverSequence: Int64?, author: WireText?)?
    ) {
        JSON.writeLiteral(#"{"seq":"#, to: &out)
        JSON.writeInt(sequence, to: &out)
        JSON.writeLiteral(#","entity":"#, to: &out)
        entity.write(to: &out)
        JSON.writeLiteral(#","id":"#, to: &out)
        recordID.write(to: &out)
        switch operation {
        case .insert: JSON.writeLiteral(#","op":"insert","hlc":"#, to: &out)
        case .update: JSON.writeLiteral(#","op":"update","hlc":"#, to: &out)
        case .delete: JSON.writeLiteral(#","op":"delete","hlc":"#, to: &out)
        }
        JSON.writeInt(hlc, to: &out)
        JSON.writeLiteral(#","base":"#, to: &out)
        JSON.writeInt(base, to: &out)
        JSON.writeLiteral(#","fields":"#, to: &out)
        fields(&out)
        if let origin {
            JSON.writeLiteral(#","device":"#, to: &out)
            origin.device.write(to: &out)
            if let serverSequence = origin.serverSequence {
                JSON.writeLiteral(#","sseq":"#, to: &out)
                JSON.writeInt(serverSequence, to: &out)
            }
            if let author = origin.author {
                JSON.writeLiteral(#","author":"#, to: &out)
                author.write(to: &out)
            }
        }
        out.append(UInt8(ascii: "}"))
    }

    /// The field changes as the JSON object of ``FieldChange/encode(_:to:)``.
    public var fieldsJSON: JSON {
        .object(fields.map { ($0.field, $0.valueJSON) })
    }

    /// The device id and author of the change read last: the next change of a page is most often
    /// from the same device and person, and then shares their strings instead of making its own.
    struct WireNames {
        var device: String?
        var author: String?
    }

    /// Reads the change object at `index` of a message, checking it against `schema`. `device` is
    /// the pushing device; nil when the change carries its own (a pulled change). `number` is its
    /// position in the message, for error messages; `names` carries strings from one change to the next.
    init(wire tape: JSONTape, _ index: Int, schema: Schema, device: String?, number: Int, names: inout WireNames)
        throws(WireError)
    {
        guard tape.kind(index) == .object else { throw Self.badWire(number, "a change must be an object") }
        var next = index + 1  // members are looked for in the order peers write them
        guard let s = tape.member(index, "seq", hint: &next), let seq = tape.int(s), seq >= 1 else {
            throw Self.badWire(number, "'seq' must be an integer ≥ 1")
        }
        let entity = try Self.wireEntity(tape, index, schema: schema, number: number, next: &next)
        guard let i = tape.member(index, "id", hint: &next), let id = UUIDText.canonical(tape, i) else {
            throw Self.badWire(number, "'id' must be a UUID")
        }
        let operation = try Self.wireOperation(tape, index, number: number, next: &next)
        guard let h = tape.member(index, "hlc", hint: &next), let hlc = tape.int(h), hlc >= 0 else {
            throw Self.badWire(number, "'hlc' must be an integer ≥ 0")
        }
        guard let b = tape.member(index, "base", hint: &next), let base = tape.int(b), base >= 0 else {
            throw Self.badWire(number, "'base' must be an integer ≥ 0")
        }
        let fields = try Self.wireFields(tape, index, entity: entity, number: number, next: &next)
        let origin: (device: String, serverSequence: Int64?, author: String?)
        if let device {
            origin = (device, nil, nil)
        } else {
            origin = try Self.wireOrigin(tape, index, number: number, next: &next, names: &names)
        }
        self.init(
            sequence: seq, device: origin.device, entity: entity.name, recordID: id, operation: operation,
            timestamp: HybridTimestamp(rawValue: UInt64(hlc)), base: base, fields: fields,
            serverSequence: origin.serverSequence, author: origin.author)
        if let problem = validity(entity) { throw WireError(.invalidChange, "\(Self.wirePath(number)): \(problem)") }
    }

    /// Where the change numbered `number` is in its message, for error messages: `changes[number]`.
    private static func wirePath(_ number: Int) -> String { "changes[\(number)]" }

    /// A `bad_message` error about the change numbered `number`, saying `what` is wrong.
    private static func badWire(_ number: Int, _ what: String) -> WireError {
        WireError(.badMessage, "\(wirePath(number)): \(what)")
    }

    /// The change's `entity` member, found in `schema`.
    private static func wireEntity(_ tape: JSONTape, _ index: Int, schema: Schema, number: Int, next: inout Int)
        throws(WireError) -> Entity
    {
        guard let e = tape.member(index, "entity", hint: &next), tape.kind(e) == .string else {
            throw badWire(number, "'entity' must be a string")
        }
        guard let entity = schema.entities.first(where: { tape.stringEquals(e, utf8: $0.nameUTF8) }) else {
            throw WireError(
                .unknownEntity,
                "\(wirePath(number)): no entity '\(tape.string(e)!)' (entities: \(schema.entities.map(\.name).joined(separator: ", ")))"
            )
        }
        return entity
    }

    /// The change's `op` member: `insert`, `update` or `delete`.
    private static func wireOperation(_ tape: JSONTape, _ index: Int, number: Int, next: inout Int)
        throws(WireError) -> ChangeOperation
    {
        guard let o = tape.member(index, "op", hint: &next) else {
            throw badWire(number, "'op' must be \"insert\", \"update\" or \"delete\"")
        }
        if tape.stringEquals(o, "insert") {
            return .insert
        } else if tape.stringEquals(o, "update") {
            return .update
        } else if tape.stringEquals(o, "delete") {
            return .delete
        } else {
            throw badWire(number, "'op' must be \"insert\", \"update\" or \"delete\"")
        }
    }

    /// The change's `fields` member: its field changes, each read by its field of `entity`.
    private static func wireFields(_ tape: JSONTape, _ index: Int, entity: Entity, number: Int, next: inout Int)
        throws(WireError) -> [FieldChange]
    {
        guard let f = tape.member(index, "fields", hint: &next) else { throw badWire(number, "'fields' is missing") }
        guard tape.kind(f) == .object else {
            throw WireError(.invalidValue, "\(wirePath(number)): field changes must be an object")
        }
        var fields: [FieldChange] = []
        fields.reserveCapacity(Int(tape[f].length))
        var hint = 0
        for key in tape.keys(f) {
            guard let field = tape.field(key, in: entity, hint: &hint) else {
                throw WireError(
                    .unknownField,
                    "\(wirePath(number)): \(entity.name) has no field '\(tape.string(key)!)' (fields: \(entity.fields.map(\.name).joined(separator: ", ")))"
                )
            }
            do {
                fields.append(try FieldChange.decode(tape, key + 1, field: field, entity: entity.name))
            } catch {
                throw WireError(.invalidValue, "\(wirePath(number)): \(error.reason)")
            }
        }
        return fields
    }

    /// A pulled change's `device`, `sseq` and `author` members; `names` lends the strings of the change read before.
    private static func wireOrigin(
        _ tape: JSONTape, _ index: Int, number: Int, next: inout Int, names: inout WireNames
    ) throws(WireError) -> (device: String, serverSequence: Int64?, author: String?) {
        let origin: String
        guard let d = tape.member(index, "device", hint: &next) else {
            throw badWire(number, "'device' must be a UUID")
        }
        if let known = names.device, tape.stringEquals(d, known) {
            origin = known
        } else {
            guard let canonical = UUIDText.canonical(tape, d) else { throw badWire(number, "'device' must be a UUID") }
            origin = canonical
            names.device = canonical
        }
        guard let s = tape.member(index, "sseq", hint: &next), let sseq = tape.int(s) else {
            throw badWire(number, "'sseq' must be an integer")
        }
        var author: String?
        if let a = tape.member(index, "author", hint: &next) {
            if let known = names.author, tape.stringEquals(a, known) {
                author = known
            } else {
                author = tape.string(a)
                names.author = author
            }
        }
        return (origin, sseq, author)
    }
}
