import ArgumentParser
import FieldbookCore
import FieldbookJSON
import FieldbookSchemas
import FieldbookServer
import FieldbookServerPostgres
import Foundation
import Hummingbird
import Logging

/// `fieldbook-server`: the sync server and its administration.
@main
struct FieldbookServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fieldbook-server",
        abstract: "The Fieldbook sync server.",
        subcommands: [Serve.self, Token.self, ServerIdentity.self])
}

/// Options every command shares: where the database is and which schema it holds.
struct StoreOptions: ParsableArguments {
    @Option(help: "The server database: an SQLite file path, or postgres://USER:PASS@HOST:PORT/DB.")
    var database = "fieldbook-server.sqlite"

    @Option(help: "A schema file (default: the bundled inspection schema).", completion: .file(extensions: ["json"]))
    var schema: String?

    @Option(
        help: ArgumentHelp(
            "PostgreSQL only: the schema (namespace) holding the tables, created if missing.",
            discussion: "Lowercase letters, digits and '_'. Each namespace is a separate store with its own tokens."))
    var namespace = "public"

    @Option(
        name: .customLong("wait-for-database"),
        help: ArgumentHelp(
            "PostgreSQL only: how many seconds to wait for the database to answer at start (0: fail at once).",
            valueName: "seconds"))
    var waitForDatabase = 30

    func validate() throws {
        guard waitForDatabase >= 0 else { throw ValidationError("--wait-for-database takes seconds ≥ 0") }
        if namespace != "public" && !PostgresSyncStorage.isURL(database) {
            throw ValidationError("--namespace applies to a postgres:// database only")
        }
    }

