import FieldbookCore
import FieldbookSQLite
import FieldbookSync
import GRDB

// References and deletes made without knowledge of each other (docs/protocol.md, "A reference
// against a delete"). Rows follow the rule every peer applies to the merge states (the server's
// `Existence`):
//
// - A deleted record that a record with a row still refers to through a field with
//   `onDelete: conflict` keeps its row: it is *held* (listed in `_held`), and its delete is a
//   conflict until it is kept, or nothing refers to it any more.
// - A record with a field with `onDelete: cascade` follows the record it names: while that one
//   has no row, neither has this one (listed in `_hidden`); it is shown again, from its merge
//   state, when that row comes back.

extension Store {
    /// Format 4: the records hidden with the record they follow, the deleted records held by
    /// references, and the names other devices gave themselves.
    static func createFormat4Tables(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE _hidden (
                    entity TEXT NOT NULL,
                    record TEXT NOT NULL,
                    parent_entity TEXT NOT NULL,
                    parent TEXT NOT NULL,
                    PRIMARY KEY (entity, record)) STRICT, WITHOUT ROWID;
                CREATE INDEX _hidden_parent ON _hidden (parent);
                CREATE TABLE _held (entity TEXT NOT NULL, record TEXT NOT NULL, PRIMARY KEY (entity, record)) STRICT, WITHOUT ROWID;
                CREATE TABLE _devices (device TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL) STRICT, WITHOUT ROWID;
                """)
    }

    /// The tables with a field with `onDelete: cascade` that names `entity`, and that field.
    func followers(of entity: String) -> [(table: EntityTable, field: Int)] {
        referrers(of: entity, .cascade)
    }

    /// The tables with a reference field with `policy` that names `entity`, and that field.
    func referrers(of entity: String, _ policy: ReferencePolicy) -> [(table: EntityTable, field: Int)] {
        schema.entities.flatMap { other in
            other.fields.enumerated().compactMap { n, field in
                field.target == entity && field.onDelete == policy ? (tables[other.name]!, n) : nil
            }
        }
    }
}

extension Store.Transaction {
    /// Makes the record's row what the merge says: its values, or no row if it is deleted (and not
    /// held) or follows a record that has no row; then the records that follow it, and those it
    /// holds, follow.
    func writeRow(_ table: EntityTable, _ record: String, _ state: RecordState) throws {
        let entity = table.entity
        var present = state.exists(onDelete: entity.onDelete)
        var held = false
        if !present, table.isHoldable, state.isDeletedRecord(onDelete: entity.onDelete), try isReferenced(table, record)
        {
            present = true
            held = true
        }
        var parent: (entity: String, id: String)?
        if present {
            for (field, target) in table.cascades {
                guard case .text(let id)? = state.value(at: field, of: entity) else { continue }
                if try !exists(store.entityTable(target), id) {
                    parent = (target, id)
                    present = false
                    break
                }
            }
        }
        if table.isHoldable {
            if held && present {
                try db.cachedStatement(sql: "INSERT OR IGNORE INTO _held (entity, record) VALUES (?, ?)").execute(
                    arguments: [entity.name, record])
                statements.mayHaveHeld = true
            } else if try mayHaveHeld() {
                try db.cachedStatement(sql: "DELETE FROM _held WHERE entity = ? AND record = ?").execute(arguments: [
                    entity.name, record,
                ])
            }
        }
        if present {
            let upsert = try upsertStatement(table)
            upsert.bind(1, record)
            for n in entity.fields.indices { upsert.bind(Int32(n + 2), state.value(at: n, of: entity) ?? .null) }
            try upsert.run(db)
            if table.isFollowed, try mayHaveHidden() { try showFollowers(table, record) }
            if !table.cascades.isEmpty, try mayHaveHidden() {
                try db.cachedStatement(sql: "DELETE FROM _hidden WHERE entity = ? AND record = ?").execute(arguments: [
                    entity.name, record,
                ])
            }
            // A deleted record this one refers to is held again.
            for (field, target) in table.holding {
                guard case .text(let id)? = state.value(at: field, of: entity) else { continue }
                let targetTable = try store.entityTable(target)
                if try !exists(targetTable, id) { try writeRow(targetTable, id, try mergeState(targetTable, id).state) }
            }
            return
        }
        try db.cachedStatement(sql: table.deleteSQL).execute(arguments: [record])
        let hadRow = db.changesCount > 0
        if let parent {
            try db.execute(
                sql: "INSERT OR REPLACE INTO _hidden (entity, record, parent_entity, parent) VALUES (?, ?, ?, ?)",
                arguments: [entity.name, record, parent.entity, parent.id])
            statements.mayHaveHidden = true
        }
        if hadRow {
            if table.isFollowed { try hideFollowers(table, record) }
            if !table.holding.isEmpty { try releaseHeld() }
        }
    }

    private func mayHaveHeld() throws -> Bool {
        if let known = statements.mayHaveHeld { return known }
        let some = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM _held)") ?? false
        statements.mayHaveHeld = some
        return some
    }

    private func mayHaveHidden() throws -> Bool {
        if let known = statements.mayHaveHidden { return known }
        let some = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM _hidden)") ?? false
        statements.mayHaveHidden = some
        return some
    }

    /// Whether a record with a row refers to `record` through a field with `onDelete: conflict`.
    private func isReferenced(_ table: EntityTable, _ record: String) throws -> Bool {
        for (referrer, field) in store.referrers(of: table.entity.name, .conflict) {
            let sql =
                "SELECT EXISTS (SELECT 1 FROM \(quoted(referrer.entity.name)) WHERE \(quoted(referrer.entity.fields[field].name)) = ?)"
            if try Bool.fetchOne(db.cachedStatement(sql: sql), arguments: [record]) ?? false { return true }
        }
        return false
    }

    /// Looks again at every held record: one nothing refers to any more loses its row (and what
    /// it held, in turn). After a write that may have removed or changed a reference.
    func releaseHeld() throws {
        guard try mayHaveHeld() else { return }
        while true {
            let held = try Row.fetchAll(db.cachedStatement(sql: "SELECT entity, record FROM _held"))
            var released = false
            for row in held {
                let table = try entityTable(row[0])
                let record: String = row[1]
                if try isReferenced(table, record) { continue }
                try writeRow(table, record, try mergeState(table, record).state)
                released = true
            }
            if !released { return }
        }
    }

    /// Removes the rows of the records that follow `record` (`onDelete: cascade`), which has just
    /// lost its row, and of those that follow them.
    func hideFollowers(_ table: EntityTable, _ record: String) throws {
        for (follower, field) in store.followers(of: table.entity.name) {
            let ids = try String.fetchAll(
                db,
                sql:
                    "SELECT id FROM \(quoted(follower.entity.name)) WHERE \(quoted(follower.entity.fields[field].name)) = ?",
                arguments: [record])
            for id in ids {
                try db.cachedStatement(sql: follower.deleteSQL).execute(arguments: [id])
                try db.execute(
                    sql: "INSERT OR REPLACE INTO _hidden (entity, record, parent_entity, parent) VALUES (?, ?, ?, ?)",
                    arguments: [follower.entity.name, id, table.entity.name, record])
                statements.mayHaveHidden = true
                if follower.isFollowed { try hideFollowers(follower, id) }
            }
        }
        if !table.holding.isEmpty
            || store.followers(of: table.entity.name).contains(where: { !$0.table.holding.isEmpty })
        {
            try releaseHeld()
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
            try db.execute(
                sql: "DELETE FROM _hidden WHERE entity = ? AND record = ?", arguments: [follower.entity.name, id])
            try writeRow(follower, id, try mergeState(follower, id).state)
        }
    }

    /// Whether the record is hidden with a record it follows.
    func isHidden(_ entity: String, _ record: String) throws -> Bool {
        try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM _hidden WHERE entity = ? AND record = ?)"),
            arguments: [entity, record]) ?? false
    }

    /// The conflicts of the held records: each one's deletes against what still refers to it.
    func heldConflicts() throws -> [Conflict] {
        var result: [Conflict] = []
        for row in try Row.fetchAll(db, sql: "SELECT entity, record FROM _held ORDER BY entity, record") {
            let table = try entityTable(row[0])
            let record: String = row[1]
            let state = try mergeState(table, record).state
            guard state.isDeletedRecord(onDelete: table.entity.onDelete) else { continue }
            var holders: [(Conflict.Referrer, ChangeStamp)] = []
            for (referrer, field) in store.referrers(of: table.entity.name, .conflict) {
                let ids = try String.fetchAll(
                    db,
                    sql:
                        "SELECT id FROM \(quoted(referrer.entity.name)) WHERE \(quoted(referrer.entity.fields[field].name)) = ?",
                    arguments: [record])
                for id in ids {
                    guard let stamp = try mergeState(referrer, id).state.shownStamp(at: field, of: referrer.entity)
                    else { continue }
                    holders.append((Conflict.Referrer(entity: referrer.entity.name, record: id), stamp))
                }
            }
            if !holders.isEmpty {
                result.append(state.heldConflict(entity: table.entity, recordID: record, holders: holders))
            }
        }
        return result
    }
}
