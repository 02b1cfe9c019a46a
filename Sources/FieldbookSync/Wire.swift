public import FieldbookCore
public import FieldbookJSON

/// The sync protocol's messages and their JSON form (docs/protocol.md).
///
/// Device and server encode and decode with these types only, so a field a
/// peer does not know, a value of the wrong type or a message of another
/// protocol version is refused the same way on both sides.
///
/// ## Topics
/// - ``PushRequest``
/// - ``PushResponse``
/// - ``PullRequest``
/// - ``PullResponse``
/// - ``WireError``
public enum SyncProtocol {
    /// The protocol version this code speaks. A request naming another is refused.
    public static let version = 1
}

/// A schema's name and version, as every request names them.
public struct SchemaVersion: Sendable, Hashable, CustomStringConvertible {
    /// The schema's name, e.g. `inspection`.
    public var name: String
    /// The schema's version.
    public var version: Int

    /// The schema called `name` at `version`.
    public init(name: String, version: Int) {
        self.name = name
        self.version = version
    }

    /// The name and version of `schema`.
    public init(_ schema: Schema) { self.init(name: schema.name, version: schema.version) }

    /// The text people read, e.g. `inspection version 1`.
    public var description: String { "\(name) version \(version)" }

    var json: JSON { .object([("name", .string(name)), ("version", .int(Int64(version)))]) }
}

/// A device sends its changes, oldest first, in one batch the server applies all or nothing.
public struct PushRequest: Sendable, Hashable {
    /// The schema the changes are written for; a server holding another refuses the push (`schema_mismatch`).
    public var schema: SchemaVersion
    /// The device that made every change in the batch.
    public var device: String
    /// The changes, oldest first.
    public var changes: [Change]
    /// The server identity the changes' bases count in (the one the device last synced with);
    /// nil if the device has none yet. A server with another identity refuses the push (`server_changed`).
    public var server: String?
    /// The name the device was given (`fieldbook init --name`), for people on other devices; at most
    /// ``maxDeviceName`` characters, no control characters.
    public var deviceName: String?

    /// The longest device name a push may carry, in characters.
    public static let maxDeviceName = 100

    /// A push of `changes` made by `device`; `server` and `deviceName` are nil when the device has none.
    public init(
        schema: SchemaVersion, device: String, changes: [Change], server: String? = nil, deviceName: String? = nil
    ) {
        self.schema = schema
        self.device = device
        self.changes = changes
        self.server = server
        self.deviceName = deviceName
    }
}

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

    /// A request for at most `limit` changes after `cursor`; `server` is nil when the device has none yet.
    public init(schema: SchemaVersion, device: String, cursor: Int64, limit: Int, server: String? = nil) {
        self.schema = schema
        self.device = device
        self.cursor = cursor
        self.limit = limit
        self.server = server
    }
}

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

// MARK: - JSON
//
// Each message has a tree form (`json`, for tests and tools) and a byte form:
// `encode(to:)` writes the same bytes as `json.serialized` without building
// the tree, and `init(utf8:…)` reads a message from its bytes through a
// ``JSONTape`` without building a tree. The tree initializers serialize and
// read the bytes, so there is one reader and every check is made once, the same way.

extension PushRequest {
    /// The message as JSON: `protocol`, `schema`, `device`, `server` and `device_name` when set, `changes`.
    public var json: JSON {
        .object(
            [
                ("protocol", .int(Int64(SyncProtocol.version))),
                ("schema", schema.json),
                ("device", .string(device)),
            ] + (server.map { [("server", .string($0))] } ?? [])
                + (deviceName.map { [("device_name", .string($0))] } ?? []) + [
                    ("changes", .array(changes.map { $0.wireJSON(withOrigin: false) }))
                ])
    }

    /// Appends the message's JSON text (the bytes of `json.serialized`) to `out`.
    public func encode(to out: inout [UInt8]) {
        Self.encodeStart(schema: schema, device: device, server: server, deviceName: deviceName, to: &out)
        for (n, change) in changes.enumerated() {
            if n > 0 { out.append(UInt8(ascii: ",")) }
            change.encodeWire(to: &out, withOrigin: false)
        }
        Self.encodeEnd(to: &out)
    }

