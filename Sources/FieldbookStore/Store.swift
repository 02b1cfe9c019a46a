public import FieldbookCore
import Foundation
import GRDB
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
/// - ``write(_:)``
/// - ``Transaction``
/// - ``Query``
/// - ``Record``
/// - ``HistoryEntry``
public final class Store: Sendable {
    /// Settings for opening a store. The defaults suit a device.
    public struct Configuration: Sendable {
        /// The wall clock, in milliseconds since 1970. Tests inject clocks that jump.
        public var wallClock: @Sendable () -> UInt64 = systemWallClock
        /// SQLite's page cache per connection, in MiB.
        public var cacheSizeMiB = 64
        /// Open read-only: no migration, no writes.
        public var readOnly = false

        public init() {}
    }

    /// The schema the store holds records of.
    public let schema: Schema
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
    }

    /// Opens the store at `path`, creating it if needed, and migrates it to `schema`.
    ///
    /// - Throws: ``StoreError`` with code ``StoreError/Code/migrationRefused`` if the
    ///   store holds an older schema that cannot be migrated safely to this one (nothing is
    ///   changed), or ``StoreError/Code/incompatibleStore`` if it holds a newer or another schema.
    public init(path: String, schema: Schema, configuration: Configuration = Configuration()) throws {
        var config = GRDB.Configuration()
        config.readonly = configuration.readOnly
        config.busyMode = .timeout(10)
        config.journalMode = .wal
        let cachePages = -configuration.cacheSizeMiB * 1024
        let capture = self.capture
        config.prepareDatabase { db in
            if let connection = db.sqliteConnection { capture.install(on: connection) }
            try db.execute(sql: "PRAGMA cache_size = \(cachePages)")
            // WAL + NORMAL: a committed transaction survives a process crash; a power cut
            // can lose the last transactions but never corrupts the file.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        let pool = try DatabasePool(path: path, configuration: config)
        self.pool = pool
        self.path = path
        self.schema = schema
        self.configuration = configuration
        self.tables = Dictionary(
            uniqueKeysWithValues: schema.entities.enumerated().map { ($1.name, EntityTable($1, number: $0)) })

        let opened: (device: String, clock: HybridTimestamp, base: Int64)
        if configuration.readOnly {
            opened = try pool.read { db in try Self.readState(db, schema: schema) }
        } else {
            opened = try pool.write { db in
                try Self.migrate(db, to: schema)
                return try Self.readState(db, schema: schema)
            }
        }
        deviceID = opened.device
        state = Mutex(WriterState(clock: HybridLogicalClock(last: opened.clock), base: opened.base))
    }

    static func readState(_ db: Database, schema: Schema) throws -> (device: String, clock: HybridTimestamp, base: Int64) {
        guard try db.tableExists("_fieldbook_meta") else {
            throw StoreError(.incompatibleStore, "the file is not a Fieldbook store")
        }
        let stored = try Self.storedSchema(db)
        guard stored.name == schema.name, stored.version == schema.version else {
            throw StoreError(
                .incompatibleStore,
                "the store holds schema '\(stored.name)' version \(stored.version), not '\(schema.name)' version \(schema.version)")
        }
        guard let device = try String.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'device_id'")
        else { throw StoreError(.incompatibleStore, "the store has no device id") }
        let lastChange = try Int64.fetchOne(db, sql: "SELECT max(hlc) FROM _changelog") ?? 0
        let received = try Int64.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'clock'") ?? 0
        let base = try Int64.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'cursor'") ?? 0
        return (device, HybridTimestamp(rawValue: UInt64(max(lastChange, received))), base)
    }

    /// Runs `body` in one write transaction: all its writes commit together, or,
    /// if it throws, none of them do.
    public func write<T>(_ body: (Transaction) throws -> T) throws -> T {
        try pool.write { db in
            let transaction = Transaction(store: self, db: db, statements: StatementCache(tables.count))
            let result = try body(transaction)
            try transaction.flushLog()
            return result
        }
    }

    /// Runs `body` with a consistent read-only view of the store.
    public func read<T>(_ body: (Transaction) throws -> T) throws -> T {
        try pool.read { db in
            try body(Transaction(store: self, db: db, statements: StatementCache(tables.count)))
        }
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
        return state.withLock { ($0.clock.now(wallMillis: wall), $0.base) }
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
    /// For an update of field i alone: the fields whose values the pre-update hook captures.
    let captureIndexForOne: [[Int]]
    let captureForOne: [[(column: Int32, type: FieldType)]]

    init(_ entity: Entity, number: Int) {
        self.entity = entity
        self.number = number
        let columns = entity.fields.map { quoted($0.name) }
        let annotation: [Int?] = entity.fields.map { field in
            switch field.policy {
            case .observed(let by): entity.fieldIndex(by)
            case .max(_, let epoch?): entity.fieldIndex(epoch)
            default: nil
            }
        }
        self.annotation = annotation
        captureIndexForOne = entity.fields.enumerated().map { n, field in
            var indexes: [Int] = []
            switch field.policy {
            case .counter, .union: indexes.append(n)
            default: break
            }
            if let source = annotation[n], source != n { indexes.append(source) }
            return indexes
        }
        captureForOne = captureIndexForOne.map { $0.map { (Int32($0 + 1), entity.fields[$0].type) } }
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
    /// Adds the observation time or epoch to a change of field `index`, from the annotating field's value.
    func annotate(_ change: inout FieldChange, index: Int, with value: Value?) {
        switch entity.fields[index].policy {
        case .observed: change.observedAt = value?.text
        case .max(_, _?): change.epoch = value?.integer ?? 0
        default: break
        }
    }
}

/// Prepared statements for one transaction, found by position instead of by SQL text.
/// The statements themselves come from GRDB's per-connection cache, so each is prepared once.
final class StatementCache {
    var changelog: Statement?
    var insert: [Statement?]
    var exists: [Statement?]
    var updateOne: [[Statement?]]
    var lastTable: EntityTable?
    var logQueue: [QueuedChange] = []
    var logFailure: (any Error)?
    /// Reused for encoding changelog entries.
    var buffer: [UInt8] = []

    init(_ entityCount: Int) {
        insert = Array(repeating: nil, count: entityCount)
        exists = Array(repeating: nil, count: entityCount)
        updateOne = Array(repeating: [], count: entityCount)
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
