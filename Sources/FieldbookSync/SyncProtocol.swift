import FieldbookCore
import FieldbookJSON

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

// MARK: - What every message shares
//
// Each message has a tree form (`json`, for tests and tools) and a byte form:
// `encode(to:)` writes the same bytes as `json.serialized` without building
// the tree, and `init(utf8:…)` reads a message from its bytes through a
// ``JSONTape`` without building a tree. The tree initializers serialize and
// read the bytes, so there is one reader and every check is made once, the same way.

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
struct Message {
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
            if name == schema.name, version > schema.version {
                throw WireError(
                    .schemaAhead,
                    "this device has schema '\(name)' version \(version); the server holds version \(schema.version) and none later: publish version \(version) on the server (fieldbook-server schema publish FILE); the device keeps every change until then"
                )
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

    /// The optional `server` member: a server identity (a UUID), nil if absent.
    /// The optional `scope`: a token's scope generation, an integer ≥ 0.
    func scopeGeneration() throws(WireError) -> Int64? {
        guard let g = tape.member(0, "scope") else { return nil }
        guard let generation = tape.int(g), generation >= 0 else {
            throw WireError(.badMessage, "'scope' must be an integer ≥ 0")
        }
        return generation
    }

    func serverIdentity() throws(WireError) -> String? {
        guard let s = tape.member(0, "server") else { return nil }
        guard let server = tape.string(s), let canonical = UUIDText.canonical(server) else {
            throw WireError(.badMessage, "'server' must be a server identity, a UUID")
        }
        return canonical
    }
}
