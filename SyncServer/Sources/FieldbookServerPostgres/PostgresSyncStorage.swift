public import FieldbookCore
import FieldbookJSON
public import FieldbookServer
public import FieldbookSync
import Foundation
public import Logging
public import PostgresNIO
import Synchronization

/// The server store for deployments that outgrow one machine: several `fieldbook-server`
/// processes share one PostgreSQL database.
///
/// Same semantics as ``FieldbookServer/SQLiteSyncStorage``, table for table: pushes are all or
/// nothing and idempotent (deduplicated by device and device sequence), changes are merged
/// through `RecordState`, conflicts are kept as rows, tokens are stored hashed.
///
/// The store talks to the database through a `PostgresClient`, whose `run()` must be active
/// while the store is used (it owns the connection pool). ``withStorage(url:schema:namespace:logger:_:)``
/// runs one for the duration of a closure:
///
/// ```swift
/// try await PostgresSyncStorage.withStorage(url: "postgres://fieldbook:secret@127.0.0.1:5432/fieldbook",
///                                           schema: schema, logger: logger) { storage in
///     try await SyncServer.application(storage: storage, configuration: .init(), logger: logger).runService()
/// }
/// ```
///
/// ## Cursor correctness
///
/// A pull returns the changes after a cursor, and a device never asks again for numbers at or
/// below its cursor. With concurrent transactions, numbers drawn from a PostgreSQL sequence
/// can *commit* out of order: transaction A draws 41, transaction B draws 42 and commits first,
/// a pull sees 42 and moves its cursor past 41, which A commits a moment later — and that
/// device would never see 41. This store rules that out the simplest way: every push takes a
/// transaction-level advisory lock (`pg_advisory_xact_lock`) on its namespace before it reads
/// or writes anything, and holds it until it commits or rolls back. Only one push at a time
/// draws server sequence numbers, and PostgreSQL releases a transaction's locks only after its
/// commit is visible, so every number below a visible one is visible too (or was rolled back and
/// is a gap no one will ever fill). The same lock serializes the read-merge-write of record
/// states, which would otherwise race between concurrent pushes to the same record — exactly
/// the single-writer discipline of the SQLite store, shared by every server process on the
/// database. Pulls, reads and token checks take no lock.
public final class PostgresSyncStorage: SyncStorage {
    /// The newest version of the schema the store holds (after ``migrate()``); a publish replaces it.
    public var schema: Schema { current.withLock { $0 } }
    private let current: Mutex<Schema>
    /// The client the store runs its queries on; its `run()` must be active.
    public let client: PostgresClient
    /// The PostgreSQL schema (namespace) holding the store's tables.
    public let namespace: String
    let logger: Logger
    /// Test seam: runs inside every push transaction, after its changes are inserted and before it
    /// commits (the concurrency test delays commits with it).
    let insideTransaction: (@Sendable () async throws -> Void)?
    /// How ``checkReady()`` connects: on its own connection, outside the pool, so that the pool's
    /// reconnection backoff neither delays nor is lengthened by the check. Nil: through the pool.
    let probe: PostgresConnection.Configuration?

    /// A store in `namespace` of the database `client` connects to. Call ``migrate()`` before use.
    /// - Parameter namespace: a PostgreSQL schema name: lowercase letters, digits and `_`.
    /// - Throws: ``PostgresSetupError`` if `namespace` is not such a name.
    public convenience init(client: PostgresClient, schema: Schema, namespace: String = "public", logger: Logger) throws
    {
        try self.init(client: client, schema: schema, namespace: namespace, logger: logger, insideTransaction: nil)
    }

    package init(
        client: PostgresClient, schema: Schema, namespace: String, logger: Logger,
        insideTransaction: (@Sendable () async throws -> Void)?, probe: PostgresConnection.Configuration? = nil
    ) throws {
        guard !namespace.isEmpty, namespace.count <= 63, namespace.first.map({ !$0.isNumber }) ?? false,
            namespace.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" })
        else {
            throw PostgresSetupError("a namespace is lowercase letters, digits and '_', starting with a letter")
        }
        self.client = client
        current = Mutex(schema)
        self.namespace = namespace
        self.logger = logger
        self.insideTransaction = insideTransaction
        self.probe = probe
    }

