import FieldbookJSON
package import FieldbookSync
package import GRDB

/// The conflict table of an SQLite store — the device's `_conflicts` and the embedded server's
/// `conflicts` have the same columns — kept in step with the merge by ``ConflictUpkeep``.
package enum ConflictRows {
    /// Brings the rows of one record in step with the conflicts its merged state has now: new ones
    /// open at `sequence`, settled ones close at `sequence`, a settled one that comes back reopens.
    package static func update(
        _ db: Database, table: String, entity: String, record: String, current conflicts: [Conflict],
        at sequence: Int64
    ) throws {
        let open = try String.fetchSet(
            db, sql: "SELECT id FROM \(table) WHERE entity = ? AND record = ? AND resolved_at IS NULL",
            arguments: [entity, record])
        let (resolve, upsert) = ConflictUpkeep.changes(open: open, current: conflicts)
        for id in resolve {
            try db.execute(sql: "UPDATE \(table) SET resolved_at = ? WHERE id = ?", arguments: [sequence, id])
        }
        for conflict in upsert {
            try db.execute(
                sql: """
                    INSERT INTO \(table) (id, entity, record, field, sides, opened_at) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET sides = excluded.sides,
                        opened_at = CASE WHEN resolved_at IS NULL THEN opened_at ELSE excluded.opened_at END,
                        resolved_at = NULL
                    """,
                arguments: [
                    conflict.id, conflict.entity, conflict.recordID, conflict.field, conflict.sidesJSON.serialized,
                    sequence,
                ])
        }
    }
}
