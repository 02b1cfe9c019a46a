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
        out.append(contentsOf: #"{"seq":"#.utf8)
        JSON.writeInt(sequence, to: &out)
        out.append(contentsOf: #","entity":"#.utf8)
        entity.write(to: &out)
        out.append(contentsOf: #","id":"#.utf8)
        recordID.write(to: &out)
        switch operation {
        case .insert: out.append(contentsOf: #","op":"insert","hlc":"#.utf8)
        case .update: out.append(contentsOf: #","op":"update","hlc":"#.utf8)
        case .delete: out.append(contentsOf: #","op":"delete","hlc":"#.utf8)
        }
        JSON.writeInt(hlc, to: &out)
        out.append(contentsOf: #","base":"#.utf8)
        JSON.writeInt(base, to: &out)
        out.append(contentsOf: #","fields":"#.utf8)
        fields(&out)
        if let origin {
            out.append(contentsOf: #","device":"#.utf8)
            origin.device.write(to: &out)
            if let serverSequence = origin.serverSequence {
                out.append(contentsOf: #","sseq":"#.utf8)
                JSON.writeInt(serverSequence, to: &out)
            }
            if let author = origin.author {
                out.append(contentsOf: #","author":"#.utf8)
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
        func path() -> String { "changes[\(number)]" }
        func bad(_ what: String) -> WireError { WireError(.badMessage, "\(path()): \(what)") }
        guard tape.kind(index) == .object else { throw bad("a change must be an object") }
        var next = index + 1  // members are looked for in the order peers write them
        guard let s = tape.member(index, "seq", hint: &next), let seq = tape.int(s), seq >= 1 else {
            throw bad("'seq' must be an integer ≥ 1")
        }
        guard let e = tape.member(index, "entity", hint: &next), tape.kind(e) == .string else {
            throw bad("'entity' must be a string")
        }
        guard let entity = schema.entities.first(where: { tape.stringEquals(e, utf8: $0.nameUTF8) }) else {
            throw WireError(
                .unknownEntity,
                "\(path()): no entity '\(tape.string(e)!)' (entities: \(schema.entities.map(\.name).joined(separator: ", ")))"
            )
        }
        guard let i = tape.member(index, "id", hint: &next), let id = UUIDText.canonical(tape, i) else {
            throw bad("'id' must be a UUID")
        }
        let operation: ChangeOperation
        guard let o = tape.member(index, "op", hint: &next) else {
            throw bad("'op' must be \"insert\", \"update\" or \"delete\"")
        }
        if tape.stringEquals(o, "insert") {
            operation = .insert
        } else if tape.stringEquals(o, "update") {
            operation = .update
        } else if tape.stringEquals(o, "delete") {
            operation = .delete
        } else {
            throw bad("'op' must be \"insert\", \"update\" or \"delete\"")
        }
        guard let h = tape.member(index, "hlc", hint: &next), let hlc = tape.int(h), hlc >= 0 else {
            throw bad("'hlc' must be an integer ≥ 0")
        }
        guard let b = tape.member(index, "base", hint: &next), let base = tape.int(b), base >= 0 else {
            throw bad("'base' must be an integer ≥ 0")
        }
        guard let f = tape.member(index, "fields", hint: &next) else { throw bad("'fields' is missing") }
        guard tape.kind(f) == .object else {
            throw WireError(.invalidValue, "\(path()): field changes must be an object")
        }
        var fields: [FieldChange] = []
        fields.reserveCapacity(Int(tape[f].length))
        var hint = 0
        for key in tape.keys(f) {
            guard let field = tape.field(key, in: entity, hint: &hint) else {
                throw WireError(
                    .unknownField,
                    "\(path()): \(entity.name) has no field '\(tape.string(key)!)' (fields: \(entity.fields.map(\.name).joined(separator: ", ")))"
                )
            }
            do {
                fields.append(try FieldChange.decode(tape, key + 1, field: field, entity: entity.name))
            } catch {
                throw WireError(.invalidValue, "\(path()): \(error.reason)")
            }
        }
        var origin = device
        var serverSequence: Int64?
        var author: String?
        if device == nil {
            guard let d = tape.member(index, "device", hint: &next) else { throw bad("'device' must be a UUID") }
            if let known = names.device, tape.stringEquals(d, known) {
                origin = known
            } else {
                guard let canonical = UUIDText.canonical(tape, d) else { throw bad("'device' must be a UUID") }
                origin = canonical
                names.device = canonical
            }
            guard let s = tape.member(index, "sseq", hint: &next), let sseq = tape.int(s) else {
                throw bad("'sseq' must be an integer")
            }
            serverSequence = sseq
            if let a = tape.member(index, "author", hint: &next) {
                if let known = names.author, tape.stringEquals(a, known) {
                    author = known
                } else {
                    author = tape.string(a)
                    names.author = author
                }
            }
        }
        self.init(
            sequence: seq, device: origin!, entity: entity.name, recordID: id, operation: operation,
            timestamp: HybridTimestamp(rawValue: UInt64(hlc)), base: base, fields: fields,
            serverSequence: serverSequence, author: author)
        if let problem = validity(entity) { throw WireError(.invalidChange, "\(path()): \(problem)") }
    }
}
