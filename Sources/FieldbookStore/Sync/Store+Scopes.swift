import FieldbookCore
import FieldbookJSON
import FieldbookSQLite
import FieldbookSync
import GRDB
import Synchronization

extension Store {
    /// The scope keys of this device's token as the server last named them (`town=新度镇`): the
    /// records this device receives. Nil before the first pull, or for a token that sees everything.
    public func scopes() throws -> [String]? {
        try read { try Self.storedScopes($0.db) }
    }

    /// The scope keys kept in the store's meta table (``scopes()``).
    static func storedScopes(_ db: Database) throws -> [String]? {
        guard let text = try String.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'scopes'"),
            case .array(let list)? = try? JSON(parsing: Array(text.utf8))
        else { return nil }
        return list.compactMap { if case .string(let s) = $0 { s } else { nil } }
    }

    /// Starts again after the token was rescoped (the server refused a pull with `scope_changed`):
    /// what was received under the old scope is dropped, in one transaction, and the next pull
    /// starts from cursor 0. The numbering is the server's still, so this device's changes keep
    /// their server sequence numbers and bases; the records it has changes not yet pushed to stay,
    /// as those changes make them, and the rest come back with the pull if the new scope holds them
    /// (``noteReturned(_:)``).
    func startAgainForScope() async throws {
        try await write { tx in
            try tx.flushLog()
            try tx.db.execute(
                sql: """
                    DELETE FROM _received;
                    DELETE FROM _record_state;
                    DELETE FROM _conflicts;
                    DELETE FROM _left;
                    UPDATE _fieldbook_meta SET value = 0 WHERE key = 'cursor';
                    DELETE FROM _fieldbook_meta WHERE key IN ('scopes', 'scope_generation');
                    """)
            let store = self
            tx.db.afterNextTransaction { _ in store.state.withLock { $0.scopeKeys = nil } }
            for table in self.tables.values {
                try tx.db.execute(sql: "DELETE FROM \(quoted(table.entity.name))")
            }
            try tx.hideOwnRecords()
        }
    }
}

extension Store.Transaction {
    /// The scope generation the records here were pulled under, sent with each pull.
    func scopeGeneration() throws -> Int64? {
        try Int64.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'scope_generation'")
    }

    /// Keeps what a page says of the token's scope: its keys (shown to people) and its generation.
    func noteScope(_ page: PullResponse) throws {
        let upsert = """
            INSERT INTO _fieldbook_meta (key, value) VALUES (?, ?)
            ON CONFLICT (key) DO UPDATE SET value = excluded.value
            """
        if let scopes = page.scopes {
            try db.execute(sql: upsert, arguments: ["scopes", JSON.array(scopes.map(JSON.string)).serialized])
        } else {
            try db.execute(sql: "DELETE FROM _fieldbook_meta WHERE key = 'scopes'")
        }
        if let generation = page.scopeGeneration {
            try db.execute(sql: upsert, arguments: ["scope_generation", generation])
        }
        let keys = page.scopes.map { ScopeIndex.tokenKeys($0) }
        let store = self.store
        db.afterNextTransaction { _ in store.state.withLock { $0.scopeKeys = keys } }
    }

