public import FieldbookCore
import FieldbookJSON
import FieldbookSQLite
public import FieldbookSync
import Foundation
import GRDB
import Synchronization

/// The embedded server store: one SQLite file (WAL), zero setup.
///
/// One writer at a time (SQLite's), so server sequence numbers commit in
/// order and a pull can never skip a change that commits later.
public final class SQLiteSyncStorage: SyncStorage {
    /// The newest version of the schema the store holds; a publish replaces it.
    public var schema: Schema { current.withLock { $0 } }
    private let current: Mutex<Schema>
    let pool: DatabasePool

    /// Opens or creates the store at `path` for `schema`.
    ///
    /// WAL with `synchronous = FULL`: every commit is on disk (the WAL fsynced) before a push
    /// is acknowledged, so a power cut loses nothing the server has answered for
    /// (docs/reliability.md, Durability).
    /// A store that holds a newer version than `schema` (one published since, which it holds
    /// with `schema`'s version) runs its newest; given a version after its newest, the store
    /// publishes it (``publish(_:)``).
    /// - Throws: if the file holds another schema, a version that differs from `schema`'s, or
    ///   `schema` is not a compatible evolution of its newest (``SchemaRefusal``).
    public convenience init(path: String, schema: Schema) throws {
        try self.init(path: path, schema: schema, synchronous: "FULL")
    }

    /// Opens the store with another `synchronous` setting: only the power-cut test does, to show
    /// what `NORMAL` would lose.
    package init(path: String, schema: Schema, synchronous: String) throws {
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.journalMode = .wal
        config.prepareDatabase { db in
            // 16 KiB pages, not SQLite's 4 KiB (it takes effect when the file is created; an
            // existing store keeps its size): a push appends thousands of change rows, and
            // with a quarter as many pages to fill, link and log, pushes are 10–20% faster at
            // 200,000 changes, about 4% at 1M (docs/benchmarks.md, "16 KiB pages on the server").
            try db.execute(sql: "PRAGMA page_size = 16384")
            try db.execute(sql: "PRAGMA cache_size = -65536")
            // A checkpoint every 10,000 pages (about 160 MB of log with 16 KiB pages, 40 MB with
            // 4 KiB), not SQLite's 1,000: pages a push rewrites again and again (merge states,
            // indexes) are copied to the file less often; 6% less server CPU in a push with 4 KiB
            // pages; with 16 KiB, 1,000 to 10,000 measure the same (docs/benchmarks.md).
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 10000")
        }
        SQLiteSettings.apply()
        let pool = try DatabasePool(path: path, configuration: config)
        self.pool = pool
        // Set on the writer after opening: GRDB sets NORMAL when it turns WAL on, after
        // `prepareDatabase` has run. Readers commit nothing.
        try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = \(synchronous)") }
        let running = try pool.write { db in
            let running = try Self.migrate(db, schema: schema)
            try Self.rebuildScopeIndexIfStale(db, schema: running)
            try Self.migrateFileTables(db, schema: running)
            // A store made before stores had identities gets one the first time it is opened.
            try db.execute(
                sql: "INSERT INTO meta (key, value) VALUES ('identity', ?) ON CONFLICT (key) DO NOTHING",
                arguments: [UUID().uuidString.lowercased()])
            return running
        }
        current = Mutex(running)
    }

