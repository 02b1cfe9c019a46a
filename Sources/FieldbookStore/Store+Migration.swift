public import FieldbookCore
import FieldbookJSON
import FieldbookSync
import Foundation
import GRDB

// The store's own tables are created once (format 1) and never edited; a new
// format adds a step below. The schema's tables are made from the schema file:
// a new schema version is compared field by field with the stored one, and
// only additions that keep every record intact are applied.

extension Store {
    static let storeFormat = 7

    static func migrate(_ db: Database, to schema: Schema) throws {
        let fresh = try !db.tableExists("_fieldbook_meta")
        if fresh {
            guard try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master WHERE type = 'table'") == 0
            else {
                throw StoreError(.incompatibleStore, "the file is an SQLite database but not a Fieldbook store")
            }
            try createStoreTables(db)
            try createSyncTables(db)
            try chainReceivedChanges(db)
            try createFormat4Tables(db)
            try createRejectedTable(db)
            try createLeftTable(db)
            try createFilesTable(db)
            try createTables(db, for: schema.entities)
            try recordSchema(db, schema)
            return
        }
        var format = try Int.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'store_format'") ?? 0
        if format == 1 {
            try createSyncTables(db)
            try db.execute(sql: "UPDATE _fieldbook_meta SET value = 2 WHERE key = 'store_format'")
            format = 2
        }
        if format == 2 {
            try chainReceivedChanges(db)
            try db.execute(sql: "UPDATE _fieldbook_meta SET value = 3 WHERE key = 'store_format'")
            format = 3
        }
        if format == 3 {
            try createFormat4Tables(db)
            try db.execute(sql: "UPDATE _fieldbook_meta SET value = 4 WHERE key = 'store_format'")
            format = 4
        }
        if format == 4 {
            try createRejectedTable(db)
            try db.execute(sql: "UPDATE _fieldbook_meta SET value = 5 WHERE key = 'store_format'")
            format = 5
        }
        if format == 5 {
            try createLeftTable(db)
            try db.execute(sql: "UPDATE _fieldbook_meta SET value = 6 WHERE key = 'store_format'")
            format = 6
        }
        if format == 6 {
            try createFilesTable(db)
            try db.execute(sql: "UPDATE _fieldbook_meta SET value = 7 WHERE key = 'store_format'")
            format = 7
        }
        guard format == storeFormat else {
            throw StoreError(
                .incompatibleStore, "the store has format \(format); this version reads format \(storeFormat)")
        }
        let stored = try storedSchema(db)
        guard stored.name == schema.name else {
            throw StoreError(.incompatibleStore, "the store holds schema '\(stored.name)', not '\(schema.name)'")
        }
        if stored.version > schema.version {
            throw StoreError(
                .incompatibleStore,
                "the store holds schema version \(stored.version), newer than version \(schema.version); use a newer Fieldbook"
            )
        }
        if stored.version == schema.version {
            guard stored.json == schema.json else {
                throw StoreError(
                    .migrationRefused,
                    "the schema differs from the store's but has the same version \(schema.version); give it a new version"
                )
            }
            return
        }
        // Through every version between that this device fetched, one at a time: a field renamed
        // in each is followed from its first name to its last.
        try db.execute(sql: rebuildTable)
        let (chain, known) = try upgradePath(db, from: stored, to: schema)
        for (old, new) in zip(chain, chain.dropFirst()) {
            // This device may have written any enum value of the newest version it knows.
            let ahead = SchemaTranslation([old] + known.filter { $0.version > old.version })
            let reading = old.widened(by: ahead.newer) { ahead.newerName(entity: $0, field: $1) }
            for sql in try plan(db, from: old, to: new, reading: reading) {
                try db.execute(sql: sql.sql, arguments: sql.arguments)
            }
            if new.version < schema.version { try recordSchema(db, new) }
        }
        try db.execute(
            sql:
                "DELETE FROM _fieldbook_meta WHERE key LIKE 'schema\\_version\\_%' ESCAPE '\\' AND CAST(substr(key, 16) AS INTEGER) <= ?",
            arguments: [schema.version])
        // What the server translated was from the version left behind.
        try db.execute(sql: "DELETE FROM _fieldbook_meta WHERE key = 'translated_from'")
        // The changes made so far may come back from the server otherwise than this device now
        // holds them (`Store.adoptThrough`).
        try db.execute(
            sql: """
                INSERT OR REPLACE INTO _fieldbook_meta (key, value)
                SELECT 'adopt_through', coalesce(max(seq), 0) FROM _changelog
                """)
        // What was pulled in the old version lacks what it did not know: asked for at the next
        // sync (`Store.catchUp`), from the oldest version not caught up from.
        let cursor = try Int64.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'cursor'") ?? 0
        if cursor > 0 {
            let pending = try String.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'catch_up'")
                .flatMap { try? JSON(parsing: $0) }
            var from = Int64(stored.version)
            if case .int(let earlier)? = pending?["from"] { from = min(from, earlier) }
            let plan = JSON.object([("from", .int(from)), ("after", .int(0)), ("until", .int(cursor))])
            try db.execute(
                sql: "INSERT OR REPLACE INTO _fieldbook_meta (key, value) VALUES ('catch_up', ?)",
                arguments: [plan.serialized])
        }
        try recordSchema(db, schema)
    }

