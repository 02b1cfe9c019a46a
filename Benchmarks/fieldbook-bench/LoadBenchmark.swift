import ArgumentParser
import AsyncHTTPClient
import FieldbookCore
import FieldbookHTTP
import FieldbookJSON
import FieldbookSchemas
import FieldbookServerProcess
import FieldbookStore
import FieldbookSync
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// `fieldbook-bench load`: many devices syncing with one server process at the same time.
struct LoadBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "D devices write and sync concurrently through one server process; latency of every round trip.",
        discussion: """
            D devices (each its own store file, all in this process) run at the same time. Each writes
            its C changes in --batches batches (one site inserted per ten changes, the others updates of
            the town of one of its own sites) and syncs after each batch: it pushes what it wrote and
            pulls every other device's changes so far. When all are done, each syncs once more, so every
            device ends holding every change. The server is a separate `fieldbook-server` process (the
            binary next to this one) on an SQLite file, or on PostgreSQL with --database (in a new
            namespace of that database, left there afterwards). The devices' stores run their database
            work on one pool of threads, as many as cores, at utility priority: the devices stand in for
            phones, whose work would not share the server's cores (--own-threads: a store's usual threads).

            Timed: from the first write to the last device holding everything. Round trip: one HTTP
            request (a push, or one pulled page) from sending to the parsed answer. Checked at the end:
            every device holds every site of every other device with its last value, and applied exactly
            (D-1)*C changes from others ("lost" counts what is missing or wrong).
            """)

    @Option(help: "Devices syncing at the same time.")
    var devices = 200

    @Option(help: "Changes each device writes.")
    var changesPerDevice = 500

    @Option(help: "Write-then-sync rounds per device (its changes are split evenly).")
    var batches = 5

    @Option(
        help: """
            Seconds from the end of a device's sync to its next round (±25% at random; the first round, \
            and the last sync, at a random moment within it). 0: back to back, as fast as the machine allows.
            """)
    var interval: Double = 0

    @Option(help: "The server database: a postgres:// URL (default: an SQLite file in the directory).")
    var database: String?

    @Flag(
        help: """
            Give each device's store threads of its own, as an app's one store has, instead of one \
            pool for all: hundreds of database threads then crowd out the network threads.
            """)
    var ownThreads = false

    @Flag(help: "End with one JSON object on the last line.")
    var json = false

    @Option(help: "Directory for the store files (default: a new temporary directory).")
    var directory: String?

    func validate() throws {
        guard devices >= 2, changesPerDevice >= 10, batches >= 1, batches <= changesPerDevice else {
            throw ValidationError("need at least 2 devices, 10 changes per device, and 1 to C batches")
        }
        guard interval >= 0 else { throw ValidationError("the interval is 0 or more seconds") }
    }

    func run() async throws {
        let dir =
            directory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                "fieldbook-load-bench-\(UUID().uuidString)"
            ).path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let schema = try Schema(json: BundledSchemas.inspection)

        let server: ServerProcess
        let storeName: String
        if let database {
            let namespace = "bench_" + UUID().uuidString.lowercased().filter { $0 != "-" }.prefix(12)
            server = try ServerProcess(database: database, namespace: namespace)
            storeName = "PostgreSQL (namespace \(namespace))"
        } else {
            server = try ServerProcess(database: dir + "/server.sqlite")
            storeName = "SQLite"
        }
        defer { server.stop() }
        // One token per device, as in the field; made before the clock starts.
        let tokens = Mutex<[Int: String]>([:])
        let failure = Mutex<(any Error)?>(nil)
        DispatchQueue.concurrentPerform(iterations: devices) { n in
            do {
                let token = try server.token(name: "设备\(n)", role: "office")
                tokens.withLock { $0[n] = token }
            } catch {
                failure.withLock { $0 = error }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        var storeConfiguration = Store.Configuration()
        storeConfiguration.sharedWorkers = !ownThreads
        let stores = try (0..<devices).map {
            try Store(path: "\(dir)/device\($0).sqlite", schema: schema, configuration: storeConfiguration)
        }

        // The devices' own HTTP client: a connection per device, as D phones would have (the shared
        // client keeps 8 per host and would queue the rest inside this process).
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: devices)
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        do {
            try await measure(
                server: server, storeName: storeName, stores: stores, tokens: tokens.withLock { $0 }, client: client)
            try await client.shutdown()
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    func measure(server: ServerProcess, storeName: String, stores: [Store], tokens: [Int: String], client: HTTPClient)
        async throws
    {
        let recorder = Recorder()
        let transports = try (0..<devices).map { n in
            guard let token = tokens[n] else { throw ValidationError("no token for device \(n)") }
            return TimedTransport(client: client, server: server.url, token: token, recorder: recorder)
        }
        let options = {
            var options = SyncOptions()
            options.initialBackoff = .milliseconds(100)
            options.attempts = 8
            return options
        }()

        let people = ["张伟", "王芳", "李娜", "刘洋", "陈静"]
        let perBatch = changesPerDevice / batches
        let changesPerDevice = self.changesPerDevice
        let batches = self.batches
        let interval = self.interval
        /// The pause before a device's next round: none back to back; else `interval` ±25%, or,
        /// for a first round or the last sync, anywhere within it (so the devices do not start together).
        @Sendable func pause(first: Bool) async throws {
            guard interval > 0 else { return }
            let seconds = first ? Double.random(in: 0..<interval) : interval * Double.random(in: 0.75...1.25)
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let cpu0 = (devices: cpuSecondsUsed(pid: getpid()), server: server.cpuSeconds())
        // Each device's own sites and the last town it wrote to each: what every device must end with.
        let written = try await withThrowingTaskGroup(of: [String: String].self) { group in
            for n in 0..<devices {
                let store = stores[n]
                let transport = transports[n]
                group.addTask {
                    var towns: [String: String] = [:]
                    var sites: [String] = []
                    var made = 0
                    for batch in 0..<batches {
                        try await pause(first: batch == 0)
                        let count = batch == batches - 1 ? changesPerDevice - made : perBatch
                        try blockingWrite(store) { tx in
                            for _ in 0..<count {
                                if made % 10 == 0 {
                                    let town = "\(people[n % 5])镇\(n)-\(made)"
                                    let id = try tx.insert(
                                        "site",
                                        ["name": .text("敬老院\(n)-\(made)"), "kind": "elderly_home", "town": .text(town)])
                                    sites.append(id)
                                    towns[id] = town
                                } else {
                                    let id = sites[made % sites.count]
                                    let town = "街道\(n)-\(made)"
                                    try tx.update("site", id: id, ["town": .text(town)])
                                    towns[id] = town
                                }
                                made += 1
                            }
                        }
                        await recorder.sync(store, transport, options)
                    }
                    return towns
                }
            }
            var written: [String: String] = [:]
            for try await towns in group { written.merge(towns) { a, _ in a } }
            return written
        }
        // Everyone has pushed everything: one more sync each brings every device up to date.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<devices {
                let store = stores[n]
                let transport = transports[n]
                group.addTask {
                    try await pause(first: true)
                    await recorder.sync(store, transport, options)
                }
            }
            try await group.waitForAll()
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let cpu = (devices: cpuSecondsUsed(pid: getpid()) - cpu0.devices, server: server.cpuSeconds() - cpu0.server)
        let serverPeak = server.peakMemoryMiB()

        // Lost: a site of another device missing or not at its last value, or changes not applied.
        var lost = 0
        var pulledWrong = 0
        for n in 0..<devices {
            var held: [String: String] = [:]
            for record in try stores[n].fetch(Query("site")) { held[record.id] = record["town"].text }
            lost += written.filter { held[$0.key] != $0.value }.count
            let pulled = recorder.pulled(stores[n].deviceID)
            if pulled != (devices - 1) * changesPerDevice { pulledWrong += 1 }
            lost += max(0, (devices - 1) * changesPerDevice - pulled)
        }
        let stats = recorder.statistics()
        let total = Double(devices * changesPerDevice)
        print(
            "load: \(devices) devices × \(changesPerDevice) changes in \(batches) syncs each"
                + (interval > 0 ? String(format: " about %.0f s apart", interval) : " back to back")
                + ", server on \(storeName) (separate process), devices in this process"
                + (ownThreads ? ", each store on threads of its own" : ", their database work on shared threads")
        )
        print(
            String(
                format: "  throughput   %9.0f changes/s written and delivered to every device  (%.2f s)",
                total / seconds, seconds))
        print(
            String(
                format:
                    "  round trips  %d (pushes %d, pulled pages %d): p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms",
                stats.requests.count, stats.pushes.count, stats.requests.count - stats.pushes.count,
                stats.requests.p(0.5),
                stats.requests.p(0.9), stats.requests.p(0.99), stats.requests.p(1)))
        print(
            String(
                format: "    of which pushes: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms", stats.pushes.p(0.5),
                stats.pushes.p(0.9),
                stats.pushes.p(0.99), stats.pushes.p(1)))
        print(
            String(
                format: "  whole syncs  %d: p50 %.1f ms, p99 %.1f ms, max %.1f ms", stats.syncs.count,
                stats.syncs.p(0.5), stats.syncs.p(0.99),
                stats.syncs.p(1)))
        print(
            String(
                format: "  cpu          server %.1f s, devices %.1f s: %.0f%% of the two cores", cpu.server,
                cpu.devices,
                100 * (cpu.server + cpu.devices) / (2 * seconds)))
        print("  errors       \(stats.failedRequests) failed requests (retried), \(stats.failedSyncs) failed syncs")
        print(
            "  lost         \(lost)  (\(written.count) sites checked on each device; \(pulledWrong) devices applied a wrong number of changes)"
        )
        print(
            String(
                format: "  peak memory  server %.0f MiB, devices (this process) %.0f MiB", serverPeak,
                peakResidentMiB(pid: getpid())))
        if json {
            print(
                #"{"scenario":"load","devices":\#(devices),"interval_s":\#(interval),"device_threads":"\#(ownThreads ? "own" : "shared")","changes_per_s":\#(Int(total / seconds)),"p50_ms":\#(String(format: "%.1f", stats.requests.p(0.5))),"p99_ms":\#(String(format: "%.1f", stats.requests.p(0.99))),"errors":\#(stats.failedRequests + stats.failedSyncs),"lost":\#(lost)}"#
            )
        }
    }
}

/// Latencies, failures and pulled counts, from every device task.
final class Recorder: Sendable {
    struct State {
        var requests: [Double] = []
        /// The pushes' round trips alone (also in `requests`).
        var pushes: [Double] = []
        var syncs: [Double] = []
        var failedRequests = 0
        var failedSyncs = 0
        var pulled: [String: Int] = [:]
    }
    let state = Mutex(State())

    func request(_ milliseconds: Double, push: Bool) {
        state.withLock {
            $0.requests.append(milliseconds)
            if push { $0.pushes.append(milliseconds) }
        }
    }

    func failed() { state.withLock { $0.failedRequests += 1 } }

    /// One sync, timed; a failure is counted, not thrown (the device would try again later).
    func sync(_ store: Store, _ transport: TimedTransport, _ options: SyncOptions) async {
        let start = DispatchTime.now().uptimeNanoseconds
        do {
            let report = try await store.sync(transport, options: options)
            let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            state.withLock {
                $0.syncs.append(milliseconds)
                $0.pulled[store.deviceID, default: 0] += report.pulled
            }
        } catch {
            state.withLock { $0.failedSyncs += 1 }
            FileHandle.standardError.write(Data("sync failed: \(error)\n".utf8))
        }
    }

    func pulled(_ device: String) -> Int { state.withLock { $0.pulled[device] ?? 0 } }

    func statistics() -> (requests: [Double], syncs: [Double], pushes: [Double], failedRequests: Int, failedSyncs: Int)
    {
        state.withLock {
            ($0.requests.sorted(), $0.syncs.sorted(), $0.pushes.sorted(), $0.failedRequests, $0.failedSyncs)
        }
    }
}

extension [Double] {
    /// The `q` quantile of a sorted array (nearest rank); 0 if empty.
    func p(_ q: Double) -> Double {
        isEmpty ? 0 : self[Swift.min(count - 1, Swift.max(0, Int((q * Double(count)).rounded(.up)) - 1))]
    }
}

/// The sync protocol over HTTP like `HTTPTransport`, on a given client, timing every request.
struct TimedTransport: SyncTransport {
    let client: HTTPClient
    let server: URL
    let token: String
    let recorder: Recorder

    func push(_ request: PushRequest) async throws -> PushResponse {
        var body: [UInt8] = []
        request.encode(to: &body)
        return try await push(body: body)
    }

    func push(encoded: EncodedPush) async throws -> PushResponse {
        try await push(body: encoded.body)
    }

    func push(body: [UInt8]) async throws -> PushResponse {
        try await timed(push: true) {
            let bytes = try await send("v1/push", body)
            do { return try PushResponse(utf8: bytes) } catch {
                throw SyncError(.badResponse, String(describing: error))
            }
        }
    }

    func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse {
        var body: [UInt8] = []
        request.encode(to: &body)
        return try await timed(push: false) {
            let bytes = try await send("v1/pull", body)
            do { return try PullResponse(utf8: bytes, schema: schema) } catch {
                throw SyncError(.badResponse, String(describing: error))
            }
        }
    }

    func timed<T>(push: Bool, _ body: () async throws -> T) async throws -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        do {
            let value = try await body()
            recorder.request(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6, push: push)
            return value
        } catch {
            recorder.failed()
            throw error
        }
    }

    func send(_ path: String, _ body: [UInt8]) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: server.appendingPathComponent(path).absoluteString)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: body))
        let status: Int
        let data: [UInt8]
        do {
            let response = try await client.execute(request, timeout: .seconds(60))
            status = Int(response.status.code)
            data = Array(try await response.body.collect(upTo: 1 << 30).readableBytesView)
        } catch {
            throw SyncError(.network, "\(server.absoluteString) could not be reached (\(error))")
        }
        guard status == 200 else {
            if let json = try? JSON(parsing: data), let wire = WireError(json: json) {
                throw SyncError(refusal: wire, status: status)
            }
            throw SyncError(.badResponse, status: status, "HTTP \(status) without a protocol error")
        }
        return data
    }
}
