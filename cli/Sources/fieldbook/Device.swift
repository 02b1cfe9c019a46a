import ArgumentParser
import FieldbookCore
import FieldbookHTTP
import FieldbookJSON
import FieldbookSchemas
import FieldbookStore
import FieldbookSync
import Foundation

/// What every command takes: which device, and whether to answer in JSON.
struct DeviceOptions: ParsableArguments {
    @Option(
        name: .customLong("store"),
        help: ArgumentHelp("The device directory (or FIELDBOOK_STORE; default ./.fieldbook).", valueName: "dir"),
        completion: .directory)
    var directory: String?

    @Flag(help: "Print exactly one JSON document on stdout.")
    var json = false

    var path: String {
        directory ?? ProcessInfo.processInfo.environment["FIELDBOOK_STORE"] ?? ".fieldbook"
    }

    /// Opens the device made by `fieldbook init`.
    func open() throws -> Device {
        let config = try DeviceConfig.read(from: path)
        let schema: Schema
        if FileManager.default.fileExists(atPath: path + "/schema.json") {
            schema = try Schema(json: Array(try Data(contentsOf: URL(fileURLWithPath: path + "/schema.json"))))
        } else {
            schema = try Schema(json: BundledSchemas.inspection)
        }
        let store = try Store(path: path + "/device.sqlite", schema: schema)
        // The name given at init (or by 'config set name') goes with the next push.
        // (A name the store refuses, too long say, is not sent; 'config set name' says why.)
        if try store.deviceName() != config.name { try? store.setDeviceName(config.name) }
        return Device(config: config, store: store)
    }
}

extension DeviceOptions {
    /// Moves `device` to `newest`, a newer version of its schema the server publishes: the schema
    /// file the device opens with first (written whole, then renamed over the old one), then its
    /// store, which migrates its records and changes in one transaction when opened with it. Cut
    /// off between the two, the next command migrates the store.
    func upgrade(_ device: Device, to newest: Schema) throws -> Device {
        let current = device.store.schema
        let problems = try device.store.upgradeProblems(to: newest)
        guard problems.isEmpty else {
            throw CLIError(
                .refused,
                "cannot move from schema version \(current.version) to \(newest.version); nothing was changed:\n  "
                    + problems.joined(separator: "\n  ")
                    + "\nsync with --stay to keep this version (nothing is lost)")
        }
        try writeWhole(Array((newest.json.serialized + "\n").utf8), to: path + "/schema.json", mode: 0o644)
        return try open()
    }
}

/// A device: its store and how it reaches the server.
struct Device {
    var config: DeviceConfig
    var store: Store

    /// Connections fail fast (5 s) with no signal; once connected, the server may be silent for 20 s
    /// (a slow link that keeps sending is never cut off).
    var transport: HTTPTransport {
        HTTPTransport(server: config.server, token: config.token, timeout: 20, connectTimeout: 5)
    }

    /// Each known device's name by id: this one's, and those the server passed on with other devices' changes.
    func deviceNames() throws -> [String: String] {
        var names = try store.deviceNames()
        names[store.deviceID] = config.name
        return names
    }

    func entity(_ name: String) throws -> Entity {
        guard let entity = store.schema.entity(name) else {
            throw CLIError(
                .usage, "no entity '\(name)'; entities: \(store.schema.entities.map(\.name).joined(separator: ", "))")
        }
        return entity
    }
}

/// `config.json` in the device directory: the server, the token (the file is readable by its owner only), a name.
struct DeviceConfig {
    var server: URL
    var token: String
    var name: String?
    /// The largest file a sync downloads, in bytes (nil: the default, 32 MiB); larger ones wait for
    /// `fieldbook attachment get`.
    var downloadLimit: Int64?

    static func read(from directory: String) throws -> DeviceConfig {
        let path = directory + "/config.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError(
                .notFound,
                "no device at \(directory); make one with 'fieldbook init --server URL --token TOKEN' (or pass --store DIR)"
            )
        }
        guard let json = try? JSON(parsing: Array(data)), case .string(let server)? = json["server"],
            let url = URL(string: server), case .string(let token)? = json["token"]
        else { throw CLIError(.validation, "\(path) is damaged; run 'fieldbook init' again in a new directory") }
        var name: String?
        if case .string(let n)? = json["name"] { name = n }
        var limit: Int64?
        if case .int(let l)? = json["download_limit"], l >= 0 { limit = l }
        return DeviceConfig(server: url, token: token, name: name, downloadLimit: limit)
    }

    /// A server address as `init` and `config set server` take it.
    static func serverURL(_ text: String) throws -> URL {
        guard let url = URL(string: text), url.scheme == "http" || url.scheme == "https", url.host != nil else {
            throw CLIError(.usage, "the server must be an http(s) URL, e.g. http://127.0.0.1:8080")
        }
        return url
    }

    /// Writes the file whole or not at all: a new file, readable by its owner only from the moment it
    /// exists (the token is a secret), made durable, then renamed over the old one.
    func write(to directory: String) throws {
        var pairs: [(key: String, value: JSON)] = [
            ("server", .string(server.absoluteString)), ("token", .string(token)),
        ]
        if let name { pairs.append(("name", .string(name))) }
        if let downloadLimit { pairs.append(("download_limit", .int(downloadLimit))) }
        try writeWhole(Array((JSON.object(pairs).serialized + "\n").utf8), to: directory + "/config.json", mode: 0o600)
    }
}

