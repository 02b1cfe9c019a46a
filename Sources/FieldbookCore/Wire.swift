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

/// Why a message was refused: a stable machine-readable code and a sentence for people.
///
/// The message never quotes field values: they can name people.
public struct WireError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A code that clients can rely on. New codes may be added.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The body is not valid JSON (or not UTF-8).
        public static let malformedJSON = Code(rawValue: "malformed_json")
        /// A member has the wrong JSON type, or a required member is missing.
        public static let badMessage = Code(rawValue: "bad_message")
        /// The message names an entity the schema does not have.
        public static let unknownEntity = Code(rawValue: "unknown_entity")
        /// A change names a field its entity does not have.
        public static let unknownField = Code(rawValue: "unknown_field")
        /// A value does not fit its field (type, enum value, length, format, required).
        public static let invalidValue = Code(rawValue: "invalid_value")
        /// A change the schema forbids (an update of an append-only record, …).
        public static let invalidChange = Code(rawValue: "invalid_change")
        /// The request names another protocol version.
        public static let protocolMismatch = Code(rawValue: "protocol_mismatch")
        /// The request names another schema or schema version than the server's.
        public static let schemaMismatch = Code(rawValue: "schema_mismatch")
        /// A device sequence number was sent before with different content.
        public static let sequenceReused = Code(rawValue: "sequence_reused")
        /// A push skips device sequence numbers the server has not received.
        public static let sequenceGap = Code(rawValue: "sequence_gap")
        /// The body is larger than the server accepts.
        public static let bodyTooLarge = Code(rawValue: "body_too_large")
        /// The push holds more changes than the server accepts in one batch.
        public static let batchTooLarge = Code(rawValue: "batch_too_large")
        /// No valid bearer token.
        public static let unauthorized = Code(rawValue: "unauthorized")
        /// The token is valid but may not act for this device.
        public static let forbidden = Code(rawValue: "forbidden")
        /// No such endpoint or object.
        public static let notFound = Code(rawValue: "not_found")
        /// The server failed; the request may be retried.
        public static let internalError = Code(rawValue: "internal")
        /// The server is shutting down or overloaded; retry later.
        public static let unavailable = Code(rawValue: "unavailable")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    /// The error as the JSON body the server sends.
    public var json: JSON {
        .object([("error", .object([("code", .string(code.rawValue)), ("message", .string(message))]))])
    }

    /// Reads an error body; nil if the body is not one.
    public init?(json: JSON) {
        guard case .string(let code)? = json["error"]?["code"] else { return nil }
        self.init(Code(rawValue: code), json["error"]?["message"].flatMap { if case .string(let s) = $0 { s } else { nil } } ?? "")
    }
}

/// A schema's name and version, as every request names them.
public struct SchemaVersion: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var version: Int

    public init(name: String, version: Int) {
        self.name = name
        self.version = version
    }

    public init(_ schema: Schema) { self.init(name: schema.name, version: schema.version) }

    public var description: String { "\(name) version \(version)" }

    var json: JSON { .object([("name", .string(name)), ("version", .int(Int64(version)))]) }
}

/// A device sends its changes, oldest first, in one batch the server applies all or nothing.
public struct PushRequest: Sendable, Hashable {
    public var schema: SchemaVersion
    /// The device that made every change in the batch.
    public var device: String
    public var changes: [Change]

    public init(schema: SchemaVersion, device: String, changes: [Change]) {
        self.schema = schema
        self.device = device
        self.changes = changes
    }
}

/// The server's answer to a push: the server sequence number of each change.
/// A retried push gets the same answer.
public struct PushResponse: Sendable, Hashable {
    /// For each change pushed, in order: its device sequence number and its server sequence number.
    public var assigned: [Assignment]

    public struct Assignment: Sendable, Hashable {
        public var sequence: Int64
        public var serverSequence: Int64
        public init(sequence: Int64, serverSequence: Int64) {
            self.sequence = sequence
            self.serverSequence = serverSequence
        }
    }

    public init(assigned: [Assignment]) { self.assigned = assigned }
}

/// A device asks for the changes after its cursor.
public struct PullRequest: Sendable, Hashable {
    public var schema: SchemaVersion
    public var device: String
    /// The last server sequence number the device has applied (0 at first).
    public var cursor: Int64
    /// At most this many changes.
    public var limit: Int

    public init(schema: SchemaVersion, device: String, cursor: Int64, limit: Int) {
        self.schema = schema
        self.device = device
        self.cursor = cursor
        self.limit = limit
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

    public init(changes: [Change], cursor: Int64, more: Bool) {
        self.changes = changes
        self.cursor = cursor
        self.more = more
    }
}

// MARK: - JSON

extension PushRequest {
    public var json: JSON {
        .object([
            ("protocol", .int(Int64(SyncProtocol.version))),
            ("schema", schema.json),
            ("device", .string(device)),
            ("changes", .array(changes.map { $0.wireJSON(withOrigin: false) })),
        ])
    }