    /// Runs a `PostgresClient` for the database at `url` while `body` runs, with a migrated store on it.
    /// - Parameter url: `postgres://USER:PASS@HOST:PORT/DB`; `?sslmode=disable` turns TLS off
    ///   (by default it is used when the server offers it).
    public static func withStorage<T>(
        url: String, schema: Schema, namespace: String = "public", logger: Logger,
        _ body: (PostgresSyncStorage) async throws -> T
    ) async throws -> T {
        let client = PostgresClient(configuration: try configuration(url: url), backgroundLogger: logger)
        let probe = try connectionConfiguration(url: url)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            // A lease made before run() has begun waits for it, with a warning in the log at every
            // start: wait until the task that runs the client has begun.
            let (started, begun) = AsyncStream<Void>.makeStream()
            group.addTask {
                begun.finish()
                await client.run()
            }
            for await _ in started {}
            defer { group.cancelAll() }
            let storage = try PostgresSyncStorage(
                client: client, schema: schema, namespace: namespace, logger: logger, insideTransaction: nil,
                probe: probe)
            try await storage.migrate()
            return try await body(storage)
        }
    }

    /// Whether `database` names a PostgreSQL database (a `postgres://` or `postgresql://` URL).
    public static func isURL(_ database: String) -> Bool {
        database.hasPrefix("postgres://") || database.hasPrefix("postgresql://")
    }

    /// A client configuration from `postgres://USER:PASS@HOST:PORT/DB` (port 5432 if left out).
    /// - Throws: ``PostgresSetupError`` naming what is missing; never echoing the URL, which holds a password.
    public static func configuration(url: String) throws -> PostgresClient.Configuration {
        guard isURL(url), let components = URLComponents(string: url) else {
            throw PostgresSetupError("the database URL is not of the form postgres://USER:PASS@HOST:PORT/DB")
        }
        guard let host = components.host, !host.isEmpty else {
            throw PostgresSetupError("the database URL names no host")
        }
        guard let user = components.user, !user.isEmpty else {
            throw PostgresSetupError("the database URL names no user")
        }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty else { throw PostgresSetupError("the database URL names no database") }
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: user.removingPercentEncoding ?? user,
            password: components.password.map { $0.removingPercentEncoding ?? $0 },
            database: database.removingPercentEncoding ?? database, tls: .disable)
        if components.queryItems?.first(where: { $0.name == "sslmode" })?.value != "disable" {
            configuration.tls = .prefer(.makeClientConfiguration())
        }
        // A database that does not answer is an outage to report in seconds, not after PostgresNIO's 10 s.
        configuration.options.connectTimeout = connectTimeout
        return configuration
    }

    /// `namespace.table`, for SQL.
    func t(_ table: String) -> String { "\"\(namespace)\".\(table)" }

    // MARK: - Migration

    /// Creates the namespace and its tables if they are missing, or checks and migrates them.
    ///
    /// Safe when several processes start at once: it runs under an advisory lock, one per
    /// namespace (stores in other namespaces migrate at the same time, not one after another).
    /// - Throws: ``PostgresSetupError`` if the database holds another schema or a newer version.
    /// The columns added after the first format, added to a store made before them: devices'
    /// names (sent with pushes, shown to other devices), tokens' roles, and why a change was rejected.
    private func addColumns(_ c: PostgresConnection) async throws {
        for (table, column, type) in [
            ("devices", "name", "TEXT"), ("tokens", "role", "TEXT"), ("changes", "rejected", "TEXT"),
            ("tokens", "scopes", "TEXT"), ("tokens", "scope_generation", "BIGINT NOT NULL DEFAULT 0"),
        ] {
            try await c.query(
                PostgresQuery(unsafeSQL: "ALTER TABLE \(t(table)) ADD COLUMN IF NOT EXISTS \(column) \(type)"),
                logger: logger)
        }
        // The schema's versions (docs/schema.md, "Versions across the fleet"); a store made before
        // it kept them starts with the version it holds (`published_at` unknown).
        let exists =
            try await c.query("SELECT to_regclass(\(t("schema_history"))) IS NOT NULL", logger: logger)
            .collect().first?.decode(Bool.self) ?? false
        if !exists {
            try await c.query(
                PostgresQuery(
                    unsafeSQL: """
                        CREATE TABLE \(t("schema_history")) (version BIGINT PRIMARY KEY, schema TEXT NOT NULL,
                            published_at TEXT, head BIGINT)
                        """), logger: logger)
            try await c.query(
                """
                INSERT INTO \(unescaped: t("schema_history")) (version, schema)
                SELECT v.value::bigint, s.value FROM \(unescaped: t("meta")) AS v, \(unescaped: t("meta")) AS s
                WHERE v.key = 'schema_version' AND s.key = 'schema'
                """, logger: logger)
        }
        try await c.query(
            PostgresQuery(unsafeSQL: "ALTER TABLE \(t("schema_history")) ADD COLUMN IF NOT EXISTS head BIGINT"),
            logger: logger)
    }

    public func migrate() async throws {
        let schema = self.schema
        let running = try await transaction { c -> Schema in
            try await c.query(
                "SELECT pg_advisory_xact_lock(hashtext(\("fieldbook.migrate." + namespace)))", logger: logger)
            try await c.query("CREATE SCHEMA IF NOT EXISTS \(unescaped: "\"\(namespace)\"")", logger: logger)
            let exists =
                try await c.query("SELECT to_regclass(\(t("meta"))) IS NOT NULL", logger: logger)
                .collect().first?.decode(Bool.self) ?? false
            if !exists {
                for statement in [
                    "CREATE TABLE \(t("meta")) (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                    """
                    CREATE TABLE \(t("tokens")) (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
                        created_at TEXT NOT NULL, revoked_at TEXT)
                    """,
                    """
                    CREATE TABLE \(t("devices")) (device TEXT PRIMARY KEY, token BIGINT NOT NULL REFERENCES \(t("tokens")) (id),
                        last_sequence BIGINT NOT NULL, name TEXT)
                    """,
                    """
                    CREATE TABLE \(t("changes")) (sseq BIGSERIAL PRIMARY KEY, device TEXT NOT NULL, seq BIGINT NOT NULL,
                        author TEXT NOT NULL, entity TEXT NOT NULL, record TEXT NOT NULL, op BIGINT NOT NULL,
                        hlc BIGINT NOT NULL, base BIGINT NOT NULL, fields TEXT NOT NULL, received_at TEXT NOT NULL,
                        UNIQUE (device, seq))
                    """,
                    """
                    CREATE TABLE \(t("records")) (entity TEXT NOT NULL, id TEXT NOT NULL, state TEXT NOT NULL,
                        live BOOLEAN NOT NULL, PRIMARY KEY (entity, id))
                    """,
                    """
                    CREATE TABLE \(t("conflicts")) (id TEXT PRIMARY KEY, entity TEXT NOT NULL, record TEXT NOT NULL,
                        field TEXT, sides TEXT NOT NULL, opened_at BIGINT NOT NULL, resolved_at BIGINT)
                    """,
                    "CREATE INDEX ON \(t("conflicts")) (entity, record) WHERE resolved_at IS NULL",
                ] {
                    try await c.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await c.query(
                    """
                    INSERT INTO \(unescaped: t("meta")) (key, value) VALUES ('format', '1'), ('schema_name', \(schema.name)),
                        ('schema_version', \(String(schema.version))), ('schema', \(schema.json.serialized)),
                    ('identity', \(UUID().uuidString.lowercased()))
                    """, logger: logger)
                try await addColumns(c)
                try await c.query(
                    "UPDATE \(unescaped: t("schema_history")) SET published_at = \(Self.now()), head = 0",
                    logger: logger)
                try await migrateScopeIndex(c, schema: schema)
                try await migrateFileTables(c, schema: schema)
                return schema
            }
            var meta: [String: String] = [:]
            for try await (key, value) in try await c.query(
                "SELECT key, value FROM \(unescaped: t("meta"))", logger: logger
            )
            .decode((String, String).self) {
                meta[key] = value
            }
            try await addColumns(c)
            if meta["identity"] == nil {
                // A store made before stores had identities gets one the first time it is opened.
                try await c.query(
                    "INSERT INTO \(unescaped: t("meta")) (key, value) VALUES ('identity', \(UUID().uuidString.lowercased()))",
                    logger: logger)
            }
            let running: Schema
            switch try SchemaUpgrade.step(history: try await history(c), schema: schema, publishing: false) {
            case .current(let newest): running = newest
            case .publish(let schema, let previous):
                // Pushes of processes already running wait until every rename is made.
                try await c.query(
                    "SELECT pg_advisory_xact_lock(hashtext(\("fieldbook.push." + namespace)))", logger: logger)
                try await publish(c, schema, previous: previous)
                running = schema
            }
            try await migrateScopeIndex(c, schema: running)
            try await migrateFileTables(c, schema: running)
            return running
        }
        current.withLock { $0 = running }
    }

    /// Each version's canonical text, oldest first.
    private func history(_ c: PostgresConnection) async throws -> [String] {
        try await c.query("SELECT schema FROM \(unescaped: t("schema_history")) ORDER BY version", logger: logger)
            .collect().map { try $0.decode(String.self) }
    }

    private static func now() -> String { ISO8601DateFormatter().string(from: Date()) }

    /// Makes `schema` the newest version after `previous`: renames what the renamed fields name
    /// (``SyncStorage/publish(_:)``), records the version. The caller holds the push lock.
    private func publish(_ c: PostgresConnection, _ schema: Schema, previous: Schema) async throws {
        for entity in previous.entities {
            guard let renames = FieldRenames(entity: entity.name, from: previous, to: schema) else { continue }
            try await rename(c, entity: entity.name, renames)
        }
        let text = schema.json.serialized
        try await c.query(
            "UPDATE \(unescaped: t("meta")) SET value = \(String(schema.version)) WHERE key = 'schema_version'",
            logger: logger)
        try await c.query("UPDATE \(unescaped: t("meta")) SET value = \(text) WHERE key = 'schema'", logger: logger)
        try await c.query(
            """
            INSERT INTO \(unescaped: t("schema_history")) (version, schema, published_at, head)
            VALUES (\(schema.version), \(text), \(Self.now()),
                (SELECT coalesce(max(sseq), 0) FROM \(unescaped: t("changes"))))
            """, logger: logger)
    }

    /// Rewrites the changes, merge states and conflicts of `entity` that name a renamed field.
    private func rename(_ c: PostgresConnection, entity: String, _ renames: FieldRenames) async throws {
        for (old, new) in renames.newNames {
            try await c.query(
                """
                UPDATE \(unescaped: t("conflicts")) SET field = \(new), id = record || '/' || \(new)
                WHERE entity = \(entity) AND field = \(old)
                """, logger: logger)
        }
        var after: Int64 = 0
        while true {
            let rows = try await c.query(
                """
                SELECT sseq, fields FROM \(unescaped: t("changes")) WHERE entity = \(entity) AND sseq > \(after)
                ORDER BY sseq LIMIT 10000
                """, logger: logger
            ).collect().map { try $0.decode((Int64, String).self) }
            guard let last = rows.last else { break }
            after = last.0
            for (sseq, fields) in rows {
                guard let text = try renames.renamingChangeFields(fields) else { continue }
                try await c.query(
                    "UPDATE \(unescaped: t("changes")) SET fields = \(text) WHERE sseq = \(sseq)", logger: logger)
            }
        }
        var afterID = ""
        while true {
            let rows = try await c.query(
                """
                SELECT id, state FROM \(unescaped: t("records")) WHERE entity = \(entity) AND id > \(afterID)
                ORDER BY id LIMIT 10000
                """, logger: logger
            ).collect().map { try $0.decode((String, String).self) }
            guard let last = rows.last else { break }
            afterID = last.0
            for (id, state) in rows {
                guard let text = try renames.renamingState(state) else { continue }
                try await c.query(
                    "UPDATE \(unescaped: t("records")) SET state = \(text) WHERE entity = \(entity) AND id = \(id)",
                    logger: logger)
            }
        }
    }

    public func schemaVersions() async throws -> [PublishedSchema] {
        try await client.query(
            "SELECT schema, published_at, head FROM \(unescaped: t("schema_history")) ORDER BY version", logger: logger
        ).collect().map {
            let (text, at, head) = try $0.decode((String, String?, Int64?).self)
            return PublishedSchema(schema: try Schema(json: text), publishedAt: at, head: head)
        }
    }

    public func refreshSchema() async throws -> Schema {
        let text = try await client.query(
            "SELECT value FROM \(unescaped: t("meta")) WHERE key = 'schema'", logger: logger
        ).collect().first?.decode(String.self)
        guard let text else { throw PostgresSetupError("the database's schema is missing") }
        let newest = try Schema(json: text)
        return current.withLock { running in
            if newest.version > running.version { running = newest }
            return running
        }
    }

    public func publish(_ schema: Schema) async throws {
        try await transaction { c in
            try await c.query(
                "SELECT pg_advisory_xact_lock(hashtext(\("fieldbook.migrate." + namespace)))", logger: logger)
            try await c.query(
                "SELECT pg_advisory_xact_lock(hashtext(\("fieldbook.push." + namespace)))", logger: logger)
            guard
                case .publish(let schema, let previous) =
                    try SchemaUpgrade.step(history: try await history(c), schema: schema, publishing: true)
            else { return }
            try await publish(c, schema, previous: previous)
            try await migrateScopeIndex(c, schema: schema)
        }
        current.withLock { $0 = schema }
    }

    /// Runs `body` in a transaction on one leased connection: committed if it returns, rolled back if it throws
    /// (its error rethrown as is, so a ``WireError`` reaches the client unchanged).
    /// `begin` is the statement that opens it (`BEGIN`, or one that sets its isolation level).
    func transaction<T: Sendable>(
        _ begin: String = "BEGIN", _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await client.withConnection { c in
            try await c.query(PostgresQuery(unsafeSQL: begin), logger: logger)
            let value: T
            do {
                value = try await body(c)
            } catch {
                _ = try? await c.query("ROLLBACK", logger: logger)
                throw error
            }
            try await c.query("COMMIT", logger: logger)
            return value
        }
    }

    // MARK: - Push

    public func push(_ request: PushRequest, identity: Identity) async throws -> PushResponse {
        let fields = PushPlan.fieldTexts(request)
        return try await transaction { c in try await push(c, request, fields: fields, identity: identity) }
    }

    /// One push, in its transaction: the steps of ``PushPlan``, each a statement over arrays
    /// (a push of 5,000 changes is a handful of round trips, not thousands).
    func push(_ c: PostgresConnection, _ request: PushRequest, fields: [String], identity: Identity) async throws
        -> PushResponse
    {
        // The request's records, found before the lock is taken.
        let keys = PushPlan.records(request.changes, schema: schema)
        // The one-writer lock: see "Cursor correctness" above. Held until COMMIT or ROLLBACK.
        try await c.query("SELECT pg_advisory_xact_lock(hashtext(\("fieldbook.push." + namespace)))", logger: logger)
        // Two round trips while the lock is held, and the commit: one read (the device's row, the head
        // of the log, the states of the request's records with their open conflicts), one write (the
        // changes, the device's last sequence, the merged states). A retried batch's records are
        // read whether or not its changes turn out new: the read does not wait on the plan.
        let read = try await readForPush(c, device: request.device, keys: keys)
        try SchemaUpgrade.checkUnchanged(stored: read.schemaVersion, request: request.schema)
        var plan = try PushPlan(request, fields: fields, identity: identity, device: read.row, schema: schema)
        let earlier =
            plan.earlierSequences.isEmpty
            ? [:] : try await storedEarlier(c, device: request.device, plan.earlierSequences)
        try plan.acknowledge(stored: earlier)
        if !plan.references.isEmpty { try plan.checkReferences(known: try await known(c, plan.references)) }

        // Numbered here, under the push lock, rather than by the column's sequence: one statement inserts
        // them all, in device order, and a rolled-back push leaves no gap. The same statement records
        // the device's last sequence (adding its row the first time) and the merged states.
        let serverSequences = plan.fresh.indices.map { read.head + Int64($0) + 1 }
        let scopes = try await scopeIndex(c, for: plan, states: read.states)
        let (merged, rejected) = plan.merge(states: read.states, serverSequences: serverSequences, scopes: scopes)
        try await write(c, request, identity: identity, plan: plan, serverSequences: serverSequences, merged: merged)
        if let scopes { try await updateScopeIndex(c, scopes, merged, head: serverSequences.last ?? read.head) }
        if !rejected.isEmpty {
            // Rare: a round trip of its own, only for a push with rejected changes.
            let rows = rejected.sorted { $0.key < $1.key }
            try await c.query(
                """
                UPDATE \(unescaped: t("changes")) AS c SET rejected = u.why
                FROM unnest(\(rows.map { serverSequences[$0.key] }), \(rows.map(\.value.storedText))) AS u(s, why)
                WHERE c.sseq = u.s
                """, logger: logger)
        }
        try await insertFileReferences(c, plan.fileReferences(rejected: rejected, schema: schema))
        try await insideTransaction?()
        // Conflict rows: for the records that have conflicts now or had open ones.
        try await updateConflicts(c, merged, open: read.open, at: serverSequences.last ?? read.head)
        return plan.response(serverSequences: serverSequences, rejected: rejected)
    }

    /// What a push reads under the lock, in one round trip: the device's row (owner, last
    /// sequence), the head of the log, and the request's records' states with their open conflicts.
    private func readForPush(_ c: PostgresConnection, device: String, keys: [PushPlan.RecordKey]) async throws -> (
        row: (owner: Int64, lastSequence: Int64)?, head: Int64, states: [PushPlan.RecordKey: RecordState],
        open: [PushPlan.RecordKey: Set<String>], schemaVersion: Int
    ) {
        var owner: Int64?
        var last: Int64?
        var head: Int64 = 0
        var version = ""
        var states: [PushPlan.RecordKey: RecordState] = [:]
        var open: [PushPlan.RecordKey: Set<String>] = [:]
        for try await (token, lastSequence, top, stored, entity, id, state, conflicts) in try await c.query(
            """
            SELECT d.token, d.last_sequence, (SELECT coalesce(max(sseq), 0) FROM \(unescaped: t("changes"))),
                (SELECT value FROM \(unescaped: t("meta")) WHERE key = 'schema_version'), k.entity, k.id, r.state, ARRAY(
                    SELECT c.id FROM \(unescaped: t("conflicts")) AS c
                    WHERE c.entity = k.entity AND c.record = k.id AND c.resolved_at IS NULL)
            FROM (SELECT 1) AS one
            LEFT JOIN \(unescaped: t("devices")) AS d ON d.device = \(device)
            LEFT JOIN unnest(\(keys.map(\.entity)), \(keys.map(\.id))) AS k(entity, id) ON true
            LEFT JOIN \(unescaped: t("records")) AS r ON r.entity = k.entity AND r.id = k.id
            """, logger: logger
        ).decode((Int64?, Int64?, Int64, String, String?, String?, String?, [String]?).self) {
            (owner, last, head, version) = (token, lastSequence, top, stored)
            guard let entity, let id else { continue }
            let key = PushPlan.RecordKey(entity: entity, id: id)
            if let state { states[key] = try RecordState(encoded: Array(state.utf8), entity: schema.entity(entity)!) }
            if let conflicts, !conflicts.isEmpty { open[key] = Set(conflicts) }
        }
        let row = owner.flatMap { owner in last.map { (owner: owner, lastSequence: $0) } }
        return (row, head, states, open, Int(version) ?? 0)
    }

    /// What earlier pushes stored of the changes a push sends again, by device sequence number.
    private func storedEarlier(_ c: PostgresConnection, device: String, _ sequences: [Int64]) async throws
        -> [Int64: PushPlan.Stored]
    {
        var stored: [Int64: PushPlan.Stored] = [:]
        for try await (seq, sseq, entity, record, op, hlc, base, fields, rejected) in try await c.query(
            """
            SELECT seq, sseq, entity, record, op, hlc, base, fields, rejected FROM \(unescaped: t("changes"))
            WHERE device = \(device) AND seq = ANY(\(sequences))
            """, logger: logger
        ).decode((Int64, Int64, String, String, Int64, Int64, Int64, String, String?).self) {
            stored[seq] = PushPlan.Stored(
                serverSequence: sseq, entity: entity, recordID: record, operation: Int(op), hlc: hlc, base: base,
                fields: fields, rejected: rejected)
        }
        return stored
    }

    /// Which of `references` the store holds (live or deleted).
    private func known(_ c: PostgresConnection, _ references: [PushPlan.RecordKey]) async throws
        -> Set<PushPlan.RecordKey>
    {
        var known: Set<PushPlan.RecordKey> = []
        for try await (entity, id) in try await c.query(
            """
            SELECT r.entity, r.id FROM unnest(\(references.map(\.entity)), \(references.map(\.id))) AS k(entity, id)
            JOIN \(unescaped: t("records")) AS r ON r.entity = k.entity AND r.id = k.id
            """, logger: logger
        ).decode((String, String).self) {
            known.insert(PushPlan.RecordKey(entity: entity, id: id))
        }
        return known
    }

    /// The push's one write: its fresh changes, the device's last sequence (and name), the merged states.
    private func write(
        _ c: PostgresConnection, _ request: PushRequest, identity: Identity, plan: PushPlan, serverSequences: [Int64],
        merged: [PushPlan.Merged]
    ) async throws {
        let device = request.device
        try await c.query(
            """
            WITH fresh AS (
                INSERT INTO \(unescaped: t("changes")) (sseq, device, seq, author, entity, record, op, hlc, base, fields, received_at)
                SELECT s, \(device), q, \(identity.name), e, r, o, h, b, f, \(CalendarText.timestamp(millisecondsSince1970: Int64(Date().timeIntervalSince1970 * 1000)))
                FROM unnest(\(serverSequences), \(plan.fresh.map(\.sequence)), \(plan.fresh.map(\.entity)),
                    \(plan.fresh.map(\.recordID)), \(plan.fresh.map { Int64($0.operation.rawValue) }),
                    \(plan.fresh.map { Int64(bitPattern: $0.timestamp.rawValue) }), \(plan.fresh.map(\.base)), \(plan.freshFields))
                    AS u(s, q, e, r, o, h, b, f)),
            device AS (
                INSERT INTO \(unescaped: t("devices")) AS d (device, token, last_sequence, name)
                VALUES (\(device), \(identity.tokenID), \(plan.lastSequence), \(request.deviceName))
                ON CONFLICT (device) DO UPDATE SET last_sequence = excluded.last_sequence, name = coalesce(excluded.name, d.name))
            INSERT INTO \(unescaped: t("records")) (entity, id, state, live)
            SELECT * FROM unnest(\(merged.map(\.key.entity)), \(merged.map(\.key.id)),
                \(merged.map { String(decoding: $0.state.encoded, as: UTF8.self) }), \(merged.map(\.live)))
            ON CONFLICT (entity, id) DO UPDATE SET state = excluded.state, live = excluded.live
            """, logger: logger)
    }

    /// Brings the conflict rows of the merged records in step (``ConflictUpkeep``).
    private func updateConflicts(
        _ c: PostgresConnection, _ merged: [PushPlan.Merged], open: [PushPlan.RecordKey: Set<String>], at: Int64
    ) async throws {
        for record in merged where !record.conflicts.isEmpty || open[record.key] != nil {
            let (resolve, upsert) = ConflictUpkeep.changes(open: open[record.key] ?? [], current: record.conflicts)
            if !resolve.isEmpty {
                try await c.query(
                    "UPDATE \(unescaped: t("conflicts")) SET resolved_at = \(at) WHERE id = ANY(\(resolve))",
                    logger: logger)
            }
            for conflict in upsert {
                try await c.query(
                    """
                    INSERT INTO \(unescaped: t("conflicts")) AS c (id, entity, record, field, sides, opened_at)
                    VALUES (\(conflict.id), \(conflict.entity), \(conflict.recordID), \(conflict.field),
                        \(conflict.sidesJSON.serialized), \(at))
                    ON CONFLICT (id) DO UPDATE SET sides = excluded.sides,
                        opened_at = CASE WHEN c.resolved_at IS NULL THEN c.opened_at ELSE excluded.opened_at END,
                        resolved_at = NULL
                    """, logger: logger)
            }
        }
    }

    func loadState(_ c: PostgresConnection, _ key: PushPlan.RecordKey, entity: Entity) async throws -> RecordState? {
        guard
            let text = try await c.query(
                "SELECT state FROM \(unescaped: t("records")) WHERE entity = \(key.entity) AND id = \(key.id)",
                logger: logger
            ).collect().first?.decode(String.self)
        else { return nil }
        return try RecordState(encoded: Array(text.utf8), entity: entity)
    }

    // MARK: - Pull

    public func pull(_ request: PullRequest, identity: Identity) async throws -> PullResponse {
        if let scopes = identity.scopes, !schema.scopes.isEmpty {
            var response = try await scopedPull(request, identity: identity, scopes: scopes)
            response.role = identity.role
            return response
        }
        let rows = try await client.query(
            """
            SELECT sseq, device, seq, author, entity, record, op, hlc, base, fields FROM \(unescaped: t("changes"))
            WHERE sseq > \(request.cursor) AND rejected IS NULL ORDER BY sseq LIMIT \(Int64(request.limit) + 1)
            """, logger: logger)
        var changes: [Change] = []
        var count = 0
        for try await (sseq, device, seq, author, entityName, record, op, hlc, base, fieldsText) in rows.decode(
            (Int64, String, Int64, String, String, String, Int64, Int64, Int64, String).self)
        {
            count += 1
            guard count <= request.limit else { continue }
            guard let entity = schema.entity(entityName) else {
                throw PostgresSetupError("a stored change names entity '\(entityName)', which the schema lacks")
            }
            changes.append(
                Change(
                    sequence: seq, device: device, entity: entityName, recordID: record,
                    operation: ChangeOperation(rawValue: Int(op)) ?? .update,
                    timestamp: HybridTimestamp(rawValue: UInt64(bitPattern: hlc)), base: base,
                    fields: try FieldChange.decode(JSON(parsing: fieldsText), entity: entity),
                    serverSequence: sseq, author: author))
        }
        let cursor = changes.last?.serverSequence ?? request.cursor
        var response = PullResponse(
            changes: changes, cursor: cursor, more: count > request.limit,
            deviceNames: try await deviceNames(after: request.cursor, through: cursor))
        if identity.scopeGeneration > 0 { response.scopeGeneration = identity.scopeGeneration }
        response.role = identity.role
        return response
    }

    /// The names of the devices with changes numbered after `cursor` up to `last`: a page's.
    func deviceNames(after cursor: Int64, through last: Int64) async throws -> [String: String] {
        guard last > cursor else { return [:] }
        var names: [String: String] = [:]
        for try await (device, name) in try await client.query(
            """
            SELECT device, name FROM \(unescaped: t("devices")) WHERE name IS NOT NULL
            AND device IN (SELECT DISTINCT device FROM \(unescaped: t("changes")) WHERE sseq > \(cursor) AND sseq <= \(last))
            """, logger: logger
        ).decode((String, String).self) {
            names[device] = name
        }
        return names
    }

    /// Has PostgreSQL write the page's changes, each as ``Change/encodeWire(to:withOrigin:)``
    /// would, its stored field text spliced in as it is (it was checked when pushed): one row for
    /// the page, not one decoded row per change, so the server process handles a page's bytes
    /// once. Strings pass through `to_json`, PostgreSQL's JSON string escaping. Every column
    /// concatenated is `NOT NULL` (a null would make its change's text null, and `string_agg`
    /// would leave the change out while the cursor moved past it).
    public func pullResponseBody(_ request: PullRequest, identity: Identity) async throws -> PullBody {
        if (identity.scopes != nil && !schema.scopes.isEmpty) || identity.scopeGeneration > 0 {
            // A scoped page is made whole, then written.
            return PullBody(try await pull(request, identity: identity))
        }
        let limit = Int64(request.limit)
        let rows = try await client.query(
            """
            SELECT coalesce(string_agg(
                    '{"seq":' || seq || ',"entity":' || to_json(entity) || ',"id":' || to_json(record)
                    || CASE op WHEN 0 THEN ',"op":"insert","hlc":' WHEN 1 THEN ',"op":"update","hlc":'
                        ELSE ',"op":"delete","hlc":' END
                    || hlc || ',"base":' || base || ',"fields":' || fields || ',"device":' || to_json(device)
                    || ',"sseq":' || sseq || ',"author":' || to_json(author) || '}',
                    ',' ORDER BY sseq) FILTER (WHERE n <= \(limit)), ''),
                coalesce(max(sseq) FILTER (WHERE n <= \(limit)), \(request.cursor)),
                count(*) > \(limit)
            FROM (
                SELECT *, row_number() OVER (ORDER BY sseq) AS n FROM (
                    SELECT sseq, device, seq, author, entity, record, op, hlc, base, fields FROM \(unescaped: t("changes"))
                    WHERE sseq > \(request.cursor) AND rejected IS NULL ORDER BY sseq LIMIT \(limit + 1)
                ) page
            ) numbered
            """, logger: logger)
        // An aggregate over no rows is still one row.
        let (changes, cursor, more) = try await rows.collect().first!.decode((ByteBuffer, Int64, Bool).self)
        var out: [UInt8] = []
        out.reserveCapacity(changes.readableBytes + 64)
        PullResponse.encodeStart(to: &out)
        out.append(contentsOf: changes.readableBytesView)
        PullResponse.encodeEnd(cursor: cursor, more: more, to: &out)
        PullResponse.appendDeviceNames(try await deviceNames(after: request.cursor, through: cursor), to: &out)
        return PullBody(bytes: out, cursor: cursor, more: more, scopeGeneration: nil)
    }

    // MARK: - Reading

    public func storedConflicts() async throws -> [Conflict] {
        try await client.withConnection { c in
            var keys: [PushPlan.RecordKey] = []
            for try await (entity, record) in try await c.query(
                """
                SELECT entity, record FROM \(unescaped: t("conflicts")) WHERE resolved_at IS NULL
                GROUP BY entity, record ORDER BY min(opened_at), min(id COLLATE "C")
                """, logger: logger
            ).decode((String, String).self) {
                keys.append(PushPlan.RecordKey(entity: entity, id: record))
            }
            var result: [Conflict] = []
            for key in keys {
                guard let entity = schema.entity(key.entity), let state = try await loadState(c, key, entity: entity)
                else { continue }
                result += state.conflicts(entity: entity, recordID: key.id)
            }
            return result
        }
    }

    public func states(_ entityName: String) async throws -> [(id: String, state: RecordState)] {
        guard let entity = schema.entity(entityName) else { return [] }
        var result: [(id: String, state: RecordState)] = []
        for try await (id, state) in try await client.query(
            """
            SELECT id, state FROM \(unescaped: t("records")) WHERE entity = \(entityName) ORDER BY id COLLATE "C"
            """, logger: logger
        ).decode((String, String).self) {
            result.append((id, try RecordState(encoded: Array(state.utf8), entity: entity)))
        }
        return result
    }

    /// The number of changes the server has accepted.
    public func changeCount() async throws -> Int {
        let count =
            try await client.query("SELECT count(*) FROM \(unescaped: t("changes"))", logger: logger)
            .collect().first?.decode(Int64.self) ?? 0
        return Int(count)
    }

    // MARK: - Identity

    public func standing(device: String) async throws -> StoreStanding {
        // One round trip; the head is the last row of the primary key's index.
        let row = try await client.query(
            """
            SELECT (SELECT value FROM \(unescaped: t("meta")) WHERE key = 'identity'),
                (SELECT coalesce(max(sseq), 0) FROM \(unescaped: t("changes"))), d.last_sequence, d.token,
                (SELECT value FROM \(unescaped: t("meta")) WHERE key = 'schema_version')
            FROM (SELECT 1) AS one LEFT JOIN \(unescaped: t("devices")) AS d ON d.device = \(device)
            """, logger: logger
        ).collect().first!
        let (identity, head, sequence, token, version) = try row.decode((String, Int64, Int64?, Int64?, String).self)
        return StoreStanding(
            identity: identity, head: head, deviceSequence: sequence ?? 0, deviceToken: token,
            schemaVersion: Int(version))
    }

    public func renewIdentity() async throws -> String {
        let identity = UUID().uuidString.lowercased()
        try await client.query(
            "UPDATE \(unescaped: t("meta")) SET value = \(identity) WHERE key = 'identity'", logger: logger)
        return identity
    }

    // MARK: - Tokens

    public func authenticate(token: String) async throws -> Identity? {
        let hash = TokenSecret.hash(token)
        guard
            let (id, name, role, scopes, generation) = try await client.query(
                """
                SELECT id, name, role, scopes, scope_generation FROM \(unescaped: t("tokens"))
                WHERE hash = \(hash) AND revoked_at IS NULL
                """,
                logger: logger
            ).collect().first?.decode((Int64, String, String?, String?, Int64).self)
        else { return nil }
        return Identity(
            tokenID: id, name: name, role: role, scopes: TokenScopes.read(scopes), scopeGeneration: generation)
    }

    public func createToken(name: String, role: String?, scopes: [String]?) async throws -> String {
        try checkRole(role)
        try checkScopes(scopes)
        let token = TokenSecret.generate()
        let hash = TokenSecret.hash(token)
        try await client.query(
            """
            INSERT INTO \(unescaped: t("tokens")) (name, hash, created_at, role, scopes)
            VALUES (\(name), \(hash), \(ISO8601DateFormatter().string(from: Date())), \(role), \(TokenScopes.text(scopes)))
            """, logger: logger)
        return token
    }

    public func rescope(name: String, scopes: [String]?) async throws -> Int {
        try checkScopes(scopes)
        return try await client.query(
            """
            UPDATE \(unescaped: t("tokens")) SET scopes = \(TokenScopes.text(scopes)), scope_generation = scope_generation + 1
            WHERE name = \(name) AND revoked_at IS NULL RETURNING id
            """, logger: logger
        ).collect().count
    }

    public func revokeTokens(name: String) async throws -> Int {
        let revoked = try await client.query(
            """
            UPDATE \(unescaped: t("tokens")) SET revoked_at = \(ISO8601DateFormatter().string(from: Date()))
            WHERE name = \(name) AND revoked_at IS NULL RETURNING id
            """, logger: logger
        ).collect()
        return revoked.count
    }

    public func tokens() async throws -> [TokenInfo] {
        var result: [TokenInfo] = []
        for try await (id, name, createdAt, revoked, role, scopes) in try await client.query(
            """
            SELECT id, name, created_at, revoked_at IS NOT NULL, role, scopes FROM \(unescaped: t("tokens")) ORDER BY id
            """,
            logger: logger
        ).decode((Int64, String, String, Bool, String?, String?).self) {
            result.append(
                TokenInfo(
                    id: id, name: name, createdAt: createdAt, revoked: revoked, role: role,
                    scopes: TokenScopes.read(scopes)))
        }
        return result
    }
}

/// The PostgreSQL store cannot start on this database, or found it in a state it cannot read.
///
/// Its description never holds the database URL or any stored data.
public struct PostgresSetupError: Error, CustomStringConvertible {
    /// What is wrong, for the operator.
    public var description: String
    init(_ description: String) { self.description = description }
}
