public import FieldbookCore
import FieldbookJSON
import FieldbookSQLite
import FieldbookSync
import Foundation
import GRDB
import GRDBSQLite
import Synchronization

/// A device's local store: one SQLite file (WAL) holding the records of one
/// schema and the changelog of every write made to them.
///
/// ```swift
/// let store = try Store(path: "inspector.sqlite", schema: .inspection)
/// let site = try store.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home"])
/// try store.update("site", id: site, ["beds_total": 120, "observed_on": "2021-09-02"])
/// for entry in try store.history(of: site) { print(entry) }
/// ```
///
/// Every insert, update and delete writes its field-level changelog entry in
/// the same SQLite transaction as the data, so a crash can lose neither
/// without the other. Writes are serialized; reads run concurrently with them.
///
/// ## Topics
/// - ``Configuration``
/// - ``write(_:)-245g8``
/// - ``write(_:)-3xq6q``
/// - ``Transaction``
/// - ``Query``
/// - ``Record``
/// - ``HistoryEntry``
public final class Store: Sendable {
    /// Settings for opening a store. The defaults suit a device.
    public struct Configuration: Sendable {
        /// The wall clock, in milliseconds since 1970. Tests inject clocks that jump.
        public var wallClock: @Sendable () -> UInt64 = systemWallClock
        /// How far ahead of this device's wall clock a timestamp pulled from the server may move
        /// its clock. A pulled change stamped further ahead is still applied and merged, as on
        /// every peer; only this device's clock stops at the bound (docs/protocol.md).
        public var clockBound: Duration = .seconds(86_400)
        /// SQLite's page cache per connection, in MiB.
        public var cacheSizeMiB = 64
        /// Open read-only: no migration, no writes.
        public var readOnly = false
        /// Whether a push first makes the changes it sends durable. Only the power-cut test
        /// turns it off, to show what is lost without it.
        package var durableBeforePush = true
        /// Run the store's database work on a pool that every store of the process with this set
        /// shares (as many threads as cores, at utility priority) instead of on threads of its
        /// own (one per connection, at user-initiated priority). For a process that hosts many
        /// stores at once, as the load benchmark's devices: hundreds of database threads would
        /// otherwise crowd out its network threads and the server's.
        package var sharedWorkers = false

        /// The defaults: the system clock, a one-day clock bound, 64 MiB of page cache, read-write.
        public init() {}
    }

    /// The schema the store holds records of. When the store knows a newer version the server
    /// publishes (``newestSchema``), its enum fields take that version's values and order: a
    /// device of this version stores, shows and merges what devices of the newer one write.
    public let schema: Schema
    /// A newer version of the schema that the server announced and this device fetched at a sync
    /// (docs/protocol.md, "Schema versions"); nil if it knows none. Open the store with it to
    /// upgrade (``Store/init(path:schema:configuration:)`` migrates the records and the changes
    /// not yet pushed), or keep the version it has: a device one version behind, or ten, syncs.
    public let newestSchema: Schema?
    /// The last change this device made before it last upgraded its schema: those up to it that
    /// come back in pulls are compared with the server's copy (``Store/Transaction`` adopts the
    /// server's). 0 if it never upgraded.
    let adoptThrough: Int64
    /// This device's id, made when the store was created.
    public let deviceID: String
    /// The path of the SQLite file.
    public let path: String

    let pool: DatabasePool
    let configuration: Configuration
    let tables: [String: EntityTable]
    let state: Mutex<WriterState>
    let capture = PreUpdateCapture()

