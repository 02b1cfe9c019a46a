import FieldbookCore
import FieldbookSQLite
import GRDB

// References and deletes made without knowledge of each other (docs/protocol.md, "Deletes").
//
// A reference set through a field with `onDelete: conflict` contests a concurrent delete of the
// record it names: every peer merges the referring change into that record's state too
// (``RecordState/applyReference(_:)``). Changes from other devices are merged so as they are
// received; this device's own are looked up when a delete arrives, in `_local_refs` (the last
// record here that set a reference to each record).
//
// A record with a field with `onDelete: cascade` follows the record it names: while that one
// has no row, neither has this one. Its row is removed and it is listed in `_hidden`, and it
// is shown again, from its merge state, when that row comes back.

extension Store {
    /// Format 4: the references this device set, and the records hidden with the record they follow.
    static func createReferenceTables(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE _local_refs (
                    entity TEXT NOT NULL,
                    record TEXT NOT NULL,
                    referrer_entity TEXT NOT NULL,
                    referrer TEXT NOT NULL,
                    field TEXT NOT NULL,
                    PRIMARY KEY (entity, record)) STRICT, WITHOUT ROWID;
                CREATE TABLE _hidden (
                    entity TEXT NOT NULL,
                    record TEXT NOT NULL,
                    parent_entity TEXT NOT NULL,
                    parent TEXT NOT NULL,
                    PRIMARY KEY (entity, record)) STRICT, WITHOUT ROWID;
                CREATE INDEX _hidden_parent ON _hidden (parent);
                """)
    }
}

extension Store.Transaction {
    /// Notes that this device's change to `record` set `table`'s field `index` to `value`: a
    /// reference that contests a concurrent delete of the record it names, if the field says so.
    func noteReference(_ table: EntityTable, _ index: Int, _ record: String, _ value: Value) throws {
        guard let target = table.contesting[index], case .text(let id) = value else { return }
        let upsert = try statement(
            \.noteReference,
            """
            INSERT INTO _local_refs (entity, record, referrer_entity, referrer, field) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (entity, record) DO UPDATE SET
                referrer_entity = excluded.referrer_entity, referrer = excluded.referrer, field = excluded.field
            """)
        upsert.bind(1, target)
        upsert.bind(2, id)
        upsert.bind(3, table.entity.name)
        upsert.bind(4, record)
        upsert.bind(5, table.entity.fields[index].name)
        try upsert.run(db)
    }

    /// Merges into `state` (of `record`, a `table` record with a delete) this device's last change
    /// that set a reference to it, as the server and every other peer merged it.
    func foldLocalReference(_ table: EntityTable, _ record: String, into state: inout RecordState) throws {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT referrer, field FROM _local_refs WHERE entity = ? AND record = ?"),
                arguments: [table.entity.name, record])
        else { return }
        let referrer: String = row[0]
        let field: String = row[1]
        let changes = try self.changes(
            sql: "WHERE record_key = ? AND record = ? ORDER BY seq DESC", arguments: [recordKey(referrer), referrer])
        let last = changes.first { change in
            change.fields.contains { $0.field == field && $0.kind == .set(.text(record)) }
        }
        if let last { state.applyReference(last) }
    }

    /// Makes the record's row what the merge says: its values, or no row if it is deleted or
    /// follows (`onDelete: cascade`) a record that has no row; then the records that follow
    /// this one follow it.
    func writeRow(_ table: EntityTable, _ record: String, _ state: RecordState) throws {
        let entity = table.entity
        var parent: (entity: String, id: String)?
        if state.exists(onDelete: entity.onDelete) {
            for (field, target) in table.cascades {
                guard case .text(let id)? = state.value(at: field, of: entity) else { continue }
                if try !exists(store.entityTable(target), id) {
                    parent = (target, id)
                    break
                }
            }
            if parent == nil {
                let upsert = try upsertStatement(table)
                upsert.bind(1, record)
                for n in entity.fields.indices { upsert.bind(Int32(n + 2), state.value(at: n, of: entity) ?? .null) }
                try upsert.run(db)
                if table.isFollowed { try showFollowers(table, record) }
                if !table.cascades.isEmpty {
                    try db.cachedStatement(sql: "DELETE FROM _hidden WHERE entity = ? AND record = ?").execute(
                        arguments: [entity.name, record])
                }
                return
            }
        }
        try db.cachedStatement(sql: table.deleteSQL).execute(arguments: [record])
        let hadRow = db.changesCount > 0
        if let parent {
            try db.execute(
                sql: "INSERT OR REPLACE INTO _hidden (entity, record, parent_entity, parent) VALUES (?, ?, ?, ?)",
                arguments: [entity.name, record, parent.entity, parent.id])
        }
        if hadRow && table.isFollowed { try hideFollowers(table, record) }
    }

    /// Removes the rows of the records that follow `record` (`onDelete: cascade`), which has just
    /// lost its row, and of those that follow them.
    func hideFollowers(_ table: EntityTable, _ record: String) throws {
        for (follower, field) in store.followers(of: table.entity.name) {
            let ids = try String.fetchAll(
                db, sql: "SELECT id FROM \(quoted(follower.entity.name)) WHERE \(quoted(follower.entity.fields[field].name)) = ?",
                arguments: [record])
            for id in ids {
                try db.cachedStatement(sql: follower.deleteSQL).execute(arguments: [id])
                try db.execute(
                    sql: "INSERT OR REPLACE INTO _hidden (entity, record, parent_entity, parent) VALUES (?, ?, ?, ?)",
                    arguments: [follower.entity.name, id, table.entity.name, record])
                if follower.isFollowed { try hideFollowers(follower, id) }
            }
        }
    }

    /// Shows again the records hidden with `record`, which has its row again.
    private func showFollowers(_ table: EntityTable, _ record: String) throws {
        let hidden = try Row.fetchAll(
            db.cachedStatement(sql: "SELECT entity, record FROM _hidden WHERE parent = ? AND parent_entity = ?"),
            arguments: [record, table.entity.name])
        for row in hidden {
            let follower = try entityTable(row[0])
            let id: String = row[1]
            try db.execute(sql: "DELETE FROM _hidden WHERE entity = ? AND record = ?", arguments: [follower.entity.name, id])
            try writeRow(follower, id, try mergeState(follower, id).state)
        }
    }

    /// Whether the record is hidden with a record it follows.
    func isHidden(_ entity: String, _ record: String) throws -> Bool {
        try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM _hidden WHERE entity = ? AND record = ?)"),
            arguments: [entity, record]) ?? false
    }
}

extension Store {
    /// The tables with a field with `onDelete: cascade` that names `entity`, and that field.
    func followers(of entity: String) -> [(table: EntityTable, field: Int)] {
        schema.entities.flatMap { other in
            let table = tables[other.name]!
            return table.cascades.filter { $0.target == entity }.map { (table, $0.field) }
        }
    }
}
