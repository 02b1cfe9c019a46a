public import FieldbookCore
public import FieldbookJSON

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
