import FieldbookCore
import FieldbookJSON
import FieldbookSQLite
import FieldbookSync
import Foundation
import GRDB

/// The scope index in the embedded store (``ScopeIndex``; docs/protocol.md, "Scopes").
extension SQLiteSyncStorage {
    /// The index's rows a push reads and writes: each record's entry by (entity, id), and the
    /// number (`rid`) the log and the members name the record by.
    struct ScopeRows {
        var rids: [PushPlan.RecordKey: Int64] = [:]

        /// A record's entry, noting its number; nil if the index has none.
        mutating func load(_ db: Database, _ key: PushPlan.RecordKey) throws -> ScopeEntry? {
            let select = RawStatement(
                try db.cachedStatement(sql: "SELECT rid, entry FROM scope_records WHERE entity = ? AND id = ?"))
            defer { select.reset() }
            select.bind(1, key.entity)
            select.bind(2, key.id)
            guard try select.step(db) else { return nil }
            rids[key] = select.int64(0)
            return ScopeEntry(stored: String(decoding: select.utf8(1), as: UTF8.self))
        }

        /// A record's number, read if this push has not met it.
        mutating func rid(_ db: Database, _ key: PushPlan.RecordKey) throws -> Int64? {
            if let rid = rids[key] { return rid }
            _ = try load(db, key)
            return rids[key]
        }
    }

    /// Keeps the index in step with a push's merged records, reading what it lacks in rounds.
    static func updateScopeIndex(
        _ db: Database, _ index: inout ScopeIndex, _ rows: inout ScopeRows, _ merged: [PushPlan.Merged], head: Int64
    ) throws {
        while true {
            switch index.update(merged, head: head) {
            case .need(let entries, let children):
                for key in entries { index.loaded[key] = try rows.load(db, key) }
                for key in children {
                    index.children[key] = try Row.fetchAll(
                        db.cachedStatement(
                            sql: "SELECT entity, id FROM scope_links WHERE parent_entity = ? AND parent = ?"),
                        arguments: [key.entity, key.id]
                    ).map { PushPlan.RecordKey(entity: $0[0], id: $0[1]) }
                }
            case .done(let update):
                try write(db, update, &rows)
                return
            }
        }
    }

