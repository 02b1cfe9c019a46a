import FieldbookCore
import FieldbookJSON
import FieldbookServer
import FieldbookServerProcess
import FieldbookServerTesting
import FieldbookTesting
import Foundation
import GRDB
import Glibc
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A PostgreSQL cluster of the test's own (scripts/postgres), which it can stop and start again
/// without touching the shared one the other suites use.
final class OwnPostgres: Sendable {
    static let script = repositoryRoot().appendingPathComponent("scripts/postgres").path
    let url: String
    let dir: String

    static func start() async throws -> OwnPostgres { try await offThread { try OwnPostgres() } }

    private init() throws {
        let exports = try Self.run(["start"])
        func value(_ name: String) -> String? {
            exports.split(separator: "\n").first { $0.hasPrefix("export \(name)=") }.map {
                String($0.split(separator: "=", maxSplits: 1)[1])
            }
        }
        guard let url = value("FIELDBOOK_POSTGRES_URL"), let dir = value("FIELDBOOK_POSTGRES_DIR") else {
            throw RawError("scripts/postgres start printed no exports")
        }
        self.url = url
        self.dir = dir
    }

    func pause() async throws { _ = try await offThread { [dir] in try Self.run(["pause", dir]) } }
    func resume() async throws { _ = try await offThread { [dir] in try Self.run(["resume", dir]) } }

    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        let (status, output, _) = try shell([script] + arguments)
        guard status == 0 else { throw RawError("scripts/postgres \(arguments[0]) failed") }
        return output
    }

    deinit { _ = try? Self.run(["stop", dir]) }
}

