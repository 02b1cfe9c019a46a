public import FieldbookCore
import FieldbookJSON

/// A device that has upgraded asks again for what its earlier version left out of the changes it
/// pulled: `POST /v1/catch-up` (docs/protocol.md, "Schema versions"). The server answers with the
/// changes up to ``until`` that the device received without some of their fields, or not at all
/// (an entity its version lacked), whole, a run of server sequence numbers at a time.
public struct CatchUpRequest: Sendable, Hashable {
    /// The schema the device holds now (the newer version).
    public var schema: SchemaVersion
    /// The device asking.
    public var device: String
    /// The version the device pulled with before it upgraded.
    public var from: Int
    /// Where the previous answer stopped (0 at first).
    public var after: Int64
    /// The device's cursor when it upgraded: nothing after it was pulled in the earlier version.
    public var until: Int64

    /// A request to catch up from version `from`, after server sequence number `after`, up to `until`.
    public init(schema: SchemaVersion, device: String, from: Int, after: Int64, until: Int64) {
        self.schema = schema
        self.device = device
        self.from = from
        self.after = after
        self.until = until
    }

    /// Appends the message's JSON text.
    public func encode(to out: inout [UInt8]) {
        JSON.object([
            ("protocol", .int(Int64(SyncProtocol.version))), ("schema", schema.json), ("device", .string(device)),
            ("from", .int(Int64(from))), ("after", .int(after)), ("until", .int(until)),
        ]).write(to: &out)
    }

    /// Reads a catch-up request for `schema` from its JSON text.
    public init(utf8 bytes: [UInt8], schema: Schema) throws(WireError) {
        let tape = try JSONTape(wire: bytes)
        let message = try Message(tape, expecting: schema)
        device = try message.deviceID()
        self.schema = SchemaVersion(schema)
        guard let f = tape.member(0, "from"), let from = tape.int(f), from >= 1, from < Int64(schema.version),
            let a = tape.member(0, "after"), let after = tape.int(a), after >= 0,
            let u = tape.member(0, "until"), let until = tape.int(u), until >= after
        else {
            throw WireError(
                .badMessage,
                "a catch-up names 'from' (an earlier schema version), 'after' ≥ 0 and 'until' ≥ 'after'")
        }
        self.from = Int(from)
        self.after = after
        self.until = until
    }
}

/// The answer to a ``CatchUpRequest``.
public struct CatchUpResponse: Sendable, Hashable {
    /// The changes, whole, in ascending server order, each with its origin.
    public var changes: [Change]
    /// Where this answer stopped: the next request goes on after it.
    public var after: Int64
    /// Whether the answer reached the request's `until`.
    public var done: Bool

    /// An answer of `changes`, stopped at `after`.
    public init(changes: [Change], after: Int64, done: Bool) {
        self.changes = changes
        self.after = after
        self.done = done
    }

    /// Appends the message's JSON text.
    public func encode(to out: inout [UInt8]) {
        out.append(contentsOf: #"{"protocol":"#.utf8)
        JSON.writeInt(Int64(SyncProtocol.version), to: &out)
        out.append(contentsOf: #","changes":["#.utf8)
        for (n, change) in changes.enumerated() {
            if n > 0 { out.append(UInt8(ascii: ",")) }
            change.encodeWire(to: &out, withOrigin: true)
        }
        out.append(contentsOf: #"],"after":"#.utf8)
        JSON.writeInt(after, to: &out)
        out.append(contentsOf: #","done":"#.utf8)
        JSON.writeBool(done, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// Reads an answer, checking every change against `schema`.
    public init(utf8 bytes: [UInt8], schema: Schema) throws(WireError) {
        let tape = try JSONTape(wire: bytes)
        _ = try Message(tape, expecting: nil)
        guard let list = tape.member(0, "changes"), tape.kind(list) == .array,
            let a = tape.member(0, "after"), let after = tape.int(a),
            let d = tape.member(0, "done"), let done = tape.bool(d)
        else { throw WireError(.badMessage, "a catch-up answer has 'changes', 'after' and 'done'") }
        var changes: [Change] = []
        var names = Change.WireNames()
        for (n, item) in tape.elements(list).enumerated() {
            changes.append(try Change(wire: tape, item, schema: schema, device: nil, number: n, names: &names))
        }
        self.changes = changes
        self.after = after
        self.done = done
    }
}

extension SchemaTranslation {
    /// Whether `change`, read in ``newer``, loses anything in ``older``: its entity, or a field.
    public func loses(_ change: Change) -> Bool {
        guard let downgraded = downgrade(change) else { return true }
        return downgraded.fields.count < change.fields.count
    }
}