    private static func write(_ db: Database, _ update: ScopeIndex.Update, _ rows: inout ScopeRows) throws {
        let save = RawStatement(
            try db.cachedStatement(
                sql: """
                    INSERT INTO scope_records (entity, id, entry) VALUES (?, ?, ?)
                    ON CONFLICT (entity, id) DO UPDATE SET entry = excluded.entry RETURNING rid
                    """))
        let forget = RawStatement(try db.cachedStatement(sql: "DELETE FROM scope_members WHERE rid = ?"))
        let member = RawStatement(try db.cachedStatement(sql: "INSERT INTO scope_members (rid, key) VALUES (?, ?)"))
        for (record, entry) in update.entries {
            save.bind(1, record.entity)
            save.bind(2, record.id)
            save.bind(3, entry.storedText)
            guard try save.step(db) else { throw ServerSetupError("the scope index did not number a record") }
            let rid = save.int64(0)
            save.reset()
            rows.rids[record] = rid
            forget.bind(1, rid)
            try forget.run(db)
            for key in entry.keys.sorted() {
                member.bind(1, rid)
                member.bind(2, key)
                try member.run(db)
            }
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
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO scope_log (key, sseq, rid, kind) VALUES (?, ?, ?, ?)"))
        for entry in update.log {
            // Every record the log names has an entry: it has the key the entry is logged under, or had it.
            guard let rid = try rows.rid(db, entry.record) else {
                throw ServerSetupError("the scope index logs a record it holds no entry for")
            }
            log.bind(1, entry.key)
            log.bind(2, entry.serverSequence)
            log.bind(3, rid)
            log.bind(4, Int64(entry.kind.rawValue))
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
        try db.execute(
            sql: "DELETE FROM scope_records; DELETE FROM scope_members; DELETE FROM scope_links; DELETE FROM scope_log")
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
            var rows = ScopeRows()
            try write(db, update, &rows)
        }
        try db.execute(
            sql:
                "INSERT INTO meta (key, value) VALUES ('scope_index', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            arguments: [signature])
    }

    /// What a scoped token's page holds (``ScopeIndex/page(_:visible:)``), and where it ends.
    struct ScopedPage {
        var cursor: Int64
        var more: Bool
        /// The server sequence numbers of the changes to send, ascending.
        var changes: [Int64]
        var entered: [PushPlan.RecordKey]
        var left: [PushPlan.RecordKey]
    }

    /// Plans a scoped token's page: the log entries of its keys after the cursor, cut at a server
    /// sequence number (all entries of one number in one page), each read with whether its record
    /// is in the token's scope now (one probe of the members by the record's number), sorted into
    /// the changes to send, the records that entered and those that left.
    static func scopedPage(_ db: Database, _ request: PullRequest, scopes: [String]) throws -> ScopedPage {
        let keys = ScopeIndex.tokenKeys(scopes).sorted()
        let marks = Array(repeating: "?", count: keys.count).joined(separator: ", ")
        typealias Entry = (serverSequence: Int64, record: Int64, kind: ScopeLogEntry.Kind)
        // Each key's entries are read in the order of the log's key (no sort) and merged here: a
        // page reads at most its limit of entries per key, however long the logs are.
        func entries(of key: String, _ condition: String, _ bounds: [Int64]) throws -> [Entry] {
            let select = RawStatement(
                try db.cachedStatement(sql: "SELECT sseq, rid, kind FROM scope_log WHERE key = ? AND \(condition)"))
            defer { select.reset() }
            select.bind(1, key)
            for (n, bound) in bounds.enumerated() { select.bind(Int32(n + 2), bound) }
            var found: [Entry] = []
            while try select.step(db) {
                found.append(
                    (select.int64(0), select.int64(1), ScopeLogEntry.Kind(rawValue: Int(select.int64(2))) ?? .change))
            }
            return found
        }
        func entries(_ condition: String, _ bounds: [Int64], limit: Int? = nil) throws -> [Entry] {
            let lists = try keys.map { try entries(of: $0, condition, bounds) }.filter { !$0.isEmpty }
            if lists.count == 1 { return lists[0] }
            var merged: [Entry] = []
            var next = Array(repeating: 0, count: lists.count)
            while merged.count < (limit ?? Int.max) {
                var best: Int?
                for n in lists.indices where next[n] < lists[n].count {
                    if best == nil || lists[n][next[n]].serverSequence < lists[best!][next[best!]].serverSequence {
                        best = n
                    }
                }
                guard let best else { break }
                merged.append(lists[best][next[best]])
                next[best] += 1
            }
            return merged
        }
        let limit = request.limit + 1
        var found = try entries("sseq > ? ORDER BY sseq LIMIT ?", [request.cursor, Int64(limit)], limit: limit)
        let more = found.count > request.limit
        let cursor: Int64
        if more {
            cursor = found[request.limit - 1].serverSequence
            let cut = found[request.limit].serverSequence == cursor
            found.removeLast(found.count - request.limit)
            if cut {
                // The limit fell inside the entries of one server sequence number: all of them.
                found.removeAll { $0.serverSequence == cursor }
                found += try entries("sseq = ?", [cursor])
            }
        } else {
            // Nothing more for these keys: the cursor moves past every change, seen or not.
            cursor = max(
                request.cursor, try Int64.fetchOne(db, sql: "SELECT coalesce(max(sseq), 0) FROM changes") ?? 0)
        }
        // Whether a record is in the token's scope now: one probe of its members (page() asks once a record).
        let member = RawStatement(
            try db.cachedStatement(sql: "SELECT 1 FROM scope_members WHERE rid = ? AND key IN (\(marks)) LIMIT 1"))
        for (n, key) in keys.enumerated() { member.bind(Int32(n + 2), key) }
        var failure: (any Error)?
        let page = ScopeIndex.page(found) { rid in
            member.bind(1, rid)
            defer { member.reset() }
            do { return try member.step(db) } catch {
                failure = error
                return false
            }
        }
        if let failure { throw failure }
        func named(_ rids: [Int64]) throws -> [PushPlan.RecordKey] {
            try ScopeIndex.ordered(
                rids.compactMap { rid in
                    try Row.fetchOne(
                        db.cachedStatement(sql: "SELECT entity, id FROM scope_records WHERE rid = ?"), arguments: [rid]
                    ).map { PushPlan.RecordKey(entity: $0[0], id: $0[1]) }
                })
        }
        return ScopedPage(
            cursor: cursor, more: more, changes: page.changes, entered: try named(page.entered),
            left: try named(page.left))
    }

    /// The change with a server sequence number, the columns of `pull`: a page's changes are read
    /// one by one, in order, by the table's key.
    static let scopedChangeSQL = """
        SELECT sseq, device, seq, author, entity, record, op, hlc, base, fields FROM changes WHERE sseq = ?
        """

    /// The entered records of a page, each with its history up to the page's cursor.
    static func entered(_ db: Database, _ page: ScopedPage, schema: Schema) throws -> [PullResponse.Entered] {
        try page.entered.map { record in
            PullResponse.Entered(
                record: .init(entity: record.entity, id: record.id),
                changes: try Self.changes(
                    db,
                    """
                    SELECT sseq, device, seq, author, entity, record, op, hlc, base, fields FROM changes
                    WHERE entity = ? AND record = ? AND sseq <= ? AND rejected IS NULL ORDER BY sseq
                    """, [record.entity, record.id, page.cursor], schema: schema))
        }
    }

    /// The names of `devices` that sent one: a page names the devices whose changes it holds, and no others.
    static func names(_ db: Database, of devices: Set<String>) throws -> [String: String] {
        var names: [String: String] = [:]
        for device in devices {
            if let name = try String.fetchOne(
                db.cachedStatement(sql: "SELECT name FROM devices WHERE device = ? AND name IS NOT NULL"),
                arguments: [device])
            {
                names[device] = name
            }
        }
        return names
    }

    /// A scoped token's page (``scopedPage(_:_:scopes:)``) as a message.
    static func scopedPull(_ db: Database, _ request: PullRequest, identity: Identity, scopes: [String], schema: Schema)
        throws -> PullResponse
    {
        let page = try scopedPage(db, request, scopes: scopes)
        var changes: [Change] = []
        changes.reserveCapacity(page.changes.count)
        for sequence in page.changes {
            changes += try Self.changes(db, scopedChangeSQL, [sequence], schema: schema)
        }
        var response = PullResponse(changes: changes, cursor: page.cursor, more: page.more)
        response.entered = try entered(db, page, schema: schema)
        response.left = page.left.map { PullResponse.RecordRef(entity: $0.entity, id: $0.id) }
        response.deviceNames = try names(
            db, of: Set(changes.map(\.device) + response.entered.flatMap { $0.changes.map(\.device) }))
        response.scopes = scopes
        response.scopeGeneration = identity.scopeGeneration
        return response
    }

    /// A scoped token's page written straight from the rows, as ``pullResponseBody(_:identity:)``
    /// writes an unscoped one (the same bytes as ``scopedPull(_:_:identity:scopes:schema:)`` encodes).
    static func scopedPullBody(
        _ db: Database, _ request: PullRequest, identity: Identity, scopes: [String], schema: Schema
    ) throws -> PullBody {
        let page = try scopedPage(db, request, scopes: scopes)
        var out: [UInt8] = []
        out.reserveCapacity(320 * page.changes.count + 256)
        PullResponse.encodeStart(to: &out)
        var devices: Set<String> = []
        var lastDevice: [UInt8] = []
        let rows = RawStatement(try db.cachedStatement(sql: scopedChangeSQL))
        var first = true
        for serverSequence in page.changes {
            rows.bind(1, serverSequence)
            defer { rows.reset() }
            if try rows.step(db) {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                // A page's changes come mostly from few devices: a name is made once per run of one.
                let device = rows.utf8(1)
                let same = lastDevice.withUnsafeBufferPointer {
                    $0.count == device.count
                        && (device.isEmpty || memcmp($0.baseAddress!, device.baseAddress!, device.count) == 0)
                }
                if !same {
                    lastDevice = Array(device)
                    devices.insert(String(decoding: device, as: UTF8.self))
                }
                writeChange(rows, to: &out)
            }
        }
        PullResponse.encodeEnd(cursor: page.cursor, more: page.more, to: &out)
        let entered = try entered(db, page, schema: schema)
        devices.formUnion(entered.flatMap { $0.changes.map(\.device) })
        PullResponse.appendDeviceNames(try names(db, of: devices), to: &out)
        PullResponse.appendScopeMembers(
            scopes: scopes, generation: identity.scopeGeneration, entered: entered,
            left: page.left.map { PullResponse.RecordRef(entity: $0.entity, id: $0.id) }, to: &out)
        return PullBody(bytes: out, cursor: page.cursor, more: page.more, scopeGeneration: identity.scopeGeneration)
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
