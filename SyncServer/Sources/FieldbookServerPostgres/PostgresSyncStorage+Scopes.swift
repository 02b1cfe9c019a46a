import FieldbookCore
import FieldbookServer
import FieldbookSync
import PostgresNIO

/// The scope index in the PostgreSQL store (``ScopeIndex``; docs/protocol.md, "Scopes"): the
/// tables and rules of ``FieldbookServer/SQLiteSyncStorage``'s, read and written in arrays.
extension PostgresSyncStorage {
    /// The most rows of each of an update's lists one statement writes (a rebuild writes many).
    static let scopeRowsPerStatement = 10_000

    // MARK: - Migration

    /// Creates the scope index's tables if they are missing, and builds the index again from every
    /// record and change when it was built for other scopes (or never): when a schema first
    /// declares scopes, or changes them. Runs in the migration's transaction, under its lock.
    func migrateScopeIndex(_ c: PostgresConnection, schema: Schema) async throws {
        // Tables made just now hold no index, whatever the meta says (as when the store's other
        // tables were copied without them).
        let existed =
            try await c.query("SELECT to_regclass(\(t("scope_log"))) IS NOT NULL", logger: logger)
            .collect().first?.decode(Bool.self) ?? false
        // Each record's keys, the records that follow each record, and each key's log, read by
        // index by a scoped pull.
        for statement in [
            """
            CREATE TABLE IF NOT EXISTS \(t("scope_records")) (entity TEXT NOT NULL, id TEXT NOT NULL,
                entry TEXT NOT NULL, PRIMARY KEY (entity, id))
            """,
            """
            CREATE TABLE IF NOT EXISTS \(t("scope_links")) (parent_entity TEXT NOT NULL, parent TEXT NOT NULL,
                entity TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (parent_entity, parent, entity, id))
            """,
            """
            CREATE TABLE IF NOT EXISTS \(t("scope_log")) (key TEXT NOT NULL, sseq BIGINT NOT NULL,
                entity TEXT NOT NULL, id TEXT NOT NULL, kind BIGINT NOT NULL, PRIMARY KEY (key, sseq, entity, id, kind))
            """,
        ] {
            try await c.query(PostgresQuery(unsafeSQL: statement), logger: logger)
        }
        let index = ScopeIndex(schema: schema)
        let signature = index.signature
        let built =
            try await c.query("SELECT value FROM \(unescaped: t("meta")) WHERE key = 'scope_index'", logger: logger)
            .collect().first?.decode(String.self) ?? ""
        guard built != signature || (!existed && index.isActive) else { return }
        // Pushes of processes already running wait until the index is whole again.
        try await c.query("SELECT pg_advisory_xact_lock(hashtext(\("fieldbook.push." + namespace)))", logger: logger)
        for table in ["scope_records", "scope_links", "scope_log"] {
            try await c.query(PostgresQuery(unsafeSQL: "DELETE FROM \(t(table))"), logger: logger)
        }
        if index.isActive {
            try await c.query(
                PostgresQuery(
                    unsafeSQL: "CREATE INDEX IF NOT EXISTS changes_record ON \(t("changes")) (entity, record, sseq)"),
                logger: logger)
            var records: [(key: PushPlan.RecordKey, state: RecordState)] = []
            for try await (entityName, id, state) in try await c.query(
                "SELECT entity, id, state FROM \(unescaped: t("records"))", logger: logger
            ).decode((String, String, String).self) {
                guard let entity = schema.entity(entityName) else { continue }
                records.append(
                    (
                        PushPlan.RecordKey(entity: entity.name, id: id),
                        try RecordState(encoded: Array(state.utf8), entity: entity)
                    ))
            }
            let entries = index.rebuild(records)
            var update = ScopeIndex.Update()
            for (key, entry) in entries {
                update.entries.append((key, entry))
                for parent in entry.parents { update.linked.append((parent, key)) }
            }
            for try await (sseq, entity, record) in try await c.query(
                """
                SELECT sseq, entity, record FROM \(unescaped: t("changes")) WHERE rejected IS NULL ORDER BY sseq
                """, logger: logger
            ).decode((Int64, String, String).self) {
                let key = PushPlan.RecordKey(entity: entity, id: record)
                for scopeKey in entries[key]?.keys.sorted() ?? [] {
                    update.log.append(ScopeLogEntry(key: scopeKey, serverSequence: sseq, record: key, kind: .change))
                }
            }
            try await writeScopeUpdate(c, update)
        }
        try await c.query(
            """
            INSERT INTO \(unescaped: t("meta")) (key, value) VALUES ('scope_index', \(signature))
            ON CONFLICT (key) DO UPDATE SET value = excluded.value
            """, logger: logger)
    }

