import FieldbookCore
import FieldbookJSON
import FieldbookSQLite
import FieldbookSync
import Foundation
import GRDB

/// The scope index in the embedded store (``ScopeIndex``; docs/protocol.md, "Scopes").
extension SQLiteSyncStorage {
    static func loadScopeEntry(_ db: Database, _ key: PushPlan.RecordKey) throws -> ScopeEntry? {
        let select = RawStatement(
            try db.cachedStatement(sql: "SELECT entry FROM scope_records WHERE entity = ? AND id = ?"))
        defer { select.reset() }
        select.bind(1, key.entity)
        select.bind(2, key.id)
        guard try select.step(db) else { return nil }
        return ScopeEntry(stored: String(decoding: select.utf8(0), as: UTF8.self))
    }

    /// Keeps the index in step with a push's merged records, reading what it lacks in rounds.
    static func updateScopeIndex(_ db: Database, _ index: inout ScopeIndex, _ merged: [PushPlan.Merged], head: Int64)
        throws
    {
        while true {
            switch index.update(merged, head: head) {
            case .need(let entries, let children):
                for key in entries { index.loaded[key] = try loadScopeEntry(db, key) }
                for key in children {
                    index.children[key] = try Row.fetchAll(
                        db.cachedStatement(
                            sql: "SELECT entity, id FROM scope_links WHERE parent_entity = ? AND parent = ?"),
                        arguments: [key.entity, key.id]
                    ).map { PushPlan.RecordKey(entity: $0[0], id: $0[1]) }
                }
            case .done(let update):
                try write(db, update)
                return
            }
        }
    }

    private static func write(_ db: Database, _ update: ScopeIndex.Update) throws {
        let save = RawStatement(
            try db.cachedStatement(
                sql: """
                    INSERT INTO scope_records (entity, id, entry) VALUES (?, ?, ?)
                    ON CONFLICT (entity, id) DO UPDATE SET entry = excluded.entry
                    """))
        for (record, entry) in update.entries {
            save.bind(1, record.entity)
            save.bind(2, record.id)
            save.bind(3, entry.storedText)
            try save.run(db)
        }
        let unlink = try db.cachedStatement(
            sql: "DELETE FROM scope_links WHERE parent_entity = ? AND parent = ? AND entity = ? AND id = ?")
        for (parent, child) in update.unlinked {
            try unlink.execute(arguments: [parent.entity, parent.id, child.entity, child.id])
        }
        let link = RawStatement(
            try db.cachedStatement(
                sql: "INSERT OR IGNORE INTO scope_links (parent_entity, parent, entity, id) VALUES (?, ?, ?, ?)"))
        for (parent, child) in update.linked {
            link.bind(1, parent.entity)
            link.bind(2, parent.id)
            link.bind(3, child.entity)
            link.bind(4, child.id)
            try link.run(db)
        }
        let log = RawStatement(
            try db.cachedStatement(
                sql: "INSERT OR IGNORE INTO scope_log (key, sseq, entity, id, kind) VALUES (?, ?, ?, ?, ?)"))
        for entry in update.log {
            log.bind(1, entry.key)
            log.bind(2, entry.serverSequence)
            log.bind(3, entry.record.entity)
            log.bind(4, entry.record.id)
            log.bind(5, Int64(entry.kind.rawValue))
            try log.run(db)
        }
    }

