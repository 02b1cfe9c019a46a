public import FieldbookCore
public import FieldbookJSON

/// A device asks for the changes after its cursor.
public struct PullRequest: Sendable, Hashable {
    /// The schema the device holds; a server holding another refuses the pull (`schema_mismatch`).
    public var schema: SchemaVersion
    /// The id of the device asking (a UUID).
    public var device: String
    /// The last server sequence number the device has applied (0 at first).
    public var cursor: Int64
    /// At most this many changes.
    public var limit: Int
    /// The server identity ``cursor`` counts in; nil if the device has none yet. A server with
    /// another identity refuses the pull (`server_changed`).
    public var server: String?
    /// The scope generation of the token the device's records were pulled under
    /// (``PullResponse/scopeGeneration``); nil if it has none yet. When the token has since been
    /// rescoped, a pull from a cursor past 0 is refused (`scope_changed`).
    public var scopeGeneration: Int64?
    /// The newest schema version the device has read (its own, or a newer one the server announced
    /// and the device fetched): a server that holds a newer one answers with an empty page that
    /// announces it (``PullResponse/newestSchema``), so that the device reads it before any page
    /// that may hold its enum values. Nil from a device that predates versions across the fleet.
    public var knownSchema: Int?

    /// A request for at most `limit` changes after `cursor`; `server` is nil when the device has none yet.
    public init(schema: SchemaVersion, device: String, cursor: Int64, limit: Int, server: String? = nil) {
        self.schema = schema
        self.device = device
        self.cursor = cursor
        self.limit = limit
        self.server = server
    }
}

extension PullRequest {
    /// The message as JSON: `protocol`, `schema`, `device`, `cursor`, `limit`, and `server`,
    /// `scope` (``scopeGeneration``) and `known_schema` when set.
    public var json: JSON {
        .object(
            [
                ("protocol", .int(Int64(SyncProtocol.version))),
                ("schema", schema.json),
                ("device", .string(device)),
                ("cursor", .int(cursor)),
                ("limit", .int(Int64(limit))),
            ] + (server.map { [("server", .string($0))] } ?? [])
                + (scopeGeneration.map { [("scope", .int($0))] } ?? [])
                + (knownSchema.map { [("known_schema", .int(Int64($0)))] } ?? []))
    }

    /// Appends the message's JSON text (the bytes of `json.serialized`) to `out`.
    public func encode(to out: inout [UInt8]) {
        json.write(to: &out)
    }

    /// Reads a pull request for `schema` from JSON; throws ``WireError`` if it is not one.
    public init(json: JSON, schema: Schema) throws(WireError) {
        var bytes: [UInt8] = []
        json.write(to: &bytes)
        try self.init(utf8: bytes, schema: schema)
    }

    /// Reads a pull request from its JSON text.
    public init(utf8 bytes: [UInt8], schema: Schema) throws(WireError) {
        let tape = try JSONTape(wire: bytes)
        let message = try Message(tape, expecting: schema)
        device = try message.deviceID()
        server = try message.serverIdentity()
        self.schema = SchemaVersion(schema)
        guard let c = tape.member(0, "cursor"), let cursor = tape.int(c), cursor >= 0 else {
            throw WireError(.badMessage, "'cursor' must be an integer ≥ 0")
        }
        self.cursor = cursor
        if let l = tape.member(0, "limit") {
            guard let limit = tape.int(l), limit >= 1 else {
                throw WireError(.badMessage, "'limit' must be an integer ≥ 1")
            }
            self.limit = Int(clamping: limit)
        } else {
            limit = 1000
        }
        scopeGeneration = try message.scopeGeneration()
        if let k = tape.member(0, "known_schema") {
            guard let known = tape.int(k), known >= 1, known <= Int64(Int32.max) else {
                throw WireError(.badMessage, "'known_schema' must be a schema version")
            }
            knownSchema = Int(known)
        }
    }
}