    struct WriterState {
        var clock: HybridLogicalClock
        var ids = UUIDv7Generator()
        /// The server cursor pulled to; the base of new changes.
        var base: Int64
        /// The clock correction learned from the server (milliseconds, ≤ 0), and the wall clock
        /// when it was learned: see ``Store/clockCorrection``.
        var correction: (offset: Int64, learnedAt: UInt64) = (0, 0)
        /// The role the server last named for this device's token: writes the schema's access rules
        /// do not let it make are refused here. Nil before the first pull, or for a token without one.
        var role: String?
        /// The scope keys of this device's token (``ScopeIndex/tokenKeys(_:)``), as the server last
        /// named them: writes that would leave the scope are refused here. Nil before the first
        /// pull, or for a token that sees everything.
        var scopeKeys: Set<String>?

        /// The wall clock as this device stamps with it: corrected by what the server said, unless
        /// the wall clock has since been set back before the time it was learned (someone fixed it).
        func corrected(_ wall: UInt64) -> UInt64 {
            guard correction.offset < 0, wall >= correction.learnedAt else { return wall }
            return UInt64(max(Int64(wall) + correction.offset, 0))
        }
    }

    /// Opens the store at `path`, creating it if needed, and migrates it to `schema`.
    ///
    /// - Throws: ``StoreError`` with code ``StoreError/Code/migrationRefused`` if the
    ///   store holds an older schema that cannot be migrated safely to this one (nothing is
    ///   changed), ``StoreError/Code/incompatibleStore`` if it holds a newer or another schema, or
    ///   ``StoreError/Code/database`` if SQLite cannot open or write the file.
    public init(path: String, schema: Schema, configuration: Configuration = Configuration()) throws {
        var config = GRDB.Configuration()
        config.readonly = configuration.readOnly
        config.busyMode = .timeout(10)
        config.journalMode = .wal
        if configuration.sharedWorkers { config.targetQueue = .global(qos: .utility) }
        let cachePages = -configuration.cacheSizeMiB * 1024
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA cache_size = \(cachePages)")
            // WAL + NORMAL: a commit survives a process crash at once, and a power cut once the
            // WAL is next fsynced (a checkpoint, or `flush()`, which every push calls first). A
            // power cut can lose the last local commits, never corrupts the file, and never loses
            // a change the server has seen. See docs/reliability.md, Durability. (GRDB sets NORMAL
            // on the writer too when it turns WAL on.)
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        SQLiteSettings.apply()
        let pool = try StoreError.database { try DatabasePool(path: path, configuration: config) }
        self.pool = pool
        self.path = path
        self.configuration = configuration

        let opened:
            (
                device: String, clock: HybridTimestamp, base: Int64, correction: (Int64, UInt64), role: String?,
                scopes: [String]?
            )
        let upgrade: (newest: String?, between: [Schema], adoptThrough: Int64, rebuild: Bool)
        (opened, upgrade) = try StoreError.database {
            let read = { (db: Database) in
                (try Self.readState(db, schema: schema), try Self.readUpgrade(db, schema: schema))
            }
            if configuration.readOnly {
                return try pool.read(read)
            } else {
                return try pool.write { db in
                    try Self.migrate(db, to: schema)
                    return try read(db)
                }
            }
        }
        let newest = upgrade.newest.flatMap { try? Schema(json: $0) }.flatMap {
            $0.name == schema.name && $0.version > schema.version ? $0 : nil
        }
        newestSchema = newest
        adoptThrough = upgrade.adoptThrough
        let running =
            newest.map { newest in
                let translation = SchemaTranslation(
                    [schema] + upgrade.between.filter { $0.version < newest.version } + [newest])
                return schema.widened(by: newest) { translation.newerName(entity: $0, field: $1) }
            } ?? schema
        self.schema = running
        self.tables = Dictionary(
            uniqueKeysWithValues: running.entities.enumerated().map {
                ($1.name, EntityTable($1, number: $0, schema: running))
            })
        deviceID = opened.device
        state = Mutex(
            WriterState(
                clock: HybridLogicalClock(last: opened.clock), base: opened.base, correction: opened.correction,
                role: opened.role, scopeKeys: opened.scopes.map { ScopeIndex.tokenKeys($0) }))
        if upgrade.rebuild && !configuration.readOnly { try rebuildAfterMigration() }
    }

