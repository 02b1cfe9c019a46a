public import FieldbookCore
public import FieldbookServer
import FieldbookServerPostgres
public import FieldbookServerProcess
public import FieldbookTesting
import Foundation
import Logging
public import PostgresNIO
public import Testing

/// A server store the protocol suites run against.
public enum Backend: String, Sendable, CustomTestStringConvertible {
    case sqlite, postgres

    /// SQLite always; PostgreSQL too when FIELDBOOK_POSTGRES_URL names a database (scripts/test starts one).
    public static let all: [Backend] = postgresURL == nil ? [.sqlite] : [.sqlite, .postgres]

    public var testDescription: String { rawValue }
}

/// The database of the PostgreSQL suites (FIELDBOOK_POSTGRES_URL), or nil when they do not run.
public let postgresURL = ProcessInfo.processInfo.environment["FIELDBOOK_POSTGRES_URL"].flatMap {
    $0.isEmpty ? nil : $0
}

/// One client (and connection pool) for every PostgreSQL store of the test process, running from first use,
/// and a task that ends once its `run()` has begun.
private let postgres: (client: PostgresClient, begun: Task<Void, Never>) = {
    var logger = Logger(label: "test-postgres")
    logger.logLevel = .warning
    var configuration = try! PostgresSyncStorage.configuration(url: postgresURL!)
    configuration.options.maximumConnections = 40
    let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
    let (started, begun) = AsyncStream<Void>.makeStream()
    Task {
        begun.finish()
        await client.run()
    }
    return (client, Task { for await _ in started {} })
}()

/// The shared PostgreSQL client, once it runs (a lease made before its `run()` has begun waits, and logs a warning).
public func postgresClient() async -> PostgresClient {
    await postgres.begun.value
    return postgres.client
}

/// The server store the suites run against. Every protocol test goes through this one
/// function, so every store runs the same suites: an SQLite file in `dir`, or a PostgreSQL
/// schema of its own (``TemporaryDirectory/namespace``) in the database of FIELDBOOK_POSTGRES_URL.
public func makeStorage(_ dir: TemporaryDirectory, _ backend: Backend, schema: Schema) async throws
    -> any SyncStorage
{
    switch backend {
    case .sqlite:
        return try SQLiteSyncStorage(path: dir.path("server.sqlite"), schema: schema)
    case .postgres:
        var logger = Logger(label: "test-postgres")
        logger.logLevel = .warning
        let storage = try PostgresSyncStorage(
            client: await postgresClient(), schema: schema, namespace: dir.namespace, logger: logger)
        try await storage.migrate()
        return storage
    }
}

/// A real `fieldbook-server` process on the store `makeStorage(dir, backend)` opens: the SQLite
/// file `server.sqlite` in `dir`, or the namespace ``TemporaryDirectory/namespace`` of the
/// database of FIELDBOOK_POSTGRES_URL. Call it again for another process on the same PostgreSQL store.
public func makeServerProcess(_ dir: TemporaryDirectory, _ backend: Backend) throws -> ServerProcess {
    switch backend {
    case .sqlite: try ServerProcess(database: dir.path("server.sqlite"))
    case .postgres: try ServerProcess(database: postgresURL!, namespace: dir.namespace)
    }
}
