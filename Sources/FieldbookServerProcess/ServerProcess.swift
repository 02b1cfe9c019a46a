public import Foundation
import Synchronization

/// A `fieldbook-server` child process on this machine, on a loopback port, on its own SQLite file
/// or a PostgreSQL database: what the demo, the benchmarks and the end-to-end tests run against.
/// It launches the built binary (``binary``) and stops it when dropped.
///
/// ```swift
/// let server = try ServerProcess(database: "/tmp/server.sqlite")
/// let token = try server.token(name: "王芳")
/// // … HTTPTransport(server: server.url, token: token) …
/// server.stop()
/// ```
///
/// Several processes can serve one PostgreSQL database (and namespace): start one
/// `ServerProcess` per process with the same `database` and `namespace`.
public final class ServerProcess: Sendable {
    /// The `fieldbook-server` binary (``builtProduct(_:)``).
    public let binary: URL
    /// An SQLite path or a `postgres://` URL.
    public let database: String
    /// The PostgreSQL schema (namespace) holding the tables, or nil for the server's default (`public`).
    public let namespace: String?
    /// More `serve` options (limits, timeouts), passed at every start.
    public let serveArguments: [String]
    /// The port (0 until the first start picks a free one, then kept across restarts) and the process, if it runs.
    private let state: Mutex<(port: Int, process: Process?)>

    /// Starts the server on `database` (created if missing) and waits until it listens.
    /// - Parameter namespace: PostgreSQL only: the schema holding the tables (created if missing).
    /// - Parameter serveArguments: more `serve` options, e.g. `["--idle-timeout", "2"]`.
    public init(database: String, namespace: String? = nil, port: Int = 0, serveArguments: [String] = []) throws {
        binary = try Self.builtProduct("fieldbook-server")
        self.database = database
        self.namespace = namespace
        self.serveArguments = serveArguments
        state = Mutex((port, nil))
        try start()
    }

    /// The port it listens on (kept across restarts).
    public var port: Int { state.withLock { $0.port } }

    /// `http://127.0.0.1:PORT`.
    public var url: URL { URL(string: "http://127.0.0.1:\(port)")! }

    /// The running process's id, if it runs.
    public var processIdentifier: Int32? { state.withLock { $0.process?.processIdentifier } }

    /// Starts the server again (after ``stop(signal:)``) on the same port.
    public func start() throws {
        let process = Process()
        process.executableURL = binary
        process.arguments =
            ["serve"] + databaseArguments + ["--port", String(port), "--log-level", "error"] + filesArguments
            + serveArguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        // The server prints "listening on http://HOST:PORT" once it listens.
        var text = ""
        while !text.contains("\n") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw ServerProcessError("fieldbook-server stopped before it listened") }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let portText = text.split(separator: ":").last,
            let port = Int(portText.trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            throw ServerProcessError("fieldbook-server printed no address")
        }
        state.withLock { $0 = (port, process) }
    }

    /// Makes a bearer token for `name` with `role` (nil for a schema without roles) and scope keys
    /// `scopes` (everything by default) with
    /// `fieldbook-server token create`.
    public func token(name: String, role: String?, scopes: [String] = ["all"]) throws -> String {
        try admin(
            ["token", "create"] + databaseArguments + ["--name", name] + (role.map { ["--role", $0] } ?? [])
                + scopes.flatMap { ["--scope", $0] })
    }

    /// For PostgreSQL, unless `serveArguments` names one: a files directory that every process of the
    /// same database and namespace shares (SQLite keeps its files beside its file by default).
    var filesArguments: [String] {
        guard database.hasPrefix("postgres"), !serveArguments.contains("--files") else { return [] }
        let key = String(UInt64(bitPattern: Int64(database.utf8.reduce(5381) { ($0 &* 33) &+ Int($1) })), radix: 36)
        return ["--files", NSTemporaryDirectory() + "fieldbook-files-\(key)-\(namespace ?? "public")"]
    }

    /// `--database DATABASE [--namespace NAMESPACE]`, for ``admin(_:)``.
    public var databaseArguments: [String] {
        ["--database", database] + (namespace.map { ["--namespace", $0] } ?? [])
    }

    /// Runs `fieldbook-server ARGUMENTS…` (e.g. `token revoke`) and returns what it printed.
    @discardableResult
    public func admin(_ arguments: [String]) throws -> String {
        let admin = Process()
        admin.executableURL = binary
        admin.arguments = arguments
        let output = Pipe()
        admin.standardOutput = output
        try admin.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        admin.waitUntilExit()
        guard admin.terminationStatus == 0 else {
            throw ServerProcessError("fieldbook-server \(arguments.first ?? "") failed")
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Stops the server: SIGTERM (a graceful shutdown) by default, SIGKILL to simulate a crash.
    /// Returns the process's termination status.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM) -> Int32? {
        guard
            let process = state.withLock({ state in
                defer { state.process = nil }
                return state.process
            })
        else {
            return nil
        }
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        return process.terminationReason == .exit ? process.terminationStatus : nil
    }

    /// The server's peak resident memory (VmHWM), in MiB.
    public func peakMemoryMiB() -> Double {
        processIdentifier.map { peakResidentMiB(pid: $0) } ?? 0
    }

    /// The CPU time the server process has used so far (user and system), in seconds.
    public func cpuSeconds() -> Double {
        processIdentifier.map { cpuSecondsUsed(pid: $0) } ?? 0
    }

    deinit { stop() }

    /// A binary this package builds (`fieldbook-server`, `fieldbook`, …): `FIELDBOOK_BIN_DIR/NAME` if
    /// that is set, else beside the running executable or in a folder above it (test bundles sit
    /// below the products directory).
    public static func builtProduct(_ name: String) throws -> URL {
        if let dir = ProcessInfo.processInfo.environment["FIELDBOOK_BIN_DIR"] {
            return URL(fileURLWithPath: dir).appendingPathComponent(name)
        }
        var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir.deleteLastPathComponent()
        }
        throw ServerProcessError("\(name) is not built beside this program; run 'swift build' (or ./scripts/demo)")
    }
}

/// A server process could not be started or driven.
public struct ServerProcessError: Error, CustomStringConvertible {
    /// What failed, for people.
    public var description: String
    init(_ description: String) { self.description = description }
}

/// A process's peak resident memory (VmHWM from /proc), in MiB; 0 if unknown.
public func peakResidentMiB(pid: Int32) -> Double {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
    else { return 0 }
    // "VmHWM:\t  123456 kB": the padding shrinks as the figure grows, to none at 8 digits (~9.5 GiB).
    return (line.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Double($0) }.first ?? 0) / 1024
}

/// The CPU time (user and system) a process has used so far, from /proc; 0 if unknown.
public func cpuSecondsUsed(pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let end = stat.lastIndex(of: ")")
    else { return 0 }
    // After "pid (comm)": state is field 3; utime and stime are fields 14 and 15.
    let fields = stat[stat.index(after: end)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}