    /// The columns added after the first format, added to a store made before them: devices'
    /// names (sent with pushes, shown to other devices), tokens' roles, and why a change was rejected.
    private static func addColumns(_ db: Database) throws {
        for (table, column, type) in [
            ("devices", "name", "TEXT"), ("tokens", "role", "TEXT"), ("changes", "rejected", "TEXT"),
            ("tokens", "scopes", "TEXT"), ("tokens", "scope_generation", "INTEGER NOT NULL DEFAULT 0"),
        ]
        where try !db.columns(in: table).contains(where: { $0.name == column }) {
            try db.execute(sql: "ALTER TABLE \(table) ADD COLUMN \(column) \(type)")
        }
        // The schema's versions (docs/schema.md, "Versions across the fleet"); a store made before
        // it kept them starts with the version it holds (`published_at` unknown).
        if try !db.tableExists("schema_history") {
            try db.execute(
                sql: """
                    CREATE TABLE schema_history (
                        version INTEGER PRIMARY KEY NOT NULL, schema TEXT NOT NULL, published_at TEXT, head INTEGER)
                        STRICT;
                    INSERT INTO schema_history (version, schema)
                        SELECT CAST(v.value AS INTEGER), s.value FROM meta AS v, meta AS s
                        WHERE v.key = 'schema_version' AND s.key = 'schema';
                    """)
        } else if try !db.columns(in: "schema_history").contains(where: { $0.name == "head" }) {
            try db.execute(sql: "ALTER TABLE schema_history ADD COLUMN head INTEGER")
        }
        // The scope index (docs/protocol.md, "Scopes"): each record's entry (under a number of its
        // own, `rid`) and keys, the records that follow each record, and each key's log, read by
        // index by a scoped pull. A store whose log named records by entity and id (before the
        // numbers) drops its index; it is built again from the records when the store opens.
        if try db.tableExists("scope_log"), try db.columns(in: "scope_log").contains(where: { $0.name == "entity" }) {
            try db.execute(
                sql: """
                    DROP TABLE scope_records; DROP TABLE scope_log; DELETE FROM scope_links;
                    DELETE FROM meta WHERE key = 'scope_index';
                    """)
        }
        try db.execute(
            sql: """
                CREATE TABLE IF NOT EXISTS scope_records (
                    rid INTEGER PRIMARY KEY NOT NULL, entity TEXT NOT NULL, id TEXT NOT NULL, entry TEXT NOT NULL,
                    UNIQUE (entity, id)) STRICT;
                CREATE TABLE IF NOT EXISTS scope_members (
                    rid INTEGER NOT NULL, key TEXT NOT NULL, PRIMARY KEY (rid, key)) STRICT, WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS scope_links (
                    parent_entity TEXT NOT NULL, parent TEXT NOT NULL, entity TEXT NOT NULL, id TEXT NOT NULL,
                    PRIMARY KEY (parent_entity, parent, entity, id)) STRICT, WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS scope_log (
                    key TEXT NOT NULL, sseq INTEGER NOT NULL, rid INTEGER NOT NULL, kind INTEGER NOT NULL,
                    PRIMARY KEY (key, sseq, rid, kind)) STRICT, WITHOUT ROWID;
                """)
    }

    /// Creates the tables, or brings a store of an earlier format up to date; returns the schema
    /// the store runs (``SchemaUpgrade/step(history:schema:publishing:)``).
    static func migrate(_ db: Database, schema: Schema) throws -> Schema {
        if try !db.tableExists("meta") {
            try db.execute(
                sql: """
                    CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value ANY) STRICT;
                    CREATE TABLE tokens (
                        id INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
                        created_at TEXT NOT NULL, revoked_at TEXT) STRICT;
                    CREATE TABLE devices (
                        device TEXT PRIMARY KEY NOT NULL, token INTEGER NOT NULL REFERENCES tokens (id),
                        last_sequence INTEGER NOT NULL, name TEXT) STRICT;
                    CREATE TABLE changes (
                        sseq INTEGER PRIMARY KEY NOT NULL, device TEXT NOT NULL, seq INTEGER NOT NULL,
                        author TEXT NOT NULL, entity TEXT NOT NULL, record TEXT NOT NULL, op INTEGER NOT NULL,
                        hlc INTEGER NOT NULL, base INTEGER NOT NULL, fields TEXT NOT NULL, received_at TEXT NOT NULL,
                        UNIQUE (device, seq)) STRICT;
                    CREATE TABLE records (
                        entity TEXT NOT NULL, id TEXT NOT NULL, state TEXT NOT NULL, live INTEGER NOT NULL,
                        PRIMARY KEY (entity, id)) STRICT, WITHOUT ROWID;
                    CREATE TABLE conflicts (
                        id TEXT PRIMARY KEY NOT NULL, entity TEXT NOT NULL, record TEXT NOT NULL, field TEXT,
                        sides TEXT NOT NULL, opened_at INTEGER NOT NULL, resolved_at INTEGER) STRICT;
                    """)
            try db.execute(
                sql:
                    "INSERT INTO meta (key, value) VALUES ('format', 1), ('schema_name', ?), ('schema_version', ?), ('schema', ?)",
                arguments: [schema.name, schema.version, schema.json.serialized])
            try addColumns(db)
            try db.execute(
                sql: "UPDATE schema_history SET published_at = ?, head = 0",
                arguments: [ISO8601DateFormatter().string(from: Date())])
            return schema
        }
        try addColumns(db)
        switch try SchemaUpgrade.step(history: try history(db), schema: schema, publishing: false) {
        case .current(let newest): return newest
        case .publish(let schema, let previous):
            try publish(db, schema, previous: previous)
            return schema
        }
    }

