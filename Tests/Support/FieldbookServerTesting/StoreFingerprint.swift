public import FieldbookServer
import FieldbookServerPostgres
public import FieldbookTesting
import GRDB
import Logging
import PostgresNIO

/// Every row of every table of a server store, as text, table by table: two fingerprints are
/// equal when the store holds the same data (tokens, devices, changes, records, conflicts, meta).
///
/// Read straight from the database, not through ``SyncStorage``, so that it sees whatever
/// a request wrote, whether or not the storage's own reads would show it.
public func fingerprint(_ storage: any SyncStorage, _ dir: TemporaryDirectory) async throws -> [String: [String]] {
    switch storage {
    case is SQLiteSyncStorage:
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: dir.path("server.sqlite"), configuration: configuration)
        return try await queue.read { db in
            var tables: [String: [String]] = [:]
            for table in try String.fetchAll(
                db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            {
                tables[table] = try Row.fetchAll(db, sql: "SELECT * FROM \"\(table)\"").map(\.description).sorted()
            }
            return tables
        }
    case let postgres as PostgresSyncStorage:
        var tables: [String: [String]] = [:]
        let names = try await postgres.client.query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = \(postgres.namespace) ORDER BY 1",
            logger: Logger(label: "test-postgres")
        ).collect().map { try $0.decode(String.self) }
        for table in names {
            tables[table] = try await postgres.client.query(
                PostgresQuery(unsafeSQL: "SELECT t::text FROM \"\(postgres.namespace)\".\"\(table)\" t"),
                logger: Logger(label: "test-postgres")
            ).collect().map { try $0.decode(String.self) }.sorted()
        }
        return tables
    default:
        fatalError("no fingerprint for \(type(of: storage))")
    }
}
