public import FieldbookJSON

/// Why a message was refused: a stable machine-readable code and a sentence for people.
///
/// The message never quotes field values: they can name people.
public struct WireError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A code that clients can rely on. New codes may be added.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The code as sent, e.g. `schema_mismatch`.
        public var rawValue: String
        /// The code with this text; a code this version does not know is kept as it is.
        public init(rawValue: String) { self.rawValue = rawValue }
        /// The text people read: the code as sent.
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
        /// A change's reference field names a record the server has never seen.
        public static let unknownReference = Code(rawValue: "unknown_reference")
        /// The request names another protocol version.
        public static let protocolMismatch = Code(rawValue: "protocol_mismatch")
        /// The request names another schema, or a schema version the server does not serve.
        public static let schemaMismatch = Code(rawValue: "schema_mismatch")
        /// The request names a schema version newer than every version the server holds: the
        /// device is ahead of the server. It keeps its changes until the version is published there.
        public static let schemaAhead = Code(rawValue: "schema_ahead")
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
        /// The endpoint exists but takes another HTTP method.
        public static let methodNotAllowed = Code(rawValue: "method_not_allowed")
        /// The server failed; the request may be retried.
        public static let internalError = Code(rawValue: "internal")
        /// The server is shutting down or overloaded; retry later.
        public static let unavailable = Code(rawValue: "unavailable")
        /// The request names a server identity the store no longer has: it was restored or
        /// replaced, and its numbers mean other changes now (``WireError/serverChanged``).
        public static let serverChanged = Code(rawValue: "server_changed")
        /// The token was rescoped since the device's records were pulled: the device drops what it
        /// received and pulls again from cursor 0 (docs/protocol.md, "Scopes").
        public static let scopeChanged = Code(rawValue: "scope_changed")
        /// A pull's cursor is past every change the server holds: it lost changes (was restored)
        /// without taking a new identity.
        public static let cursorAhead = Code(rawValue: "cursor_ahead")
        /// A change is stamped further ahead of the server's clock than it accepts. The error
        /// carries the server's time and bound (``WireError/serverTime``, ``WireError/maxAhead``):
        /// re-stamp what is pending and push again.
        public static let clockAhead = Code(rawValue: "clock_ahead")
        /// A push refers to files the server does not hold whole (``WireError/files`` lists their
        /// hashes): nothing of it is stored; upload them, then push again.
        public static let missingFiles = Code(rawValue: "missing_files")
        /// A file's bytes are not what was said of them: another hash, another size, or content
        /// that does not fit its media type. Nothing is stored.
        public static let fileMismatch = Code(rawValue: "file_mismatch")
        /// A chunk of a file does not start where the server's copy of the transfer ends
        /// (``WireError/held`` says where): nothing of it is stored; send from there.
        public static let offsetMismatch = Code(rawValue: "offset_mismatch")
        /// A file is larger than the server accepts.
        public static let fileTooLarge = Code(rawValue: "file_too_large")
    }

    /// What a device needs to start again with a restored or replaced server: sent with `server_changed`.
    public struct ServerChanged: Sendable, Hashable {
        /// The server's identity now.
        public var identity: String
        /// The last of the requesting device's sequence numbers the server holds (0 if none):
        /// it holds that device's changes 1 to this one.
        public var acknowledged: Int64

        /// The server's identity, and the last of the device's sequence numbers it holds.
        public init(identity: String, acknowledged: Int64) {
            self.identity = identity
            self.acknowledged = acknowledged
        }
    }

    /// What went wrong, as a code clients can rely on.
    public var code: Code
    /// A sentence for people; it never quotes field values.
    public var message: String
    /// With `server_changed`: the server's new identity and what it holds of the device's changes.
    public var serverChanged: ServerChanged?
    /// The server's wall clock when it refused, in milliseconds since 1970 (`clock_ahead` only).
    public var serverTime: Int64?
    /// How far ahead of its clock the server accepts a change's timestamp, in milliseconds (`clock_ahead` only).
    public var maxAhead: Int64?
    /// The hashes of the files a push refers to that the server lacks (`missing_files` only).
    public var files: [String]?
    /// How many bytes of a file's transfer the server holds (`offset_mismatch` only).
    public var held: Int64?

    /// An error with its code and sentence, and the members `server_changed` and `clock_ahead` carry.
    public init(
        _ code: Code, _ message: String, serverChanged: ServerChanged? = nil, serverTime: Int64? = nil,
        maxAhead: Int64? = nil
    ) {
        self.code = code
        self.message = message
        self.serverChanged = serverChanged
        self.serverTime = serverTime
        self.maxAhead = maxAhead
    }

    /// The text people read: `code: message`.
    public var description: String { "\(code): \(message)" }

    /// The error as the JSON body the server sends.
    public var json: JSON {
        var members: [(String, JSON)] = [("code", .string(code.rawValue)), ("message", .string(message))]
        if let serverChanged {
            members += [
                ("server", .string(serverChanged.identity)), ("acknowledged", .int(serverChanged.acknowledged)),
            ]
        }
        if let serverTime { members.append(("server_time", .int(serverTime))) }
        if let maxAhead { members.append(("max_ahead", .int(maxAhead))) }
        if let files { members.append(("files", .array(files.map(JSON.string)))) }
        if let held { members.append(("held", .int(held))) }
        return .object([("error", .object(members))])
    }

    /// Reads an error body; nil if the body is not one.
    public init?(json: JSON) {
        guard case .string(let code)? = json["error"]?["code"] else { return nil }
        self.init(
            Code(rawValue: code),
            json["error"]?["message"].flatMap { if case .string(let s) = $0 { s } else { nil } } ?? "",
            serverTime: json["error"]?["server_time"].flatMap { if case .int(let t) = $0, t >= 0 { t } else { nil } },
            maxAhead: json["error"]?["max_ahead"].flatMap { if case .int(let t) = $0, t >= 0 { t } else { nil } })
        if case .string(let server)? = json["error"]?["server"],
            case .int(let acknowledged)? = json["error"]?["acknowledged"]
        {
            serverChanged = ServerChanged(identity: server, acknowledged: acknowledged)
        }
        if case .array(let list)? = json["error"]?["files"] {
            files = list.compactMap { if case .string(let s) = $0 { s } else { nil } }
        }
        if case .int(let held)? = json["error"]?["held"], held >= 0 { self.held = held }
    }
}