    /// What schema versions left for this store: a newer version fetched (and those between),
    /// the last change made before the last upgrade, whether records wait to be written again
    /// after a migration.
    static func readUpgrade(
        _ db: Database, schema: Schema
    ) throws -> (newest: String?, between: [Schema], adoptThrough: Int64, rebuild: Bool) {
        (
            try String.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'newest_schema'"),
            try fetchedVersions(db, name: schema.name, after: schema.version),
            try Int64.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'adopt_through'") ?? 0,
            try db.tableExists("_rebuild")
        )
    }

    /// Writes again, from their changes, the records a migration left to write
    /// (`Store.changelogSteps`: this device's inserts given a new field's default), in one
    /// transaction.
    private func rebuildAfterMigration() throws {
        try write { tx in
            guard try tx.db.tableExists("_rebuild") else { return }
            for row in try Row.fetchAll(tx.db, sql: "SELECT entity, record FROM _rebuild") {
                guard let table = tables[row[0] as String] else { continue }
                try tx.rebuild(table, row[1])
            }
            try tx.db.execute(sql: "DROP TABLE _rebuild")
        }
    }

    static func readState(
        _ db: Database, schema: Schema
    ) throws -> (
        device: String, clock: HybridTimestamp, base: Int64, correction: (Int64, UInt64), role: String?,
        scopes: [String]?
    ) {
        guard try db.tableExists("_fieldbook_meta") else {
            throw StoreError(.incompatibleStore, "the file is not a Fieldbook store")
        }
        let stored = try Self.storedSchema(db)
        guard stored.name == schema.name, stored.version == schema.version else {
            throw StoreError(
                .incompatibleStore,
                "the store holds schema '\(stored.name)' version \(stored.version), not '\(schema.name)' version \(schema.version)"
            )
        }
        guard let device = try String.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'device_id'")
        else { throw StoreError(.incompatibleStore, "the store has no device id") }
        let lastChange = try Int64.fetchOne(db, sql: "SELECT max(hlc) FROM _changelog") ?? 0
        let received = try Int64.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'clock'") ?? 0
        let base = try Int64.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'cursor'") ?? 0
        let offset = try Int64.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'clock_offset'") ?? 0
        let learnedAt =
            try Int64.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'clock_offset_at'") ?? 0
        let role = try String.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'role'")
        return (
            device, HybridTimestamp(rawValue: UInt64(max(lastChange, received))), base,
            (min(offset, 0), UInt64(max(learnedAt, 0))), role, try Self.storedScopes(db)
        )
    }

    /// Runs `body` in one write transaction: all its writes commit together, or,
    /// if it throws, none of them do. Writes are serialized: one transaction at a time.
    ///
    /// This blocks the calling thread while it waits for the writer; from async code use
    /// the async `write(_:)`, which suspends instead.
    /// - Throws: what `body` throws, or ``StoreError``.
    public func write<T>(_ body: (Transaction) throws -> T) throws -> T {
        try StoreError.database { try pool.write { try self.writing($0, body) } }
    }

    /// Runs `body` with a consistent read-only view of the store (a snapshot: writes that
    /// commit meanwhile are not seen). Reads run beside each other and beside the writer.
    /// - Throws: what `body` throws, or ``StoreError``.
    public func read<T>(_ body: (Transaction) throws -> T) throws -> T {
        try StoreError.database { try pool.read { try body(self.transaction($0)) } }
    }

    /// ``write(_:)-245g8`` for async code: the caller's task waits suspended while the transaction
    /// runs on the store's writer, so no thread of the concurrency pool is held.
    ///
    /// ```swift
    /// let id = try await store.write { try $0.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home"]) }
    /// ```
    public func write<T: Sendable>(_ body: @escaping @Sendable (Transaction) throws -> T) async throws -> T {
        try await StoreError.databaseAsync { try await pool.write { try self.writing($0, body) } }
    }