    /// Builds the index again from every record and change when it was built for other scopes
    /// (or never): when a schema first declares scopes, or changes them.
    static func rebuildScopeIndexIfStale(_ db: Database, schema: Schema) throws {
        let index = ScopeIndex(schema: schema)
        let signature = index.signature
        let built = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'scope_index'") ?? ""
        guard built != signature else { return }
        try db.execute(sql: "DELETE FROM scope_records; DELETE FROM scope_links; DELETE FROM scope_log")
        if index.isActive {
            try db.execute(sql: "CREATE INDEX IF NOT EXISTS changes_record ON changes (entity, record, sseq)")
            var records: [(key: PushPlan.RecordKey, state: RecordState)] = []
            for row in try Row.fetchAll(db, sql: "SELECT entity, id, state FROM records") {
                guard let entity = schema.entity(row[0] as String) else { continue }
                let text: String = row[2]
                records.append(
                    (
                        PushPlan.RecordKey(entity: entity.name, id: row[1]),
                        try RecordState(encoded: Array(text.utf8), entity: entity)
                    ))
            }
            let entries = index.rebuild(records)
            var update = ScopeIndex.Update()
            for (key, entry) in entries {
                update.entries.append((key, entry))
                for parent in entry.parents { update.linked.append((parent, key)) }
            }
            let changes = try Row.fetchCursor(
                db, sql: "SELECT sseq, entity, record FROM changes WHERE rejected IS NULL ORDER BY sseq")
            while let row = try changes.next() {
                let key = PushPlan.RecordKey(entity: row[1], id: row[2])
                for scopeKey in entries[key]?.keys.sorted() ?? [] {
                    update.log.append(ScopeLogEntry(key: scopeKey, serverSequence: row[0], record: key, kind: .change))
                }
            }
            try write(db, update)
        }
        try db.execute(
            sql:
                "INSERT INTO meta (key, value) VALUES ('scope_index', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            arguments: [signature])
    }

    /// A scoped token's page: the log entries of its keys after the cursor, cut at a server
    /// sequence number (all entries of one number in one page), turned into changes, entered
    /// records with their histories, and left records (``ScopeIndex/page(_:tokenKeys:keys:)``).
    static func scopedPull(_ db: Database, _ request: PullRequest, identity: Identity, scopes: [String], schema: Schema)
        throws -> PullResponse
    {
        let tokenKeys = ScopeIndex.tokenKeys(scopes)
        let keys = tokenKeys.sorted()
        let marks = Array(repeating: "?", count: keys.count).joined(separator: ", ")
        func entries(_ condition: String, _ arguments: [any DatabaseValueConvertible]) throws -> [ScopeLogEntry] {
            try Row.fetchAll(
                db,
                sql: "SELECT key, sseq, entity, id, kind FROM scope_log WHERE key IN (\(marks)) AND \(condition)",
                arguments: StatementArguments(keys + arguments)
            ).map {
                ScopeLogEntry(
                    key: $0[0], serverSequence: $0[1], record: PushPlan.RecordKey(entity: $0[2], id: $0[3]),
                    kind: ScopeLogEntry.Kind(rawValue: $0[4]) ?? .change)
            }
        }
        var found = try entries("sseq > ? ORDER BY sseq LIMIT ?", [request.cursor, request.limit + 1])
        let more = found.count > request.limit
        let cursor: Int64
        if more {
            cursor = found[request.limit - 1].serverSequence
            found = try entries("sseq > ? AND sseq <= ? ORDER BY sseq", [request.cursor, cursor])
        } else {
            // Nothing more for these keys: the cursor moves past every change, seen or not.
            cursor = max(
                request.cursor, try Int64.fetchOne(db, sql: "SELECT coalesce(max(sseq), 0) FROM changes") ?? 0)
        }
        var recordKeys: [PushPlan.RecordKey: Set<String>] = [:]
        for entry in found where recordKeys[entry.record] == nil {
            recordKeys[entry.record] = try loadScopeEntry(db, entry.record)?.keys ?? []
        }
        let page = ScopeIndex.page(found, tokenKeys: tokenKeys) { recordKeys[$0] ?? [] }
        let select = "SELECT sseq, device, seq, author, entity, record, op, hlc, base, fields FROM changes"
        // The page's changes in one pass over the keys' log (by index), joined to the changes.
        var changes: [Change] = []
        if !page.changes.isEmpty {
            let wanted = Set(page.changes)
            let rows = try Self.changes(
                db,
                """
                SELECT c.sseq, c.device, c.seq, c.author, c.entity, c.record, c.op, c.hlc, c.base, c.fields
                FROM scope_log AS l JOIN changes AS c ON c.sseq = l.sseq
                WHERE l.key IN (\(marks)) AND l.sseq > ? AND l.sseq <= ? AND l.kind = 0 ORDER BY l.sseq
                """, keys + [request.cursor, cursor], schema: schema)
            changes.reserveCapacity(wanted.count)
            for change in rows where wanted.contains(change.serverSequence!) {
                if change.serverSequence != changes.last?.serverSequence { changes.append(change) }
            }
        }
        var response = PullResponse(changes: changes, cursor: cursor, more: more)
        for record in page.entered {
            let history = try Self.changes(
                db, "\(select) WHERE entity = ? AND record = ? AND sseq <= ? AND rejected IS NULL ORDER BY sseq",
                [record.entity, record.id, cursor], schema: schema)
            response.entered.append(
                PullResponse.Entered(record: .init(entity: record.entity, id: record.id), changes: history))
        }
        response.left = page.left.map { PullResponse.RecordRef(entity: $0.entity, id: $0.id) }
        // The names of the devices whose changes the page holds, and no others.
        let devices = Set(changes.map(\.device) + response.entered.flatMap { $0.changes.map(\.device) })
        for device in devices.sorted() {
            if let name = try String.fetchOne(
                db.cachedStatement(sql: "SELECT name FROM devices WHERE device = ? AND name IS NOT NULL"),
                arguments: [device])
            {
                response.deviceNames[device] = name
            }
        }
        response.scopes = scopes
        response.scopeGeneration = identity.scopeGeneration
        return response
    }

    /// The changes a query selects (its columns those of `pull`), read for `schema`.
    static func changes(_ db: Database, _ sql: String, _ arguments: [any DatabaseValueConvertible], schema: Schema)
        throws -> [Change]
    {
        try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)).map { row in
            let entityName: String = row[4]
            guard let entity = schema.entity(entityName) else {
                throw ServerSetupError("a stored change names entity '\(entityName)', which the schema lacks")
            }
            let fieldsText: String = row[9]
            let hlc: Int64 = row[7]
            let op: Int = row[6]
            return Change(
                sequence: row[2], device: row[1], entity: entityName, recordID: row[5],
                operation: ChangeOperation(rawValue: op) ?? .update,
                timestamp: HybridTimestamp(rawValue: UInt64(bitPattern: hlc)), base: row[8],
                fields: try FieldChange.decode(utf8: Array(fieldsText.utf8), entity: entity),
                serverSequence: row[0], author: row[3])
        }
    }
}
