import FieldbookCore
import FieldbookServer
import FieldbookStore
import Foundation
import GRDB
import Synchronization
import Testing

/// The directory holding the built products (the test bundle's own directory).
func productsDirectory() -> URL {
    if let dir = ProcessInfo.processInfo.environment["FIELDBOOK_BIN_DIR"] { return URL(fileURLWithPath: dir) }
    var url = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    while !FileManager.default.fileExists(atPath: url.appendingPathComponent("fieldbook-server").path), url.path != "/" {
        url.deleteLastPathComponent()
    }
    return url
}

/// A real `fieldbook-server` process.
final class ServerProcess {
    let database: String
    var process: Process?
    var port = 0

    init(database: String) { self.database = database }

    func start() throws {
        let process = Process()
        process.executableURL = productsDirectory().appendingPathComponent("fieldbook-server")
        process.arguments = ["serve", "--database", database, "--port", String(port), "--log-level", "error"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        var text = ""
        while !text.contains("\n") {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw CocoaError(.fileReadUnknown) }
            text += String(decoding: chunk, as: UTF8.self)
        }
        port = Int(text.split(separator: ":").last!.trimmingCharacters(in: .whitespacesAndNewlines))!
        self.process = process
    }

    var url: URL { URL(string: "http://127.0.0.1:\(port)")! }

    func kill(_ signal: Int32 = SIGKILL) {
        guard let process else { return }
        Foundation.kill(process.processIdentifier, signal)
        process.waitUntilExit()
        self.process = nil
    }

    var terminationStatus: Int32? { process?.terminationStatus }

    func token(_ name: String) throws -> String {
        let admin = Process()
        admin.executableURL = productsDirectory().appendingPathComponent("fieldbook-server")
        admin.arguments = ["token", "create", "--database", database, "--name", name]
        let output = Pipe()
        admin.standardOutput = output
        try admin.run()
        admin.waitUntilExit()
        return String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

func integrityCheck(_ path: String) throws -> String {
    try DatabaseQueue(path: path).read { try String.fetchOne($0, sql: "PRAGMA integrity_check") ?? "" }
}

@Suite("Sync: killed processes")
struct FaultTests {
    @Test("SIGTERM shuts the server down gracefully: exit status 0, the database intact")
    func gracefulShutdown() async throws {
        let dir = TemporaryDirectory()
        let server = ServerProcess(database: dir.path("server.sqlite"))
        let token = try server.token("王芳")
        try server.start()
        let store = try Store(path: dir.path("device.sqlite"), schema: schema)
        try store.insert("site", ["name": "城厢区公墓", "kind": "cemetery"])
        _ = try await store.sync(HTTPTransport(server: server.url, token: token))
        let process = try #require(server.process)
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)
        #expect(try integrityCheck(dir.path("server.sqlite")) == "ok")
        #expect(try await makeStorage(dir).changeCount() == 1)
    }

    @Test("device and server killed with SIGKILL mid-sync, again and again: nothing lost, nothing twice")
    func killedMidSync() async throws {
        let dir = TemporaryDirectory()
        let server = ServerProcess(database: dir.path("server.sqlite"))
        let token = try server.token("王芳")
        try server.start()
        defer { server.kill() }
        let devicePath = dir.path("device.sqlite")
        let changes = 3_000
        func runDevice(killAfter: Duration?) async throws -> (status: Int32, output: String) {
            let device = Process()
            device.executableURL = productsDirectory().appendingPathComponent("fieldbook-sync-device")
            device.arguments = [devicePath, server.url.absoluteString, token, String(changes), "40"]
            let output = Pipe()
            device.standardOutput = output
            device.standardError = Pipe()
            try device.run()
            if let killAfter {
                try await Task.sleep(for: killAfter)
                Foundation.kill(device.processIdentifier, SIGKILL)
            }
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            device.waitUntilExit()
            return (device.terminationStatus, text)
        }
        var rng = SystemRandomNumberGenerator()
        var killedMidway = 0
        for round in 0..<8 {
            let result = try await runDevice(killAfter: .milliseconds(Int.random(in: 150...900, using: &rng)))
            if result.status != 0 { killedMidway += 1 }
            if round % 2 == 1 {
                // The server dies too, between or during pushes, and comes back on the same port.
                server.kill()
                try server.start()
            }
        }
        let final = try await runDevice(killAfter: nil)
        #expect(final.status == 0, "the device finishes once left alone: \(final.output)")
        #expect(killedMidway > 0, "at least one kill landed during a sync")

        let storage = try makeStorage(dir)
        let device = try Store(path: devicePath, schema: schema)
        #expect(try device.changeCount() == changes)
        #expect(try device.pendingCount() == 0)
        #expect(try await storage.changeCount() == changes, "every change on the server exactly once")

        // A second device pulls everything and agrees with the server and the first device.
        let other = try Store(path: dir.path("other.sqlite"), schema: schema)
        _ = try await other.sync(HTTPTransport(server: server.url, token: try server.token("李明")))
        let serverSnapshot = try await snapshot(storage)
        #expect(try snapshot(other) == serverSnapshot)
        #expect(try snapshot(device) == serverSnapshot)
        let graves = try device.fetch(Query("site")).reduce(0) { $0 + ($1["illegal_graves_found"].integer ?? 0) }
        let increments = (0..<changes).filter { $0 % 5 != 0 && $0 % 2 == 0 }.count
        #expect(graves == Int64(increments), "every counter increment counted once")
        for path in [dir.path("server.sqlite"), devicePath, dir.path("other.sqlite")] {
            #expect(try integrityCheck(path) == "ok")
        }
    }
}

/// Fails the first calls with a network error, then passes them to the server's storage.
final class FailingFirst: SyncTransport {
    let inner: FlakyTransport
    let failures: Mutex<Int>

    init(_ inner: FlakyTransport, failures: Int) {
        self.inner = inner
        self.failures = Mutex(failures)
    }

    func failIfDue() throws {
        try failures.withLock {
            if $0 > 0 {
                $0 -= 1
                throw SyncError(.network, "connection refused")
            }
        }
    }

    func push(_ request: PushRequest) async throws -> PushResponse {
        try failIfDue()
        return try await inner.push(request)
    }

    func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse {
        try failIfDue()
        return try await inner.pull(request, schema: schema)
    }
}

@Suite("Sync: retries")
struct RetryTests {
    @Test("network failures are retried with backoff; refusals are not")
    func retries() async throws {
        let dir = TemporaryDirectory()
        let storage = try makeStorage(dir)
        _ = try await storage.createToken(name: "王芳")
        let store = try Store(path: dir.path("device.sqlite"), schema: schema)
        try store.insert("site", ["name": "新度镇社会工作服务站", "kind": "social_work_station"])
        let direct = FlakyTransport(storage: storage, identity: Identity(tokenID: 1, name: "王芳"), seed: 0, faults: false)
        var options = SyncOptions()
        options.initialBackoff = .milliseconds(10)
        options.attempts = 4
        let start = ContinuousClock.now
        let report = try await store.sync(FailingFirst(direct, failures: 3), options: options)
        #expect(report.pushed == 1)
        #expect(ContinuousClock.now - start >= .milliseconds(70), "waited 10 + 20 + 40 ms between tries")
        // One failure more than the tries allowed: the error reaches the caller, the change stays pending.
        try store.insert("site", ["name": "黄石镇敬老院", "kind": "elderly_home"])
        await #expect(throws: SyncError.self) { _ = try await store.sync(FailingFirst(direct, failures: 4), options: options) }
        #expect(try store.pendingCount() == 1)
        #expect(try await storage.changeCount() == 1)
    }
}