    /// Each version's canonical text, oldest first.
    private static func history(_ db: Database) throws -> [String] {
        try String.fetchAll(db, sql: "SELECT schema FROM schema_history ORDER BY version")
    }

    /// Makes `schema` the newest version after `previous`: renames what the renamed fields name,
    /// records the version.
    private static func publish(_ db: Database, _ schema: Schema, previous: Schema) throws {
        for entity in previous.entities {
            guard let renames = FieldRenames(entity: entity.name, from: previous, to: schema) else { continue }
            try rename(db, entity: entity.name, renames)
        }
        try db.execute(
            sql: """
                UPDATE meta SET value = ? WHERE key = 'schema_version'; UPDATE meta SET value = ? WHERE key = 'schema';
                INSERT INTO schema_history (version, schema, published_at, head)
                    VALUES (?, ?, ?, (SELECT coalesce(max(sseq), 0) FROM changes));
                """,
            arguments: [
                schema.version, schema.json.serialized, schema.version, schema.json.serialized,
                ISO8601DateFormatter().string(from: Date()),
            ])
    }

    /// Rewrites the changes, merge states and conflicts of `entity` that name a renamed field.
    /// The changes are read in runs of server sequence numbers (no index on their entity).
    private static func rename(_ db: Database, entity: String, _ renames: FieldRenames) throws {
        for (old, new) in renames.newNames {
            try db.execute(
                sql: "UPDATE conflicts SET field = ?, id = record || '/' || ? WHERE entity = ? AND field = ?",
                arguments: [new, new, entity, old])
        }
        var after: Int64 = 0
        while true {
            let rows = try Row.fetchAll(
                db, sql: "SELECT sseq, entity, fields FROM changes WHERE sseq > ? ORDER BY sseq LIMIT 10000",
                arguments: [after])
            guard let last = rows.last else { break }
            after = last[0]
            for row in rows where row[1] == entity {
                guard let text = try renames.renamingChangeFields(row[2]) else { continue }
                try db.execute(sql: "UPDATE changes SET fields = ? WHERE sseq = ?", arguments: [text, row[0] as Int64])
            }
        }
        var afterID = ""
        while true {
            let rows = try Row.fetchAll(
                db, sql: "SELECT id, state FROM records WHERE entity = ? AND id > ? ORDER BY id LIMIT 10000",
                arguments: [entity, afterID])
            guard let last = rows.last else { break }
            afterID = last[0]
            for row in rows {
                guard let text = try renames.renamingState(row[1]) else { continue }
                try db.execute(
                    sql: "UPDATE records SET state = ? WHERE entity = ? AND id = ?",
                    arguments: [text, entity, row[0] as String])
            }
        }
    }

