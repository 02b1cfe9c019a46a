public import FieldbookCore
import GRDB

/// One line of a record's history: who changed which field, when, from what to what.
public struct HistoryEntry: Sendable, Hashable {
    /// The device's sequence number of the change.
    public let sequence: Int64
    /// The device that made the change.
    public let device: String
    /// Who made it, as the server authenticated them (nil for this device's changes).
    public let author: String?
    /// When the change was made (hybrid logical clock).
    public let timestamp: HybridTimestamp
    /// What the change did: an insert, an update or a delete.
    public let operation: ChangeOperation
    /// The field changed; nil for a delete.
    public let field: String?
    /// The value before (`Value/null` for a new record).
    public let old: Value
    /// The value after (`Value/null` after a delete).
    public let new: Value
}

extension Store {
    /// Changes not yet acknowledged by the server, oldest first.
    /// - Parameter limit: at most this many.
    public func pendingChanges(limit: Int = 1000) throws -> [Change] {
        try read { tx in try tx.changes(after: tx.acknowledged(), limit: limit) }
    }

    /// The number of changes not yet acknowledged.
    public func pendingCount() throws -> Int {
        try read { tx in
            try Int.fetchOne(
                tx.db, sql: "SELECT count(*) FROM _changelog WHERE seq > ?", arguments: [tx.acknowledged()]) ?? 0
        }
    }

    /// The number of changes this device has made.
    public func changeCount() throws -> Int {
        try read { try Int.fetchOne($0.db, sql: "SELECT count(*) FROM _changelog") ?? 0 }
    }

    /// Marks every change up to `sequence` as acknowledged by the server. Never moves backwards.
    /// Not public: a change marked so is never sent, so only sync (and tests) may call it.
    package func acknowledge(through sequence: Int64) throws {
        try write { tx in
            try tx.db.execute(
                sql: "UPDATE _fieldbook_meta SET value = max(value, ?) WHERE key = 'acked'", arguments: [sequence])
        }
    }

    /// Every change made to the record, here and on other devices, oldest first (by hybrid
    /// logical clock), one entry per field changed. Values are shown as each change wrote them.
    public func history(of recordID: String) throws -> [HistoryEntry] {
        guard let id = UUIDText.canonical(recordID) else { return [] }
        return try read { tx in
            var changes = try tx.changes(
                sql: "WHERE record_key = ? AND record = ? ORDER BY seq", arguments: [recordKey(id), id])
            changes += try tx.receivedChanges(record: id)
            changes.sort { $0.stamp.precedes($1.stamp) }
            var current: [String: Value] = [:]
            var entries: [HistoryEntry] = []
            for change in changes {
                func entry(_ field: String?, _ old: Value, _ new: Value) -> HistoryEntry {
                    HistoryEntry(
                        sequence: change.sequence, device: change.device, author: change.author,
                        timestamp: change.timestamp, operation: change.operation, field: field, old: old, new: new)
                }
                if change.operation == .delete {
                    entries.append(entry(nil, .null, .null))
                    current = [:]
                    continue
                }
                for fieldChange in change.fields {
                    let old = current[fieldChange.field] ?? .null
                    let new = fieldChange.applied(to: old)
                    current[fieldChange.field] = new
                    entries.append(entry(fieldChange.field, old, new))
                }
            }
            return entries
        }
    }
}

extension Store.Transaction {
    /// The last sequence number the server has acknowledged.
    func acknowledged() throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'acked'") ?? 0
    }

    /// Changes pulled from other devices to one record, in server order.
    ///
    /// They are found from the record's merge state, which names the last, each naming the one
    /// before it (`prev`); a record id is looked for in every entity.
    func receivedChanges(record: String) throws -> [Change] {
        let last = try db.cachedStatement(sql: "SELECT received FROM _record_state WHERE entity = ? AND record = ?")
        let link = try db.cachedStatement(
            sql: "SELECT sseq, device, seq, author, op, hlc, base, fields, prev FROM _received WHERE sseq = ?")
        var changes: [Change] = []
        for entity in store.schema.entities {
            var next = try Int64.fetchOne(last, arguments: [entity.name, record])
            while let serverSequence = next {
                guard let row = try Row.fetchOne(link, arguments: [serverSequence]) else {
                    throw StoreError(
                        .incompatibleStore,
                        "the store's received changes are damaged: change \(serverSequence) is missing")
                }
                let fieldsText: String = row[7]
                let op: Int = row[4]
                let hlc: Int64 = row[5]
                changes.append(
                    Change(
                        sequence: row[2], device: row[1], entity: entity.name, recordID: record,
                        operation: ChangeOperation(rawValue: op) ?? .update,
                        timestamp: HybridTimestamp(rawValue: UInt64(bitPattern: hlc)), base: row[6],
                        fields: try FieldChange.decode(utf8: Array(fieldsText.utf8), entity: entity),
                        serverSequence: serverSequence, author: row[3]))
                next = row[8]
            }
        }
        return changes.sorted { $0.serverSequence! < $1.serverSequence! }
    }

    func changes(after sequence: Int64, limit: Int) throws -> [Change] {
        try changes(sql: "WHERE seq > ? ORDER BY seq LIMIT ?", arguments: [sequence, limit])
    }

    func changes(sql condition: String, arguments: StatementArguments) throws -> [Change] {
        try flushLog()
        let rows = try Row.fetchAll(
            db.cachedStatement(
                sql: "SELECT seq, entity, record, op, hlc, base, fields, sseq FROM _changelog \(condition)"),
            arguments: arguments)
        return try rows.map { row in
            let entityName: String = row[1]
            let table = try store.entityTable(entityName)
            let fieldsText: String = row[6]
            let op: Int = row[3]
            let hlc: Int64 = row[4]
            return Change(
                sequence: row[0], device: store.deviceID, entity: entityName, recordID: row[2],
                operation: ChangeOperation(rawValue: op) ?? .update,
                timestamp: HybridTimestamp(rawValue: UInt64(bitPattern: hlc)), base: row[5],
                fields: try FieldChange.decode(utf8: Array(fieldsText.utf8), entity: table.entity),
                serverSequence: row[7])
        }
    }
}
