import ArgumentParser
import FieldbookCore
import FieldbookHTTP
import FieldbookSchemas
import FieldbookServerProcess
import FieldbookStore
import FieldbookSync
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

            With --device-schema-version K (1 to 3), the server holds three versions of the schema
            (version 1 the bundled one; 2 renames the finding's responsible person, adds a field with a
            default and retires one; 3 adds a field, an enum value and an entity), device A writes in
            version 3 and device B, of version K, pulls pages the server translates into its version
            (pull_per_s); then a new device of version 3 pulls the same changes
            (same_version_pull_per_s), from a server whose caches are warm.
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

    @Option(
        help: "Device B's schema version, 1 to 3, of a server on version 3 (default: one version, the bundled one).")
    var deviceSchemaVersion: Int?

    @Flag(help: "End with one JSON object on the last line.")
    var json = false

    @Option(help: "Directory for the database files (default: a new temporary directory).")
    var directory: String?

    func validate() throws {
        if let deviceSchemaVersion {
            guard (1...3).contains(deviceSchemaVersion) else {
                throw ValidationError("--device-schema-version takes 1, 2 or 3")
            }
            guard scopes == 0, !overlap else {
                throw ValidationError("--device-schema-version runs without --scopes and --overlap")
            }
        }
    }

    func run() async throws {
        let dir =
            directory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                "fieldbook-sync-bench-\(UUID().uuidString)"
            ).path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: dir) } }
        // With --device-schema-version: the three versions, as files for the server too.
        let family = deviceSchemaVersion.map { _ in VersionFamily.documents() } ?? []
        for (n, document) in family.enumerated() {
            try document.write(toFile: dir + "/schema-v\(n + 1).json", atomically: true, encoding: .utf8)
        }
        let schema = try Schema(json: family.last ?? String(decoding: BundledSchemas.inspection, as: UTF8.self))
        let deviceSchema = try deviceSchemaVersion.map { try Schema(json: family[$0 - 1]) } ?? schema
        let person = family.isEmpty ? "responsible_person" : "person_in_charge"

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
                        if !family.isEmpty {
                            values[person] = values.removeValue(forKey: "responsible_person")
                            values["accepted_on"] = "2022-06-30"
                        }
                        ids.append(try tx.insert("finding", values))
                    } else {
                        try tx.update("finding", id: ids[written % ids.count], [person: people[written % 5]])
                    }
                    written += 1
                }
            }
        }

        let server: ServerProcess
        let storeName: String
        // A server of the version family starts on version 1 and is given 2 and 3.
        let schemaArguments = family.isEmpty ? [] : ["--schema", dir + "/schema-v1.json"]
        if let database {
            let namespace = "bench_" + UUID().uuidString.lowercased().filter { $0 != "-" }.prefix(12)
            server = try ServerProcess(database: database, namespace: namespace, serveArguments: schemaArguments)
            storeName = "PostgreSQL"
        } else {
            server = try ServerProcess(database: dir + "/server.sqlite", serveArguments: schemaArguments)
            storeName = "SQLite"
        }
        defer { server.stop() }
        for n in family.indices.dropFirst() {
            try server.admin(
                ["schema", "publish", dir + "/schema-v\(n + 1).json"] + server.databaseArguments + schemaArguments)
        }
        func token(_ name: String) throws -> String {
            try server.admin(
                ["token", "create"] + server.databaseArguments + schemaArguments + [
                    "--name", name, "--role", "office", "--scope", "all",
                ])
        }
        let transportA = HTTPTransport(server: server.url, token: try token("王芳"))
        let transportB = HTTPTransport(server: server.url, token: try token("李明"))
        var options = SyncOptions()
        options.pushBatch = batch
        options.pageSize = batch

        let b = try Store(path: dir + "/b.sqlite", schema: deviceSchema)
        if deviceSchema.version < schema.version {
            // Device B learns of the newest version (an empty page announces it) before the clock starts.
            guard try await b.sync(transportB, options: options).newestSchema == schema.version else {
                throw ValidationError("device B did not learn of schema version \(schema.version)")
            }
        }
        // From here the peak counts push and pull only, not device A's writes before them.
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
        // Both devices hold the same findings (device B: in its version).
        try checkProjection(a, onto: b, versions: try family.map { try Schema(json: $0) })
        // The same changes pulled by a new device of the newest version: the translated pull's yardstick.
        var sameVersionSeconds: Double?
        if deviceSchema.version < schema.version {
            let c = try Store(path: dir + "/c.sqlite", schema: schema)
            let transport = HTTPTransport(server: server.url, token: try token("刘洋"))
            var pulled = 0
            sameVersionSeconds = try await measureAsync {
                pulled = try await c.pull(transport, options: options).applied
            }
            guard pulled == applied, try a.fetch(Query("finding")) == c.fetch(Query("finding")) else {
                throw ValidationError("the device of the newest version holds other findings than device A")
            }
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
        if let sameVersionSeconds {
            print(
                String(
                    format:
                        "  same version%9.0f changes/s  (%.2f s, a device of version %d; the pull above, of version %d, is %.2f× this)",
                    n / sameVersionSeconds, sameVersionSeconds, schema.version, deviceSchema.version,
                    sameVersionSeconds / pullSeconds))
        }
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
                #"{"scenario":"sync","store":"\#(database == nil ? "sqlite" : "postgres")","overlap":\#(overlap),"changes":\#(changes),"push_per_s":\#(Int(n / pushSeconds)),"pull_per_s":\#(Int(n / pullSeconds)),"end_to_end_per_s":\#(Int(n / endToEnd)),"end_to_end_s":\#(String(format: "%.3f", endToEnd)),"floor_s":\#(String(format: "%.3f", floorSeconds)),"ratio":\#(String(format: "%.2f", endToEnd / floorSeconds)),"server_peak_rss_mb":\#(Int(serverPeak)),"device_peak_rss_mb":\#(Int(syncPeak)),"device_peak_rss_with_checks_mb":\#(Int(devicePeak))\#(scoped.map { #","scopes":\#(scopes),"scoped_changes":\#($0.changes),"scoped_pull_per_s":\#(Int(Double($0.changes) / $0.seconds))"# } ?? "")\#(scopedAgain.map { #","scoped_pull_again_per_s":\#(Int(Double($0.changes) / $0.seconds))"# } ?? "")\#(sameVersionSeconds.map { #","device_schema_version":\#(deviceSchema.version),"server_schema_version":\#(schema.version),"same_version_pull_per_s":\#(Int(n / $0)),"version_ratio":\#(String(format: "%.2f", $0 / pullSeconds))"# } ?? "")}"#
            )
        }
    }

    /// Refuses unless `device` holds `a`'s findings as its version reads them: its fields under their
    /// names in that version, with the values `a` holds under the newest names (`versions`: the
    /// family, oldest first; empty when both are of one version).
    func checkProjection(_ a: Store, onto device: Store, versions: [Schema]) throws {
        let newest = try a.fetch(Query("finding"))
        let held = try device.fetch(Query("finding"))
        guard !versions.isEmpty, device.schema.version < a.schema.version else {
            guard newest == held else { throw ValidationError("device B's findings differ from device A's") }
            return
        }
        let translation = SchemaTranslation(
            Array(versions.drop { $0.version < device.schema.version }.prefix { $0.version <= a.schema.version }))
        let entity = device.schema.entity("finding")!
        guard held.count == newest.count else {
            throw ValidationError("device B holds \(held.count) findings of \(newest.count)")
        }
        for (old, new) in zip(held, newest) {
            for field in entity.fields {
                let name = translation.newerName(entity: "finding", field: field.name) ?? field.name
                guard old.id == new.id, old[field.name] == new[name] else {
                    throw ValidationError("device B's finding differs from device A's in \(field.name)")
                }
            }
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