    /// Refuses a write that would change a record outside this device's scope, or put one outside
    /// it (``ScopeIndex/outside(_:role:wasOutside:)``, rule `ENTITY.scope`): the check the server
    /// makes, on the records this device holds. `recordID` names the record written; `fields` the
    /// values it sets (nil: cleared). Nothing is checked before the first pull, for a token that
    /// sees everything, or for an entity every token sees.
    func checkScope(
        _ table: EntityTable, _ operation: ChangeOperation, _ recordID: String,
        fields: [(name: String, value: Value?)]
    ) throws {
        guard let tokenKeys = store.state.withLock({ $0.scopeKeys }), !table.entity.everyone else { return }
        let schema = store.schema
        let index = ScopeIndex(schema: schema)
        func keys(_ entity: Entity, _ id: String, depth: Int, _ value: (String) -> Value?) throws -> Set<String> {
            let (own, parents) = index.ownAndParents(entity, id: id, value: value)
            var parentKeys: [Set<String>] = []
            for parent in parents {
                guard depth < 64, let parentEntity = schema.entity(parent.entity),
                    let values = try record(parent.entity, id: parent.id)
                else { continue }
                parentKeys.append(try keys(parentEntity, parent.id, depth: depth + 1) { values[$0] })
            }
            return ScopeIndex.keys(own: own, parentKeys: parentKeys)
        }
        let entity = table.entity
        let current = operation == .insert ? nil : try record(entity.name, id: recordID)
        // A record this device does not hold: the write reports it not found.
        if operation != .insert && current == nil { return }
        var refusal: AccessRefusal?
        if let current, try keys(entity, recordID, depth: 0, { current[$0] }).isDisjoint(with: tokenKeys) {
            refusal = ScopeIndex.outside(entity.name, role: store.role, wasOutside: true)
        } else if operation != .delete {
            var set: [String: Value?] = [:]
            for (name, value) in fields { set[name] = value }
            let after = try keys(entity, recordID, depth: 0) { name in set[name] ?? current?[name] }
            if after.isDisjoint(with: tokenKeys) {
                refusal = ScopeIndex.outside(entity.name, role: store.role, wasOutside: false)
            }
        }
        if let refusal {
            throw StoreError(.forbidden, entity: entity.name, refusal.message + " (rule \(refusal.rule))")
        }
    }

    /// Takes every record this device has changed out of every scope until a pull brings it back
    /// (``noteReturned(_:)``): each shows its changes not yet pushed alone, if any.
    func hideOwnRecords() throws {
        for row in try Row.fetchAll(
            db, sql: "SELECT DISTINCT entity, record FROM _changelog WHERE rejected = 0 ORDER BY entity, record")
        {
            guard let table = store.tables[row[0] as String] else { continue }
            let record: String = row[1]
            try db.execute(
                sql: "INSERT OR IGNORE INTO _left (entity, record) VALUES (?, ?)",
                arguments: [table.entity.name, record])
            try rebuild(table, record)
        }
    }

    /// Applies a page's records that left the token's scope and those that came into it.
    func applyMoves(_ page: PullResponse) throws {
        for record in page.left {
            guard let table = store.tables[record.entity] else { continue }
            try leave(table, record.id)
        }
        for entered in page.entered {
            guard let table = store.tables[entered.record.entity] else { continue }
            try enter(table, entered.record.id, history: entered.changes)
            // Its files, as for changes pulled: wanted, and on the server.
            try noteWantedFiles(entered.changes)
        }
    }

    /// Removes a record that left the scope: what was received of it, its merge state and its
    /// conflicts. If this device has changes to it not yet pushed, the record stays as those
    /// changes make it (they are never dropped; the server will reject them as outside the scope).
    private func leave(_ table: EntityTable, _ record: String) throws {
        try dropReceived(table, record)
        try ConflictRows.update(
            db, table: "_conflicts", entity: table.entity.name, record: record, current: [], at: try cursor())
        try db.execute(
            sql: "INSERT OR IGNORE INTO _left (entity, record) VALUES (?, ?)", arguments: [table.entity.name, record])
        try rebuild(table, record)
    }

