import ArgumentParser
import FieldbookCore
import FieldbookFiles
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
        subcommands: [Serve.self, Token.self, SchemaCommand.self, ServerIdentity.self, FilesCommand.self])
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
        let schema = try self.schema.map(readSchemaFile) ?? Schema(json: BundledSchemas.inspection)
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

/// The largest schema file read (a real one is a few tens of KiB).
let maxSchemaFileBytes = 1 << 20

/// A schema file that cannot be used, and why (printed without the usage text a mistyped
/// command gets).
struct SchemaFileError: Error, CustomStringConvertible {
    var description: String
}

/// The schema in the file at `path`, checked.
/// - Throws: ``SchemaFileError`` naming the file's problem: unreadable, too large, not JSON, invalid.
func readSchemaFile(_ path: String) throws -> Schema {
    guard let handle = FileHandle(forReadingAtPath: path) else {
        throw SchemaFileError(description: "cannot read the schema file \(path)")
    }
    defer { try? handle.close() }
    let data = try handle.read(upToCount: maxSchemaFileBytes + 1) ?? Data()
    guard data.count <= maxSchemaFileBytes else {
        throw SchemaFileError(
            description: "the schema file \(path) is larger than \(maxSchemaFileBytes / 1024) KiB; nothing was changed")
    }
    do {
        return try Schema(json: Array(data))
    } catch {
        throw SchemaFileError(
            description: "the schema file \(path) is not a valid schema; nothing was changed:\n\(error)")
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

    @Option(
        help: ArgumentHelp(
            "The directory of the files records refer to (default: the SQLite file's path + '.files'; required for PostgreSQL to keep files).",
            discussion: "Several server processes on one PostgreSQL database share one directory (a shared volume).",
            valueName: "dir"))
    var files: String?

    @Option(help: "The largest file accepted, in bytes.")
    var maxFileBytes = ServerConfiguration().maxFileBytes

    @Option(help: "The largest chunk of a file in one request, in bytes.")
    var maxChunkBytes = ServerConfiguration().maxChunkBytes

    @Option(
        help: ArgumentHelp(
            "Keep a file no record refers to this many days after it was last stored or referenced.",
            valueName: "days"))
    var fileGraceDays = 30.0

    @Option(
        help: ArgumentHelp(
            "Collect such files every this many hours (0: never; 'fieldbook-server files collect' does).",
            valueName: "hours"))
    var collectFilesEvery = 24.0

    func validate() throws {
        guard maxFileBytes > 0, maxChunkBytes > 0 else {
            throw ValidationError("--max-file-bytes and --max-chunk-bytes take numbers > 0")
        }
        guard fileGraceDays >= 0, collectFilesEvery >= 0 else {
            throw ValidationError("--file-grace-days and --collect-files-every take numbers ≥ 0")
        }
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
        configuration.filesDirectory =
            files ?? (PostgresSyncStorage.isURL(store.database) ? nil : store.database + ".files")
        configuration.maxFileBytes = maxFileBytes
        configuration.maxChunkBytes = maxChunkBytes
        configuration.fileGrace = .seconds(fileGraceDays * 86_400)
        configuration.fileCollectionInterval = collectFilesEvery == 0 ? nil : .seconds(collectFilesEvery * 3_600)
        let host = self.host
        try await store.withStorage(logger: logger) { storage in
            let app = try SyncServer.application(storage: storage, configuration: configuration, logger: logger) {
                port in
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

struct SchemaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract: "Publish a new version of the schema, list the versions, show one.",
        discussion: """
            Devices on any version the server holds keep syncing (docs/schema.md, "Versions across the fleet"); \
            a running server takes a published version at its next request.
            """,
        subcommands: [Publish.self, List.self, Show.self])

    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add the next version of the schema, if it is a compatible evolution of the newest.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The schema file of the new version.", completion: .file(extensions: ["json"]))
        var file: String
        @Flag(help: "Print {name, version, previous} as JSON.")
        var json = false

        func run() async throws {
            let schema = try readSchemaFile(file)
            let previous = try await store.withStorage { storage in
                let previous = storage.schema.version
                try await storage.publish(schema)
                return previous
            }
            if json {
                print(
                    JSON.object([
                        ("name", .string(schema.name)), ("version", .int(Int64(schema.version))),
                        ("previous", .int(Int64(previous))),
                    ]).serialized)
            } else {
                print("published schema \(schema.name) version \(schema.version) (after version \(previous))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the schema's versions, oldest first.")
        @OptionGroup var store: StoreOptions
        @Flag(help: "One JSON array of {name, version, published_at, entities, current}.")
        var json = false

        func run() async throws {
            let versions = try await store.withStorage { try await $0.schemaVersions() }
            let newest = versions.last?.schema.version
            if json {
                print(
                    JSON.array(
                        versions.map { v in
                            .object([
                                ("name", .string(v.schema.name)), ("version", .int(Int64(v.schema.version))),
                                ("published_at", v.publishedAt.map(JSON.string) ?? .null),
                                ("entities", .int(Int64(v.schema.entities.count))),
                                ("current", .bool(v.schema.version == newest)),
                            ])
                        }
                    ).serialized)
                return
            }
            for v in versions {
                print(
                    "\(v.schema.version)\t\(v.publishedAt ?? "-")\t\(v.schema.entities.count) entities"
                        + (v.schema.version == newest ? "\tcurrent" : ""))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one version: its entities and fields.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The version.")
        var version: Int
        @Flag(help: "Print the version's schema document (canonical form).")
        var json = false

        func run() async throws {
            let versions = try await store.withStorage { try await $0.schemaVersions() }
            guard let schema = versions.first(where: { $0.schema.version == version })?.schema else {
                throw ValidationError(
                    "the server holds no version \(version) (versions: "
                        + versions.map { String($0.schema.version) }.joined(separator: ", ") + ")")
            }
            if json {
                print(schema.json.serialized)
                return
            }
            print("schema \(schema.name) version \(schema.version)")
            for entity in schema.entities {
                print("\(entity.name)\(entity.retired ? " (retired)" : "")")
                for field in entity.fields {
                    var notes: [String] = [field.type.name, field.policy.name]
                    if field.required { notes.append("required") }
                    if let old = field.renamedFrom { notes.append("renamed from \(old)") }
                    if field.retired { notes.append("retired") }
                    print("  \(field.name)\t" + notes.joined(separator: ", "))
                }
            }
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

/// `fieldbook-server files collect`: the files no record refers to any more, deleted after a grace period.
struct FilesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "files", abstract: "The files records refer to.", subcommands: [Collect.self])

    struct Collect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete the files no record or open conflict refers to, untouched for the grace period.",
            discussion: """
                A file stays while a record's current value or an open conflict refers to it, and for the \
                grace period after it was last stored or referenced by a push: a device offline that long \
                may still need it. Partial uploads untouched as long are deleted too. 'serve' does this \
                every day by itself (--collect-files-every).
                """)

        @OptionGroup var store: StoreOptions

        @Option(
            help: ArgumentHelp("The files directory (default: the SQLite file's path + '.files').", valueName: "dir"))
        var files: String?

        @Option(help: ArgumentHelp("The grace period in days.", valueName: "days"))
        var graceDays = 30.0

        @Flag(help: "Say what would be deleted; delete nothing.")
        var dryRun = false

        @Flag(help: "Print one JSON object.")
        var json = false

        func run() async throws {
            guard graceDays >= 0 else { throw ValidationError("--grace-days takes days ≥ 0") }
            guard let root = files ?? (PostgresSyncStorage.isURL(store.database) ? nil : store.database + ".files")
            else {
                throw ValidationError("give the files directory with --files DIR (the one 'serve --files' uses)")
            }
            guard FileManager.default.fileExists(atPath: root) else {
                throw ValidationError("no files directory at \(root)")
            }
            let directory = try FileDirectory(root: root)
            let report = try await store.withStorage {
                try await FileCollection.collect(
                    storage: $0, directory: directory, grace: .seconds(graceDays * 86_400), dryRun: dryRun)
            }
            if json {
                print(
                    JSON.object([
                        ("removed", .array(report.removed.map(JSON.string))), ("kept", .int(Int64(report.kept))),
                        ("partials_removed", .int(Int64(report.partialsRemoved))), ("dry_run", .bool(dryRun)),
                    ]).serialized)
            } else {
                print(
                    "\(dryRun ? "would delete" : "deleted") \(report.removed.count) file(s) and "
                        + "\(report.partialsRemoved) partial upload(s); kept \(report.kept)")
            }
        }
    }
}
