import FieldbookCore
import FieldbookSchemas
import FieldbookServer
import FieldbookServerPostgres
import FieldbookServerProcess
import FieldbookStore
import FieldbookTesting
import Foundation
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle
import Testing

let schema = try! Schema(json: BundledSchemas.inspection)

/// A server store the protocol suites run against.
enum Backend: String, Sendable, CustomTestStringConvertible {
    case sqlite, postgres

    /// SQLite always; PostgreSQL too when FIELDBOOK_POSTGRES_URL names a database (scripts/test starts one).
    static let all: [Backend] = postgresURL == nil ? [.sqlite] : [.sqlite, .postgres]

    var testDescription: String { rawValue }
}

let postgresURL = ProcessInfo.processInfo.environment["FIELDBOOK_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }

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
func postgresClient() async -> PostgresClient {
    await postgres.begun.value
    return postgres.client
}

/// The server store the suites run against. Every protocol test goes through this one
/// function, so every store runs the same suites: an SQLite file in `dir`, or a PostgreSQL
/// schema of its own (``TemporaryDirectory/namespace``) in the database of FIELDBOOK_POSTGRES_URL.
func makeStorage(_ dir: TemporaryDirectory, _ backend: Backend, schema: Schema = schema) async throws
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
func makeServerProcess(_ dir: TemporaryDirectory, _ backend: Backend) throws -> ServerProcess {
    switch backend {
    case .sqlite: try ServerProcess(database: dir.path("server.sqlite"))
    case .postgres: try ServerProcess(database: postgresURL!, namespace: dir.namespace)
    }
}

/// Runs a real server (Hummingbird, SQLite storage, a real socket on a free loopback port)
/// while `body` runs.
func withServer<T: Sendable>(
    storage: any SyncStorage, configure: (inout ServerConfiguration) -> Void = { _ in },
    _ body: @Sendable (URL) async throws -> T
) async throws -> T {
    var logger = Logger(label: "test-server")
    logger.logLevel = .warning
    var configuration = ServerConfiguration()
    configuration.port = 0
    configure(&configuration)
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    let app = SyncServer.application(storage: storage, configuration: configuration, logger: logger) { port in
        continuation.yield(port)
    }
    return try await withRunning(app, port: ports, body)
}

/// Runs `app` while `body` runs with its loopback URL; `ports` yields the port it bound when it
/// starts. Then stops it as SIGTERM would (gracefully: requests in progress are answered), or,
/// if that takes more than ten seconds, by cancelling it.
func withRunning<T: Sendable>(
    _ app: some ApplicationProtocol, port ports: AsyncStream<Int>, _ body: @Sendable (URL) async throws -> T
) async throws -> T {
    var logger = Logger(label: "test-server")
    logger.logLevel = .warning
    let services = ServiceGroup(configuration: .init(services: [app], logger: logger))
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await services.run() }
        var iterator = ports.makeAsyncIterator()
        let port = await iterator.next()!
        let result: Result<T, any Error>
        do {
            result = .success(try await body(URL(string: "http://127.0.0.1:\(port)")!))
        } catch {
            result = .failure(error)
        }
        await services.triggerGracefulShutdown()
        group.addTask { try? await Task.sleep(for: .seconds(10)) }
        _ = try await group.next()  // the server stopped, or ten seconds passed
        group.cancelAll()
        while (try await group.next()) != nil {}
        return try result.get()
    }
}

func snapshot(_ storage: any SyncStorage) async throws -> [String: [String: [String: Value]]] {
    var result: [String: [String: [String: Value]]] = [:]
    for entity in schema.entities {
        var records: [String: [String: Value]] = [:]
        for (id, values) in try await storage.records(entity.name) { records[id] = values.filter { !$0.value.isNull } }
        result[entity.name] = records
    }
    return result
}

/// The references in `records` (a ``snapshot(_:)``) that name a record it does not hold, as
/// `entity id.field`: a silent dangling reference, which the merge must never leave.
func danglingReferences(_ records: [String: [String: [String: Value]]]) -> [String] {
    var result: [String] = []
    for entity in schema.entities {
        for (id, values) in records[entity.name] ?? [:] {
            for field in entity.fields {
                guard let target = field.target, case .text(let named)? = values[field.name] else { continue }
                if records[target]?[named] == nil { result.append("\(entity.name) \(id).\(field.name)") }
            }
        }
    }
    return result.sorted()
}
