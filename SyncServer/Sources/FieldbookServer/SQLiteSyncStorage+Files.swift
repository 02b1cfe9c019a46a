import FieldbookCore
import FieldbookSQLite
import FieldbookSync
import GRDB

/// What the embedded store keeps to decide who may read a file (``SyncStorage/mayRead(file:identity:)``):
/// `file_refs`, the records whose accepted changes referred to each file, and `file_uploads`, the
/// files each token uploaded whole under each of its scope generations.
extension SQLiteSyncStorage {
    /// Creates `file_refs` and `file_uploads` if they are missing, and fills `file_refs` from the
    /// stored changes when it is made: for a store made before it was kept, or whose other tables
    /// were copied without it. In the opening transaction.
    static func migrateFileTables(_ db: Database, schema: Schema) throws {
        let existed = try db.tableExists("file_refs")
        try db.execute(
            sql: """
                CREATE TABLE IF NOT EXISTS file_refs (
                    sha256 TEXT NOT NULL, entity TEXT NOT NULL, id TEXT NOT NULL,
                    PRIMARY KEY (sha256, entity, id)) STRICT, WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS file_uploads (
                    sha256 TEXT NOT NULL, token INTEGER NOT NULL, generation INTEGER NOT NULL,
                    PRIMARY KEY (sha256, token, generation)) STRICT, WITHOUT ROWID;
                """)
        let entities = schema.entities.filter(\.refersToFiles)
        guard !existed, !entities.isEmpty else { return }
        let marks = entities.map { _ in "?" }.joined(separator: ", ")
        let rows = try Row.fetchCursor(
            db, sql: "SELECT entity, record, fields FROM changes WHERE rejected IS NULL AND entity IN (\(marks))",
            arguments: StatementArguments(entities.map(\.name)))
        var references: [FileReference] = []
        while let row = try rows.next() {
            let entity = schema.entity(row[0])!
            let fields: String = row[2]
            references += FileReference.of(
                try FieldChange.decode(utf8: Array(fields.utf8), entity: entity), entity: entity, id: row[1])
        }
        try insertFileReferences(db, references)
    }

    /// Adds `references` (each once), in the push's transaction.
    static func insertFileReferences(_ db: Database, _ references: [FileReference]) throws {
        guard !references.isEmpty else { return }
        let insert = RawStatement(
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO file_refs (sha256, entity, id) VALUES (?, ?, ?)"))
        for reference in references {
            insert.bind(1, reference.sha256)
            insert.bind(2, reference.entity)
            insert.bind(3, reference.id)
            try insert.run(db)
        }
    }

    public func fileReaders(_ sha256: String, token: Int64, generation: Int64) async throws -> FileReaders {
        try await pool.read { db in
            let entries = try String.fetchAll(
                db,
                sql: """
                    SELECT s.entry FROM file_refs AS f JOIN scope_records AS s ON s.entity = f.entity AND s.id = f.id
                    WHERE f.sha256 = ?
                    """, arguments: [sha256])
            let uploaded = try Bool.fetchOne(
                db, sql: "SELECT 1 FROM file_uploads WHERE sha256 = ? AND token = ? AND generation = ?",
                arguments: [sha256, token, generation])
            return FileReaders(
                referrerKeys: entries.map { ScopeEntry(stored: $0)?.keys ?? [] }, uploaded: uploaded ?? false)
        }
    }

    public func noteUploaded(_ sha256: String, token: Int64, generation: Int64) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT OR IGNORE INTO file_uploads (sha256, token, generation) VALUES (?, ?, ?)",
                arguments: [sha256, token, generation])
        }
    }
}
