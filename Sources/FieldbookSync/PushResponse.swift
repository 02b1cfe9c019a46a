public import FieldbookJSON

/// The server's answer to a push: the server sequence number of each change.
/// A retried push gets the same answer.
public struct PushResponse: Sendable, Hashable {
    /// For each change pushed, in order: its device sequence number and its server sequence number.
    public var assigned: [Assignment]
    /// The server's identity: the numbering ``Assignment/serverSequence`` counts in. Nil from a server that sends none.
    public var server: String?
    /// The changes of ``assigned`` the server took but did not merge: the token's role may not make
    /// them. In push order; empty for most pushes.
    public var rejected: [Rejection] = []
    /// The newest schema version the server holds, when it read the push in an earlier one and
    /// translated it (docs/protocol.md, "Schema versions"): its inserts were given the defaults of
    /// the fields their version lacks, which the device gives them too when it upgrades.
    public var newestSchema: Int?

    /// The two numbers of one change pushed.
    public struct Assignment: Sendable, Hashable {
        /// The device's sequence number of the change.
        public var sequence: Int64
        /// The server's sequence number for the change.
        public var serverSequence: Int64
        /// The change with device sequence number `sequence` has server sequence number `serverSequence`.
        public init(sequence: Int64, serverSequence: Int64) {
            self.sequence = sequence
            self.serverSequence = serverSequence
        }
    }

    /// An answer assigning `assigned`; `server` is the server's identity, nil from a server that sends none.
    public init(assigned: [Assignment], server: String? = nil, rejected: [Rejection] = []) {
        self.assigned = assigned
        self.server = server
        self.rejected = rejected
    }
}

extension PushResponse {
    /// The message as JSON: `protocol`, `assigned` as `[sequence, serverSequence]` pairs, `server`
    /// when set, `rejected` when not empty.
    public var json: JSON {
        .object(
            [
                ("protocol", .int(Int64(SyncProtocol.version))),
                ("assigned", .array(assigned.map { .array([.int($0.sequence), .int($0.serverSequence)]) })),
            ] + (server.map { [("server", .string($0))] } ?? [])
                + (rejected.isEmpty ? [] : [("rejected", .array(rejected.map(\.json)))])
                + (newestSchema.map { [("newest_schema", .int(Int64($0)))] } ?? []))
    }

    /// Appends the message's JSON text (the bytes of `json.serialized`) to `out`.
    public func encode(to out: inout [UInt8]) {
        out.append(contentsOf: #"{"protocol":"#.utf8)
        JSON.writeInt(Int64(SyncProtocol.version), to: &out)
        out.append(contentsOf: #","assigned":["#.utf8)
        for (n, pair) in assigned.enumerated() {
            out.append(contentsOf: n > 0 ? ",[".utf8 : "[".utf8)
            JSON.writeInt(pair.sequence, to: &out)
            out.append(UInt8(ascii: ","))
            JSON.writeInt(pair.serverSequence, to: &out)
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "]"))
        if let server {
            out.append(contentsOf: #","server":"#.utf8)
            JSON.writeString(server, to: &out)
        }
        if !rejected.isEmpty {
            out.append(contentsOf: #","rejected":"#.utf8)
            JSON.array(rejected.map(\.json)).write(to: &out)
        }
        if let newestSchema {
            out.append(contentsOf: #","newest_schema":"#.utf8)
            JSON.writeInt(Int64(newestSchema), to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// Reads a push response from JSON; throws ``WireError`` if it is not one.
    public init(json: JSON) throws(WireError) {
        var bytes: [UInt8] = []
        json.write(to: &bytes)
        try self.init(utf8: bytes)
    }

    /// Reads a push response from its JSON text.
    public init(utf8 bytes: [UInt8]) throws(WireError) {
        let tape = try JSONTape(wire: bytes)
        server = try Message(tape, expecting: nil).serverIdentity()
        guard let list = tape.member(0, "assigned"), tape.kind(list) == .array else {
            throw WireError(.badMessage, "'assigned' must be an array")
        }
        var assigned: [Assignment] = []
        assigned.reserveCapacity(Int(tape[list].length))
        for item in tape.elements(list) {
            guard tape.kind(item) == .array, tape[item].length == 2, let seq = tape.int(item + 1),
                let sseq = tape.int(item + 2)
            else { throw WireError(.badMessage, "'assigned' holds [sequence, serverSequence] pairs") }
            assigned.append(Assignment(sequence: seq, serverSequence: sseq))
        }
        self.assigned = assigned
        if let list = tape.member(0, "rejected") {
            guard tape.kind(list) == .array else { throw WireError(.badMessage, "'rejected' must be an array") }
            for item in tape.elements(list) { rejected.append(try Rejection(tape, at: item)) }
        }
        if let v = tape.member(0, "newest_schema") {
            guard let version = tape.int(v), version > 0, version <= Int64(Int32.max) else {
                throw WireError(.badMessage, "'newest_schema' must be a schema version")
            }
            newestSchema = Int(version)
        }
    }
}