    /// Opens the store (for PostgreSQL: runs a connection pool and migrates the tables) while `body` runs.
    func withStorage<T>(logger: Logger? = nil, _ body: (any SyncStorage) async throws -> T) async throws -> T {
        let bytes =
            try schema.map { Array(try Data(contentsOf: URL(fileURLWithPath: $0))) } ?? BundledSchemas.inspection
        let schema = try Schema(json: bytes)
        if PostgresSyncStorage.isURL(database) {
            var quiet = Logger(label: "fieldbook-server")
            quiet.logLevel = .warning
            var silent = quiet
            silent.logLevel = .critical  // each failed attempt is expected while waiting
            try await PostgresSyncStorage.waitForDatabase(
                url: database, timeout: .seconds(waitForDatabase), logger: silent
            ) { FileHandle.standardError.write(Data("fieldbook-server: \($0)\n".utf8)) }
            return try await PostgresSyncStorage.withStorage(
                url: database, schema: schema, namespace: namespace, logger: logger ?? quiet
            ) {
                try await body($0)
            }
        }
        return try await body(try SQLiteSyncStorage(path: database, schema: schema))
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve sync requests until SIGINT or SIGTERM.")

    @OptionGroup var store: StoreOptions

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on (0: any free port, printed at start).")
    var port = 8080

    @Option(help: "The log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Option(help: ArgumentHelp("Close a connection that sends nothing for this many seconds.", valueName: "seconds"))
    var idleTimeout = 30.0

    @Option(help: "The most connections open at once; keep it below the open-files limit (ulimit -n).")
    var maxConnections = ServerConfiguration().maxConnections

    @Option(
        help: "The most request bodies read and parsed at once (each may cost its size plus 24 bytes a JSON value).")
    var maxConcurrentBodies = ServerConfiguration().maxConcurrentBodies

    @Option(
        help: ArgumentHelp(
            "How long one body may take to arrive once its turn has come (slower: 503).", valueName: "seconds"))
    var bodyTimeout = 60.0

    @Option(help: "The largest push body in bytes.")
    var maxBodyBytes = ServerConfiguration().maxBodyBytes

    @Option(help: "The most JSON values in one push (refused as soon as reading reaches one more).")
    var maxJsonValues = ServerConfiguration().maxJSONValues

    @Option(
        help: """
            How many minutes ahead of this server's clock a change may be stamped; further ahead it is \
            refused (clock_ahead) and the device re-stamps it. 0: no bound.
            """)
    var maxClockAhead = 1440

    func validate() throws {
        guard idleTimeout > 0, bodyTimeout > 0 else {
            throw ValidationError("--idle-timeout and --body-timeout take seconds > 0")
        }
        guard maxConnections > 0, maxConcurrentBodies > 0, maxBodyBytes > 0, maxJsonValues > 0 else {
            throw ValidationError(
                "--max-connections, --max-concurrent-bodies, --max-body-bytes and --max-json-values take numbers > 0")
        }
        guard (0...52_560_000).contains(maxClockAhead) else {
            throw ValidationError("--max-clock-ahead must be from 0 to 52560000 minutes (100 years)")
        }
    }

    func run() async throws {
        var logger = Logger(label: "fieldbook-server")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        var configuration = ServerConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.idleTimeout = .milliseconds(Int64(idleTimeout * 1000))
        configuration.maxConnections = maxConnections
        configuration.bodyTimeout = .milliseconds(Int64(bodyTimeout * 1000))
        configuration.maxConcurrentBodies = maxConcurrentBodies
        configuration.maxBodyBytes = maxBodyBytes
        configuration.maxJSONValues = maxJsonValues
        configuration.maxClockAhead = maxClockAhead == 0 ? nil : .seconds(Int64(maxClockAhead) * 60)
        let host = self.host
        try await store.withStorage(logger: logger) { storage in
            let app = SyncServer.application(storage: storage, configuration: configuration, logger: logger) { port in
                // One line a script can wait for.
                FileHandle.standardOutput.write(Data("listening on http://\(host):\(port)\n".utf8))
            }
            try await app.runService()
        }
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make, list, rescope and revoke bearer tokens.",
        subcommands: [Create.self, List.self, Rescope.self, Revoke.self])

    /// The scope keys `--scope` options give: nil for `all`; refused when the schema declares
    /// scopes and none is given (a token with none would see everything by mistake).
    static func scopes(_ options: [String], schema: Schema) throws -> [String]? {
        if options.isEmpty {
            guard schema.scopes.isEmpty else {
                throw ValidationError(
                    "give the token a scope with --scope NAME=VALUE (repeat it for several) or --scope all; "
                        + "the schema's scopes: " + schema.scopes.map(\.name).joined(separator: ", "))
            }
            return nil
        }
        if options.contains("all") {
            guard options.count == 1 else { throw ValidationError("--scope all sees everything: give it alone") }
            return nil
        }
        return Array(Set(options)).sorted()
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a token for a device or person and print it (shown once).")
        @OptionGroup var store: StoreOptions
        @Option(help: "Who the token is for; stamped on every change made with it.")
        var name: String
        @Option(help: "The token's role, one of the schema's (e.g. office, inspector, auditor): what it may write.")
        var role: String?
        @Option(
            help: ArgumentHelp(
                "What the token sees and writes: a scope key of the schema, e.g. town=新度镇 (repeat it for several), or all.",
                valueName: "NAME=VALUE"))
        var scope: [String] = []

        func run() async throws {
            print(
                try await store.withStorage { storage in
                    if role == nil, !storage.schema.roles.isEmpty {
                        throw ValidationError(
                            "give the token a role with --role: "
                                + storage.schema.roles.map(\.name).joined(separator: ", "))
                    }
                    let scopes = try Token.scopes(scope, schema: storage.schema)
                    return try await storage.createToken(name: name, role: role, scopes: scopes)
                })
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (never their secrets).")
        @OptionGroup var store: StoreOptions
        @Flag(help: "One JSON array of {id, name, role, scopes, created_at, revoked}; scopes null: all.")
        var json = false

        func run() async throws {
            let tokens = try await store.withStorage { try await $0.tokens() }
            if json {
                let list: [JSON] = tokens.map { token in
                    let role: JSON = token.role.map { .string($0) } ?? .null
                    let scopes: JSON = token.scopes.map { .array($0.map(JSON.string)) } ?? .null
                    return .object([
                        ("id", .int(token.id)), ("name", .string(token.name)), ("role", role), ("scopes", scopes),
                        ("created_at", .string(token.createdAt)), ("revoked", .bool(token.revoked)),
                    ])
                }
                print(JSON.array(list).serialized)
                return
            }
            for token in tokens {
                let scopes = token.scopes.map { $0.joined(separator: ",") } ?? "all"
                print(
                    "\(token.id)\t\(token.name)\t\(token.role ?? "-")\t\(scopes)\t\(token.createdAt)\t\(token.revoked ? "revoked" : "active")"
                )
            }
        }
    }

    struct Rescope: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give every token of a name another scope; their devices start again at their next sync.")
        @OptionGroup var store: StoreOptions
        @Option(help: "The name the tokens were made for.")
        var name: String
        @Option(
            help: ArgumentHelp(
                "The new scope: a scope key of the schema (repeat it for several), or all.", valueName: "NAME=VALUE"))
        var scope: [String] = []

        func run() async throws {
            let count = try await store.withStorage { storage in
                try await storage.rescope(name: name, scopes: try Token.scopes(scope, schema: storage.schema))
            }
            guard count > 0 else { throw ValidationError("no active token is named '\(name)'") }
            print("rescoped \(count) token\(count == 1 ? "" : "s")")
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke every token of a name; requests with them get 401.")
        @OptionGroup var store: StoreOptions
        @Option(help: "The name the tokens were made for.")
        var name: String

        func run() async throws {
            let count = try await store.withStorage { try await $0.revokeTokens(name: name) }
            print("revoked \(count) token\(count == 1 ? "" : "s")")
        }
    }
}

struct ServerIdentity: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity",
        abstract: "Show or renew the store's identity (renew it after restoring the store from a backup).",
        subcommands: [Show.self, Renew.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the store's identity.")
        @OptionGroup var store: StoreOptions

        func run() async throws {
            print(try await store.withStorage { try await $0.standing(device: "").identity })
        }
    }

    struct Renew: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give the store a new identity and print it.",
            discussion: """
                Run it after restoring the store from a backup, before any server serves it: devices \
                then push every change the restored store lacks and pull from the start. Without it \
                they refuse to sync with a store that lost changes they have seen (cursor_ahead).
                """)
        @OptionGroup var store: StoreOptions

        func run() async throws {
            print(try await store.withStorage { try await $0.renewIdentity() })
        }
    }
}