    /// Reads a push for `schema`, checking every change against it.
    public init(json: JSON, schema: Schema) throws(WireError) {
        let message = try Message(json, expecting: schema)
        device = try message.deviceID()
        self.schema = SchemaVersion(schema)
        guard case .array(let items)? = json["changes"] else {
            throw WireError(.badMessage, "'changes' must be an array")
        }
        var changes: [Change] = []
        changes.reserveCapacity(items.count)
        for (n, item) in items.enumerated() {
            changes.append(try Change(wire: item, schema: schema, device: device, at: "changes[\(n)]"))
        }
        self.changes = changes
    }
}

extension PushResponse {
    public var json: JSON {
        .object([
            ("protocol", .int(Int64(SyncProtocol.version))),
            ("assigned", .array(assigned.map { .array([.int($0.sequence), .int($0.serverSequence)]) })),
        ])
    }

    public init(json: JSON) throws(WireError) {
        _ = try Message(json, expecting: nil)
        guard case .array(let items)? = json["assigned"] else {
            throw WireError(.badMessage, "'assigned' must be an array")
        }
        var assigned: [Assignment] = []
        for item in items {
            guard case .array(let pair) = item, pair.count == 2, case .int(let seq) = pair[0], case .int(let sseq) = pair[1]
            else { throw WireError(.badMessage, "'assigned' holds [sequence, serverSequence] pairs") }
            assigned.append(Assignment(sequence: seq, serverSequence: sseq))
        }
        self.assigned = assigned
    }
}

extension PullRequest {
    public var json: JSON {
        .object([
            ("protocol", .int(Int64(SyncProtocol.version))),
            ("schema", schema.json),
            ("device", .string(device)),
            ("cursor", .int(cursor)),
            ("limit", .int(Int64(limit))),
        ])
    }

    public init(json: JSON, schema: Schema) throws(WireError) {
        let message = try Message(json, expecting: schema)
        device = try message.deviceID()
        self.schema = SchemaVersion(schema)
        guard case .int(let cursor)? = json["cursor"], cursor >= 0 else {
            throw WireError(.badMessage, "'cursor' must be an integer ≥ 0")
        }
        self.cursor = cursor
        switch json["limit"] {
        case nil: limit = 1000
        case .int(let limit)? where limit >= 1: self.limit = Int(clamping: limit)
        default: throw WireError(.badMessage, "'limit' must be an integer ≥ 1")
        }
    }
}

extension PullResponse {
    public var json: JSON {
        .object([
            ("protocol", .int(Int64(SyncProtocol.version))),
            ("changes", .array(changes.map { $0.wireJSON(withOrigin: true) })),
            ("cursor", .int(cursor)),
            ("more", .bool(more)),
        ])
    }

    public init(json: JSON, schema: Schema) throws(WireError) {
        _ = try Message(json, expecting: nil)
        guard case .array(let items)? = json["changes"], case .int(let cursor)? = json["cursor"],
            case .bool(let more)? = json["more"]
        else { throw WireError(.badMessage, "a pull response has 'changes', 'cursor' and 'more'") }
        var changes: [Change] = []
        changes.reserveCapacity(items.count)
        for (n, item) in items.enumerated() {
            changes.append(try Change(wire: item, schema: schema, device: nil, at: "changes[\(n)]"))
        }
        self.changes = changes
        self.cursor = cursor
        self.more = more
    }
}

/// The envelope every message shares: the protocol version and, for requests, the schema.
private struct Message {
    let json: JSON

    init(_ json: JSON, expecting schema: Schema?) throws(WireError) {
        guard case .object = json else { throw WireError(.badMessage, "the message must be a JSON object") }
        guard case .int(let version)? = json["protocol"] else {
            throw WireError(.badMessage, "'protocol' (the protocol version, an integer) is missing")
        }
        guard version == SyncProtocol.version else {
            throw WireError(
                .protocolMismatch,
                "protocol version \(version) is not spoken here; this peer speaks version \(SyncProtocol.version)")
        }
        if let schema {
            guard case .string(let name)? = json["schema"]?["name"], case .int(let v)? = json["schema"]?["version"] else {
                throw WireError(.badMessage, "'schema' must be {\"name\": …, \"version\": …}")
            }
            guard name == schema.name, v == schema.version else {
                throw WireError(
                    .schemaMismatch,
                    "the request is for schema '\(name)' version \(v); the server holds '\(schema.name)' version \(schema.version)")
            }
        }
        self.json = json
    }

