import FieldbookCore
import FieldbookHTTP
import FieldbookServer
import FieldbookServerProcess
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import GRDB
import Synchronization
import Testing

@Suite("Sync: killed processes", .tags(.endToEnd))
struct FaultTests {
    @Test("SIGTERM shuts the server down gracefully: exit status 0, the database intact", arguments: Backend.all)
    func gracefulShutdown(backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let server = try makeServerProcess(dir, backend)
        let token = try server.token(name: "王芳", role: "office")
        let store = try Store(path: dir.path("device.sqlite"), schema: schema)
        try store.insert("site", ["name": "城厢区公墓", "kind": "cemetery"])
        _ = try await store.sync(HTTPTransport(server: server.url, token: token))
        #expect(server.stop(signal: SIGTERM) == 0, "a graceful shutdown exits with status 0")
        if backend == .sqlite { #expect(try integrityCheck(dir.path("server.sqlite")) == "ok") }
        #expect(try await makeStorage(dir, backend).changeCount() == 1)
    }

    @Test(
        "device and server killed with SIGKILL mid-sync, again and again: nothing lost, nothing twice",
        .tags(.slow), .fullRunOnly, arguments: Backend.all)
    func killedMidSync(backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let server = try makeServerProcess(dir, backend)
        let token = try server.token(name: "王芳", role: "office")
        defer { server.stop() }
        let devicePath = dir.path("device.sqlite")
        let changes = 3_000
        /// Runs the device; with `killAfter`, kills it with SIGKILL once it has reported that many
        /// synced batches (in the middle of a sync), unless it finishes first.
        func runDevice(killAfter batches: Int?) throws -> (status: Int32, output: String) {
            let device = Process()
            device.executableURL = try BuiltProducts.url("fieldbook-sync-device")
            device.arguments = [devicePath, server.url.absoluteString, token, String(changes), "40"]
            let output = Pipe()
            device.standardOutput = output
            device.standardError = Pipe()
            try device.run()
            var text = ""
            while true {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
                if let batches, text.components(separatedBy: "progress").count - 1 >= batches {
                    kill(device.processIdentifier, SIGKILL)
                    break
                }
            }
            device.waitUntilExit()
            return (device.terminationStatus, text)
        }
        var killedMidSync = 0
        for round in 0..<8 {
            let result = try runDevice(killAfter: Int.random(in: 1...6))
            if result.status != 0 { killedMidSync += 1 }
            if round % 2 == 1 {
                // The server dies too, between or during pushes, and comes back on the same port.
                server.stop(signal: SIGKILL)
                try server.start()
            }
        }
        let final = try runDevice(killAfter: nil)
        #expect(final.status == 0, "the device finishes once left alone: \(final.output)")
        #expect(killedMidSync > 0, "at least one kill landed during a sync")

        let storage = try await makeStorage(dir, backend)
        let device = try Store(path: devicePath, schema: schema)
        #expect(try device.changeCount() == changes)
        #expect(try device.pendingCount() == 0)
        #expect(try await storage.changeCount() == changes, "every change on the server exactly once")

        // A second device pulls everything and agrees with the server and the first device.
        let other = try Store(path: dir.path("other.sqlite"), schema: schema)
        _ = try await other.sync(HTTPTransport(server: server.url, token: try server.token(name: "李明", role: "office")))
        let serverSnapshot = try await snapshot(storage)
        #expect(try snapshot(other) == serverSnapshot)
        #expect(try snapshot(device) == serverSnapshot)
        let graves = try device.fetch(Query("site")).reduce(0) { $0 + ($1["illegal_graves_found"].integer ?? 0) }
        let increments = (0..<changes).filter { $0 % 5 != 0 && $0 % 2 == 0 }.count
        #expect(graves == Int64(increments), "every counter increment counted once")
        for path in (backend == .sqlite ? [dir.path("server.sqlite")] : []) + [devicePath, dir.path("other.sqlite")] {
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

@Suite("Sync: retries", .tags(.endToEnd))
struct RetryTests {
    @Test("network failures are retried with backoff; refusals are not", arguments: Backend.all)
    func retries(backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        _ = try await storage.createToken(name: "王芳")
        let store = try Store(path: dir.path("device.sqlite"), schema: schema)
        try store.insert("site", ["name": "新度镇社会工作服务站", "kind": "social_work_station"])
        let direct = FlakyTransport(
            storage: storage, identity: Identity(tokenID: 1, name: "王芳"), seed: 0, faults: false)
        var options = SyncOptions()
        options.initialBackoff = .milliseconds(10)
        options.attempts = 4
        let start = ContinuousClock.now
        let report = try await store.sync(FailingFirst(direct, failures: 3), options: options)
        #expect(report.pushed == 1)
        #expect(ContinuousClock.now - start >= .milliseconds(70), "waited 10 + 20 + 40 ms between tries")
        // One failure more than the tries allowed: the error reaches the caller, the change stays pending.
        try store.insert("site", ["name": "黄石镇敬老院", "kind": "elderly_home"])
        await #expect(throws: SyncError.self) {
            _ = try await store.sync(FailingFirst(direct, failures: 4), options: options)
        }
        #expect(try store.pendingCount() == 1)
        #expect(try await storage.changeCount() == 1)
    }
}