    /// ``read(_:)`` for async code, suspended as the async `write(_:)` is.
    public func read<T: Sendable>(_ body: @escaping @Sendable (Transaction) throws -> T) async throws -> T {
        try await StoreError.databaseAsync { try await pool.read { try body(self.transaction($0)) } }
    }

    func transaction(_ db: Database) -> Transaction {
        Transaction(store: self, db: db, statements: StatementCache(tables.count))
    }

    /// Runs `body` in the writer's open transaction and writes the changelog entries it queued.
    ///
    /// The hot paths write rows through SQLite's C API, which GRDB's observers do not see; so a
    /// transaction that changed rows tells them its entity tables may have changed: live queries
    /// (``observe(_:)``) fetch again, and yield if their results differ.
    private func writing<T>(_ db: Database, _ body: (Transaction) throws -> T) throws -> T {
        let changesBefore = sqlite3_total_changes64(db.sqliteConnection)
        let transaction = transaction(db)
        let result = try body(transaction)
        try transaction.flushLog()
        if sqlite3_total_changes64(db.sqliteConnection) != changesBefore {
            for entity in schema.entities { try db.notifyChanges(in: Table(entity.name)) }
        }
        return result
    }

    /// Inserts a record in its own transaction and returns its id.
    @discardableResult
    public func insert(_ entity: String, _ values: [String: Value], id: String? = nil) throws -> String {
        try write { try $0.insert(entity, values, id: id) }
    }

    /// Updates the given fields of a record in its own transaction.
    public func update(_ entity: String, id: String, _ values: [String: Value]) throws {
        try write { try $0.update(entity, id: id, values) }
    }

    /// Deletes a record in its own transaction.
    public func delete(_ entity: String, id: String) throws {
        try write { try $0.delete(entity, id: id) }
    }

    /// The record with this id, or nil.
    public func record(_ entity: String, id: String) throws -> Record? {
        try read { try $0.record(entity, id: id) }
    }

    /// The records a query selects.
    public func fetch(_ query: Query) throws -> [Record] {
        try read { try $0.fetch(query) }
    }

    func entityTable(_ name: String) throws -> EntityTable {
        guard let table = tables[name] else {
            throw StoreError(
                .unknownEntity, entity: name,
                "no such entity (entities: \(schema.entities.map(\.name).joined(separator: ", ")))")
        }
        return table
    }

    /// Stamps a new local change: a timestamp that never goes backwards, and the current base.
    func stamp() -> (HybridTimestamp, Int64) {
        let wall = configuration.wallClock()
        return state.withLock { ($0.clock.now(wallMillis: $0.corrected(wall)), $0.base) }
    }

    /// How far behind its own wall clock this device stamps its changes, in milliseconds (0 or
    /// less): learned from the server's time when the server refused changes stamped too far
    /// ahead of its clock (`clock_ahead`); 0 when the server never did, or when the wall clock
    /// has since been set back (fixed).
    public var clockCorrection: Int64 {
        let wall = configuration.wallClock()
        return state.withLock { Int64($0.corrected(wall)) - Int64(wall) }
    }

    func newID() -> String {
        let wall = configuration.wallClock()
        return state.withLock { $0.ids.next(millis: wall) }
    }
}