/// Runs a command through `/bin/sh` with posix_spawn and waitpid (Foundation's Process did not always reap
/// the script in this suite); returns its exit status, standard output and standard error.
func shell(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
    let dir = TemporaryDirectory()
    let quoted = arguments.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
    let command = "\(quoted) >'\(dir.path("out"))' 2>'\(dir.path("err"))' </dev/null"
    let argv: [UnsafeMutablePointer<CChar>?] =
        ["/bin/sh", "-c", command].map { (text: String) in strdup(text) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    guard posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ) == 0 else { throw RawError("posix_spawn failed") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let output = (try? String(contentsOfFile: dir.path("out"), encoding: .utf8)) ?? ""
    let errors = (try? String(contentsOfFile: dir.path("err"), encoding: .utf8)) ?? ""
    return ((status >> 8) & 0xFF, output, errors)
}

/// GETs `path` without a token; returns the status, the error code if any, and `Retry-After`.
func probe(_ url: URL, _ path: String) async -> (status: Int, code: String?, retryAfter: String?, body: String) {
    var request = URLRequest(url: url.appendingPathComponent(path))
    request.timeoutInterval = 30
    guard let (data, response) = try? await URLSession.shared.data(for: request),
        let http = response as? HTTPURLResponse
    else {
        return (0, nil, nil, "")
    }
    let code: String? = (try? JSON(parsing: Array(data))).flatMap {
        if case .string(let c)? = $0["error"]?["code"] { c } else { nil }
    }
    return (http.statusCode, code, http.value(forHTTPHeaderField: "Retry-After"), String(decoding: data, as: UTF8.self))
}

@Suite(
    "A database outage: 503 at once, readiness, quick recovery, serve waiting", .serialized, .tags(.server, .endToEnd))
struct OutageTests {
    /// The suites run PostgreSQL only when FIELDBOOK_POSTGRES_URL names one.
    static let enabled = postgresURL != nil

    @Test(
        "PostgreSQL stopped under a running server: 503 with Retry-After in seconds, /ready says so, served again seconds after it returns",
        .enabled(if: enabled))
    func outage() async throws {
        let postgres = try await OwnPostgres.start()
        let url = postgres.url
        let server = try await offThread { try ServerProcess(database: url) }
        let token = try await offThread { try server.token(name: "王芳", role: "office") }
        #expect(try await post(server.url, "v1/push", token: token, body: pushBody(change())) == (200, nil))
        #expect(await probe(server.url, "ready").status == 200)

        try await postgres.pause()
        // Requests answer 503 `unavailable` quickly, with Retry-After; nothing hangs for a minute.
        let down = ContinuousClock.now
        var answer = try await send(
            server.url, "v1/pull", headers: ["Authorization": "Bearer \(token)"], body: pullBody(#","cursor":0"#))
        while answer.status != 503 && ContinuousClock.now - down < .seconds(15) {
            try await Task.sleep(for: .milliseconds(200))
            answer = try await send(
                server.url, "v1/pull", headers: ["Authorization": "Bearer \(token)"], body: pullBody(#","cursor":0"#))
        }
        #expect(answer.status == 503 && answer.code == "unavailable")
        #expect(ContinuousClock.now - down < .seconds(10), "503 came after \(ContinuousClock.now - down)")
        let started = ContinuousClock.now
        #expect(
            try await post(server.url, "v1/push", token: token, body: next(#"{"name":"x","kind":"cemetery"}"#)) == (
                503, "unavailable"
            ))
        #expect(ContinuousClock.now - started < .seconds(1))
        let ready = await probe(server.url, "ready")
        #expect(ready.status == 503 && ready.code == "unavailable" && ready.retryAfter == "5")
        let health = await probe(server.url, "health")
        #expect(health.status == 200 && health.body.contains(#""store":"unavailable""#))

        // A long outage (the pool's backoff would have grown to tens of seconds), then the database returns.
        try await Task.sleep(for: .seconds(25))
        try await postgres.resume()
        let back = ContinuousClock.now
        var pushed = try await post(server.url, "v1/push", token: token, body: next(#"{"name":"x","kind":"cemetery"}"#))
        while pushed.status != 200 && ContinuousClock.now - back < .seconds(60) {
            try await Task.sleep(for: .milliseconds(200))
            pushed = try await post(server.url, "v1/push", token: token, body: next(#"{"name":"x","kind":"cemetery"}"#))
        }
        let recovery = ContinuousClock.now - back
        print("served again \(recovery) after PostgreSQL returned")
        #expect(pushed == (200, nil))
        // Seconds, not the tens of seconds the pool's backoff would have grown to (2 s to 5 s alone;
        // up to 7 s seen with the whole suite running beside it on two cores).
        #expect(recovery < .seconds(12), "served again only \(recovery) after PostgreSQL returned")
        #expect(await probe(server.url, "ready").status == 200)
    }

    @Test(
        "SQLite: the file locked past the store's busy timeout is 503 unavailable with Retry-After, not 500; served again once it is free"
    )
    func sqliteLocked() async throws {
        let dir = TemporaryDirectory()
        let storage = try SQLiteSyncStorage(path: dir.path("server.sqlite"), schema: schema)
        let token = try await storage.createToken(name: "王芳")
        try await withServer(storage: storage) { url in
            #expect(try await post(url, "v1/push", token: token, body: pushBody(change())) == (200, nil))
            // Another writer holds the write lock past the store's 10 s busy timeout.
            // On a thread of its own, not the test pool's, and the push is sent only once it holds the lock.
            let other = try DatabaseQueue(path: dir.path("server.sqlite"))
            let (held, released) = (DispatchSemaphore(value: 0), DispatchSemaphore(value: 0))
            Thread.detachNewThread {
                try? other.writeWithoutTransaction { db in
                    try db.inTransaction(.immediate) {
                        held.signal()
                        Thread.sleep(forTimeInterval: 12)
                        return .rollback
                    }
                }
                released.signal()
            }
            try await offThread { held.wait() }
            let locked = try await send(
                url, "v1/push", headers: ["Authorization": "Bearer \(token)"],
                body: next(#"{"name":"x","kind":"cemetery"}"#))
            #expect(locked.status == 503 && locked.code == "unavailable")
            try await offThread { released.wait() }
            let free = ContinuousClock.now
            var pushed = try await post(url, "v1/push", token: token, body: next(#"{"name":"x","kind":"cemetery"}"#))
            while pushed.status != 200 && ContinuousClock.now - free < .seconds(10) {
                try await Task.sleep(for: .milliseconds(200))
                pushed = try await post(url, "v1/push", token: token, body: next(#"{"name":"x","kind":"cemetery"}"#))
            }
            #expect(pushed == (200, nil))
            #expect(ContinuousClock.now - free < .seconds(3))
        }
    }

    @Test(
        "serve started before its database: waits for it with a plain message, or fails with one", .enabled(if: enabled)
    )
    func serveWaits() async throws {
        let postgres = try await OwnPostgres.start()
        try await postgres.pause()
        // Fails after its wait with a plain message, not a raw pool error.
        let url = postgres.url
        let start = ContinuousClock.now
        let (status, _, message) = try await offThread {
            try shell([
                try ServerProcess.builtProduct("fieldbook-server").path, "serve", "--database", url, "--port", "0",
                "--wait-for-database",
                "2",
            ])
        }
        #expect(status != 0)
        #expect(ContinuousClock.now - start < .seconds(15))
        #expect(message.contains("did not answer within"), "\(message)")
        #expect(!message.contains("ConnectionPoolError") && !message.contains("fieldbook@"))

        // Waits, and serves once the database is back.
        let resume = Task {
            try await Task.sleep(for: .seconds(3))
            try await postgres.resume()
        }
        let server = try await offThread {
            try ServerProcess(database: url, serveArguments: ["--wait-for-database", "30"])
        }
        try await resume.value
        #expect(await probe(server.url, "ready").status == 200)
    }
}
