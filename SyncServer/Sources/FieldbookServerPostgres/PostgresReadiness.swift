import FieldbookServer
import Foundation
public import Logging
public import PostgresNIO

/// Outages of the PostgreSQL store: telling them from failed requests, checking readiness, waiting at start.
extension PostgresSyncStorage {
    /// How long connecting to the database may take before the attempt counts as failed.
    public static let connectTimeout: Duration = .seconds(3)

    /// A single-connection configuration (the readiness check's) for the database at `url`.
    /// - Throws: ``PostgresSetupError`` as ``configuration(url:)`` does.
    public static func connectionConfiguration(url: String) throws -> PostgresConnection.Configuration {
        let pool = try configuration(url: url)
        var tls = PostgresConnection.Configuration.TLS.disable
        if URLComponents(string: url)?.queryItems?.first(where: { $0.name == "sslmode" })?.value != "disable" {
            do {
                tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            } catch {
                throw PostgresSetupError("TLS could not be set up for the database connection")
            }
        }
        var configuration = PostgresConnection.Configuration(
            host: pool.host ?? "localhost", port: pool.port ?? 5432, username: pool.username, password: pool.password,
            database: pool.database, tls: tls)
        configuration.options.connectTimeout = .nanoseconds(Int64(connectTimeout / .nanoseconds(1)))
        return configuration
    }

    /// Connects on a connection of its own (not the pool's) and runs `SELECT 1`.
    public func checkReady() async throws {
        guard let probe else {
            try await client.withConnection { _ = try await $0.query("SELECT 1", logger: logger) }
            return
        }
        try await Self.ping(probe, logger: logger)
    }

    static func ping(_ configuration: PostgresConnection.Configuration, logger: Logger) async throws {
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        do {
            _ = try await connection.query("SELECT 1", logger: logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }

    /// Connection failures, a closed or shut-down server, and the pool giving up on connecting are outages;
    /// errors the server reports about a query (other than its shutting down) are not.
    public func isOutage(_ error: any Error) -> Bool {
        if let error = error as? PSQLError {
            switch error.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed,
                .failedToAddSSLHandler, .sslUnsupported:
                return true
            case .server:
                // Class 08: connection exception; 57P01–57P03: shutting down, crashed, not accepting yet.
                let state = error.serverInfo?[.sqlState] ?? ""
                return state.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(state)
            default:
                return false
            }
        }
        // The pool's own errors (its circuit breaker tripped: it could not connect for a while).
        return String(reflecting: type(of: error)).hasSuffix("ConnectionPoolError")
    }

    /// Waits until the database at `url` answers, for at most `timeout`; says once on `notice` that it waits.
    /// - Throws: ``PostgresSetupError`` with a plain message if it still does not answer.
    public static func waitForDatabase(url: String, timeout: Duration, logger: Logger, notice: (String) -> Void)
        async throws
    {
        let configuration = try connectionConfiguration(url: url)
        let deadline = ContinuousClock.now + timeout
        var told = false
        while true {
            do {
                try await ping(configuration, logger: logger)
                if told { notice("the database answers") }
                return
            } catch let error as PSQLError
                where error.code == .server && !(error.serverInfo?[.sqlState] ?? "").hasPrefix("57P0")
            {
                // It answers but refuses (a wrong password, no such database): waiting would not help.
                throw PostgresSetupError(
                    "the database refused the connection (SQLSTATE \(error.serverInfo?[.sqlState] ?? "?")); check the URL's user, password and database"
                )
            } catch {
                guard ContinuousClock.now < deadline else {
                    throw PostgresSetupError(
                        "the database at \(configuration.host ?? "?"):\(configuration.port ?? 0) did not answer within \(timeout); is it running?"
                    )
                }
                if !told {
                    notice(
                        "waiting up to \(timeout) for the database at \(configuration.host ?? "?"):\(configuration.port ?? 0)"
                    )
                    told = true
                }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }
}