    // MARK: - Keeping the index in step

    /// The index a push's merge judges a scoped token's changes by and then keeps in step: with
    /// the entries the write check needs (``ScopeIndex/missingForCheck(records:states:fresh:)``)
    /// for a scoped token. Nil when the schema declares no scopes. In the push's transaction.
    func scopeIndex(_ c: PostgresConnection, for plan: PushPlan, states: [PushPlan.RecordKey: RecordState])
        async throws -> ScopeIndex?
    {
        var index = ScopeIndex(schema: schema)
        guard index.isActive else { return nil }
        if plan.scopeKeys != nil {
            let missing = index.missingForCheck(records: plan.records, states: states, fresh: plan.fresh)
            try await loadScopeIndex(c, &index, entries: missing, children: [])
        }
        return index
    }

    /// Keeps the index in step with a push's merged records, reading what it lacks in rounds (one
    /// round trip each), then writing what changed. In the push's transaction, under its lock.
    func updateScopeIndex(_ c: PostgresConnection, _ index: ScopeIndex, _ merged: [PushPlan.Merged], head: Int64)
        async throws
    {
        var index = index
        while true {
            switch index.update(merged, head: head) {
            case .need(let entries, let children):
                try await loadScopeIndex(c, &index, entries: entries, children: children)
            case .done(let update):
                try await writeScopeUpdate(c, update)
                return
            }
        }
    }

    /// Reads the stored entries of `entries` into the index's ``ScopeIndex/loaded`` (nil for a
    /// record without one) and the records that follow each of `children` into its
    /// ``ScopeIndex/children``, in one round trip.
    private func loadScopeIndex(
        _ c: PostgresConnection, _ index: inout ScopeIndex, entries: [PushPlan.RecordKey],
        children: [PushPlan.RecordKey]
    ) async throws {
        guard !entries.isEmpty || !children.isEmpty else { return }
        for key in entries { index.loaded.updateValue(nil, forKey: key) }
        var found: [PushPlan.RecordKey: [PushPlan.RecordKey]] = [:]
        for try await (isLink, entity, id, entry, childEntity, child) in try await c.query(
            """
            SELECT false, s.entity, s.id, s.entry, NULL::text, NULL::text
            FROM unnest(\(entries.map(\.entity)), \(entries.map(\.id))) AS k(entity, id)
            JOIN \(unescaped: t("scope_records")) AS s ON s.entity = k.entity AND s.id = k.id
            UNION ALL
            SELECT true, l.parent_entity, l.parent, NULL, l.entity, l.id
            FROM unnest(\(children.map(\.entity)), \(children.map(\.id))) AS k(entity, id)
            JOIN \(unescaped: t("scope_links")) AS l ON l.parent_entity = k.entity AND l.parent = k.id
            """, logger: logger
        ).decode((Bool, String, String, String?, String?, String?).self) {
            let key = PushPlan.RecordKey(entity: entity, id: id)
            if isLink {
                guard let childEntity, let child else { continue }
                found[key, default: []].append(PushPlan.RecordKey(entity: childEntity, id: child))
            } else {
                index.loaded.updateValue(entry.flatMap(ScopeEntry.init(stored:)), forKey: key)
            }
        }
        for key in children {
            // In one order whatever plan the database chose (the order changes no keys, only the rounds).
            index.children[key] = (found[key] ?? []).sorted { ($0.entity, $0.id) < ($1.entity, $1.id) }
        }
    }

    /// Writes what an ``ScopeIndex/Update`` changes: the entries upserted, the links removed and
    /// added, the log entries added (each once): one statement for each
    /// ``scopeRowsPerStatement`` rows of each list.
    private func writeScopeUpdate(_ c: PostgresConnection, _ update: ScopeIndex.Update) async throws {
        let size = Self.scopeRowsPerStatement
        let longest = max(update.entries.count, update.unlinked.count, update.linked.count, update.log.count)
        for start in stride(from: 0, to: longest, by: size) {
            func part<T>(_ list: [T]) -> ArraySlice<T> {
                list[min(start, list.count)..<min(start + size, list.count)]
            }
            let entries = part(update.entries)
            let unlinked = part(update.unlinked)
            let linked = part(update.linked)
            let log = part(update.log)
            try await c.query(
                """
                WITH saved AS (
                    INSERT INTO \(unescaped: t("scope_records")) (entity, id, entry)
                    SELECT * FROM unnest(\(entries.map(\.record.entity)), \(entries.map(\.record.id)),
                        \(entries.map(\.entry.storedText)))
                    ON CONFLICT (entity, id) DO UPDATE SET entry = excluded.entry),
                unlinked AS (
                    DELETE FROM \(unescaped: t("scope_links")) AS l
                    USING unnest(\(unlinked.map(\.parent.entity)), \(unlinked.map(\.parent.id)),
                        \(unlinked.map(\.child.entity)), \(unlinked.map(\.child.id))) AS u(parent_entity, parent, entity, id)
                    WHERE l.parent_entity = u.parent_entity AND l.parent = u.parent AND l.entity = u.entity
                        AND l.id = u.id),
                linked AS (
                    INSERT INTO \(unescaped: t("scope_links")) (parent_entity, parent, entity, id)
                    SELECT * FROM unnest(\(linked.map(\.parent.entity)), \(linked.map(\.parent.id)),
                        \(linked.map(\.child.entity)), \(linked.map(\.child.id)))
                    ON CONFLICT DO NOTHING)
                INSERT INTO \(unescaped: t("scope_log")) (key, sseq, entity, id, kind)
                SELECT * FROM unnest(\(log.map(\.key)), \(log.map(\.serverSequence)), \(log.map(\.record.entity)),
                    \(log.map(\.record.id)), \(log.map { Int64($0.kind.rawValue) }))
                ON CONFLICT DO NOTHING
                """, logger: logger)
        }
    }

    // MARK: - A scoped pull

    /// A scoped token's page: the log entries of its keys after the cursor, cut at a server
    /// sequence number (all entries of one number in one page), turned into changes, entered
    /// records with their histories, and left records (``ScopeIndex/page(_:visible:)``).
    /// Read in one snapshot, so that the cursor moves past no change a later read would have found.
    func scopedPull(_ request: PullRequest, identity: Identity, scopes: [String]) async throws -> PullResponse {
        try await snapshot { c in
            let tokenKeys = ScopeIndex.tokenKeys(scopes)
            let keys = tokenKeys.sorted()
            func entries(after cursor: Int64, through last: Int64?, limit: Int64?) async throws -> [ScopeLogEntry] {
                var found: [ScopeLogEntry] = []
                // Each key's entries by the table's key, at most `limit` of them (no sort of every
                // entry after the cursor: an index scan per key), then merged by server sequence number.
                for try await (key, sseq, entity, id, kind) in try await c.query(
                    """
                    SELECT l.key, l.sseq, l.entity, l.id, l.kind FROM unnest(\(keys)::text[]) AS k(key)
                    CROSS JOIN LATERAL (
                        SELECT key, sseq, entity, id, kind FROM \(unescaped: t("scope_log"))
                        WHERE key = k.key AND sseq > \(cursor) AND sseq <= \(last ?? Int64.max)
                        ORDER BY sseq LIMIT \(limit)) AS l
                    ORDER BY l.sseq, l.key COLLATE "C", l.entity COLLATE "C", l.id COLLATE "C", l.kind LIMIT \(limit)
                    """, logger: logger
                ).decode((String, Int64, String, String, Int64).self) {
                    found.append(
                        ScopeLogEntry(
                            key: key, serverSequence: sseq, record: PushPlan.RecordKey(entity: entity, id: id),
                            kind: ScopeLogEntry.Kind(rawValue: Int(kind)) ?? .change))
                }
                return found
            }
            var found = try await entries(after: request.cursor, through: nil, limit: Int64(request.limit) + 1)
            let more = found.count > request.limit
            let cursor: Int64
            if more {
                cursor = found[request.limit - 1].serverSequence
                found = try await entries(after: request.cursor, through: cursor, limit: nil)
            } else {
                // Nothing more for these keys: the cursor moves past every change, seen or not.
                let head =
                    try await c.query("SELECT coalesce(max(sseq), 0) FROM \(unescaped: t("changes"))", logger: logger)
                    .collect().first?.decode(Int64.self) ?? 0
                cursor = max(request.cursor, head)
            }
            var recordKeys: [PushPlan.RecordKey: Set<String>] = [:]
            var records: [PushPlan.RecordKey] = []
            for entry in found where recordKeys.updateValue([], forKey: entry.record) == nil {
                records.append(entry.record)
            }
            for try await (entity, id, entry) in try await c.query(
                """
                SELECT s.entity, s.id, s.entry FROM unnest(\(records.map(\.entity)), \(records.map(\.id))) AS k(entity, id)
                JOIN \(unescaped: t("scope_records")) AS s ON s.entity = k.entity AND s.id = k.id
                """, logger: logger
            ).decode((String, String, String).self) {
                recordKeys[PushPlan.RecordKey(entity: entity, id: id)] = ScopeEntry(stored: entry)?.keys ?? []
            }
            var page = ScopeIndex.page(found.map { ($0.serverSequence, $0.record, $0.kind) }) {
                !(recordKeys[$0] ?? []).isDisjoint(with: tokenKeys)
            }
            page.entered = ScopeIndex.ordered(page.entered)
            page.left = ScopeIndex.ordered(page.left)
            let columns = "sseq, device, seq, author, entity, record, op, hlc, base, fields"
            let changes =
                page.changes.isEmpty
                ? []
                : try await self.changes(
                    c,
                    """
                    SELECT \(unescaped: columns) FROM \(unescaped: t("changes"))
                    WHERE sseq = ANY(\(page.changes)) AND rejected IS NULL ORDER BY sseq
                    """)
            var response = PullResponse(changes: changes, cursor: cursor, more: more)
            if !page.entered.isEmpty {
                var histories: [PushPlan.RecordKey: [Change]] = [:]
                for change in try await self.changes(
                    c,
                    """
                    SELECT \(unescaped: columns.split(separator: ", ").map { "c.\($0)" }.joined(separator: ", "))
                    FROM unnest(\(page.entered.map(\.entity)), \(page.entered.map(\.id))) AS k(entity, id)
                    JOIN \(unescaped: t("changes")) AS c ON c.entity = k.entity AND c.record = k.id
                    WHERE c.sseq <= \(cursor) AND c.rejected IS NULL ORDER BY c.sseq
                    """)
                {
                    histories[PushPlan.RecordKey(entity: change.entity, id: change.recordID), default: []].append(
                        change)
                }
                response.entered = page.entered.map {
                    PullResponse.Entered(record: .init(entity: $0.entity, id: $0.id), changes: histories[$0] ?? [])
                }
            }
            response.left = page.left.map { PullResponse.RecordRef(entity: $0.entity, id: $0.id) }
            // The names of the devices whose changes the page holds, and no others.
            let devices = Set(changes.map(\.device) + response.entered.flatMap { $0.changes.map(\.device) })
            if !devices.isEmpty {
                for try await (device, name) in try await c.query(
                    """
                    SELECT device, name FROM \(unescaped: t("devices"))
                    WHERE name IS NOT NULL AND device = ANY(\(devices.sorted()))
                    """, logger: logger
                ).decode((String, String).self) {
                    response.deviceNames[device] = name
                }
            }
            response.scopes = scopes
            response.scopeGeneration = identity.scopeGeneration
            return response
        }
    }

    /// The changes a query selects (its columns those of ``pull(_:identity:)``'s), read for the schema.
    private func changes(_ c: PostgresConnection, _ query: PostgresQuery) async throws -> [Change] {
        var changes: [Change] = []
        for try await (sseq, device, seq, author, entityName, record, op, hlc, base, fieldsText) in try await c.query(
            query, logger: logger
        ).decode((Int64, String, Int64, String, String, String, Int64, Int64, Int64, String).self) {
            guard let entity = schema.entity(entityName) else {
                throw PostgresSetupError("a stored change names entity '\(entityName)', which the schema lacks")
            }
            changes.append(
                Change(
                    sequence: seq, device: device, entity: entityName, recordID: record,
                    operation: ChangeOperation(rawValue: Int(op)) ?? .update,
                    timestamp: HybridTimestamp(rawValue: UInt64(bitPattern: hlc)), base: base,
                    fields: try FieldChange.decode(utf8: Array(fieldsText.utf8), entity: entity),
                    serverSequence: sseq, author: author))
        }
        return changes
    }

    /// Runs `body` in a read-only transaction that sees one snapshot of the database: every push
    /// committed before its first read, and none after (pushes commit in order, under their lock).
    private func snapshot<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", body)
    }
}
