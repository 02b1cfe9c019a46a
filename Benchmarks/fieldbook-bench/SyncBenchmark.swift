import ArgumentParser
import FieldbookCore
import FieldbookHTTP
import FieldbookSchemas
import FieldbookServerProcess
import FieldbookStore
import Foundation
import GRDBSQLite

/// `fieldbook-bench sync`: device A pushes N changes to a real server process on loopback,
/// device B pulls and applies them; the floor is the same changes inserted into a plain table.
struct SyncBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Push N changes from one device through a server process on loopback; pull them on another.",
        discussion: """
            Device A writes N changes (one finding inserted per ten changes, the rest updates of its
            responsible person), then pushes them; device B, new, pulls and applies them. The server is
            a separate `fieldbook-server` process (the binary next to this one) on the embedded SQLite
            store, or with --database on PostgreSQL (in a new namespace of that database, left there
            afterwards). The floor: this process inserting the same N changes into a plain SQLite table.

            With --scopes K, the findings belong to K sites in K towns, one each; after device B, a
            device C with a token scoped to one town pulls its share (1/K) from the same server, and
            its changes per second are printed beside B's (scoped_pull_per_s, pull_per_s); then another
            new device with the same scope pulls the same pages, from a server whose caches hold them
            now (scoped_pull_again_per_s).
            """)

    @Option(help: "How many changes device A makes.")
    var changes = 1_000_000

    @Option(help: "Changes per push and per pulled page.")
    var batch = 5_000

    @Option(help: "The server database: a postgres:// URL (default: an SQLite file in the directory).")
    var database: String?

    @Flag(
        help: "Device B pulls while device A pushes, as a second device online at the same time would (default: after)."
    )
    var overlap = false

    @Option(help: "Towns the findings are spread over; a device scoped to one of them pulls after B (0: none).")
    var scopes = 0

    @Flag(help: "End with one JSON object on the last line.")
    var json = false

    @Option(help: "Directory for the database files (default: a new temporary directory).")
    var directory: String?

    func run() async throws {
        let dir =
            directory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                "fieldbook-sync-bench-\(UUID().uuidString)"
            ).path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let schema = try Schema(json: BundledSchemas.inspection)

        // Device A's changes, written before the clock starts.
        let a = try Store(path: dir + "/a.sqlite", schema: schema)
        let round = try a.insert("inspection_round", ["title": "2021年巡察", "team": "区委第一巡察组", "unit": "区民政局"])
        let people: [Value] = ["张伟", "王芳", "李娜", "刘洋", "陈静"]
        let sites = try (0..<scopes).map { i in
            try a.insert("site", ["name": .text("第\(i)敬老院"), "kind": "elderly_home", "town": .text("镇\(i)")])
        }
        var ids: [String] = []
        var written = 0
        while written < changes {
            try blockingWrite(a) { tx in
                for _ in 0..<min(batch, changes - written) {
                    if written % 10 == 0 {
                        var values = Row(written, round: round).values
                        if !sites.isEmpty { values["site"] = .text(sites[ids.count % sites.count]) }
                        ids.append(try tx.insert("finding", values))
                    } else {
                        try tx.update(
                            "finding", id: ids[written % ids.count], ["responsible_person": people[written % 5]])
                    }
                    written += 1
                }
            }
        }

        let server: ServerProcess
        let storeName: String
        if let database {
            let namespace = "bench_" + UUID().uuidString.lowercased().filter { $0 != "-" }.prefix(12)
            server = try ServerProcess(database: database, namespace: namespace)
            storeName = "PostgreSQL"
        } else {
            server = try ServerProcess(database: dir + "/server.sqlite")
            storeName = "SQLite"
        }
        defer { server.stop() }
        let transportA = HTTPTransport(server: server.url, token: try server.token(name: "王芳", role: "office"))
        let transportB = HTTPTransport(server: server.url, token: try server.token(name: "李明", role: "office"))
        var options = SyncOptions()
        options.pushBatch = batch
        options.pageSize = batch

        // From here the peak counts push and pull only, not device A's writes before them.
        let b = try Store(path: dir + "/b.sqlite", schema: schema)
        resetPeakRSS(pid: getpid())
        var applied = 0
        let pushSeconds: Double
        let pullSeconds: Double
        let endToEnd: Double
        let cpu0 = (device: cpuSecondsUsed(pid: getpid()), server: server.cpuSeconds())
        var cpu1 = cpu0
        if overlap {
            // B pulls what the server has, again and again, until it has every change; its pull
            // starts with A's push and ends when the last change is applied.
            let pushOptions = options
            async let pushed = measureAsync { _ = try await a.push(transportA, options: pushOptions) }
            endToEnd = try await measureAsync {
                var lastProgress = ContinuousClock.now
                while true {
                    let pulled = try await b.pull(transportB, options: options).applied
                    applied += pulled
                    if applied >= changes + 1 { break }
                    if pulled > 0 {
                        lastProgress = .now
                    } else if ContinuousClock.now - lastProgress > .seconds(60) {
                        throw ValidationError(
                            "device B received nothing for a minute, at \(applied) of \(changes) changes")
                    }
                    try await Task.sleep(for: .milliseconds(1))
                }
            }
            pushSeconds = try await pushed
            pullSeconds = endToEnd
        } else {
            pushSeconds = try await measureAsync { _ = try await a.push(transportA, options: options) }
            cpu1 = (device: cpuSecondsUsed(pid: getpid()), server: server.cpuSeconds())
            pullSeconds = try await measureAsync { applied = try await b.pull(transportB, options: options).applied }
            endToEnd = pushSeconds + pullSeconds
        }
        let cpu2 = (device: cpuSecondsUsed(pid: getpid()), server: server.cpuSeconds())
        guard applied == changes + 1 + scopes, try a.pendingCount() == 0 else {
            throw ValidationError("device B applied \(applied) of \(changes) changes")
        }
        let serverPeak = server.peakMemoryMiB()
        let syncPeak = peakResidentMiB(pid: getpid())
        // Both devices hold the same findings.
        guard try a.fetch(Query("finding")) == b.fetch(Query("finding")) else {
            throw ValidationError("device B's findings differ from device A's")
        }
        let scoped =
            scopes > 0 ? try await scopedPull(server: server, schema: schema, dir: dir, a: a, site: sites[0]) : nil
        // The same pull by another new device: the server's caches now hold what the first read.
        let scopedAgain =
            scopes > 0
            ? try await scopedPull(server: server, schema: schema, dir: dir, a: a, site: sites[0], device: "c2") : nil
        let floorSeconds = try floor(dir + "/floor.sqlite", ids: ids, round: round)
        let devicePeak = peakResidentMiB(pid: getpid())

        let n = Double(changes)
        print(
            "sync: \(changes) changes, \(batch) per push and page, server on loopback (separate process) on \(storeName)"
                + (overlap ? "; B pulls while A pushes" : "; B pulls after A has pushed"))
        print(String(format: "  push        %9.0f changes/s  (%.2f s)", n / pushSeconds, pushSeconds))
        print(
            String(
                format: "  pull        %9.0f changes/s  (%.2f s%@)", n / pullSeconds, pullSeconds,
                overlap ? ", from the start of the push" : ""))
        print(String(format: "  end to end  %9.0f changes/s  (%.2f s)", n / endToEnd, endToEnd))
        if let scoped {
            print(
                String(
                    format:
                        "  scoped pull %9.0f changes/s  (%d changes of one town of %d, %.2f s; %.2f× the pull above)",
                    Double(scoped.changes) / scoped.seconds, scoped.changes, scopes, scoped.seconds,
                    Double(scoped.changes) / scoped.seconds / (n / pullSeconds)))
        }
        if let scopedAgain {
            print(
                String(
                    format:
                        "  again       %9.0f changes/s  (the same pull by another new device: %.2f× the pull above)",
                    Double(scopedAgain.changes) / scopedAgain.seconds,
                    Double(scopedAgain.changes) / scopedAgain.seconds / (n / pullSeconds)))
        }
        if overlap {
            print(
                String(
                    format: "  cpu         push and pull: devices %.2f s, server %.2f s", cpu2.device - cpu0.device,
                    cpu2.server - cpu0.server))
        } else {
            print(
                String(
                    format: "  cpu         push: device %.2f s, server %.2f s; pull: device %.2f s, server %.2f s",
                    cpu1.device - cpu0.device, cpu1.server - cpu0.server, cpu2.device - cpu1.device,
                    cpu2.server - cpu1.server))
        }
        print(
            String(
                format: "  floor       %9.0f changes/s  (%.2f s, plain SQLite table, no sync)", n / floorSeconds,
                floorSeconds))
        print(String(format: "  ratio       %.2f  (end to end / floor)", endToEnd / floorSeconds))
        print(
            String(
                format:
                    "  peak memory server %.0f MiB, devices (this process) %.0f MiB during push and pull, %.0f MiB with the checks after",
                serverPeak, syncPeak, devicePeak))
        if json {
            print(
                #"{"scenario":"sync","store":"\#(database == nil ? "sqlite" : "postgres")","overlap":\#(overlap),"changes":\#(changes),"push_per_s":\#(Int(n / pushSeconds)),"pull_per_s":\#(Int(n / pullSeconds)),"end_to_end_per_s":\#(Int(n / endToEnd)),"end_to_end_s":\#(String(format: "%.3f", endToEnd)),"floor_s":\#(String(format: "%.3f", floorSeconds)),"ratio":\#(String(format: "%.2f", endToEnd / floorSeconds)),"server_peak_rss_mb":\#(Int(serverPeak)),"device_peak_rss_mb":\#(Int(syncPeak)),"device_peak_rss_with_checks_mb":\#(Int(devicePeak))\#(scoped.map { #","scopes":\#(scopes),"scoped_changes":\#($0.changes),"scoped_pull_per_s":\#(Int(Double($0.changes) / $0.seconds))"# } ?? "")\#(scopedAgain.map { #","scoped_pull_again_per_s":\#(Int(Double($0.changes) / $0.seconds))"# } ?? "")}"#
            )
        }
    }

    /// A new device with a token scoped to `site`'s town pulls from `server`: how many changes it
    /// applied and how long it took. It must hold exactly `a`'s findings of that site.
    func scopedPull(
        server: ServerProcess, schema: Schema, dir: String, a: Store, site: String, device: String = "c"
    ) async throws -> (changes: Int, seconds: Double) {
        guard case .text(let name)? = try a.record("site", id: site)?["town"] else {
            throw ValidationError("the site has no town")
        }
        let c = try Store(path: dir + "/\(device).sqlite", schema: schema)
        let transport = HTTPTransport(
            server: server.url, token: try server.token(name: "张伟", role: "inspector", scopes: ["town=\(name)"]))
        var options = SyncOptions()
        options.pageSize = batch
        var applied = 0
        let seconds = try await measureAsync { applied = try await c.pull(transport, options: options).applied }
        let expected = try a.fetch(Query("finding")).filter { $0["site"] == .text(site) }
        guard try c.fetch(Query("finding")) == expected, !expected.isEmpty else {
            throw ValidationError("the scoped device's findings are not its town's")
        }
        return (applied, seconds)
    }

    /// The same changes, encoded and inserted as rows of a plain table, with the store's pragmas and batches.
    func floor(_ path: String, ids: [String], round: String) throws -> Double {
        let raw = try RawSQLite(path: path)
        try raw.execute(
            "CREATE TABLE changes (seq INTEGER PRIMARY KEY, entity TEXT, record TEXT, op INTEGER, hlc INTEGER, fields TEXT) STRICT"
        )
        let people = ["张伟", "王芳", "李娜", "刘洋", "陈静"]
        let finding = try Schema(json: BundledSchemas.inspection).entity("finding")!
        return try measure {
            let statement = try raw.prepare(
                "INSERT INTO changes (entity, record, op, hlc, fields) VALUES (?, ?, ?, ?, ?)")
            defer { sqlite3_finalize(statement) }
            var bytes: [UInt8] = []
            var n = 0
            while n < changes {
                let end = min(changes, n + batch)
                try raw.execute("BEGIN")
                for i in n..<end {
                    bytes.removeAll(keepingCapacity: true)
                    if i % 10 == 0 {
                        let values = Row(i, round: round).values
                        FieldChange.encode(
                            finding.fields.compactMap { f in
                                values[f.name].map { FieldChange(field: f.name, kind: .set($0)) }
                            },
                            to: &bytes)
                    } else {
                        FieldChange.encode(
                            [FieldChange(field: "responsible_person", kind: .set(.text(people[i % 5])))], to: &bytes)
                    }
                    sqlite3_bind_text(statement, 1, "finding", -1, transient)
                    sqlite3_bind_text(statement, 2, ids[i % ids.count], -1, transient)
                    sqlite3_bind_int64(statement, 3, i % 10 == 0 ? 0 : 1)
                    sqlite3_bind_int64(statement, 4, Int64(i))
                    _ = bytes.withUnsafeBytes {
                        sqlite3_bind_text(statement, 5, $0.baseAddress, Int32($0.count), transient)
                    }
                    try raw.step(statement)
                }
                try raw.execute("COMMIT")
                n = end
            }
        }
    }
}

/// Resets a process's peak resident memory (VmHWM) to its current size (Linux: `clear_refs` 5).
func resetPeakRSS(pid: Int32) {
    try? "5".write(toFile: "/proc/\(pid)/clear_refs", atomically: false, encoding: .utf8)
}

func measureAsync(_ body: () async throws -> Void) async rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try await body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}
