public import FieldbookCore
public import FieldbookJSON

/// One page of changes in server order. Apply them and store ``cursor`` in one transaction.
public struct PullResponse: Sendable, Hashable {
    /// Changes with server sequence numbers after the request's cursor, ascending;
    /// each carries its device, server sequence number and author.
    public var changes: [Change]
    /// The cursor to store after applying this page.
    public var cursor: Int64
    /// Whether more changes follow this page.
    public var more: Bool
    /// The server's identity: the numbering ``cursor`` and the changes' server sequence numbers count in.
    /// Nil from a server that sends none.
    public var server: String?
    /// The names of the devices whose changes are in the page, by device id, for those that sent one.
    public var deviceNames: [String: String]
    /// The role of the token that pulled (one of the schema's ``Schema/roles``): the device refuses
    /// locally the writes the schema's access rules do not let it make. Nil for a token without one.
    public var role: String?
    /// The scope keys of the token that pulled (`town=新度镇`, see ``Scope``); nil for a token that
    /// sees everything.
    public var scopes: [String]?
    /// The token's scope generation, which grows each time it is rescoped: the device sends it
    /// with its next pull (``PullRequest/scopeGeneration``). Nil from a token never scoped.
    public var scopeGeneration: Int64?
    /// The records that came into the token's scope: each with its whole history up to ``cursor``.
    /// The device replaces what it received of each with it.
    public var entered: [Entered] = []
    /// The records that left the token's scope: the device removes each (but for its own
    /// changes not yet pushed).
    public var left: [RecordRef] = []
    /// The newest schema version the server holds, when it is newer than the one the device pulled
    /// with (the page is in the device's version): the device may upgrade (docs/protocol.md,
    /// "Schema versions").
    public var newestSchema: Int?

    /// A record, by entity and id.
    public struct RecordRef: Sendable, Hashable {
        /// The record's entity.
        public var entity: String
        /// The record's id.
        public var id: String

        /// The record of `entity` with id `id`.
        public init(entity: String, id: String) {
            self.entity = entity
            self.id = id
        }
    }

    /// A record that came into the token's scope, with its history.
    public struct Entered: Sendable, Hashable {
        /// The record.
        public var record: RecordRef
        /// Every change of the record up to the page's cursor, ascending, each with its origin.
        public var changes: [Change]

        /// `record`, with its history `changes`.
        public init(record: RecordRef, changes: [Change]) {
            self.record = record
            self.changes = changes
        }
    }

    /// A page of `changes`, the cursor to store after applying them, and whether more follow.
    public init(
        changes: [Change], cursor: Int64, more: Bool, server: String? = nil, deviceNames: [String: String] = [:]
    ) {
        self.changes = changes
        self.cursor = cursor
        self.more = more
        self.server = server
        self.deviceNames = deviceNames
    }
}

extension PullResponse {
    /// The message as JSON: `protocol`, `changes`, `cursor`, `more`, then `server`, `devices`,
    /// `role`, `scopes`, `scope` (``scopeGeneration``), `entered` and `left` when set.
    public var json: JSON {
        .object(
            [
                ("protocol", .int(Int64(SyncProtocol.version))),
                ("changes", .array(changes.map { $0.wireJSON(withOrigin: true) })),
                ("cursor", .int(cursor)),
                ("more", .bool(more)),
            ] + (server.map { [("server", .string($0))] } ?? [])
                + (deviceNames.isEmpty
                    ? []
                    : [
                        (
                            "devices",
                            .object(deviceNames.sorted { $0.key < $1.key }.map { ($0.key, JSON.string($0.value)) })
                        )
                    ]) + (role.map { [("role", .string($0))] } ?? []) + scopeMembers
                + (newestSchema.map { [("newest_schema", .int(Int64($0)))] } ?? []))
    }

    /// The members of a page that only a scoped token's pull has.
    private var scopeMembers: [(key: String, value: JSON)] {
        Self.scopeMembers(scopes: scopes, generation: scopeGeneration, entered: entered, left: left)
    }

    private static func scopeMembers(scopes: [String]?, generation: Int64?, entered: [Entered], left: [RecordRef])
        -> [(key: String, value: JSON)]
    {
        var members: [(key: String, value: JSON)] = []
        if let scopes { members.append(("scopes", .array(scopes.map(JSON.string)))) }
        if let generation { members.append(("scope", .int(generation))) }
        if !entered.isEmpty {
            members.append(
                (
                    "entered",
                    .array(
                        entered.map {
                            .object([
                                ("entity", .string($0.record.entity)), ("id", .string($0.record.id)),
                                ("changes", .array($0.changes.map { $0.wireJSON(withOrigin: true) })),
                            ])
                        })
                ))
        }
        if !left.isEmpty {
            members.append(("left", .array(left.map { .array([.string($0.entity), .string($0.id)]) })))
        }
        return members
    }

