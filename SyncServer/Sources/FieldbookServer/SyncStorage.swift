public import FieldbookCore
import FieldbookJSON
public import FieldbookSync

/// A token as listed by an administrator: never the secret itself.
public struct TokenInfo: Sendable, Hashable {
    /// The token's id in the store (``Identity/tokenID`` of its requests).
    public var id: Int64
    /// The name it was created with: a person or a device, stamped on every change it pushes.
    public var name: String
    /// When it was created, as the store writes times (ISO 8601, UTC).
    public var createdAt: String
    /// Whether it has been revoked: its requests are refused (401).
    public var revoked: Bool
    /// Its role; nil for a token made without one (it may write everything).
    public var role: String?
    /// Its scope keys (`town=新度镇`); nil for a token that sees everything.
    public var scopes: [String]?

    /// A listing entry from its parts.
    public init(
        id: Int64, name: String, createdAt: String, revoked: Bool, role: String? = nil, scopes: [String]? = nil
    ) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
        self.revoked = revoked
        self.role = role
        self.scopes = scopes
    }
}

/// Where the server keeps changes, merged records, conflicts and tokens.
///
/// One protocol, several stores (SQLite embedded, PostgreSQL): the HTTP
/// layer calls only these methods, and one conformance suite tests every store.
///
/// ## Topics
/// - ``SQLiteSyncStorage``
public protocol SyncStorage: Sendable {
    /// The schema the store holds records of: its newest version.
    var schema: Schema { get }

    /// Every version of the schema the store holds, oldest first (a store made before it kept a
    /// history holds the version it had then, and those after).
    func schemaVersions() async throws -> [PublishedSchema]

    /// Makes `schema` the store's newest version, if it is a compatible evolution of the one it
    /// holds (docs/schema.md, "Versions across the fleet"): renamed fields are renamed in every
    /// change, merge state and conflict, in one transaction with the new version.
    /// - Throws: ``SchemaRefusal`` listing every problem; nothing is changed.
    func publish(_ schema: Schema) async throws

    /// Takes the newest version the store holds, if another process published one since this one
    /// read it; returns it.
    @discardableResult
    func refreshSchema() async throws -> Schema

    /// Applies a push all or nothing: new changes get server sequence numbers, are stamped with
    /// `identity`'s name and merged; changes already received (same device and sequence number,
    /// same content) get their earlier numbers again.
    /// - Throws: ``WireError`` (`forbidden`, `sequence_reused`, `sequence_gap`); nothing is applied.
    func push(_ request: PushRequest, identity: Identity) async throws -> PushResponse

    /// The changes after `request.cursor`, in server order, at most `request.limit`.
    func pull(_ request: PullRequest, identity: Identity) async throws -> PullResponse

    /// The same page as ``pull(_:identity:)``, as the JSON text of its pull response
    /// (``PullResponse/encode(to:)``). A store may write it without decoding what it stored.
    func pullResponseBody(_ request: PullRequest, identity: Identity) async throws -> PullBody

    /// The open conflicts, as the records' own changes leave them (``conflicts()`` also leaves out
    /// those of records that follow a deleted record).
    func storedConflicts() async throws -> [Conflict]

    /// The number of changes accepted.
    func changeCount() async throws -> Int

    /// The merge state of every record of an entity the store holds, deleted ones included, by id
    /// (``records(_:)`` says which exist).
    func states(_ entity: String) async throws -> [(id: String, state: RecordState)]

    /// What decides whether a scoped token may read the file `sha256` (``mayRead(file:identity:)``):
    /// the scope keys of the records whose accepted changes referred to it, and whether token
    /// `token` uploaded it whole under scope generation `generation`.
    func fileReaders(_ sha256: String, token: Int64, generation: Int64) async throws -> FileReaders

    /// Notes that token `token`, under scope generation `generation`, uploaded the file `sha256`
    /// whole: it holds the bytes, so it may read the file and refer to it.
    func noteUploaded(_ sha256: String, token: Int64, generation: Int64) async throws