    func deviceID() throws(WireError) -> String {
        guard case .string(let device)? = json["device"], let canonical = UUIDText.canonical(device) else {
            throw WireError(.badMessage, "'device' must be the device's id, a UUID")
        }
        return canonical
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

    /// The field changes as the JSON object of ``FieldChange/encode(_:to:)``.
    public var fieldsJSON: JSON {
        .object(fields.map { ($0.field, $0.valueJSON) })
    }

    /// Reads a change object, checking it against `schema`. `device` is the pushing device;
    /// nil when the change carries its own (a pulled change).
    init(wire json: JSON, schema: Schema, device: String?, at path: String) throws(WireError) {
        func bad(_ what: String) -> WireError { WireError(.badMessage, "\(path): \(what)") }
        guard case .object = json else { throw bad("a change must be an object") }
        guard case .int(let seq)? = json["seq"], seq >= 1 else { throw bad("'seq' must be an integer ≥ 1") }
        guard case .string(let entityName)? = json["entity"] else { throw bad("'entity' must be a string") }
        guard let entity = schema.entity(entityName) else {
            throw WireError(
                .unknownEntity,
                "\(path): no entity '\(entityName)' (entities: \(schema.entities.map(\.name).joined(separator: ", ")))")
        }
        guard case .string(let idText)? = json["id"], let id = UUIDText.canonical(idText) else {
            throw bad("'id' must be a UUID")
        }
        let operation: ChangeOperation
        switch json["op"] {
        case .string("insert")?: operation = .insert
        case .string("update")?: operation = .update
        case .string("delete")?: operation = .delete
        default: throw bad("'op' must be \"insert\", \"update\" or \"delete\"")
        }
        guard case .int(let hlc)? = json["hlc"], hlc >= 0 else { throw bad("'hlc' must be an integer ≥ 0") }
        guard case .int(let base)? = json["base"], base >= 0 else { throw bad("'base' must be an integer ≥ 0") }
        guard let fieldsJSON = json["fields"] else { throw bad("'fields' is missing") }
        if case .object(let pairs) = fieldsJSON, let unknown = pairs.first(where: { entity.field($0.key) == nil }) {
            throw WireError(
                .unknownField,
                "\(path): \(entity.name) has no field '\(unknown.key)' (fields: \(entity.fields.map(\.name).joined(separator: ", ")))")
        }
        let fields: [FieldChange]
        do {
            fields = try FieldChange.decode(fieldsJSON, entity: entity)
        } catch {
            throw WireError(.invalidValue, "\(path): \(error.reason)")
        }
        var origin = device
        var serverSequence: Int64?
        var author: String?
        if device == nil {
            guard case .string(let d)? = json["device"], let canonical = UUIDText.canonical(d) else {
                throw bad("'device' must be a UUID")
            }
            origin = canonical
            guard case .int(let s)? = json["sseq"] else { throw bad("'sseq' must be an integer") }
            serverSequence = s
            if case .string(let a)? = json["author"] { author = a }
        }
        self.init(
            sequence: seq, device: origin!, entity: entityName, recordID: id, operation: operation,
            timestamp: HybridTimestamp(rawValue: UInt64(hlc)), base: base, fields: fields,
            serverSequence: serverSequence, author: author)
        if let problem = validity(entity) { throw WireError(.invalidChange, "\(path): \(problem)") }
    }

    /// Why the schema forbids this change, or nil if it allows it.
    public func validity(_ entity: Entity) -> String? {
        switch operation {
        case .delete:
            if !fields.isEmpty { return "a delete carries no fields" }
            if entity.appendOnly { return "\(entity.name) records are append-only and cannot be deleted" }
        case .update:
            if entity.appendOnly { return "\(entity.name) records are append-only and cannot be updated" }
            for change in fields {
                guard let field = entity.field(change.field) else { continue }
                if case .append = field.policy { return "\(entity.name).\(field.name) is set only when the record is added" }
                if case .union = field.policy, case .set = change.kind {
                    return "\(entity.name).\(field.name) is a set merged by union: send members added and removed"
                }
                if case .counter = field.policy, case .set = change.kind {
                    return "\(entity.name).\(field.name) is a counter: send a delta"
                }
            }
        case .insert:
            let given = Set(fields.map(\.field))
            for field in entity.fields where field.required && !given.contains(field.name) {
                return "\(entity.name).\(field.name) is required"
            }
        }
        var seen: Set<String> = []
        for change in fields where !seen.insert(change.field).inserted {
            return "\(entity.name).\(change.field) appears twice"
        }
        return nil
    }
}
