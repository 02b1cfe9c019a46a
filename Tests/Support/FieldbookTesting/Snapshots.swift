public import FieldbookCore
public import FieldbookStore
import GRDB

/// Each entity's live records as `[id: [field: value]]`: what convergence compares.
public typealias RecordsSnapshot = [String: [String: [String: Value]]]

/// What a store holds: each entity's live records, nulls left out (a null and a missing value
/// read alike).
public func snapshot(_ store: Store) throws -> RecordsSnapshot {
    var result: RecordsSnapshot = [:]
    for entity in store.schema.entities {
        var records: [String: [String: Value]] = [:]
        for record in try store.fetch(Query(entity.name)) {
            var values: [String: Value] = [:]
            for (field, value) in zip(entity.fields, record.values) where !value.isNull { values[field.name] = value }
            records[record.id] = values
        }
        result[entity.name] = records
    }
    return result
}

/// What SQLite's `PRAGMA integrity_check` says of the database file at `path`: `ok` for a sound one.
public func integrityCheck(_ path: String) throws -> String {
    try DatabaseQueue(path: path).read { db in
        try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "\n")
    }
}

/// The schema version the device store at `path` holds, and whether records wait to be written
/// again after its last upgrade: where an upgrade stood when it was cut off.
public func storedUpgrade(_ path: String) throws -> (version: Int, rebuilding: Bool) {
    try DatabaseQueue(path: path).read { db in
        (
            try Int.fetchOne(db, sql: "SELECT max(version) FROM _schema_history") ?? 0,
            try db.tableExists("_rebuild")
        )
    }
}