    /// Adds the members only a scoped token's page has — `scopes`, `scope`, `entered`, `left` (see
    /// ``scopes``, ``scopeGeneration``, ``entered``, ``left``), each when set — to a pull response's
    /// text ended by ``encodeEnd(cursor:more:to:)``.
    public static func appendScopeMembers(
        scopes: [String]?, generation: Int64?, entered: [Entered], left: [RecordRef], to out: inout [UInt8]
    ) {
        let members = scopeMembers(scopes: scopes, generation: generation, entered: entered, left: left)
        guard !members.isEmpty, out.last == UInt8(ascii: "}") else { return }
        out.removeLast()
        for (key, value) in members {
            out.append(UInt8(ascii: ","))
            JSON.writeString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            value.write(to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// Appends the message's JSON text (the bytes of `json.serialized`) to `out`.
    public func encode(to out: inout [UInt8]) {
        Self.encodeStart(to: &out)
        for (n, change) in changes.enumerated() {
            if n > 0 { out.append(UInt8(ascii: ",")) }
            change.encodeWire(to: &out, withOrigin: true)
        }
        Self.encodeEnd(cursor: cursor, more: more, to: &out)
        if let server { Self.appendServer(server, to: &out) }
        Self.appendDeviceNames(deviceNames, to: &out)
        if let role { Self.appendRole(role, to: &out) }
        Self.appendScopeMembers(
            scopes: scopes, generation: scopeGeneration, entered: entered, left: left, to: &out)
        if let newestSchema { Self.appendNewestSchema(newestSchema, to: &out) }
    }

    /// Adds the `newest_schema` member (``newestSchema``) to a pull response's text ended by
    /// ``encodeEnd(cursor:more:to:)``.
    public static func appendNewestSchema(_ version: Int, to out: inout [UInt8]) {
        guard out.last == UInt8(ascii: "}") else { return }
        out.removeLast()
        out.append(contentsOf: #","newest_schema":"#.utf8)
        JSON.writeInt(Int64(version), to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// The answer header that repeats the page's ``cursor`` (docs/protocol.md, "Pull"): a device
    /// may ask for the next page before it reads this one, and checks the header against the body.
    public static let cursorHeader = "Fieldbook-Cursor"
    /// The answer header that repeats ``more`` (`true` or `false`).
    public static let moreHeader = "Fieldbook-More"
    /// The answer header that repeats ``scopeGeneration``, when the page names one.
    public static let scopeHeader = "Fieldbook-Scope"

    /// Adds the `role` member (``role``) to a pull response's text ended by ``encodeEnd(cursor:more:to:)``.
    public static func appendRole(_ role: String, to out: inout [UInt8]) {
        appendString(#","role":"#, role, to: &out)
    }

    /// Appends the start of a pull response, up to the first change: for a server that writes
    /// the changes itself (see ``Change/encodeWire(to:sequence:entity:recordID:operation:hlc:base:fields:origin:)``),
    /// separated by commas, then calls ``encodeEnd(cursor:more:to:)``.
    public static func encodeStart(to out: inout [UInt8]) {
        out.append(contentsOf: #"{"protocol":"#.utf8)
        JSON.writeInt(Int64(SyncProtocol.version), to: &out)
        out.append(contentsOf: #","changes":["#.utf8)
    }

    /// Appends the end of a pull response begun with ``encodeStart(to:)``.
    public static func encodeEnd(cursor: Int64, more: Bool, to out: inout [UInt8]) {
        out.append(contentsOf: #"],"cursor":"#.utf8)
        JSON.writeInt(cursor, to: &out)
        out.append(contentsOf: #","more":"#.utf8)
        JSON.writeBool(more, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// Adds the `server` member (``server``) to a pull response's text ended by ``encodeEnd(cursor:more:to:)``.
    public static func appendServer(_ server: String, to out: inout [UInt8]) {
        appendString(#","server":"#, server, to: &out)
    }

    /// Adds `,"key":"value"` (`member` is `,"key":`) before the closing brace of the text in `out`.
    private static func appendString(_ member: StaticString, _ value: String, to out: inout [UInt8]) {
        guard out.last == UInt8(ascii: "}") else { return }
        out.removeLast()
        member.withUTF8Buffer { out.append(contentsOf: $0) }
        JSON.writeString(value, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// Adds the `devices` member (``deviceNames``, none if empty) to a pull response's text ended
    /// by ``encodeEnd(cursor:more:to:)``.
    public static func appendDeviceNames(_ names: [String: String], to out: inout [UInt8]) {
        guard !names.isEmpty, out.last == UInt8(ascii: "}") else { return }
        out.removeLast()
        out.append(contentsOf: #","devices":{"#.utf8)
        for (n, pair) in names.sorted(by: { $0.key < $1.key }).enumerated() {
            if n > 0 { out.append(UInt8(ascii: ",")) }
            JSON.writeString(pair.key, to: &out)
            out.append(UInt8(ascii: ":"))
            JSON.writeString(pair.value, to: &out)
        }
        out.append(contentsOf: "}}".utf8)
    }

    /// Reads a pull response from JSON, checking every change against `schema`; throws ``WireError`` if it is
    /// not one.
    public init(json: JSON, schema: Schema) throws(WireError) {
        var bytes: [UInt8] = []
        json.write(to: &bytes)
        try self.init(utf8: bytes, schema: schema)
    }

    /// Reads a pull response from its JSON text, checking every change against `schema`.
    public init(utf8 bytes: [UInt8], schema: Schema) throws(WireError) {
        let tape = try JSONTape(wire: bytes)
        server = try Message(tape, expecting: nil).serverIdentity()
        guard let list = tape.member(0, "changes"), tape.kind(list) == .array,
            let c = tape.member(0, "cursor"), let cursor = tape.int(c),
            let m = tape.member(0, "more"), let more = tape.bool(m)
        else { throw WireError(.badMessage, "a pull response has 'changes', 'cursor' and 'more'") }
        var changes: [Change] = []
        changes.reserveCapacity(Int(tape[list].length))
        var names = Change.WireNames()
        for (n, item) in tape.elements(list).enumerated() {
            changes.append(try Change(wire: tape, item, schema: schema, device: nil, number: n, names: &names))
        }
        self.changes = changes
        self.cursor = cursor
        self.more = more
        var deviceNames: [String: String] = [:]
        if let d = tape.member(0, "devices") {
            guard tape.kind(d) == .object else {
                throw WireError(.badMessage, "'devices' must be an object of device names")
            }
            for key in tape.keys(d) {
                guard let id = tape.string(key), let name = tape.string(key + 1) else {
                    throw WireError(.badMessage, "'devices' must be an object of device names")
                }
                deviceNames[id] = name
            }
        }
        self.deviceNames = deviceNames
        if let r = tape.member(0, "role") {
            guard let role = tape.string(r) else { throw WireError(.badMessage, "'role' must be a string") }
            self.role = role
        }
        try readScopeMembers(tape, schema: schema, names: &names)
        if let v = tape.member(0, "newest_schema") {
            guard let version = tape.int(v), version > 0, version <= Int64(Int32.max) else {
                throw WireError(.badMessage, "'newest_schema' must be a schema version")
            }
            newestSchema = Int(version)
        }
    }

    /// Reads the members only a scoped token's page has: `scopes`, `scope`, `entered`, `left`.
    private mutating func readScopeMembers(_ tape: JSONTape, schema: Schema, names: inout Change.WireNames)
        throws(WireError)
    {
        if let list = tape.member(0, "scopes") {
            guard tape.kind(list) == .array else { throw WireError(.badMessage, "'scopes' must be a list of keys") }
            var scopes: [String] = []
            for item in tape.elements(list) {
                guard let key = tape.string(item) else {
                    throw WireError(.badMessage, "'scopes' must be a list of keys")
                }
                scopes.append(key)
            }
            self.scopes = scopes
        }
        scopeGeneration = try Message(tape, expecting: nil).scopeGeneration()
        if let list = tape.member(0, "entered") {
            guard tape.kind(list) == .array else { throw WireError(.badMessage, "'entered' must be a list") }
            var number = changes.count
            for item in tape.elements(list) {
                guard tape.kind(item) == .object, let e = tape.member(item, "entity"), let entity = tape.string(e),
                    let i = tape.member(item, "id"), let id = tape.string(i),
                    let history = tape.member(item, "changes"), tape.kind(history) == .array
                else { throw WireError(.badMessage, "an entered record has 'entity', 'id' and 'changes'") }
                var changes: [Change] = []
                for change in tape.elements(history) {
                    let read = try Change(
                        wire: tape, change, schema: schema, device: nil, number: number, names: &names)
                    number += 1
                    guard read.entity == entity, read.recordID == id else {
                        throw WireError(.badMessage, "an entered record's history holds a change of another record")
                    }
                    changes.append(read)
                }
                entered.append(Entered(record: RecordRef(entity: entity, id: id), changes: changes))
            }
        }
        if let list = tape.member(0, "left") {
            guard tape.kind(list) == .array else { throw WireError(.badMessage, "'left' must be a list") }
            for item in tape.elements(list) {
                guard tape.kind(item) == .array, tape[item].length == 2, let entity = tape.string(item + 1),
                    let id = tape.string(item + 2)
                else { throw WireError(.badMessage, "'left' holds [entity, id] pairs") }
                left.append(RecordRef(entity: entity, id: id))
            }
        }
    }
}

extension PullResponse {
    /// The page, read in `translation`'s newer version, as its older version reads it (for a
    /// device of that version): changes and entered records of entities it lacks left out (the
    /// cursor still passes them), fields it lacks left out, renamed fields under its names; and
    /// ``newestSchema`` says which version the server holds.
    public mutating func translate(_ translation: SchemaTranslation) {
        changes = changes.compactMap(translation.downgrade)
        entered = entered.compactMap { record in
            guard translation.older.entity(record.record.entity) != nil else { return nil }
            return Entered(record: record.record, changes: record.changes.compactMap(translation.downgrade))
        }
        left = left.filter { translation.older.entity($0.entity) != nil }
        newestSchema = translation.newer.version
    }
}