/// The SQL of one entity's table, built once from the schema.
final class EntityTable: Sendable {
    let entity: Entity
    /// The entity's position in the schema: its slot in a ``StatementCache``.
    let number: Int
    let insertSQL: String
    /// For each field, the UPDATE of that field alone (the common update).
    let updateOneSQL: [String]
    let existsSQL: String
    /// Writes a whole row, inserting or replacing (applying merged changes).
    let upsertSQL: String
    let deleteSQL: String
    let selectColumns: String
    let references: [(field: Int, target: String)]
    /// For each field, the field whose value annotates its changes: the `observedBy`
    /// field of an `observed` field, the `epoch` field of a `max` field.
    let annotation: [Int?]
    /// For each field, how its changes are logged.
    let changeForm: [ChangeForm]
    /// For an update of field i alone: what the pre-update hook reads.
    let captureForOne: [CaptureForOne?]
    /// For each field, its name as a JSON object key (`"status":`), for encoding changes.
    let jsonKey: [[UInt8]]
    /// For each field, the entity a reference field refers to.
    let referenceTarget: [String?]
    /// The reference fields with `onDelete: cascade`: the record follows the one each names.
    let cascades: [(field: Int, target: String)]
    /// Whether a field of some entity follows records of this one (`onDelete: cascade`).
    let isFollowed: Bool
    /// Whether a field of some entity refers to records of this one with `onDelete: conflict`: a
    /// deleted record of this entity keeps its row while one refers to it.
    let isHoldable: Bool
    /// The reference fields with `onDelete: conflict`: a deleted record each names is held.
    let holding: [(field: Int, target: String)]

    /// What an update of one field reads through the pre-update hook. A field has one
    /// policy, so it needs at most one of these.
    enum CaptureForOne: Sendable {
        /// The field's own value before the write: a counter logs its delta, a set its members.
        case oldValue(PreUpdateCapture.Request)
        /// The annotating field's value after the write: an observed field's time, a max field's epoch.
        case annotation(PreUpdateCapture.Request)
    }

    init(_ entity: Entity, number: Int, schema: Schema) {
        self.entity = entity
        self.number = number
        cascades = entity.fields.enumerated().compactMap { n, field in
            field.onDelete == .cascade ? field.target.map { (n, $0) } : nil
        }
        isFollowed = schema.entities.contains { other in
            other.fields.contains { $0.onDelete == .cascade && $0.target == entity.name }
        }
        isHoldable = schema.entities.contains { other in
            other.fields.contains { $0.onDelete == .conflict && $0.target == entity.name }
        }
        holding = entity.fields.enumerated().compactMap { n, field in
            field.onDelete == .conflict ? field.target.map { (n, $0) } : nil
        }
        let columns = entity.fields.map { quoted($0.name) }
        let annotation: [Int?] = entity.fields.map { field in
            switch field.policy {
            case .observed(let by): entity.fieldIndex(by)
            case .max(_, let epoch?): entity.fieldIndex(epoch)
            default: nil
            }
        }
        self.annotation = annotation
        changeForm = entity.fields.map { ChangeForm($0.policy) }
        captureForOne = entity.fields.enumerated().map { n, field in
            switch field.policy {
            case .counter, .union:
                return .oldValue(PreUpdateCapture.Request(columns: [(Int32(n + 1), field.type)], old: true, new: false))
            default:
                guard let source = annotation[n], source != n else { return nil }
                let column = (Int32(source + 1), entity.fields[source].type)
                return .annotation(PreUpdateCapture.Request(columns: [column], old: false, new: true))
            }
        }
        jsonKey = entity.fields.map { field in
            var key: [UInt8] = []
            Value.text(field.name).writeJSON(to: &key)
            key.append(UInt8(ascii: ":"))
            return key
        }
        referenceTarget = entity.fields.map { field in
            if case .reference(let target) = field.type { target } else { nil }
        }
        updateOneSQL = columns.enumerated().map { n, column in
            "UPDATE \(quoted(entity.name)) SET \(column) = ? WHERE id = ?"
        }
        existsSQL = "SELECT 1 FROM \(quoted(entity.name)) WHERE id = ?"
        upsertSQL = """
            INSERT INTO \(quoted(entity.name)) (id, \(columns.joined(separator: ", ")))
            VALUES (?\(String(repeating: ", ?", count: columns.count)))
            ON CONFLICT (id) DO UPDATE SET \(columns.map { "\($0) = excluded.\($0)" }.joined(separator: ", "))
            """
        deleteSQL = "DELETE FROM \(quoted(entity.name)) WHERE id = ?"
        insertSQL =
            "INSERT INTO \(quoted(entity.name)) (id, \(columns.joined(separator: ", "))) VALUES (?\(String(repeating: ", ?", count: columns.count)))"
        selectColumns = (["id"] + columns).joined(separator: ", ")
        references = entity.fields.enumerated().compactMap { n, field in
            if case .reference(let target) = field.type { (n, target) } else { nil }
        }
    }
}

