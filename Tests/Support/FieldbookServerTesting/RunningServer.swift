public import FieldbookServer
public import Foundation
public import Hummingbird
import Logging
import ServiceLifecycle

/// Runs a real server (Hummingbird, the given store, a real socket on a free loopback port)
/// while `body` runs.
public func withServer<T: Sendable>(
    storage: any SyncStorage, configure: (inout ServerConfiguration) -> Void = { _ in },
    _ body: @Sendable (URL) async throws -> T
) async throws -> T {
    var logger = Logger(label: "test-server")
    logger.logLevel = .warning
    var configuration = ServerConfiguration()
    configuration.port = 0
    configure(&configuration)
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    let app = try SyncServer.application(storage: storage, configuration: configuration, logger: logger) { port in
        continuation.yield(port)
    }
    return try await withRunning(app, port: ports, body)
}

/// Runs `app` while `body` runs with its loopback URL; `ports` yields the port it bound when it
/// starts. Then stops it as SIGTERM would (gracefully: requests in progress are answered), or,
/// if that takes more than ten seconds, by cancelling it.
public func withRunning<T: Sendable>(
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