    /// Takes the records of a page's changes off `_left`: they are in the scope again. Returns them:
    /// each is written again (``rebuild(_:_:)``) once the page is applied, for a record whose only
    /// changes in the page are this device's own is not merged by ``receive(_:)``.
    func noteReturned(_ received: ReceivedPage) throws -> [(table: EntityTable, id: String)] {
        guard try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM _left)") ?? false else { return [] }
        var returned: [(table: EntityTable, id: String)] = []
        var seen: Set<RecordRef> = []
        for change in received.page.changes {
            let ref = RecordRef(entity: change.entity, id: change.recordID)
            guard seen.insert(ref).inserted, let table = store.tables[ref.entity] else { continue }
            try db.execute(sql: "DELETE FROM _left WHERE entity = ? AND record = ?", arguments: [ref.entity, ref.id])
            if db.changesCount > 0 { returned.append((table, ref.id)) }
        }
        return returned
    }

    /// Replaces what was received of a record that came into the scope with its whole history,
    /// and writes it again from that and this device's own changes.
    private func enter(_ table: EntityTable, _ record: String, history: [Change]) throws {
        try dropReceived(table, record)
        try db.execute(
            sql: "DELETE FROM _left WHERE entity = ? AND record = ?", arguments: [table.entity.name, record])
        let insert = try db.cachedStatement(
            sql: """
                INSERT OR REPLACE INTO _received (sseq, device, seq, author, entity, record, prev, op, hlc, base, fields)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        var previous: Int64?
        var text: [UInt8] = []
        for change in history {
            guard let serverSequence = change.serverSequence else {
                throw SyncError(.badResponse, "a pulled change has no server sequence number")
            }
            if change.device == store.deviceID {
                try db.execute(
                    sql: "UPDATE _changelog SET sseq = ? WHERE seq = ? AND sseq IS NULL",
                    arguments: [serverSequence, change.sequence])
                continue
            }
            text.removeAll(keepingCapacity: true)
            FieldChange.encode(change.fields, to: &text)
            try insert.execute(arguments: [
                serverSequence, change.device, change.sequence, change.author, table.entity.name, record, previous,
                Int64(change.operation.rawValue), Int64(bitPattern: change.timestamp.rawValue), change.base,
                String(decoding: text, as: UTF8.self),
            ])
            previous = serverSequence
        }
        if let previous {
            // Where the record's chain starts, for `rebuild` to read it; the state is written there.
            try db.execute(
                sql: "INSERT INTO _record_state (entity, record, state, folded, received) VALUES (?, ?, '', 0, ?)",
                arguments: [table.entity.name, record, previous])
        }
        try rebuild(table, record)
    }

    /// Deletes the changes received of a record (following its chain) and its merge state.
    private func dropReceived(_ table: EntityTable, _ record: String) throws {
        var next = try Int64.fetchOne(
            db, sql: "SELECT received FROM _record_state WHERE entity = ? AND record = ?",
            arguments: [table.entity.name, record])
        while let serverSequence = next {
            next = try Int64.fetchOne(db, sql: "SELECT prev FROM _received WHERE sseq = ?", arguments: [serverSequence])
            try db.execute(sql: "DELETE FROM _received WHERE sseq = ?", arguments: [serverSequence])
        }
        try db.execute(
            sql: "DELETE FROM _record_state WHERE entity = ? AND record = ?", arguments: [table.entity.name, record])
    }

    /// Applies changes a catch-up brought, whole (``Store/catchUp(_:options:)``): each replaces the
    /// copy of it this device received without some fields, or, never received (its entity was
    /// unknown), is added to its record's chain; then each record they touch is written again.
    /// This device's own changes are skipped: its changelog was translated when it upgraded.
    func applyCatchUp(_ changes: [Change]) throws {
        var touched: [(table: EntityTable, id: String)] = []
        var seen: Set<RecordRef> = []
        var text: [UInt8] = []
        for change in changes where change.device != store.deviceID {
            guard let table = store.tables[change.entity], let serverSequence = change.serverSequence else { continue }
            text.removeAll(keepingCapacity: true)
            FieldChange.encode(change.fields, to: &text)
            let fields = String(decoding: text, as: UTF8.self)
            try db.execute(sql: "UPDATE _received SET fields = ? WHERE sseq = ?", arguments: [fields, serverSequence])
            if db.changesCount == 0 {
                let head = try Int64.fetchOne(
                    db, sql: "SELECT received FROM _record_state WHERE entity = ? AND record = ?",
                    arguments: [change.entity, change.recordID])
                // Added at the end of the record's chain only (the answer is in server order).
                if let head, head > serverSequence { continue }
                try db.execute(
                    sql: """
                        INSERT INTO _received (sseq, device, seq, author, entity, record, prev, op, hlc, base, fields)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        serverSequence, change.device, change.sequence, change.author, change.entity,
                        change.recordID, head, Int64(change.operation.rawValue),
                        Int64(bitPattern: change.timestamp.rawValue), change.base, fields,
                    ])
                try db.execute(
                    sql: """
                        INSERT INTO _record_state (entity, record, state, folded, received) VALUES (?, ?, '', 0, ?)
                        ON CONFLICT (entity, record) DO UPDATE SET received = excluded.received
                        """, arguments: [change.entity, change.recordID, serverSequence])
            }
            if seen.insert(RecordRef(entity: change.entity, id: change.recordID)).inserted {
                touched.append((table, change.recordID))
            }
        }
        for (table, id) in touched { try rebuild(table, id) }
    }
}