extension EntityTable {
    /// How changes of a field are logged, from its policy.
    enum ChangeForm: Sendable {
        /// The new value.
        case value
        /// A counter: the difference from the old value.
        case delta
        /// A set: the members added and removed.
        case members
        /// An observed field: the value and its observation time.
        case observed
        /// A max field with an epoch: the value and the epoch.
        case epoch

        init(_ policy: MergePolicy) {
            switch policy {
            case .counter: self = .delta
            case .union: self = .members
            case .observed: self = .observed
            case .max(_, _?): self = .epoch
            default: self = .value
            }
        }
    }

    /// The changelog form of setting field `index` to `value`: a counter's delta and a set's
    /// members added and removed (given the `old` value), or the value, with the observation
    /// time or epoch of an observed or max field (given the annotating field's value after the write).
    func change(index: Int, to value: Value, old: Value?, annotation: Value?) -> FieldChange {
        var change = FieldChange(field: entity.fields[index].name, kind: .set(value))
        switch (changeForm[index], old, value) {
        case (.delta, let old?, .integer(let new)):
            change.kind = .add(new &- (old.integer ?? 0))
        case (.members, let old?, let new):
            let oldMembers = Set(old.setMembers)
            let newMembers = Set(new.setMembers)
            change.kind = .members(
                added: Value.normalizedSet(newMembers.subtracting(oldMembers)),
                removed: Value.normalizedSet(oldMembers.subtracting(newMembers)))
        default:
            annotate(&change, index: index, with: annotation)
        }
        return change
    }

    /// Adds the observation time or epoch to a change of field `index`, from the annotating field's value.
    func annotate(_ change: inout FieldChange, index: Int, with value: Value?) {
        switch changeForm[index] {
        case .observed: change.observedAt = value?.text
        case .epoch: change.epoch = value?.integer ?? 0
        default: break
        }
    }
}

/// Prepared statements for one transaction, found by position instead of by SQL text.
/// The statements themselves come from GRDB's per-connection cache, so each is prepared once.
final class StatementCache {
    /// Whether `_held` and `_hidden` may have rows (nil: not looked yet): most stores have none,
    /// and then a merged row costs no statement on them.
    var mayHaveHeld: Bool?
    var mayHaveHidden: Bool?
    var changelog: Statement?
    var insert: [Statement?]
    var exists: [Statement?]
    var updateOne: [[Statement?]]
    /// Sync: each table's upsert of a merged row, and the statements run once per merged record.
    var upsert: [Statement?]
    var selectState: Statement?
    var newerLocal: Statement?
    var lastTable: EntityTable?
    var logQueue: [QueuedChange] = []
    var logFailure: (any Error)?
    /// Reused for encoding changelog entries.
    var buffer: [UInt8] = []

    init(_ entityCount: Int) {
        insert = Array(repeating: nil, count: entityCount)
        exists = Array(repeating: nil, count: entityCount)
        updateOne = Array(repeating: [], count: entityCount)
        upsert = Array(repeating: nil, count: entityCount)
    }
}

/// Milliseconds since 1970 from the system's real-time clock.
@Sendable func systemWallClock() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return UInt64(now.tv_sec) * 1000 + UInt64(now.tv_nsec) / 1_000_000
}

/// An SQL identifier, quoted. Names come from a validated schema (lower-case identifiers).
func quoted(_ name: String) -> String { "\"\(name)\"" }