    public func schemaVersions() async throws -> [PublishedSchema] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT schema, published_at, head FROM schema_history ORDER BY version").map {
                PublishedSchema(schema: try Schema(json: $0[0] as String), publishedAt: $0[1], head: $0[2])
            }
        }
    }

    public func refreshSchema() async throws -> Schema {
        let text = try await pool.read { db in
            try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'schema'")
        }
        guard let text else { throw ServerSetupError("the database's schema is missing") }
        let newest = try Schema(json: text)
        return current.withLock { running in
            if newest.version > running.version { running = newest }
            return running
        }
    }

    public func publish(_ schema: Schema) async throws {
        try await pool.write { db in
            guard
                case .publish(let schema, let previous) =
                    try SchemaUpgrade.step(history: try Self.history(db), schema: schema, publishing: true)
            else { return }
            try Self.publish(db, schema, previous: previous)
            try Self.rebuildScopeIndexIfStale(db, schema: schema)
        }
        current.withLock { $0 = schema }
    }

    // MARK: - Push

    public func push(_ request: PushRequest, identity: Identity) async throws -> PushResponse {
        let schema = self.schema
        let fields = PushPlan.fieldTexts(request)
        return try await pool.write { db in
            try Self.push(db, request, fields: fields, identity: identity, schema: schema)
        }
    }

    /// One push, in the writer's transaction: the steps of ``PushPlan``, one row at a time.
    static func push(_ db: Database, _ request: PushRequest, fields: [String], identity: Identity, schema: Schema)
        throws
        -> PushResponse
    {
        let stored = try Int.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'schema_version'") ?? 0
        try SchemaUpgrade.checkUnchanged(stored: stored, request: request.schema)
        let plan = try makePlan(db, request, fields: fields, identity: identity, schema: schema)
        let serverSequences = try insertChanges(db, plan, device: request.device, author: identity.name)
        try db.execute(
            sql: "UPDATE devices SET last_sequence = ?, name = coalesce(?, name) WHERE device = ?",
            arguments: [plan.lastSequence, request.deviceName, request.device])

        let rejected = try saveMerged(db, plan, serverSequences: serverSequences, schema: schema)
        return plan.response(serverSequences: serverSequences, rejected: rejected)
    }

    /// Steps 1–3 of ``PushPlan``: the device's row (made for a new device), what earlier pushes
    /// stored of changes sent again, and which records the changes refer to.
    private static func makePlan(
        _ db: Database, _ request: PushRequest, fields: [String], identity: Identity, schema: Schema
    ) throws -> PushPlan {
        let device = request.device
        let row = try Row.fetchOne(
            db, sql: "SELECT token, last_sequence FROM devices WHERE device = ?", arguments: [device])
        var plan = try PushPlan(
            request, fields: fields, identity: identity, device: row.map { ($0[0], $0[1]) }, schema: schema)
        if row == nil {
            try db.execute(
                sql: "INSERT INTO devices (device, token, last_sequence) VALUES (?, ?, 0)",
                arguments: [device, identity.tokenID])
        }

        var stored: [Int64: PushPlan.Stored] = [:]
        let earlier = try db.cachedStatement(
            sql:
                "SELECT sseq, entity, record, op, hlc, base, fields, rejected FROM changes WHERE device = ? AND seq = ?"
        )
        for sequence in plan.earlierSequences {
            if let row = try Row.fetchOne(earlier, arguments: [device, sequence]) {
                stored[sequence] = PushPlan.Stored(
                    serverSequence: row[0], entity: row[1], recordID: row[2], operation: row[3], hlc: row[4],
                    base: row[5], fields: row[6], rejected: row[7])
            }
        }
        try plan.acknowledge(stored: stored)
        if !plan.references.isEmpty {
            let exists = RawStatement(try db.cachedStatement(sql: "SELECT 1 FROM records WHERE entity = ? AND id = ?"))
            var known: Set<PushPlan.RecordKey> = []
            for key in plan.references {
                exists.bind(1, key.entity)
                exists.bind(2, key.id)
                if try exists.step(db) { known.insert(key) }
                exists.reset()
            }
            try plan.checkReferences(known: known)
        }

        return plan
    }

    /// Stores the plan's fresh changes. Returns their server sequence numbers, in order.
    private static func insertChanges(_ db: Database, _ plan: PushPlan, device: String, author: String) throws
        -> [Int64]
    {
        // The rows are bound and stepped through the C API (RawStatement): once per change and per record.
        let now = CalendarText.timestamp(millisecondsSince1970: Int64(Date().timeIntervalSince1970 * 1000))
        let insert = RawStatement(
            try db.cachedStatement(
                sql: """
                    INSERT INTO changes (device, seq, author, entity, record, op, hlc, base, fields, received_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """))
        var serverSequences: [Int64] = []
        serverSequences.reserveCapacity(plan.fresh.count)
        insert.bind(1, device)
        insert.bind(3, author)
        insert.bind(10, now)
        try plan.fresh.withUnsafeBufferPointer { fresh in  // each change read in place, not copied
            for n in fresh.indices {
                insert.bind(2, fresh[n].sequence)
                insert.bind(4, fresh[n].entity)
                insert.bind(5, fresh[n].recordID)
                insert.bind(6, Int64(fresh[n].operation.rawValue))
                insert.bind(7, Int64(bitPattern: fresh[n].timestamp.rawValue))
                insert.bind(8, fresh[n].base)
                insert.bind(9, plan.freshFields[n])
                try insert.run(db)
                serverSequences.append(insert.lastInsertedRowID)
            }
        }
        return serverSequences
    }

    /// Merges the fresh changes into their records' states and stores them, with the conflict rows,
    /// and notes why each rejected change was. Returns the rejections, by index in the plan's fresh changes.
    private static func saveMerged(
        _ db: Database, _ plan: PushPlan, serverSequences: [Int64], schema: Schema
    ) throws -> [Int: Rejection] {
        var states: [PushPlan.RecordKey: RecordState] = [:]
        states.reserveCapacity(plan.records.count)
        for key in plan.records {
            states[key] = try loadState(db, key, entity: schema.entity(key.entity)!)
        }
        let head = serverSequences.last ?? 0
        let withOpenConflicts = try Set(
            Row.fetchCursor(
                db.cachedStatement(sql: "SELECT DISTINCT entity, record FROM conflicts WHERE resolved_at IS NULL")
            )
            .map { PushPlan.RecordKey(entity: $0[0], id: $0[1]) })
        let save = RawStatement(
            try db.cachedStatement(
                sql: """
                    INSERT INTO records (entity, id, state, live) VALUES (?, ?, ?, ?)
                    ON CONFLICT (entity, id) DO UPDATE SET state = excluded.state, live = excluded.live
                    """))
        var encoded: [UInt8] = []
        var index = ScopeIndex(schema: schema)
        var rows = ScopeRows()
        if index.isActive && plan.scopeKeys != nil {
            for key in index.missingForCheck(records: plan.records, states: states, fresh: plan.fresh) {
                index.loaded[key] = try rows.load(db, key)
            }
        }
        let (merged, rejected) = plan.merge(
            states: states, serverSequences: serverSequences, scopes: index.isActive ? index : nil)
        if index.isActive { try updateScopeIndex(db, &index, &rows, merged, head: head) }
        try insertFileReferences(db, plan.fileReferences(rejected: rejected, schema: schema))
        for (index, rejection) in rejected {
            try db.execute(
                sql: "UPDATE changes SET rejected = ? WHERE sseq = ?",
                arguments: [rejection.storedText, serverSequences[index]])
        }
        for record in merged {
            encoded.removeAll(keepingCapacity: true)
            record.state.encode(to: &encoded)
            save.bind(1, record.key.entity)
            save.bind(2, record.key.id)
            save.bind(3, encoded[...])
            save.bind(4, Int64(record.live ? 1 : 0))
            try save.run(db)
            if !record.conflicts.isEmpty || withOpenConflicts.contains(record.key) {
                try ConflictRows.update(
                    db, table: "conflicts", entity: record.key.entity, record: record.key.id,
                    current: record.conflicts, at: head)
            }
        }
        return rejected
    }

    static func loadState(_ db: Database, _ key: PushPlan.RecordKey, entity: Entity) throws -> RecordState? {
        let select = RawStatement(try db.cachedStatement(sql: "SELECT state FROM records WHERE entity = ? AND id = ?"))
        defer { select.reset() }
        select.bind(1, key.entity)
        select.bind(2, key.id)
        guard try select.step(db) else { return nil }
        return try RecordState(encoded: select.bytes(0), entity: entity)
    }

    // MARK: - Pull

    public func pull(_ request: PullRequest, identity: Identity) async throws -> PullResponse {
        let schema = self.schema
        return try await pool.read { db in
            var response: PullResponse
            if let scopes = identity.scopes, !schema.scopes.isEmpty {
                response = try Self.scopedPull(db, request, identity: identity, scopes: scopes, schema: schema)
            } else {
                let rows = try Self.changes(
                    db,
                    """
                    SELECT sseq, device, seq, author, entity, record, op, hlc, base, fields FROM changes
                    WHERE sseq > ? AND rejected IS NULL ORDER BY sseq LIMIT ?
                    """, [request.cursor, request.limit + 1], schema: schema)
                let changes = Array(rows.prefix(request.limit))
                let cursor = changes.last?.serverSequence ?? request.cursor
                response = PullResponse(
                    changes: changes, cursor: cursor, more: rows.count > request.limit,
                    deviceNames: try Self.deviceNames(db, after: request.cursor, through: cursor))
                if identity.scopeGeneration > 0 { response.scopeGeneration = identity.scopeGeneration }
            }
            response.role = identity.role
            return response
        }
    }

    /// Writes the page straight from the rows: each change's fields are stored as the text
    /// of ``FieldChange/encode(_:to:)``, checked when pushed, and are sent as they are.
    public func pullResponseBody(_ request: PullRequest, identity: Identity) async throws -> PullBody {
        let schema = self.schema
        if let scopes = identity.scopes, !schema.scopes.isEmpty {
            return try await pool.read { db in
                try Self.scopedPullBody(db, request, identity: identity, scopes: scopes, schema: schema)
            }
        }
        if identity.scopeGeneration > 0 {
            // A token rescoped to everything: its page names its generation.
            return PullBody(try await pull(request, identity: identity))
        }
        return try await pool.read { db in
            var out: [UInt8] = []
            out.reserveCapacity(256 * min(request.limit, 10_000) + 64)
            PullResponse.encodeStart(to: &out)
            let rows = RawStatement(
                try db.cachedStatement(
                    sql: """
                        SELECT sseq, device, seq, author, entity, record, op, hlc, base, fields FROM changes
                        WHERE sseq > ? AND rejected IS NULL ORDER BY sseq LIMIT ?
                        """))
            defer { rows.reset() }
            rows.bind(1, request.cursor)
            rows.bind(2, Int64(request.limit + 1))
            var count = 0
            var cursor = request.cursor
            var more = false
            while try rows.step(db) {
                if count == request.limit {
                    more = true
                    break
                }
                if count > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeChange(rows, to: &out)
                cursor = rows.int64(0)
                count += 1
            }
            PullResponse.encodeEnd(cursor: cursor, more: more, to: &out)
            PullResponse.appendDeviceNames(try Self.deviceNames(db, after: request.cursor, through: cursor), to: &out)
            return PullBody(bytes: out, cursor: cursor, more: more, scopeGeneration: nil)
        }
    }

    /// Writes the change in the current row of `rows` (the columns of ``pull(_:identity:)``) as
    /// the wire has it: its fields are stored as the text of ``FieldChange/encode(_:to:)``,
    /// checked when pushed, and sent as they are; text is written from SQLite's buffers.
    static func writeChange(_ rows: RawStatement, to out: inout [UInt8]) {
        Change.encodeWire(
            to: &out, sequence: rows.int64(2), entity: .utf8(rows.utf8(4)), recordID: .utf8(rows.utf8(5)),
            operation: ChangeOperation(rawValue: Int(rows.int64(6))) ?? .update, hlc: rows.int64(7),
            base: rows.int64(8),
            fields: { out in
                let fields = rows.utf8(9)
                if fields.isEmpty { out.append(contentsOf: "{}".utf8) } else { out.append(contentsOf: fields) }
            },
            origin: (.utf8(rows.utf8(1)), rows.int64(0), .utf8(rows.utf8(3))))
    }

    /// The names of the devices with changes numbered after `cursor` up to `last`: a page's.
    static func deviceNames(_ db: Database, after cursor: Int64, through last: Int64) throws -> [String: String] {
        guard last > cursor else { return [:] }
        var names: [String: String] = [:]
        for row in try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT device, name FROM devices WHERE name IS NOT NULL
                    AND device IN (SELECT DISTINCT device FROM changes WHERE sseq > ? AND sseq <= ?)
                    """), arguments: [cursor, last])
        {
            names[row[0]] = row[1]
        }
        return names
    }

    // MARK: - Reading

    public func storedConflicts() async throws -> [Conflict] {
        let schema = self.schema
        return try await pool.read { db in
            let rows = try Row.fetchAll(
                db,
                sql: "SELECT DISTINCT entity, record FROM conflicts WHERE resolved_at IS NULL ORDER BY opened_at, id")
            var result: [Conflict] = []
            for row in rows {
                let key = PushPlan.RecordKey(entity: row[0], id: row[1])
                guard let entity = schema.entity(key.entity), let state = try Self.loadState(db, key, entity: entity)
                else { continue }
                result += state.conflicts(entity: entity, recordID: key.id)
            }
            return result
        }
    }

    public func states(_ entityName: String) async throws -> [(id: String, state: RecordState)] {
        guard let entity = schema.entity(entityName) else { return [] }
        return try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT id, state FROM records WHERE entity = ? ORDER BY id", arguments: [entityName]
            )
            .map { row in
                let text: String = row[1]
                return (row[0], try RecordState(encoded: Array(text.utf8), entity: entity))
            }
        }
    }

    /// The number of changes the server has accepted.
    /// The file locked past the busy timeout, unopenable, unreadable or full: an outage, not a bad request.
    public func isOutage(_ error: any Error) -> Bool {
        guard let error = error as? DatabaseError else { return false }
        return [
            ResultCode.SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_CANTOPEN, .SQLITE_IOERR, .SQLITE_FULL, .SQLITE_READONLY,
        ]
        .contains(error.resultCode)
    }

    public func changeCount() async throws -> Int {
        try await pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM changes") ?? 0 }
    }

    // MARK: - Identity

    public func standing(device: String) async throws -> StoreStanding {
        try await pool.read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT (SELECT value FROM meta WHERE key = 'identity'), (SELECT coalesce(max(sseq), 0) FROM changes),
                        d.last_sequence, d.token, (SELECT value FROM meta WHERE key = 'schema_version')
                    FROM (SELECT 1) LEFT JOIN devices AS d ON d.device = ?
                    """, arguments: [device])!
            return StoreStanding(
                identity: row[0], head: row[1], deviceSequence: row[2] ?? 0, deviceToken: row[3], schemaVersion: row[4])
        }
    }

    public func renewIdentity() async throws -> String {
        let identity = UUID().uuidString.lowercased()
        try await pool.write { db in
            try db.execute(sql: "UPDATE meta SET value = ? WHERE key = 'identity'", arguments: [identity])
        }
        return identity
    }

    // MARK: - Tokens

    public func authenticate(token: String) async throws -> Identity? {
        let hash = TokenSecret.hash(token)
        return try await pool.read { db in
            try Row.fetchOne(
                db,
                sql:
                    "SELECT id, name, role, scopes, scope_generation FROM tokens WHERE hash = ? AND revoked_at IS NULL",
                arguments: [hash]
            )
            .map {
                Identity(
                    tokenID: $0[0], name: $0[1], role: $0[2], scopes: TokenScopes.read($0[3]),
                    scopeGeneration: $0[4])
            }
        }
    }

    public func createToken(name: String, role: String?, scopes: [String]?) async throws -> String {
        try checkRole(role)
        try checkScopes(scopes)
        let token = TokenSecret.generate()
        let hash = TokenSecret.hash(token)
        try await pool.write { db in
            try db.execute(
                sql: "INSERT INTO tokens (name, hash, created_at, role, scopes) VALUES (?, ?, ?, ?, ?)",
                arguments: [name, hash, ISO8601DateFormatter().string(from: Date()), role, TokenScopes.text(scopes)])
        }
        return token
    }

    public func rescope(name: String, scopes: [String]?) async throws -> Int {
        try checkScopes(scopes)
        return try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE tokens SET scopes = ?, scope_generation = scope_generation + 1
                    WHERE name = ? AND revoked_at IS NULL
                    """, arguments: [TokenScopes.text(scopes), name])
            return db.changesCount
        }
    }

    public func revokeTokens(name: String) async throws -> Int {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                arguments: [ISO8601DateFormatter().string(from: Date()), name])
            return db.changesCount
        }
    }

    public func tokens() async throws -> [TokenInfo] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT id, name, created_at, revoked_at IS NOT NULL, role, scopes FROM tokens ORDER BY id"
            ).map {
                TokenInfo(
                    id: $0[0], name: $0[1], createdAt: $0[2], revoked: $0[3], role: $0[4],
                    scopes: TokenScopes.read($0[5]))
            }
        }
    }
}

/// The server cannot start on this database, or found it in a state it cannot read.
public struct ServerSetupError: Error, CustomStringConvertible {
    /// What is wrong, for the operator: names the database's state, never stored data.
    public var description: String
    init(_ description: String) { self.description = description }
}
