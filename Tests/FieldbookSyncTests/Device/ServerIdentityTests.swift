import FieldbookCore
import FieldbookHTTP
import FieldbookServer
import FieldbookServerPostgres
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import GRDB
import Logging
import PostgresNIO
import Testing

/// A server restored from an older backup: its numbers name other changes than the ones the
/// devices hold. With a new identity (`fieldbook-server identity renew`) the devices start again
/// with it and nothing is lost or applied twice; without one, they refuse to sync with it.
@Suite("Server identity: a restored server", .tags(.device, .server))
struct ServerIdentityTests {
    /// A copy of the store as it is now, and how to open a store on that copy later: for SQLite a
    /// copy of the file (`VACUUM INTO`, what `sqlite3 .backup` makes), for PostgreSQL a copy of the
    /// namespace's tables into a namespace of their own (what `pg_dump -n` and `pg_restore` make).
    struct Backup {
        let open: @Sendable () async throws -> any SyncStorage
    }

    func makeBackup(_ dir: TemporaryDirectory, _ backend: Backend) async throws -> Backup {
        switch backend {
        case .sqlite:
            let copy = dir.path("backup.sqlite")
            try await DatabaseQueue(path: dir.path("server.sqlite")).writeWithoutTransaction { db in
                try db.execute(sql: "VACUUM INTO ?", arguments: [copy])
            }
            return Backup {
                // Restoring is copying the backup into place.
                let restored = dir.path("restored-\(UUID().uuidString).sqlite")
                try FileManager.default.copyItem(atPath: copy, toPath: restored)
                return try SQLiteSyncStorage(path: restored, schema: schema)
            }
        case .postgres:
            var logger = Logger(label: "test-postgres")
            logger.logLevel = .warning
            let client = await postgresClient()
            let copy = dir.namespace + "_backup"
            try await client.withConnection { c in
                try await c.query(PostgresQuery(unsafeSQL: "BEGIN ISOLATION LEVEL REPEATABLE READ"), logger: logger)
                try await c.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA \"\(copy)\""), logger: logger)
                for table in ["meta", "tokens", "devices", "changes", "records", "conflicts"] {
                    try await c.query(
                        PostgresQuery(
                            unsafeSQL: """
                                CREATE TABLE "\(copy)".\(table) (LIKE "\(dir.namespace)".\(table) INCLUDING ALL);
                                """), logger: logger)
                    try await c.query(
                        PostgresQuery(
                            unsafeSQL: "INSERT INTO \"\(copy)\".\(table) SELECT * FROM \"\(dir.namespace)\".\(table)"),
                        logger: logger)
                }
                try await c.query(PostgresQuery(unsafeSQL: "COMMIT"), logger: logger)
            }
            let quiet = logger
            return Backup {
                let storage = try PostgresSyncStorage(client: client, schema: schema, namespace: copy, logger: quiet)
                try await storage.migrate()
                return storage
            }
        }
    }

    /// Every change the store holds, as (device, sequence) → how many times.
    func held(_ storage: any SyncStorage) async throws -> [String: [Int64: Int]] {
        var result: [String: [Int64: Int]] = [:]
        var cursor: Int64 = 0
        let reader = Identity(tokenID: 0, name: "test")
        while true {
            let page = try await storage.pull(
                PullRequest(
                    schema: SchemaVersion(schema), device: UUID().uuidString.lowercased(), cursor: cursor, limit: 10_000
                ),
                identity: reader)
            for change in page.changes { result[change.device, default: [:]][change.sequence, default: 0] += 1 }
            cursor = page.cursor
            if !page.more { return result }
        }
    }

    func refusal(_ body: () async throws -> Void) async -> WireError.Code? {
        do {
            try await body()
            return nil
        } catch let error as SyncError {
            if let code = error.refusal { return code }
            return nil
        } catch {
            return nil
        }
    }

    @Test(
        "restored from an older copy while devices keep working: every device and the server converge, every change acknowledged is there once",
        arguments: Backend.all)
    func restored(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let tokens = [
            try await storage.createToken(name: "王芳"), try await storage.createToken(name: "李明"),
            try await storage.createToken(name: "陈静"),
        ]
        let a = try Store(path: dir.path("a.sqlite"), schema: schema)
        let b = try Store(path: dir.path("b.sqlite"), schema: schema)
        let c = try Store(path: dir.path("c.sqlite"), schema: schema)
        let devices = [a, b, c]
        let options = {
            var options = SyncOptions()
            options.pushBatch = 2  // several batches on the wire
            options.pageSize = 3
            return options
        }()
        let old = try await storage.standing(device: "").identity

        // Before the backup: a site and a finding every device has.
        let site = try a.insert("site", ["name": "幸福院", "kind": "happiness_home"])
        let finding = try a.insert("finding", ["title": "消防通道堵塞", "status": "not_started", "description": "初查"])
        try a.update("finding", id: finding, ["reopen_count": 1])
        let backup = try await withServer(storage: storage) { url in
            for (store, token) in zip(devices, tokens) {
                _ = try await store.sync(HTTPTransport(server: url, token: token), options: options)
            }
            let copy = try await makeBackup(dir, backend)
            // After it: changes the server acknowledges and will lose.
            try a.update("finding", id: finding, ["reopen_count": 2, "status": "in_progress"])
            let second = try a.insert("finding", ["title": "台账不全", "status": "not_started"])
            _ = try await a.sync(HTTPTransport(server: url, token: tokens[0]), options: options)
            let newSite = try b.insert("site", ["name": "敬老院", "kind": "elderly_home"])
            try b.update("site", id: site, ["town": "城关镇", "tags": .set(["民办"])])
            _ = try await b.sync(HTTPTransport(server: url, token: tokens[1]), options: options)
            _ = try await c.sync(HTTPTransport(server: url, token: tokens[2]), options: options)
            // C sets the description having seen all of that; acknowledged, then lost.
            try c.update("finding", id: finding, ["description": "C：已复查"])
            try c.update("site", id: site, ["illegal_graves_found": 3])
            // And a finding at B's new site: the restored store will hold neither.
            _ = try c.insert("finding", ["title": "床位超员", "status": "not_started", "site": .text(newSite)])
            _ = try await c.sync(HTTPTransport(server: url, token: tokens[2]), options: options)
            // Not yet pushed when the server fails.
            try a.update("finding", id: second, ["title": "台账不全（补）"])
            return copy
        }
        #expect(try await storage.standing(device: "").head > 0)

        // B, not knowing of C's description, writes another: concurrent with C's.
        try b.update("finding", id: finding, ["description": "B：待整改"])
        let before = try devices.map { try snapshot($0) }
        let pendingBefore = try devices.map { try $0.pendingCount() }

        // Restored by copying, identity not renewed: every device that has seen a lost change refuses
        // to sync with it, and nothing changes on the device.
        let forgotten = try await backup.open()
        try await withServer(storage: forgotten) { url in
            for (store, token) in zip(devices, tokens) {
                #expect(
                    await refusal {
                        _ = try await store.sync(HTTPTransport(server: url, token: token), options: options)
                    } == .cursorAhead)
            }
        }
        #expect(try devices.map { try snapshot($0) } == before)
        #expect(try devices.map { try $0.pendingCount() } == pendingBefore)
        #expect(try devices.allSatisfy { try $0.serverIdentity() == old })

        // Renewed: every device starts again with it, while they keep writing.
        let restored = try await backup.open()
        let renewed = try await restored.renewIdentity()
        #expect(renewed != old)
        try await withServer(storage: restored) { url in
            let transports = tokens.map { HTTPTransport(server: url, token: $0) }
            // C first: its finding refers to B's site, which only B still holds: refused, nothing of
            // the push applied, but C has pulled all the same (started again with the new identity).
            #expect(await refusal { _ = try await c.sync(transports[2], options: options) } == .unknownReference)
            #expect(try c.serverIdentity() == renewed)
            #expect(try c.pendingCount() > 0)
            _ = try await b.sync(transports[1], options: options)
            // Enough new changes that the new numbering passes the bases A and C wrote under the old one.
            for n in 0..<8 { try b.update("site", id: site, ["village": .text("东村\(n)")]) }
            _ = try await b.sync(transports[1], options: options)
            _ = try await a.sync(transports[0], options: options)
            // B has pushed its site again: C's changes go.
            _ = try await c.sync(transports[2], options: options)
            #expect(try c.pendingCount() == 0)
            try c.update("site", id: site, ["illegal_graves_found": 5])
            for _ in 0..<2 {
                for (store, transport) in zip(devices, transports) {
                    _ = try await store.sync(transport, options: options)
                }
            }
        }

        let server = try await snapshot(restored)
        let serverConflicts = Set(try await restored.conflicts().map { $0.id })
        for store in devices {
            #expect(try snapshot(store) == server)
            #expect(try store.pendingCount() == 0)
            #expect(try store.serverIdentity() == renewed)
            #expect(Set(try store.conflicts().map { $0.id }) == serverConflicts)
        }
        // Each counter delta counted once: 1 + 1 reopenings, 3 + 2 graves.
        #expect(server["finding"]?[finding]?["reopen_count"] == Value.integer(2))
        #expect(server["site"]?[site]?["illegal_graves_found"] == Value.integer(5))
        // B and C wrote the description without seeing each other's: a conflict, not a silent overwrite
        // (C's change, pushed again with the base it had under the old numbering, would claim to have seen B's).
        #expect(serverConflicts.contains("\(finding)/description"))
        // Every change ever acknowledged, and every one made since, is held once.
        let held = try await held(restored)
        for store in devices {
            let made = try store.changeCount()
            #expect(held[store.deviceID] == Dictionary(uniqueKeysWithValues: (1...Int64(made)).map { ($0, 1) }))
        }
    }

    @Test(
        "a request naming an old identity is refused with the new one and what the server holds of the device's changes",
        arguments: Backend.all)
    func refusedWithIdentity(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let token = try await storage.createToken(name: "王芳")
        let other = try await storage.createToken(name: "李明")
        let a = try Store(path: dir.path("a.sqlite"), schema: schema)
        try await withServer(storage: storage) { url in
            _ = try a.insert("site", ["name": "幸福院", "kind": "happiness_home"])
            _ = try a.insert("site", ["name": "敬老院", "kind": "elderly_home"])
            _ = try await a.sync(HTTPTransport(server: url, token: token))
            let identity = try #require(try a.serverIdentity())
            #expect(identity == (try await storage.standing(device: "").identity))
            let stale = UUID().uuidString.lowercased()
            let pull = PullRequest(
                schema: SchemaVersion(schema), device: a.deviceID, cursor: 0, limit: 10, server: stale)
            for (token, acknowledged) in [(token, Int64(2)), (other, 0)] {
                do {
                    _ = try await HTTPTransport(server: url, token: token).pull(pull, schema: schema)
                    Issue.record("a pull naming another identity was served")
                } catch let error as SyncError {
                    #expect(error.refusal == .serverChanged)
                    #expect(error.status == 409)
                    // Only the device's own token learns how many of its changes the server holds.
                    #expect(
                        error.serverChanged == WireError.ServerChanged(identity: identity, acknowledged: acknowledged))
                }
            }
            let push = PushRequest(schema: SchemaVersion(schema), device: a.deviceID, changes: [], server: stale)
            #expect(
                await refusal { _ = try await HTTPTransport(server: url, token: token).push(push) } == .serverChanged)
            // The identity the device holds is served, and answers name it.
            let page = try await HTTPTransport(server: url, token: token).pull(
                PullRequest(schema: SchemaVersion(schema), device: a.deviceID, cursor: 0, limit: 10, server: identity),
                schema: schema)
            #expect(page.server == identity)
            #expect(page.changes.count == 2)
        }
    }

    @Test(
        "a server replaced by a new, empty store: devices push it everything of their own and converge",
        arguments: Backend.all)
    func replaced(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let lost = try await makeStorage(dir, backend)
        let a = try Store(path: dir.path("a.sqlite"), schema: schema)
        let b = try Store(path: dir.path("b.sqlite"), schema: schema)
        let site = try a.insert("site", ["name": "幸福院", "kind": "happiness_home", "illegal_graves_found": 1])
        let old = [try await lost.createToken(name: "王芳"), try await lost.createToken(name: "李明")]
        try await withServer(storage: lost) { url in
            for (store, token) in zip([a, b], old) {
                _ = try await store.sync(HTTPTransport(server: url, token: token))
            }
            try b.update("site", id: site, ["illegal_graves_found": 3, "town": "城关镇"])
            _ = try await b.sync(HTTPTransport(server: url, token: old[1]))
        }
        try a.update("site", id: site, ["village": "东村"])
        let other = TemporaryDirectory()
        let fresh = try await makeStorage(other, backend)
        let tokens = [try await fresh.createToken(name: "王芳"), try await fresh.createToken(name: "李明")]
        try await withServer(storage: fresh) { url in
            for _ in 0..<2 {
                for (store, token) in zip([a, b], tokens) {
                    _ = try await store.sync(HTTPTransport(server: url, token: token))
                }
            }
        }
        let server = try await snapshot(fresh)
        #expect(
            server["site"]?[site] == [
                "name": "幸福院", "kind": "happiness_home", "illegal_graves_found": 3, "town": "城关镇", "village": "东村",
            ])
        let held = try await held(fresh)
        for store in [a, b] {
            #expect(try snapshot(store) == server)
            #expect(try store.serverIdentity() == (try await fresh.standing(device: "").identity))
            #expect(
                held[store.deviceID]
                    == Dictionary(uniqueKeysWithValues: (1...Int64(try store.changeCount())).map { ($0, 1) }))
        }
    }

    /// Cases: FIELDBOOK_RESTORE_CASES (default 60; 4 in the fast tier); FIELDBOOK_RESTORE_SEED replays one.
    static let seeds: [UInt64] = {
        let env = ProcessInfo.processInfo.environment
        if let seed = env["FIELDBOOK_RESTORE_SEED"].flatMap(UInt64.init) { return [seed] }
        return (0..<UInt64(env["FIELDBOOK_RESTORE_CASES"].flatMap(Int.init) ?? TestTier.cases(full: 60, fast: 4))).map {
            $0
        }
    }()

    @Test(
        "random edits and syncs, a backup at a random moment, more of them, a restore: converged, every change held once, counters counted once",
        arguments: Backend.all)
    func randomRestores(_ backend: Backend) async throws {
        for seed in Self.seeds {
            do {
                try await randomRestore(seed: seed, backend: backend)
            } catch {
                Issue.record("\(backend) seed \(seed): \(error) (replay: FIELDBOOK_RESTORE_SEED=\(seed))")
            }
        }
    }

    func randomRestore(seed: UInt64, backend: Backend) async throws {
        var rng = SeededGenerator(seed: seed &* 0x2545_F491_4F6C_DD1D &+ 29)
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        var devices: [Store] = []
        var tokens: [String] = []
        for n in 0..<3 {
            devices.append(try Store(path: dir.path("device\(n).sqlite"), schema: schema))
            tokens.append(try await storage.createToken(name: "检查员\(n)"))
        }
        var options = SyncOptions()
        options.pushBatch = Int.random(in: 1...4, using: &rng)
        options.pageSize = Int.random(in: 1...5, using: &rng)
        let site = try devices[0].insert("site", ["name": "幸福院", "kind": "happiness_home", "illegal_graves_found": 0])
        let finding = try devices[0].insert("finding", ["title": "消防通道", "status": "not_started"])
        let world = World(devices: devices, tokens: tokens, options: options, site: site, finding: finding)
        var state = World.State(rng: rng)
        let before = Int.random(in: 2...12, using: &state.rng)
        let after = Int.random(in: 2...12, using: &state.rng)
        let backup: Backup
        (backup, state) = try await withServer(storage: storage) { [state] url in
            var state = state
            for (store, token) in zip(world.devices, world.tokens) {
                _ = try await store.sync(HTTPTransport(server: url, token: token), options: world.options)
            }
            for _ in 0..<before { try await world.step(url, &state) }
            let copy = try await makeBackup(dir, backend)
            for _ in 0..<after { try await world.step(url, &state) }
            return (copy, state)
        }
        let restored = try await backup.open()
        _ = try await restored.renewIdentity()
        let later = Int.random(in: 0...12, using: &state.rng)
        state = try await withServer(storage: restored) { [state] url in
            var state = state
            for _ in 0..<later { try await world.step(url, &state) }
            for _ in 0..<2 {
                for (store, token) in zip(world.devices, world.tokens) {
                    _ = try await store.sync(HTTPTransport(server: url, token: token), options: world.options)
                }
            }
            return state
        }
        let graves = state.graves
        let server = try await snapshot(restored)
        let serverConflicts = Set(try await restored.conflicts().map { $0.id })
        let held = try await held(restored)
        for store in devices {
            let mine = try snapshot(store)
            guard mine == server else {
                var differences: [String] = []
                for (entity, records) in server {
                    for (id, values) in records where mine[entity]?[id] != values {
                        differences.append(
                            "\(entity) \(id): here \(String(describing: mine[entity]?[id])), server \(values)")
                    }
                    for id in (mine[entity] ?? [:]).keys where records[id] == nil {
                        differences.append("\(entity) \(id) only here")
                    }
                }
                throw Mismatch(
                    "device \(store.deviceID) differs from the server: \(differences.joined(separator: "; "))")
            }
            guard Set(try store.conflicts().map { $0.id }) == serverConflicts else {
                throw Mismatch("conflicts differ")
            }
            let made = Int64(try store.changeCount())
            let once = made == 0 ? nil : Dictionary(uniqueKeysWithValues: (1...made).map { ($0, 1) })
            guard held[store.deviceID] == once else {
                throw Mismatch("the server does not hold each of device \(store.deviceID)'s \(made) changes once")
            }
        }
        guard server["site"]?[site]?["illegal_graves_found"] == .integer(graves) else {
            throw Mismatch(
                "the counter is \(String(describing: server["site"]?[site]?["illegal_graves_found"])), not \(graves)")
        }
    }

    /// The devices of a random scenario, and one random step on one of them: an edit, or a sync.
    struct World: Sendable {
        let devices: [Store]
        let tokens: [String]
        let options: SyncOptions
        let site: String
        let finding: String

        struct State: Sendable {
            var rng: SeededGenerator
            /// Every delta any device added to the site's counter.
            var graves: Int64 = 0
        }

        func step(_ url: URL, _ state: inout State) async throws {
            let n = Int.random(in: 0..<devices.count, using: &state.rng)
            let store = devices[n]
            let sites = try store.fetch(Query("site")).map(\.id)
            switch Int.random(in: 0..<6, using: &state.rng) {
            case 0 where !sites.isEmpty:
                let town = Value.text("镇\(Int.random(in: 0..<9, using: &state.rng))")
                try store.update("site", id: sites.randomElement(using: &state.rng)!, ["town": town])
            case 1 where sites.contains(site):
                let now = try store.record("site", id: site)?["illegal_graves_found"].integer ?? 0
                let delta = Int64.random(in: 1...3, using: &state.rng)
                try store.update("site", id: site, ["illegal_graves_found": .integer(now + delta)])
                state.graves += delta
            case 2 where try store.record("finding", id: finding) != nil:
                try store.update(
                    "finding", id: finding, ["description": .text("第\(n)组：\(Int.random(in: 0..<9, using: &state.rng))")]
                )
            case 3:
                _ = try store.insert("site", ["name": .text("敬老院\(n)"), "kind": "elderly_home"])
            default:
                _ = try await store.sync(HTTPTransport(server: url, token: tokens[n]), options: options)
            }
        }
    }

    struct Mismatch: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}