    /// The identity a token stands for, or nil if it is unknown or revoked.
    func authenticate(token: String) async throws -> Identity?

    /// Makes a new token for `name` with `role` and scope keys `scopes` and returns it; only its
    /// hash is stored. A token with no role may write everything (`fieldbook-server token create`
    /// asks for a role when the schema declares roles); one with no scopes sees everything.
    /// - Throws: ``TokenError`` if the schema declares no role called `role`, or a scope key names
    ///   no scope of the schema.
    func createToken(name: String, role: String?, scopes: [String]?) async throws -> String

    /// Gives every unrevoked token of `name` the scope keys `scopes` (nil: everything); returns
    /// how many it changed. Each device of theirs starts again at its next pull (`scope_changed`).
    /// - Throws: ``TokenError`` if a scope key names no scope of the schema.
    func rescope(name: String, scopes: [String]?) async throws -> Int

    /// Revokes every token of `name`; returns how many were revoked.
    func revokeTokens(name: String) async throws -> Int

    /// Every token, without secrets.
    func tokens() async throws -> [TokenInfo]

    /// What a request is checked against before it is served: the store's identity, its last
    /// server sequence number, and what it holds of `device`'s changes.
    func standing(device: String) async throws -> StoreStanding

    /// Gives the store a new identity and returns it. An operator does this after restoring the
    /// store from a backup (docs/deployment.md), with no server running on it: every device then
    /// starts again with it (docs/protocol.md, "Server identity").
    func renewIdentity() async throws -> String

    /// Returns once the store answers a trivial query; throws if it cannot be reached (the server's
    /// readiness, `/ready`). It must answer or throw within a few seconds.
    func checkReady() async throws

    /// Whether `error`, thrown by this store, means the store cannot be reached now (an outage, answered
    /// 503 `unavailable`) rather than a failure of the request (500 `internal`).
    func isOutage(_ error: any Error) -> Bool
}

/// A store's identity and how far it has got, as ``SyncStorage/standing(device:)`` reads them.
public struct StoreStanding: Sendable, Hashable {
    /// The store's identity, a UUID: new when the store is made, renewed when it is restored.
    public var identity: String
    /// The last server sequence number given out (0 if none).
    public var head: Int64
    /// The last of the device's sequence numbers the store holds (0 if none).
    public var deviceSequence: Int64
    /// The token that owns the device, if it has pushed.
    public var deviceToken: Int64?
    /// The newest schema version the store holds, as read with the rest: a process that runs an
    /// older one (another published since) takes the newest (``SyncStorage/refreshSchema()``).
    public var schemaVersion: Int?

    /// A standing from its parts.
    public init(identity: String, head: Int64, deviceSequence: Int64, deviceToken: Int64?, schemaVersion: Int? = nil) {
        self.schemaVersion = schemaVersion
        self.identity = identity
        self.head = head
        self.deviceSequence = deviceSequence
        self.deviceToken = deviceToken
    }

    /// Refuses a request whose numbers count in another identity (`server_changed`, with this
    /// identity and what the store holds of the device's changes, if `token` owns the device),
    /// and a pull whose cursor, or a push whose change's base, is past the last change
    /// (`cursor_ahead`): the store lost changes the device has seen, and was not given a new identity.
    public func check(server: String?, cursor: Int64?, token: Int64) throws(WireError) {
        if let server, server != identity {
            throw WireError(
                .serverChanged,
                "the server was restored or replaced since this device last synced: push every change again and pull from the start",
                serverChanged: .init(identity: identity, acknowledged: deviceToken == token ? deviceSequence : 0))
        }
        if let cursor, cursor > head {
            throw WireError(
                .cursorAhead,
                "this device has seen server change \(cursor), past the server's last (\(head)): the server lost changes; its operator must run 'fieldbook-server identity renew'"
            )
        }
    }
}

