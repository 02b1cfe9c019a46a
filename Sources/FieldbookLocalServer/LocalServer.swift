public import Foundation

/// A `fieldbook-server` process on this machine, on a loopback port, on its own SQLite file or
/// a PostgreSQL database: what the demo, the benchmarks and the end-to-end tests run against.
///
/// ```swift
/// let server = try LocalServer(database: "/tmp/server.sqlite")
/// let token = try server.token(name: "王芳")
/// // … HTTPTransport(server: server.url, token: token) …
/// server.stop()
/// ```
///
/// Several processes can serve one PostgreSQL database (and namespace): start one
/// `LocalServer` per process with the same `database` and `namespace`.
public final class LocalServer: @unchecked Sendable {
    /// The `fieldbook-server` binary: beside the running executable (or in a parent folder,
    /// for test bundles), or `FIELDBOOK_BIN_DIR/fieldbook-server`.
    public let binary: URL
    /// An SQLite path or a `postgres://` URL.
    public let database: String
    /// The PostgreSQL schema (namespace) holding the tables, or nil for the server's default (`public`).
    public let namespace: String?
    /// The port; 0 before the first start picks a free one, kept across restarts.
    public private(set) var port: Int
    /// More `serve` options (limits, timeouts), passed at every start.
    public let serveArguments: [String]
    private var process: Process?

    /// Starts the server on `database` (created if missing) and waits until it listens.
    /// - Parameter namespace: PostgreSQL only: the schema holding the tables (created if missing).
    /// - Parameter serveArguments: more `serve` options, e.g. `["--idle-timeout", "2"]`.
    public init(database: String, namespace: String? = nil, port: Int = 0, serveArguments: [String] = []) throws {
        binary = try Self.findBinary()
        self.database = database
        self.namespace = namespace
        self.port = port
        self.serveArguments = serveArguments
        try start()
    }

    /// `http://127.0.0.1:PORT`.
    public var url: URL { URL(string: "http://127.0.0.1:\(port)")! }

    /// The running process's id, if it runs.
    public var processIdentifier: Int32? { process?.processIdentifier }

    /// Starts the server again (after ``stop(signal:)``) on the same port.
    public func start() throws {
        let process = Process()
        process.executableURL = binary
        process.arguments =
            ["serve"] + databaseArguments + ["--port", String(port), "--log-level", "error"] + serveArguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        // The server prints "listening on http://HOST:PORT" once it listens.
        var text = ""
        while !text.contains("\n") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw LocalServerError("fieldbook-server stopped before it listened") }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let portText = text.split(separator: ":").last,
            let port = Int(portText.trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            throw LocalServerError("fieldbook-server printed no address")
        }
        self.port = port
        self.process = process
    }

    /// Makes a bearer token for `name` with `fieldbook-server token create`.
    public func token(name: String) throws -> String {
        try admin(["token", "create"] + databaseArguments + ["--name", name])
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
            throw LocalServerError("fieldbook-server \(arguments.first ?? "") failed")
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Stops the server: SIGTERM (a graceful shutdown) by default, SIGKILL to simulate a crash.
    /// Returns the process's termination status.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM) -> Int32? {
        guard let process else { return nil }
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        self.process = nil
        return process.terminationReason == .exit ? process.terminationStatus : nil
    }

    /// The server's peak resident memory (VmHWM), in MiB.
    public func peakMemoryMiB() -> Double {
        process.map { peakResidentMiB(pid: $0.processIdentifier) } ?? 0
    }

    /// The CPU time the server process has used so far (user and system), in seconds.
    public func cpuSeconds() -> Double {
        process.map { cpuSecondsUsed(pid: $0.processIdentifier) } ?? 0
    }

    deinit { stop() }

    /// Where ``binary`` is found: for tests that run `fieldbook-server` themselves.
    public static func findBinary() throws -> URL {
        if let dir = ProcessInfo.processInfo.environment["FIELDBOOK_BIN_DIR"] {
            return URL(fileURLWithPath: dir).appendingPathComponent("fieldbook-server")
        }
        var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent("fieldbook-server")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir.deleteLastPathComponent()
        }
        throw LocalServerError(
            "fieldbook-server is not built beside this program; run 'swift build' (or ./scripts/demo)")
    }
}

/// A local server could not be started or driven.
public struct LocalServerError: Error, CustomStringConvertible {
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