    /// Appends the start of a push, up to its first change: for a device that writes the changes
    /// itself (see ``Change/encodeWire(to:sequence:entity:recordID:operation:hlc:base:fields:origin:)``),
    /// separated by commas, then calls ``encodeEnd(to:)``.
    public static func encodeStart(
        schema: SchemaVersion, device: String, server: String? = nil, deviceName: String? = nil, to out: inout [UInt8]
    ) {
        out.append(contentsOf: #"{"protocol":"#.utf8)
        JSON.writeInt(Int64(SyncProtocol.version), to: &out)
        out.append(contentsOf: #","schema":"#.utf8)
        schema.encode(to: &out)
        out.append(contentsOf: #","device":"#.utf8)
        JSON.writeString(device, to: &out)
        if let server {
            out.append(contentsOf: #","server":"#.utf8)
            JSON.writeString(server, to: &out)
        }
        if let deviceName {
            out.append(contentsOf: #","device_name":"#.utf8)
            JSON.writeString(deviceName, to: &out)
        }
        out.append(contentsOf: #","changes":["#.utf8)
    }

    /// Appends the end of a push begun with ``encodeStart(schema:device:server:deviceName:to:)``.
    public static func encodeEnd(to out: inout [UInt8]) {
        out.append(contentsOf: "]}".utf8)
    }

    /// Reads a push for `schema`, checking every change against it.
    public init(json: JSON, schema: Schema) throws(WireError) {
        var bytes: [UInt8] = []
        json.write(to: &bytes)
        try self.init(utf8: bytes, schema: schema)
    }

    /// Reads a push from its JSON text, checking every change against `schema`.
    /// - Parameter maxChanges: a push of more changes is refused with `batch_too_large`
    ///   (before any other check but the JSON syntax).
    /// - Parameter maxValues: a push of more JSON values (keys included) is refused with `batch_too_large`
    ///   as soon as reading reaches the first value too many, before the rest is read.
    public init(utf8 bytes: [UInt8], schema: Schema, maxChanges: Int = .max, maxValues: Int = .max) throws(WireError) {
        let tape = try JSONTape(wire: bytes, maxValues: maxValues)
        if let list = tape.member(0, "changes"), tape.kind(list) == .array, Int(tape[list].length) > maxChanges {
            throw WireError(
                .batchTooLarge, "a push holds at most \(maxChanges) changes; this one holds \(tape[list].length)")
        }
        let message = try Message(tape, expecting: schema)
        device = try message.deviceID()
        server = try message.serverIdentity()
        deviceName = try message.deviceName()
        self.schema = SchemaVersion(schema)
        guard let list = tape.member(0, "changes"), tape.kind(list) == .array else {
            throw WireError(.badMessage, "'changes' must be an array")
        }
        var changes: [Change] = []
        changes.reserveCapacity(Int(tape[list].length))
        var names = Change.WireNames()
        for (n, item) in tape.elements(list).enumerated() {
            changes.append(try Change(wire: tape, item, schema: schema, device: device, number: n, names: &names))
        }
        self.changes = changes
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
                + (rejected.isEmpty ? [] : [("rejected", .array(rejected.map(\.json)))]))
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
    }
}

extension PullRequest {
    /// The message as JSON: `protocol`, `schema`, `device`, `cursor`, `limit`, and `server` when set.
    public var json: JSON {
        .object(
            [
                ("protocol", .int(Int64(SyncProtocol.version))),
                ("schema", schema.json),
                ("device", .string(device)),
                ("cursor", .int(cursor)),
                ("limit", .int(Int64(limit))),
            ] + (server.map { [("server", .string($0))] } ?? []))
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
    }
}

extension PullResponse {
    /// The message as JSON: `protocol`, `changes`, `cursor`, `more`, then `server`, `devices` and `role` when set.
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
                    ]) + (role.map { [("role", .string($0))] } ?? []))
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
    }

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
    }
}