extension SyncStorage {
    /// Makes a new token for `name` with no role: it may write everything.
    public func createToken(name: String) async throws -> String {
        try await createToken(name: name, role: nil, scopes: nil)
    }

    /// Makes a new token for `name` with `role` that sees everything.
    public func createToken(name: String, role: String?) async throws -> String {
        try await createToken(name: name, role: role, scopes: nil)
    }

    /// Checks that `scopes` may be given to a token: nil, or keys `NAME=VALUE` of the schema's scopes.
    public func checkScopes(_ scopes: [String]?) throws {
        guard let scopes else { return }
        if let problem = schema.scopeProblem(scopes) { throw TokenError(problem) }
    }

    /// Checks that `role` may be given to a token: nil, or one of the schema's roles.
    public func checkRole(_ role: String?) throws {
        if let role {
            guard schema.role(role) != nil else {
                let known = schema.roles.map(\.name).joined(separator: ", ")
                throw TokenError(
                    schema.roles.isEmpty
                        ? "the schema declares no roles; make the token without --role"
                        : "the schema has no role '\(role)' (its roles: \(known))")
            }
        }
    }

    public func checkReady() async throws {}

    public func isOutage(_ error: any Error) -> Bool { false }

    public func pullResponseBody(_ request: PullRequest, identity: Identity) async throws -> PullBody {
        PullBody(try await pull(request, identity: identity))
    }
}

extension Identity {
    /// Refuses a pull by a device whose records were pulled or pushed under another scope
    /// generation of this token (it was rescoped since): `scope_changed`, and the device starts
    /// again. A device that names no generation is refused past cursor 0 unless the token was never
    /// rescoped.
    public func checkScope(of pull: PullRequest) throws(WireError) {
        let stale =
            pull.scopeGeneration.map { $0 != scopeGeneration } ?? (pull.cursor > 0 && scopeGeneration != 0)
        if stale {
            throw WireError(
                .scopeChanged,
                "this token was given another scope since this device last pulled; drop what was pulled under "
                    + "the old scope and pull again from cursor 0 (a Fieldbook device does this itself)")
        }
    }
}

/// How a store keeps a token's scope keys: a JSON array of strings, or NULL for everything.
package enum TokenScopes {
    package static func text(_ scopes: [String]?) -> String? {
        scopes.map { JSON.array($0.map(JSON.string)).serialized }
    }

    package static func read(_ text: String?) -> [String]? {
        guard let text, case .array(let list)? = try? JSON(parsing: Array(text.utf8)) else { return nil }
        return list.compactMap { if case .string(let s) = $0 { s } else { nil } }
    }
}

/// A token cannot be made as asked: its role is not one the schema declares.
public struct TokenError: Error, CustomStringConvertible {
    /// What is wrong and what to do, for the operator.
    public var description: String
    package init(_ description: String) { self.description = description }
}

/// A pulled page written as the body of its answer, with what the answer's headers repeat of it
/// (``PullResponse/cursorHeader``): a device may ask for the next page before it reads this one.
public struct PullBody: Sendable {
    /// The JSON text of the pull response.
    public var bytes: [UInt8]
    /// The page's ``PullResponse/cursor``.
    public var cursor: Int64
    /// The page's ``PullResponse/more``.
    public var more: Bool
    /// The page's ``PullResponse/scopeGeneration``, if it names one.
    public var scopeGeneration: Int64?

    public init(bytes: [UInt8], cursor: Int64, more: Bool, scopeGeneration: Int64?) {
        self.bytes = bytes
        self.cursor = cursor
        self.more = more
        self.scopeGeneration = scopeGeneration
    }

    /// A page made whole, written (but for its role: the caller adds that).
    public init(_ response: PullResponse) {
        var response = response
        response.role = nil
        var out: [UInt8] = []
        response.encode(to: &out)
        self.init(bytes: out, cursor: response.cursor, more: response.more, scopeGeneration: response.scopeGeneration)
    }
}