/// Writes a file whole or not at all: a new file with `mode` from the moment it exists, made
/// durable, then renamed over the old one.
func writeWhole(_ bytes: [UInt8], to path: String, mode: mode_t) throws {
    let directory = (path as NSString).deletingLastPathComponent
    let temporary = directory + "/." + (path as NSString).lastPathComponent + ".new"
    unlink(temporary)
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard fd >= 0 else { throw CLIError(.validation, "cannot write \(path)") }
    let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
    let synced = fsync(fd) == 0
    close(fd)
    guard written == bytes.count, synced, rename(temporary, path) == 0 else {
        unlink(temporary)
        throw CLIError(.validation, "cannot write \(path)")
    }
}

/// A failure with the exit code scripts can tell apart (docs/cli.md, "Exit codes").
struct CLIError: Error, CustomStringConvertible {
    enum Kind: Int32 {
        /// Bad arguments: an unknown entity, a malformed `field=value`.
        case usage = 64
        /// A value the schema refuses.
        case validation = 65
        /// No such record, conflict or device.
        case notFound = 66
        /// Open conflicts stand in the way.
        case conflict = 67
        /// The server could not be reached.
        case network = 69
        /// The server refused the token.
        case authentication = 77
        /// The server refused the request for another reason.
        case refused = 76
    }

    var kind: Kind
    var message: String

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    var description: String { message }

    /// The CLI's view of an error from the store or from sync.
    init(_ error: any Error) {
        switch error {
        case let error as CLIError:
            self = error
        case let error as StoreError:
            let kind: Kind =
                switch error.code {
                case .notFound: .notFound
                case .unknownEntity, .unknownField: .usage
                default: .validation
                }
            self.init(kind, error.description)
        case let error as SyncError:
            switch (error.kind, error.refusal) {
            case (.network, _):
                self.init(.network, "\(error.message); the changes stay here and go with the next sync")
            case (.refused, _) where error.isRetryable:
                // The server is there but cannot serve now (its database is down, say): try again later.
                self.init(
                    .network,
                    "the server cannot serve now (\(error.message)); the changes stay here and go with the next sync")
            case (.refused, .unauthorized?):
                self.init(
                    .authentication,
                    "the server refused this device's token (unknown or revoked); ask an administrator for a new one ('fieldbook-server token create --name NAME --role ROLE --scope SCOPE') and give it to this device with 'fieldbook config set token TOKEN'; the changes stay here"
                )
            case (.refused, .schemaAhead?):
                // The server's words say which version to publish, and that nothing is lost.
                self.init(.refused, error.message)
            case (.refused, .schemaMismatch?):
                self.init(.refused, "\(error.message); this device and the server must hold the same schema version")
            case (.refused, let code):
                self.init(
                    .refused, "the server refused the sync (\(code.map(\.rawValue) ?? "?")): \(error.message)")
            case (.badResponse, _):
                // Most often not the server at all: a Wi-Fi login page, a proxy, a wrong address.
                self.init(
                    .network,
                    "what answered at the server's address does not speak Fieldbook's protocol (\(error.description)); "
                        + "check the address ('fieldbook config show'): a Wi-Fi login page or a proxy may be answering "
                        + "in the server's place; the changes stay here and go with the next sync")
            default: self.init(.network, error.description)
            }
        case let error as SchemaError:
            self.init(.validation, "the schema file has mistakes:\n\(error)")
        default:
            self.init(.validation, String(describing: error))
        }
    }
}

/// Runs a command body, turning its errors into a message on stderr and the right exit code.
func run(_ options: DeviceOptions, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch {
        let failure = CLIError(error)
        printError(failure.message, exit: failure.kind.rawValue, json: options.json)
        throw ExitCode(failure.kind.rawValue)
    }
}

/// An error as docs/cli.md promises it on stderr: `fieldbook: MESSAGE`, or `{"error", "exit"}` with `--json`.
func printError(_ message: String, exit code: Int32, json: Bool) {
    if json {
        FileHandle.standardError.write(
            Data((JSON.object([("error", .string(message)), ("exit", .int(Int64(code)))]).serialized + "\n").utf8))
    } else {
        let prefix = colour ? "\u{1B}[31mfieldbook:\u{1B}[0m" : "fieldbook:"
        FileHandle.standardError.write(Data("\(prefix) \(message)\n".utf8))
    }
}

/// Prints one JSON document.
func printJSON(_ json: JSON) {
    print(json.serialized)
}

/// Whether stdout is a terminal (progress only then).
var stdoutIsTerminal: Bool { isatty(STDOUT_FILENO) == 1 }

/// Colour on stderr: only on a terminal, and never with NO_COLOR set.
var colour: Bool { isatty(STDERR_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil }
