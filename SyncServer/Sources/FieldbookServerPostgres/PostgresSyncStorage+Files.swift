import FieldbookCore
public import FieldbookServer
import FieldbookSync
import PostgresNIO

/// What the PostgreSQL store keeps to decide who may read a file
/// (``FieldbookServer/SyncStorage/mayRead(file:identity:)``): the tables of
/// ``FieldbookServer/SQLiteSyncStorage``'s, written in arrays.
extension PostgresSyncStorage {
    /// Creates `file_refs` (the records whose accepted changes referred to each file) and
    /// `file_uploads` (the files each token uploaded whole, by scope generation) if they are
    /// missing, and fills `file_refs` from the stored changes when it is made: for a store made
    /// before it was kept, or whose other tables were copied without it. Runs in the migration's
    /// transaction, under its lock.
    func migrateFileTables(_ c: PostgresConnection, schema: Schema) async throws {
        let existed =
            try await c.query("SELECT to_regclass(\(t("file_refs"))) IS NOT NULL", logger: logger)
            .collect().first?.decode(Bool.self) ?? false
        for statement in [
            """
            CREATE TABLE IF NOT EXISTS \(t("file_refs")) (sha256 TEXT NOT NULL, entity TEXT NOT NULL, id TEXT NOT NULL,
                PRIMARY KEY (sha256, entity, id))
            """,
            """
            CREATE TABLE IF NOT EXISTS \(t("file_uploads")) (sha256 TEXT NOT NULL, token BIGINT NOT NULL,
                generation BIGINT NOT NULL, PRIMARY KEY (sha256, token, generation))
            """,
        ] {
            try await c.query(PostgresQuery(unsafeSQL: statement), logger: logger)
        }
        let entities = schema.entities.filter(\.refersToFiles)
        guard !existed, !entities.isEmpty else { return }
        // Pushes of processes already running wait until the references are all there.
        try await c.query("SELECT pg_advisory_xact_lock(hashtext(\("fieldbook.push." + namespace)))", logger: logger)
        var references: [FileReference] = []
        for try await (entityName, record, fields) in try await c.query(
            """
            SELECT entity, record, fields FROM \(unescaped: t("changes"))
            WHERE rejected IS NULL AND entity = ANY(\(entities.map(\.name)))
            """, logger: logger
        ).decode((String, String, String).self) {
            let entity = schema.entity(entityName)!
            references += FileReference.of(
                try FieldChange.decode(utf8: Array(fields.utf8), entity: entity), entity: entity, id: record)
        }
        try await insertFileReferences(c, references)
    }

    /// Adds `references` (each once), in the push's transaction: one statement.
    func insertFileReferences(_ c: PostgresConnection, _ references: [FileReference]) async throws {
        guard !references.isEmpty else { return }
        try await c.query(
            """
            INSERT INTO \(unescaped: t("file_refs")) (sha256, entity, id)
            SELECT * FROM unnest(\(references.map(\.sha256)), \(references.map(\.entity)), \(references.map(\.id)))
            ON CONFLICT DO NOTHING
            """, logger: logger)
    }

    public func fileReaders(_ sha256: String, token: Int64, generation: Int64) async throws -> FileReaders {
        var keys: [Set<String>] = []
        var uploaded = false
        for try await (upload, entry) in try await client.query(
            """
            SELECT false, s.entry FROM \(unescaped: t("file_refs")) AS f
            JOIN \(unescaped: t("scope_records")) AS s ON s.entity = f.entity AND s.id = f.id
            WHERE f.sha256 = \(sha256)
            UNION ALL
            SELECT true, NULL FROM \(unescaped: t("file_uploads"))
            WHERE sha256 = \(sha256) AND token = \(token) AND generation = \(generation)
            """, logger: logger
        ).decode((Bool, String?).self) {
            if upload { uploaded = true } else { keys.append(entry.flatMap(ScopeEntry.init(stored:))?.keys ?? []) }
        }
        return FileReaders(referrerKeys: keys, uploaded: uploaded)
    }

    public func noteUploaded(_ sha256: String, token: Int64, generation: Int64) async throws {
        try await client.query(
            """
            INSERT INTO \(unescaped: t("file_uploads")) (sha256, token, generation)
            VALUES (\(sha256), \(token), \(generation)) ON CONFLICT DO NOTHING
            """, logger: logger)
    }
}
