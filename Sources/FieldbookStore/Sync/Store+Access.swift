import FieldbookCore
import FieldbookSQLite
import FieldbookSync
import GRDB
import Synchronization

/// A change this device made that the server rejected: the schema's access rules do not let its
/// token's role make it. It is no longer part of its record here, nor anywhere else; it stays in
/// this device's history, and in ``Store/rejectedChanges()`` until discarded.
public struct RejectedChange: Sendable, Hashable {
    /// The change's sequence number on this device.
    public var sequence: Int64
    /// The entity of the record it changed.
    public var entity: String
    /// The id of the record it changed.
    public var recordID: String
    /// The rule that refused it, e.g. `finding.delete`.
    public var rule: String
    /// The role it was refused for.
    public var role: String
    /// What was refused and what to do, naming no field's value.
    public var message: String
}

extension Store {
    /// The role the server gave this device's token (one of the schema's `Schema.roles`), as of
    /// the last pull: writes the schema's access rules do not let it make are refused here with
    /// ``StoreError/Code/forbidden``. Nil before the first sync, or for a token without a role; the
    /// server checks every change again, and rejects what the role may not make
    /// (``rejectedChanges()``).
    public var role: String? {
        state.withLock { $0.role }
    }

    /// The changes the server rejected and nobody has discarded yet, oldest first.
    public func rejectedChanges() throws -> [RejectedChange] {
        try read { tx in
            try Row.fetchAll(
                tx.db, sql: "SELECT seq, entity, record, rule, role, message FROM _rejected ORDER BY seq"
            ).map {
                RejectedChange(
                    sequence: $0[0], entity: $0[1], recordID: $0[2], rule: $0[3], role: $0[4], message: $0[5])
            }
        }
    }

    /// Takes a rejected change off ``rejectedChanges()``: someone has seen it. (It was undone when
    /// it was rejected; its history entry stays.)
    /// - Throws: ``StoreError`` `notFound` if no rejected change has that sequence number.
    public func discardRejected(_ sequence: Int64) throws {
        try write { tx in
            try tx.db.execute(sql: "DELETE FROM _rejected WHERE seq = ?", arguments: [sequence])
            guard tx.db.changesCount == 1 else {
                throw StoreError(.notFound, "no rejected change has sequence number \(sequence)")
            }
        }
    }
}

extension Store.Transaction {
    /// Refuses a write this device's role may not make (``Entity/refusal(role:_:fields:current:)``,
    /// the check the server makes too). `recordID` names the record an update or delete changes.
    func checkAccess(
        _ table: EntityTable, _ operation: ChangeOperation, _ recordID: String?,
        fields: [(name: String, value: Value?)]
    ) throws {
        var current: Record??
        func now(_ name: String) -> Value? {
            if current == nil { current = .some(recordID.flatMap { try? record(table.entity.name, id: $0) }) }
            return current!?[name]
        }
        // The evidence a value needs (`requires`), whatever the role.
        if table.entity.hasRequirements(binding: store.role),
            let refusal = table.entity.requirementRefusal(
                operation, role: store.role, changed: Set(fields.map(\.name)),
                before: { operation == .insert ? nil : now($0) },
                after: { name in
                    if let given = fields.first(where: { $0.name == name }) { return given.value }
                    return operation == .insert ? nil : now(name)
                })
        {
            throw StoreError(.forbidden, entity: table.entity.name, refusal.message + " (rule \(refusal.rule))")
        }
        guard table.entity.access != nil, let role = store.role else { return }
        let refusal = table.entity.refusal(role: role, operation, fields: fields) { now($0) }
        if let refusal {
            throw StoreError(.forbidden, entity: table.entity.name, refusal.message + " (rule \(refusal.rule))")
        }
    }

    /// Keeps the role a pull page names, for the writes made from now on.
    func noteRole(_ role: String?) throws {
        try db.execute(
            sql: """
                INSERT INTO _fieldbook_meta (key, value) VALUES ('role', ?)
                ON CONFLICT (key) DO UPDATE SET value = excluded.value
                """, arguments: [role])
        let store = self.store
        db.afterNextTransaction { _ in store.state.withLock { $0.role = role } }
    }

    /// Marks the changes a push answer rejected, lists them, and writes their records again
    /// without them.
    func reject(_ rejections: [Rejection]) throws {
        var records: [(table: EntityTable, id: String)] = []
        for rejection in rejections {
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT entity, record, rejected FROM _changelog WHERE seq = ?",
                    arguments: [rejection.sequence])
            else {
                throw SyncError(
                    .badResponse, "the server rejected change \(rejection.sequence), which this device never made")
            }
            if row[2] as Int64 != 0 { continue }  // an answer received before
            let entity: String = row[0]
            let record: String = row[1]
            try db.execute(sql: "UPDATE _changelog SET rejected = 1 WHERE seq = ?", arguments: [rejection.sequence])
            try db.execute(
                sql: "INSERT INTO _rejected (seq, entity, record, rule, role, message) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [rejection.sequence, entity, record, rejection.rule, rejection.role, rejection.message])
            let table = try entityTable(entity)
            if !records.contains(where: { $0.table.entity.name == entity && $0.id == record }) {
                records.append((table, record))
            }
        }
        for (table, record) in records { try rebuild(table, record) }
    }

    /// Writes a record again from its changes, leaving out the rejected ones: the changes received
    /// from other devices in server order, this device's own at their server sequence numbers, the
    /// ones not yet acknowledged last.
    ///
    /// A record that left the token's scope (`_left`) is written from this device's changes not yet
    /// pushed alone: the rest of its history is no longer this device's to show.
    func rebuild(_ table: EntityTable, _ record: String) throws {
        let left =
            try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM _left WHERE entity = ? AND record = ?)",
                arguments: [table.entity.name, record]) ?? false
        let received = left ? [] : try receivedChanges(record: record).filter { $0.entity == table.entity.name }
        let own = try changes(
            sql: "WHERE record_key = ? AND record = ? AND rejected = 0\(left ? " AND sseq IS NULL" : "") ORDER BY seq",
            arguments: [recordKey(record), record])
        let ordered =
            (received.map { (($0.serverSequence ?? 0), Int64(0), $0) }
            + own.map { ($0.serverSequence ?? Int64.max, $0.sequence, $0) })
            .sorted { ($0.0, $0.1) < ($1.0, $1.1) }
        var state = RecordState()
        for (_, _, change) in ordered { state.apply(change, entity: table.entity) }
        let folded =
            try Int64.fetchOne(
                db, sql: "SELECT coalesce(max(seq), 0) FROM _changelog WHERE record_key = ? AND record = ?",
                arguments: [recordKey(record), record]) ?? 0
        if let last = received.last?.serverSequence {
            var encoded: [UInt8] = []
            state.encode(to: &encoded)
            try db.execute(
                sql: """
                    INSERT INTO _record_state (entity, record, state, folded, received) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (entity, record) DO UPDATE SET
                        state = excluded.state, folded = excluded.folded, received = excluded.received
                    """,
                arguments: [table.entity.name, record, String(decoding: encoded, as: UTF8.self), folded, last])
            try ConflictRows.update(
                db, table: "_conflicts", entity: table.entity.name, record: record,
                current: state.conflicts(entity: table.entity, recordID: record), at: try cursor())
        }
        try writeRow(table, record, state)
    }
}