    /// Format 7: the files records refer to (docs/protocol.md, "Files"): each file this device holds
    /// (`here`) in the directory beside the store, or wants (a pulled record refers to it), the name
    /// it was first attached or met under, and whether the server is known to hold it (`uploaded`).
    static func createFilesTable(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE _files (
                    sha256 TEXT PRIMARY KEY NOT NULL,
                    size INTEGER NOT NULL,
                    media_type TEXT NOT NULL,
                    name TEXT NOT NULL,
                    here INTEGER NOT NULL,
                    uploaded INTEGER NOT NULL) STRICT, WITHOUT ROWID;
                """)
    }

    static func createStoreTables(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE _fieldbook_meta (key TEXT PRIMARY KEY NOT NULL, value ANY) STRICT;
                CREATE TABLE _schema_history (
                    version INTEGER PRIMARY KEY NOT NULL, schema TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT;
                CREATE TABLE _changelog (
                    seq INTEGER PRIMARY KEY NOT NULL,
                    entity TEXT NOT NULL,
                    record TEXT NOT NULL,
                    record_key INTEGER NOT NULL,
                    op INTEGER NOT NULL,
                    hlc INTEGER NOT NULL,
                    base INTEGER NOT NULL,
                    fields TEXT NOT NULL) STRICT;
                CREATE INDEX _changelog_record ON _changelog (record_key);
                """)
        var ids = UUIDv7Generator()
        let device = ids.next(millis: UInt64(Date().timeIntervalSince1970 * 1000))
        try db.execute(
            sql: """
                INSERT INTO _fieldbook_meta (key, value) VALUES
                    ('store_format', ?), ('device_id', ?), ('acked', 0), ('cursor', 0), ('clock', 0)
                """, arguments: [storeFormat, device])
    }

    /// Format 2: what sync needs. Each change's server sequence number once acknowledged; the
    /// changes pulled from other devices (the rest of the audit trail); the merge state of each
    /// record that changes from elsewhere have touched; the conflicts found.
    static func createSyncTables(_ db: Database) throws {
        try db.execute(
            sql: """
                ALTER TABLE _changelog ADD COLUMN sseq INTEGER;
                CREATE TABLE _received (
                    sseq INTEGER PRIMARY KEY NOT NULL,
                    device TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    author TEXT,
                    entity TEXT NOT NULL,
                    record TEXT NOT NULL,
                    record_key INTEGER NOT NULL,
                    op INTEGER NOT NULL,
                    hlc INTEGER NOT NULL,
                    base INTEGER NOT NULL,
                    fields TEXT NOT NULL) STRICT;
                CREATE INDEX _received_record ON _received (record_key);
                CREATE TABLE _record_state (
                    entity TEXT NOT NULL,
                    record TEXT NOT NULL,
                    state TEXT NOT NULL,
                    folded INTEGER NOT NULL,
                    PRIMARY KEY (entity, record)) STRICT;
                CREATE TABLE _conflicts (
                    id TEXT PRIMARY KEY NOT NULL,
                    entity TEXT NOT NULL,
                    record TEXT NOT NULL,
                    field TEXT,
                    sides TEXT NOT NULL,
                    opened_at INTEGER NOT NULL,
                    resolved_at INTEGER) STRICT;
                INSERT INTO _fieldbook_meta (key, value) VALUES ('last_sync', NULL);
                """)
    }

    /// Format 3: a record's received changes are found by a chain instead of an index. Each
    /// `_received` row names the change received before it to the same record (`prev`), and the
    /// record's merge state names the last (`received`). The index on `record_key`, which cost
    /// every pulled change an insert at a random place, is dropped, and the column with it.
    static func chainReceivedChanges(_ db: Database) throws {
        try db.execute(
            sql: """
                ALTER TABLE _received ADD COLUMN prev INTEGER;
                ALTER TABLE _record_state ADD COLUMN received INTEGER;
                UPDATE _received SET prev = linked.prev
                FROM (SELECT sseq, lag(sseq) OVER (PARTITION BY entity, record ORDER BY sseq) AS prev FROM _received) AS linked
                WHERE linked.sseq = _received.sseq AND linked.prev IS NOT NULL;
                UPDATE _record_state SET received = last.sseq
                FROM (SELECT entity, record, max(sseq) AS sseq FROM _received GROUP BY entity, record) AS last
                WHERE last.entity = _record_state.entity AND last.record = _record_state.record;
                DROP INDEX _received_record;
                ALTER TABLE _received DROP COLUMN record_key;
                """)
    }

    /// Format 5: the changes the server rejected (the token's role may not make them). Each stays in
    /// the changelog, marked, and is no longer part of its record; `_rejected` lists the ones not yet
    /// discarded, with why.
    static func createRejectedTable(_ db: Database) throws {
        try db.execute(
            sql: """
                ALTER TABLE _changelog ADD COLUMN rejected INTEGER NOT NULL DEFAULT 0;
                CREATE TABLE _rejected (
                    seq INTEGER PRIMARY KEY NOT NULL,
                    entity TEXT NOT NULL,
                    record TEXT NOT NULL,
                    rule TEXT NOT NULL,
                    role TEXT NOT NULL,
                    message TEXT NOT NULL) STRICT;
                INSERT OR IGNORE INTO _fieldbook_meta (key, value) VALUES ('role', NULL);
                """)
    }

    /// Format 6: the records that left the token's scope (docs/protocol.md, "Scopes") while this
    /// device had changes to them not yet pushed: each shows only those changes until it comes back
    /// into the scope or they are rejected.
    static func createLeftTable(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE _left (
                    entity TEXT NOT NULL,
                    record TEXT NOT NULL,
                    PRIMARY KEY (entity, record)) STRICT, WITHOUT ROWID;
                """)
    }

    static func sqlType(_ type: FieldType) -> String {
        switch type {
        case .integer, .boolean: "INTEGER"
        case .real: "REAL"
        default: "TEXT"
        }
    }

    static func createTables(_ db: Database, for entities: [Entity]) throws {
        for entity in entities {
            for sql in tableSQL(entity) { try db.execute(sql: sql) }
        }
    }

    /// The table of an entity and the indexes on its reference fields.
    static func tableSQL(_ entity: Entity) -> [String] {
        let columns = entity.fields.map { "\(quoted($0.name)) \(sqlType($0.type))" }
        return [
            "CREATE TABLE \(quoted(entity.name)) (id TEXT PRIMARY KEY NOT NULL, \(columns.joined(separator: ", "))) STRICT"
        ]
            + entity.fields.compactMap { indexSQL(entity, $0) }
    }

    /// The index on a reference field (named `entity.field`, which no other index name can equal).
    static func indexSQL(_ entity: Entity, _ field: Field) -> String? {
        guard case .reference = field.type else { return nil }
        return
            "CREATE INDEX \(quoted("\(entity.name).\(field.name)")) ON \(quoted(entity.name)) (\(quoted(field.name)))"
    }

    static func recordSchema(_ db: Database, _ schema: Schema) throws {
        try db.execute(
            sql: "INSERT INTO _schema_history (version, schema, applied_at) VALUES (?, ?, ?)",
            arguments: [schema.version, schema.json.serialized, ISO8601DateFormatter().string(from: Date())])
    }

    /// Why this store cannot be opened with `newer`, a later version of its schema: each change
    /// that is not a compatible evolution (`Schema.evolutionProblems(from:earlier:)`), step by
    /// step through the versions between that this device fetched. Empty when it can: opening it
    /// with `newer` then upgrades it.
    public func upgradeProblems(to newer: Schema) throws -> [String] {
        try read { tx in
            let history = try String.fetchAll(tx.db, sql: "SELECT schema FROM _schema_history ORDER BY version")
                .compactMap { try? Schema(json: $0) }
            guard let stored = history.last, stored.name == newer.name, stored.version < newer.version else {
                return ["the store holds another schema or version than one before version \(newer.version)"]
            }
            let chain = try Self.upgradePath(tx.db, from: stored, to: newer).chain
            var earlier = Array(history.dropLast())
            var problems: [String] = []
            for (old, new) in zip(chain, chain.dropFirst()) {
                problems += new.evolutionProblems(from: old, earlier: earlier)
                earlier.append(old)
            }
            return problems
        }
    }

    /// How a store at `stored` moves to `target`: the versions it goes through (`stored`, those
    /// between that this device fetched, `target`), and every later version it knows (`target`
    /// and any fetched after it), whose enum values it may have written.
    static func upgradePath(
        _ db: Database, from stored: Schema, to target: Schema
    ) throws -> (chain: [Schema], known: [Schema]) {
        let known =
            (try fetchedVersions(db, name: target.name, after: stored.version)
            .filter { $0.version != target.version } + [target]).sorted { $0.version < $1.version }
        return ([stored] + known.filter { $0.version <= target.version }, known)
    }

    /// The names each field of `entity` had in earlier versions of the schema this store held, the
    /// latest first, for the fields that were renamed: their history may hold changes made under
    /// those names.
    public func earlierNames(entity: String) throws -> [String: [String]] {
        let history = try read { tx in
            try String.fetchAll(tx.db, sql: "SELECT schema FROM _schema_history ORDER BY version DESC")
        }.compactMap { try? Schema(json: $0) }
        var result: [String: [String]] = [:]
        for field in schema.entity(entity)?.fields ?? [] {
            var names: [String] = []
            var current = field.name
            for version in [schema] + history {
                guard let old = version.entity(entity)?.field(current)?.renamedFrom, old != current,
                    old != field.name, !names.contains(old)
                else { continue }
                names.append(old)
                current = old
            }
            if !names.isEmpty { result[field.name] = names }
        }
        return result
    }

    /// The versions of the schema named `name` newer than `version` that this device fetched from
    /// its server (`learnSchema`), oldest first.
    static func fetchedVersions(_ db: Database, name: String, after version: Int) throws -> [Schema] {
        try String.fetchAll(
            db, sql: "SELECT value FROM _fieldbook_meta WHERE key LIKE 'schema\\_version\\_%' ESCAPE '\\'"
        )
        .compactMap { try? Schema(json: $0) }
        .filter { $0.name == name && $0.version > version }
        .sorted { $0.version < $1.version }
    }

    static func storedSchema(_ db: Database) throws -> Schema {
        guard
            let text = try String.fetchOne(db, sql: "SELECT schema FROM _schema_history ORDER BY version DESC LIMIT 1")
        else { throw StoreError(.incompatibleStore, "the store has no schema") }
        return try Schema(json: text)
    }

    /// The SQL that takes a store from `old` to `new`, or an error listing every change that is not
    /// a compatible evolution (``Schema/evolutionProblems(from:earlier:)``, the rules of the whole
    /// fleet). A renamed field's column is renamed, and every change, merge state and conflict that
    /// names it is rewritten to the new name, in the same transaction. The changes are read with
    /// `reading`: `old` with the enum values of every later version the device knows.
    static func plan(_ db: Database, from old: Schema, to new: Schema, reading: Schema) throws -> [(
        sql: String, arguments: StatementArguments
    )] {
        let earlier = try String.fetchAll(
            db, sql: "SELECT schema FROM _schema_history WHERE version < ? ORDER BY version", arguments: [old.version]
        ).compactMap { try? Schema(json: $0) }
        let refused = new.evolutionProblems(from: old, earlier: earlier)
        guard refused.isEmpty else {
            throw StoreError(
                .migrationRefused,
                "cannot migrate schema version \(old.version) to \(new.version); nothing was changed:\n  "
                    + refused.joined(separator: "\n  "))
        }
        var steps: [(sql: String, arguments: StatementArguments)] = []
        for oldEntity in old.entities {
            guard let newEntity = new.entity(oldEntity.name) else { continue }
            let table = quoted(oldEntity.name)
            let renames = FieldRenames(entity: oldEntity.name, from: old, to: new)
            if let renames { steps += try renameSteps(db, entity: oldEntity, renames) }
            let renamedTo = Set(renames.map { Array($0.newNames.values) } ?? [])
            let added = newEntity.fields.filter { oldEntity.field($0.name) == nil && !renamedTo.contains($0.name) }
            for newField in added {
                // The records that exist get no value, here as on the server and every device.
                steps.append(("ALTER TABLE \(table) ADD COLUMN \(quoted(newField.name)) \(sqlType(newField.type))", []))
                if let index = indexSQL(newEntity, newField) { steps.append((index, [])) }
            }
            if renames != nil || added.contains(where: { $0.insertDefault != nil }) {
                steps += try changelogSteps(
                    db, entity: reading.entity(oldEntity.name)!, translation: SchemaTranslation([old, new]))
            }
        }
        for newEntity in new.entities where old.entity(newEntity.name) == nil {
            steps += tableSQL(newEntity).map { ($0, []) }
        }
        return steps
    }

    /// This device's changes to `entity`, as the new version reads them (``SchemaTranslation/upgrade(_:)``,
    /// what the server does to a push of the old version): renamed fields, and an insert given the
    /// default of each field the old version lacks. So a change sent before the upgrade and sent
    /// again after it (its answer lost) is the same change to the server. A record whose insert
    /// gains a default is written again from its changes when the store opens
    /// (``rebuildAfterMigration``), as every other device and the server hold it.
    private static func changelogSteps(_ db: Database, entity: Entity, translation: SchemaTranslation) throws -> [(
        sql: String, arguments: StatementArguments
    )] {
        var steps: [(sql: String, arguments: StatementArguments)] = []
        // The server gave defaults to the inserts it translated, and will to those not yet pushed;
        // those acknowledged before it held a newer version keep what they had.
        let acked = try Int64.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'acked'") ?? 0
        let translatedFrom =
            try Int64.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'translated_from'")
            ?? Int64.max
        let rows = try Row.fetchAll(
            db, sql: "SELECT seq, record, op, fields FROM _changelog WHERE entity = ?", arguments: [entity.name])
        for row in rows {
            let sequence: Int64 = row[0]
            let text: String = row[3]
            guard let operation = ChangeOperation(rawValue: row[2]) else { continue }
            let fields = try FieldChange.decode(utf8: Array(text.utf8), entity: entity)
            let change = Change(
                sequence: row[0], device: "", entity: entity.name, recordID: row[1], operation: operation,
                timestamp: HybridTimestamp(rawValue: 0), base: 0, fields: fields)
            let upgraded = translation.upgrade(change, defaults: sequence > acked || sequence >= translatedFrom)
            guard upgraded.fields != fields else { continue }
            var out: [UInt8] = []
            FieldChange.encode(upgraded.fields, to: &out)
            steps.append(
                (
                    "UPDATE _changelog SET fields = ? WHERE seq = ?",
                    [String(decoding: out, as: UTF8.self), row[0] as Int64]
                ))
            if upgraded.fields.count > fields.count {
                steps.append(
                    (
                        "INSERT OR IGNORE INTO _rebuild (entity, record) VALUES (?, ?)",
                        [translation.newer.entity(entity.name)!.name, row[1] as String]
                    ))
            }
        }
        return steps
    }

    /// The table of records to write again from their changes when the store next opens, made
    /// in the migration's transaction (so a migration cut off by a crash leaves none to do, and
    /// one that committed leaves them to the next open if this one is cut off).
    static let rebuildTable = """
        CREATE TABLE IF NOT EXISTS _rebuild (
            entity TEXT NOT NULL, record TEXT NOT NULL, PRIMARY KEY (entity, record)) STRICT, WITHOUT ROWID
        """

    /// Renames the columns of `entity` and rewrites what names them: the changes made here and
    /// pulled, the merge states, the conflicts (whose ids end in the field's name).
    private static func renameSteps(_ db: Database, entity: Entity, _ renames: FieldRenames) throws -> [(
        sql: String, arguments: StatementArguments
    )] {
        var steps: [(sql: String, arguments: StatementArguments)] = []
        let table = quoted(entity.name)
        for (old, new) in renames.newNames.sorted(by: { $0.key < $1.key }) {
            steps.append(("ALTER TABLE \(table) RENAME COLUMN \(quoted(old)) TO \(quoted(new))", []))
            if let field = entity.field(old), case .reference = field.type {
                steps.append(("DROP INDEX \(quoted("\(entity.name).\(old)"))", []))
                steps.append(
                    ("CREATE INDEX \(quoted("\(entity.name).\(new)")) ON \(table) (\(quoted(new)))", []))
            }
            steps.append(
                (
                    "UPDATE _conflicts SET field = ?, id = record || '/' || ? WHERE entity = ? AND field = ?",
                    [new, new, entity.name, old]
                ))
        }
        let rows = try Row.fetchAll(
            db, sql: "SELECT sseq, fields FROM _received WHERE entity = ?", arguments: [entity.name])
        for row in rows {
            if let text = try renames.renamingChangeFields(row[1]) {
                steps.append(("UPDATE _received SET fields = ? WHERE sseq = ?", [text, row[0] as Int64]))
            }
        }
        let states = try Row.fetchAll(
            db, sql: "SELECT record, state FROM _record_state WHERE entity = ?", arguments: [entity.name])
        for row in states {
            if let text = try renames.renamingState(row[1]) {
                steps.append(
                    (
                        "UPDATE _record_state SET state = ? WHERE entity = ? AND record = ?",
                        [text, entity.name, row[0] as String]
                    ))
            }
        }
        return steps
    }
}

extension Value {
    /// The value as SQLite stores it in a record's column.
    var databaseValue: DatabaseValue {
        switch self {
        case .null: return DatabaseValue.null
        case .text(let s): return s.databaseValue
        case .integer(let i): return i.databaseValue
        case .real(let d): return d.databaseValue
        case .boolean(let b): return (b ? 1 : 0).databaseValue
        case .textSet:
            var out: [UInt8] = []
            writeJSON(to: &out)
            return String(decoding: out, as: UTF8.self).databaseValue
        }
    }

    /// Reads a column of a field of `type`.
    init(_ dbValue: DatabaseValue, type: FieldType) {
        switch dbValue.storage {
        case .null: self = .null
        case .int64(let i): self = type == .boolean ? .boolean(i != 0) : .integer(i)
        case .double(let d): self = .real(d)
        case .string(let s):
            if type.isSet, let json = try? JSON(parsing: s), let value = try? Value(json: json, for: type) {
                self = value
            } else {
                self = .text(s)
            }
        case .blob(let data): self = .text(String(decoding: data, as: UTF8.self))
        }
    }
}