extension SchemaVersion {
    func encode(to out: inout [UInt8]) {
        out.append(contentsOf: #"{"name":"#.utf8)
        JSON.writeString(name, to: &out)
        out.append(contentsOf: #","version":"#.utf8)
        JSON.writeInt(Int64(version), to: &out)
        out.append(UInt8(ascii: "}"))
    }
}

extension JSONTape {
    /// Parses a message body; a syntax error is `malformed_json`.
    init(wire bytes: [UInt8], maxValues: Int = .max) throws(WireError) {
        do {
            try self.init(parsing: bytes, maxValues: maxValues)
        } catch  where error.reason == JSONTape.tooManyValues {
            throw WireError(
                .batchTooLarge, "the body holds more than \(maxValues) JSON values; push fewer changes at a time")
        } catch {
            throw WireError(.malformedJSON, "the body is not valid JSON: \(error)")
        }
    }
}

/// The envelope every message shares: the protocol version and, for requests, the schema.
private struct Message {
    let tape: JSONTape

    init(_ tape: JSONTape, expecting schema: Schema?) throws(WireError) {
        guard tape.kind(0) == .object else { throw WireError(.badMessage, "the message must be a JSON object") }
        guard let p = tape.member(0, "protocol"), let version = tape.int(p) else {
            throw WireError(.badMessage, "'protocol' (the protocol version, an integer) is missing")
        }
        guard version == SyncProtocol.version else {
            throw WireError(
                .protocolMismatch,
                "protocol version \(version) is not spoken here; this peer speaks version \(SyncProtocol.version)")
        }
        if let schema {
            guard let s = tape.member(0, "schema"), let n = tape.member(s, "name"), let name = tape.string(n),
                let v = tape.member(s, "version"), let version = tape.int(v)
            else {
                throw WireError(.badMessage, "'schema' must be {\"name\": …, \"version\": …}")
            }
            guard name == schema.name, version == schema.version else {
                throw WireError(
                    .schemaMismatch,
                    "the request is for schema '\(name)' version \(version); the server holds '\(schema.name)' version \(schema.version)"
                )
            }
        }
        self.tape = tape
    }

    func deviceID() throws(WireError) -> String {
        guard let d = tape.member(0, "device"), let device = tape.string(d), let canonical = UUIDText.canonical(device)
        else {
            throw WireError(.badMessage, "'device' must be the device's id, a UUID")
        }
        return canonical
    }

    /// The optional `server` member: a server identity (a UUID), nil if absent.
    /// The optional `device_name`: text of at most ``PushRequest/maxDeviceName`` characters, no control characters.
    func deviceName() throws(WireError) -> String? {
        guard let d = tape.member(0, "device_name") else { return nil }
        guard let name = tape.string(d), name.count <= PushRequest.maxDeviceName,
            !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else {
            throw WireError(
                .badMessage,
                "'device_name' must be text of at most \(PushRequest.maxDeviceName) characters, without control characters"
            )
        }
        return name
    }

    func serverIdentity() throws(WireError) -> String? {
        guard let s = tape.member(0, "server") else { return nil }
        guard let server = tape.string(s), let canonical = UUIDText.canonical(server) else {
            throw WireError(.badMessage, "'server' must be a server identity, a UUID")
        }
        return canonical
    }
}

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

    /// Why the schema forbids this change, or nil if it allows it.
    public func validity(_ entity: Entity) -> String? {
        switch operation {
        case .delete:
            if !fields.isEmpty { return "a delete carries no fields" }
            if entity.appendOnly { return "\(entity.name) records are append-only and cannot be deleted" }
        case .update:
            if entity.appendOnly { return "\(entity.name) records are append-only and cannot be updated" }
            var hint = 0
            for change in fields {
                guard let position = entity.position(of: change.field, hint: hint) else { continue }
                hint = position + 1
                let field = entity.fields[position]
                if case .append = field.policy {
                    return "\(entity.name).\(field.name) is set only when the record is added"
                }
                if case .union = field.policy, case .set = change.kind {
                    return "\(entity.name).\(field.name) is a set merged by union: send members added and removed"
                }
                if case .counter = field.policy, case .set = change.kind {
                    return "\(entity.name).\(field.name) is a counter: send a delta"
                }
            }
        case .insert:
            for field in entity.fields where field.required && !fields.contains(where: { $0.field == field.name }) {
                return "\(entity.name).\(field.name) is required"
            }
        }
        // A change names a few fields: comparing pairs costs less than hashing them.
        for (n, change) in fields.enumerated() where fields[..<n].contains(where: { $0.field == change.field }) {
            return "\(entity.name).\(change.field) appears twice"
        }
        return nil
    }
}
