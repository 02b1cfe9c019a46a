import FieldbookCore
import FieldbookJSON
public import FieldbookSync
public import Hummingbird
public import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Limits and address of a sync server.
public struct ServerConfiguration: Sendable {
    /// The address to listen on: loopback by default; `0.0.0.0` listens on every interface.
    public var host = "127.0.0.1"
    /// The TCP port to listen on; 0 takes any free port (the server says which when it starts).
    public var port = 8080
    /// The largest request body accepted, in bytes (larger: 413 `body_too_large`).
    public var maxBodyBytes = 32 * 1024 * 1024
    /// The most changes in one push (more: 413 `batch_too_large`).
    public var maxBatch = 10_000
    /// The most changes in one pull page; a larger `limit` is lowered to it.
    public var maxPage = 10_000
    /// The largest pull request body, in bytes: a pull is a few hundred bytes (larger: 413 `body_too_large`).
    public var maxPullBodyBytes = 64 * 1024
    /// The most JSON values (numbers, strings, arrays, objects…) in one push, counted while it is read:
    /// a push of more is refused with 413 `batch_too_large` before the rest is read. The parsed form of a
    /// value costs 24 bytes, so this bounds a push's parsed size (48 MB at the default).
    public var maxJSONValues = 2_000_000
    /// The most request bodies read and parsed at once; the others wait their turn, unread.
    /// With ``maxBodyBytes`` and ``maxJSONValues`` this bounds the memory requests cost.
    public var maxConcurrentBodies = 2
    /// How long one body may take to arrive and be parsed once its turn has come; a slower one
    /// (a client trickling its body) gets 503 `unavailable`, so it cannot hold a turn for long.
    public var bodyTimeout: Duration = .seconds(60)
    /// A connection that sends nothing this long is closed: an idle connection, one stalled in its
    /// headers, one stalled in its body. A request being answered is not cut.
    public var idleTimeout: Duration = .seconds(30)
    /// The most connections open at once; more wait in the listen queue until one closes.
    /// Keep it below the process's open-files limit (`ulimit -n`), with room for the database.
    public var maxConnections = 800
    /// How often the store's readiness is checked (``SyncStorage/checkReady()``).
    public var readinessInterval: Duration = .seconds(1)
    /// The `Retry-After` seconds sent with 503 `unavailable`.
    public var retryAfterSeconds = 5
    /// How far ahead of the server's clock a change may be stamped (further: 409 `clock_ahead`,
    /// and the device re-stamps it). Nil: no bound. A day by default: phones' clocks drift and
    /// are set by hand, but a clock days ahead would win every concurrent `lww` write for days.
    public var maxClockAhead: Duration? = .seconds(86_400)
    /// The directory of the files records refer to (docs/protocol.md, "Files"); nil: the server
    /// keeps no files, and refuses pushes that refer to one (`missing_files`). Several server
    /// processes on one PostgreSQL database share one directory.
    public var filesDirectory: String?
    /// The largest file accepted, in bytes (larger: 413 `file_too_large`).
    public var maxFileBytes: Int64 = 4 << 30
    /// The largest chunk of a file in one request, in bytes (larger: 413 `body_too_large`).
    public var maxChunkBytes = 16 << 20
    /// How long a file no record refers to is kept after it was last stored or referenced
    /// (``FileCollection``): devices offline that long may still need it.
    public var fileGrace: Duration = .seconds(30 * 86_400)
    /// How often the server collects such files; nil: never (`fieldbook-server files collect` does).
    public var fileCollectionInterval: Duration? = .seconds(86_400)

    /// The defaults above; set the members to change them.
    public init() {}
}

/// The sync server's HTTP interface over a ``SyncStorage`` (docs/protocol.md).
///
/// ```swift
/// let storage = try SQLiteSyncStorage(path: "server.sqlite", schema: schema)
/// let app = SyncServer.application(storage: storage, configuration: .init(), logger: logger)
/// try await app.runService()   // until SIGINT or SIGTERM, then a graceful shutdown
/// ```
public enum SyncServer {
    /// The application: routes, authentication, limits, errors as JSON.
    /// - Parameter onServerRunning: called with the bound port once the server listens (useful with port 0).
    /// - Throws: ``FileError`` if the files directory cannot be created.
    public static func application(
        storage: any SyncStorage, configuration: ServerConfiguration, logger: Logger,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        let readiness = Readiness(storage: storage, interval: configuration.readinessInterval, logger: logger)
        let routes = Routes(
            storage: storage, configuration: configuration, readiness: readiness,
            gate: BodyGate(limit: configuration.maxConcurrentBodies, timeout: configuration.bodyTimeout),
            arrivals: PushArrivals(), versions: ServedVersions(storage: storage),
            files: try configuration.filesDirectory.map { try ServerFiles(root: $0) })
        var services: [any Service] = [readiness]
        if let files = routes.files, let interval = configuration.fileCollectionInterval {
            services.append(
                FileCollector(
                    storage: storage, directory: files.directory, grace: configuration.fileGrace, interval: interval,
                    logger: logger))
        }
        let router = Router()
        router.middlewares.add(
            ErrorMiddleware(storage: storage, readiness: readiness, retryAfter: configuration.retryAfterSeconds))
        routes.add(to: router)
        Routes.refuseOtherMethods(on: router)
        return Application(
            router: router,
            server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [ParseErrorBody()], idleTimeout: timeAmount(configuration.idleTimeout))),
            configuration: applicationConfiguration(configuration, logger: logger),
            services: services,
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
            logger: logger)
    }

    /// `duration` as SwiftNIO's `TimeAmount`, to the nanosecond.
    private static func timeAmount(_ duration: Duration) -> TimeAmount {
        .nanoseconds(Int64(duration / .nanoseconds(1)))
    }

    /// The listening address, the server's name and the most connections open at once.
    private static func applicationConfiguration(_ configuration: ServerConfiguration, logger: Logger)
        -> ApplicationConfiguration
    {
        .init(
            address: .hostname(configuration.host, port: configuration.port), serverName: "fieldbook-server",
            availableConnectionsDelegate: .maximum(configuration.maxConnections, logger: logger))
    }

    static func authenticate(_ request: Request, _ storage: any SyncStorage, _ readiness: Readiness) async throws
        -> Identity
    {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            throw WireError(
                .unauthorized,
                "send 'Authorization: Bearer TOKEN'; an administrator makes tokens with 'fieldbook-server token create --name NAME --role ROLE --scope SCOPE'"
            )
        }
        let token = String(header.dropFirst("Bearer ".count).drop { $0 == " " })
        guard let identity = try await readiness.guarding({ try await storage.authenticate(token: token) }) else {
            throw WireError(.unauthorized, "the token is unknown or revoked; ask an administrator for a new one")
        }
        return identity
    }

    /// The request body's bytes; the caller parses them (a syntax error is `malformed_json`).
    /// Read straight into one array, sized by `Content-Length` when it is sent and within `limit`:
    /// a body costs its size once, not a growing buffer and then a copy.
    static func body(_ request: Request, limit: Int) async throws -> [UInt8] {
        let tooLarge = WireError(
            .bodyTooLarge, "the request body is larger than \(limit) bytes; push fewer changes at a time")
        let declared = request.headers[.contentLength].flatMap { Int($0) }
        if let declared, declared > limit { throw tooLarge }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(min(declared ?? 0, limit))
        for try await chunk in request.body {
            guard chunk.readableBytes <= limit - bytes.count else { throw tooLarge }
            bytes.append(contentsOf: chunk.readableBytesView)
        }
        try Task.checkCancellation()  // the body's time ran out (``BodyGate``): not the whole body
        return bytes
    }

    /// `response` without its body: the answer to `HEAD`, with the headers `GET` would send.
    static func withoutBody(_ response: Response) -> Response {
        var headers = response.headers
        if let length = response.body.contentLength { headers[.contentLength] = "\(length)" }
        return Response(status: response.status, headers: headers)
    }

    static func jsonResponse(_ json: JSON, status: HTTPResponse.Status = .ok) -> Response {
        var bytes: [UInt8] = []
        json.write(to: &bytes)
        return jsonResponse(bytes: bytes, status: status)
    }

    static func jsonResponse(bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// The routes' handlers and what they share: the store, the limits, the store's readiness, the
/// turns at reading bodies and the pushes arriving per token.
struct Routes: Sendable {
    let storage: any SyncStorage
    let configuration: ServerConfiguration
    let readiness: Readiness
    let gate: BodyGate
    let arrivals: PushArrivals
    let versions: ServedVersions
    let files: ServerFiles?

    /// Registers each route's handler on `router`.
    func add(to router: Router<BasicRequestContext>) {
        router.get("/health") { _, _ in health() }
        router.head("/health") { _, _ in SyncServer.withoutBody(health()) }
        router.get("/ready") { _, _ in try ready() }
        router.head("/ready") { _, _ in try readyWithoutBody() }
        router.get("/v1/schema") { request, _ in try await schema(request) }
        router.post("/v1/push") { request, context in try await push(request, context: context) }
        router.post("/v1/pull") { request, context in try await pull(request, context: context) }
        router.get("/v1/conflicts") { request, _ in try await conflicts(request) }
        router.post("/v1/catch-up") { request, _ in try await catchUp(request) }
        router.head("/v1/files/:sha256") { request, context in try await fileStatus(request, context: context) }
        router.put("/v1/files/:sha256") { request, context in try await upload(request, context: context) }
        router.get("/v1/files/:sha256") { request, context in try await download(request, context: context) }
    }

    /// Liveness: the process answers, and says whether its store does.
    func health() -> Response {
        SyncServer.jsonResponse(
            .object([("status", .string("ok")), ("store", .string(readiness.isReady ? "ready" : "unavailable"))]))
    }

    /// Readiness: the store answers too (for load balancers); 503 `unavailable` while it does not.
    func ready() throws -> Response {
        try readiness.check()
        return SyncServer.jsonResponse(.object([("status", .string("ready"))]))
    }

    /// `HEAD /ready`: ``ready()`` without its body; 503 with `Retry-After` and no body while the store does not answer.
    func readyWithoutBody() throws -> Response {
        guard readiness.isReady else {
            return Response(
                status: .serviceUnavailable, headers: [.retryAfter: "\(configuration.retryAfterSeconds)"])
        }
        return SyncServer.withoutBody(try ready())
    }

    /// `GET /v1/schema`: the schema the store runs (its newest version); `?version=N`, that version
    /// (404 `not_found` if the store does not hold it).
    func schema(_ request: Request) async throws -> Response {
        try readiness.check()
        _ = try await SyncServer.authenticate(request, storage, readiness)
        guard let text = request.uri.queryParameters["version"] else {
            return SyncServer.jsonResponse(storage.schema.json)
        }
        let versions = try await readiness.guarding { try await storage.schemaVersions() }
        guard let version = Int(String(text)), let held = versions.first(where: { $0.schema.version == version }) else {
            throw WireError(
                .notFound,
                "the server holds no schema version \(text) (it holds "
                    + versions.map { String($0.schema.version) }.joined(separator: ", ") + ")")
        }
        return SyncServer.jsonResponse(held.schema.json)
    }

    /// `POST /v1/push`: takes the push in turn with the token's other pushes; answers with the server sequence numbers.
    func push(_ request: Request, context: BasicRequestContext) async throws -> Response {
        try readiness.check()
        let identity = try await SyncServer.authenticate(request, storage, readiness)
        let (push, response) = try await arrivals.run(token: identity.tokenID) {
            try await take(request, identity: identity)
        }
        context.logger.info(
            "push", metadata: ["device": .string(push.device), "changes": .stringConvertible(push.changes.count)])
        var out: [UInt8] = []
        out.reserveCapacity(16 * push.changes.count + 32)
        response.encode(to: &out)
        return SyncServer.jsonResponse(bytes: out)
    }

    /// Reads a push in its turn at the body gate, checks its clock, server identity and bases, and stores it.
    func take(_ request: Request, identity: Identity) async throws -> (PushRequest, PushResponse) {
        let (read, bytes) = try await gate.run {
            let bytes = try await SyncServer.body(request, limit: configuration.maxBodyBytes)
            return (try await readPush(bytes), bytes)
        }
        var (push, translated) = read
        try await checkFiles(push, identity: identity)
        if let bound = configuration.maxClockAhead {
            try ClockBound.check(push, now: ClockBound.now(), bound: bound)
        }
        // Checked before the store is: a push whose bases count in another numbering would be
        // merged as if its writer had seen other changes.
        let standing = try await readiness.guarding { [push] in try await storage.standing(device: push.device) }
        if try await takeNewerSchema(standing, request: push.schema) {
            (push, translated) = try await readPush(bytes)
            try await checkFiles(push, identity: identity)
        }
        // A base is the writer's cursor: one past the last change is as sure a sign of lost changes.
        let base = push.changes.reduce(0) { max($0, $1.base) }
        try standing.check(server: push.server, cursor: base, token: identity.tokenID)
        var response = try await arrivals.store(token: identity.tokenID) { [push] in
            try await readiness.guarding { try await storage.push(push, identity: identity) }
        }
        response.server = standing.identity
        if translated { response.newestSchema = push.schema.version }
        return (push, response)
    }

    /// Reads a push; one of an earlier version comes as the newest version reads it (and says so).
    func readPush(_ bytes: [UInt8]) async throws -> (PushRequest, translated: Bool) {
        let (push, served) = try await parsed(bytes) {
            try PushRequest(
                utf8: bytes, schema: $0, maxChanges: configuration.maxBatch, maxValues: configuration.maxJSONValues)
        }
        guard let served else { return (push, false) }
        // A device of an earlier version: its changes as the newest version reads them.
        let upgraded = PushRequest(
            schema: SchemaVersion(served.translation.newer), device: push.device,
            changes: push.changes.map { served.translation.upgrade($0) }, server: push.server,
            deviceName: push.deviceName)
        return (upgraded, true)
    }

    /// Parses a request with the schema this process runs. One that names a newer version makes it
    /// read the store's newest (another process may have published it) and parse again; one that
    /// names an earlier version the store holds is read in that version, and comes with how to
    /// translate it.
    func parsed<T>(_ bytes: [UInt8], _ parse: (Schema) throws -> T) async throws -> (T, ServedVersions.Served?) {
        let schema = storage.schema
        do {
            return (try parse(schema), nil)
        } catch let error as WireError where error.code == .schemaAhead {
            let newest = try await readiness.guarding { try await storage.refreshSchema() }
            guard newest.version > schema.version else { throw error }
            return (try parse(newest), nil)
        } catch let error as WireError where error.code == .schemaMismatch {
            guard let requested = SchemaVersion.requested(in: bytes), requested.name == schema.name,
                let served = try await readiness.guarding({ try await versions.served(requested.version) })
            else { throw error }
            return (try parse(served.reading), served)
        }
    }

    /// Whether the store holds a newer version than the one a request was read with (published by
    /// another process since this one read it): this process takes it, and the request is read
    /// again in it (as a request of an earlier version, if it is one).
    func takeNewerSchema(_ standing: StoreStanding, request: SchemaVersion) async throws -> Bool {
        guard let stored = standing.schemaVersion, stored != request.version else { return false }
        _ = try await readiness.guarding { try await storage.refreshSchema() }
        return true
    }

    /// Reads a pull, at most ``ServerConfiguration/maxPage``; one of an earlier version names the
    /// newest, and comes with how to translate its page.
    func readPull(_ bytes: [UInt8]) async throws -> (PullRequest, ServedVersions.Served?) {
        var (pull, served) = try await parsed(bytes) { try PullRequest(utf8: bytes, schema: $0) }
        pull.limit = min(pull.limit, configuration.maxPage)
        if let served { pull.schema = SchemaVersion(served.translation.newer) }
        return (pull, served)
    }

    /// `POST /v1/pull`: one page of changes after the device's cursor, at most ``ServerConfiguration/maxPage``.
    func pull(_ request: Request, context: BasicRequestContext) async throws -> Response {
        try readiness.check()
        let identity = try await SyncServer.authenticate(request, storage, readiness)
        var (pull, served, bytes) = try await gate.run {
            let bytes = try await SyncServer.body(request, limit: configuration.maxPullBodyBytes)
            let (pull, served) = try await readPull(bytes)
            return (pull, served, bytes)
        }
        var standing = try await readiness.guarding { [pull] in try await storage.standing(device: pull.device) }
        if try await takeNewerSchema(standing, request: pull.schema) {
            (pull, served) = try await readPull(bytes)
            standing = try await readiness.guarding { [pull] in try await storage.standing(device: pull.device) }
        }
        let request = pull
        try standing.check(server: pull.server, cursor: pull.cursor, token: identity.tokenID)
        try identity.checkScope(of: pull)
        var page: PullBody
        if let served {
            page = try await translatedPage(request, served: served, identity: identity, server: standing.identity)
        } else {
            page = try await readiness.guarding { try await storage.pullResponseBody(request, identity: identity) }
            PullResponse.appendServer(standing.identity, to: &page.bytes)
            if let role = identity.role { PullResponse.appendRole(role, to: &page.bytes) }
        }
        context.logger.debug("pull", metadata: ["cursor": .stringConvertible(pull.cursor)])
        var response = SyncServer.jsonResponse(bytes: page.bytes)
        // Where the page ends, before the body is read: a device asks for the next page at once.
        response.headers[HTTPFields.Element.Name(PullResponse.cursorHeader)!] = String(page.cursor)
        response.headers[HTTPFields.Element.Name(PullResponse.moreHeader)!] = page.more ? "true" : "false"
        if let generation = page.scopeGeneration {
            response.headers[HTTPFields.Element.Name(PullResponse.scopeHeader)!] = String(generation)
        }
        return response
    }

    /// A page for a device of an earlier version: the newest version's page translated on its text
    /// (``EncodedPageTranslation``), or decoded and translated when that cannot be done; or, for a
    /// device that has not read the newest version, a page with no changes that announces it (the
    /// next may hold values only that version defines).
    func translatedPage(
        _ request: PullRequest, served: ServedVersions.Served, identity: Identity, server: String
    ) async throws -> PullBody {
        let newest = served.translation.newer.version
        let announcing = request.knownSchema.map { $0 < newest } ?? false
        if !announcing {
            var page = try await readiness.guarding { try await storage.pullResponseBody(request, identity: identity) }
            if let translated = served.page.translate(page.bytes) {
                page.bytes = translated
                PullResponse.appendServer(server, to: &page.bytes)
                if let role = identity.role { PullResponse.appendRole(role, to: &page.bytes) }
                PullResponse.appendNewestSchema(newest, to: &page.bytes)
                return page
            }
        }
        var response = try await readiness.guarding { try await storage.pull(request, identity: identity) }
        response.server = server
        response.role = identity.role
        response.translate(served.translation)
        if announcing {
            response.changes = []
            response.entered = []
            response.left = []
            response.cursor = request.cursor
            response.more = false
        }
        var bytes: [UInt8] = []
        response.encode(to: &bytes)
        return PullBody(
            bytes: bytes, cursor: response.cursor, more: response.more, scopeGeneration: response.scopeGeneration)
    }

    /// `POST /v1/catch-up`: for a device that has upgraded from an earlier version, the changes up to
    /// its cursor then that it pulled without some of their fields (or not at all), whole, one page
    /// of the log at a time (docs/protocol.md, "Schema versions"). Only the log after the version
    /// that followed its earlier one was published is read.
    func catchUp(_ request: Request) async throws -> Response {
        try readiness.check()
        let identity = try await SyncServer.authenticate(request, storage, readiness)
        let (asked, served) = try await gate.run {
            let bytes = try await SyncServer.body(request, limit: configuration.maxPullBodyBytes)
            return try await parsed(bytes) { try CatchUpRequest(utf8: bytes, schema: $0) }
        }
        let history = try await readiness.guarding { try await storage.schemaVersions() }
        guard let earlier = try await readiness.guarding({ try await versions.served(asked.from) }) else {
            throw WireError(.schemaMismatch, "the server holds no schema version \(asked.from) to catch up from")
        }
        let published = history.first { $0.schema.version > asked.from }?.head ?? 0
        var pull = PullRequest(
            schema: SchemaVersion(earlier.translation.newer), device: asked.device,
            cursor: max(asked.after, published), limit: configuration.maxPage)
        pull.scopeGeneration = identity.scopeGeneration
        var response = CatchUpResponse(changes: [], after: asked.until, done: true)
        if pull.cursor < asked.until {
            let page = try await readiness.guarding { [pull] in try await storage.pull(pull, identity: identity) }
            let reached = min(page.cursor, asked.until)
            response.changes = page.changes.filter {
                ($0.serverSequence ?? .max) <= asked.until && earlier.translation.loses($0)
            }
            if let served { response.changes = response.changes.compactMap(served.translation.downgrade) }
            response.after = reached
            response.done = !page.more || reached >= asked.until
        }
        var out: [UInt8] = []
        response.encode(to: &out)
        return SyncServer.jsonResponse(bytes: out)
    }

    /// `GET /v1/conflicts`: the open conflicts, each with its sides.
    func conflicts(_ request: Request) async throws -> Response {
        try readiness.check()
        let identity = try await SyncServer.authenticate(request, storage, readiness)
        let conflicts = try await readiness.guarding { try await storage.conflicts(visibleTo: identity) }
        return SyncServer.jsonResponse(
            .object([
                (
                    "conflicts",
                    .array(
                        conflicts.map { c in
                            .object([
                                ("id", .string(c.id)), ("entity", .string(c.entity)),
                                ("record", .string(c.recordID)),
                                ("field", c.field.map(JSON.string) ?? .null), ("sides", c.sidesJSON),
                            ])
                        })
                )
            ]))
    }

    /// Another method on a known path: 405 with the method it takes, not a 404 that says it does not exist.
    static func refuseOtherMethods(on router: Router<BasicRequestContext>) {
        for (path, allowed) in [
            ("/health", "GET, HEAD"), ("/ready", "GET, HEAD"), ("/v1/schema", "GET"), ("/v1/push", "POST"),
            ("/v1/catch-up", "POST"),
            ("/v1/pull", "POST"), ("/v1/conflicts", "GET"), ("/v1/files/:sha256", "GET, HEAD, PUT"),
        ] {
            let methods: [HTTPRequest.Method] = [.get, .head, .post, .put, .delete, .patch, .options, .trace]
            for method in methods
            where !allowed.split(separator: ",").contains(where: { $0.trimmingPrefix(" ") == method.rawValue }) {
                router.on(RouterPath(path), method: method) { _, _ in
                    var response = SyncServer.jsonResponse(
                        WireError(.methodNotAllowed, "\(path) takes \(allowed) only").json, status: .methodNotAllowed)
                    response.headers[.allow] = allowed
                    return response
                }
            }
        }
    }
}

extension WireError {
    /// The HTTP status each code is sent with.
    public var status: HTTPResponse.Status {
        switch code {
        case .unauthorized: .unauthorized
        case .forbidden: .forbidden
        case .notFound: .notFound
        case .methodNotAllowed: .methodNotAllowed
        case .bodyTooLarge, .batchTooLarge, .fileTooLarge: .contentTooLarge
        case .protocolMismatch, .schemaMismatch, .schemaAhead, .sequenceGap, .serverChanged, .cursorAhead, .clockAhead,
            .scopeChanged, .missingFiles, .offsetMismatch:
            .conflict
        case .internalError: .internalServerError
        case .unavailable: .serviceUnavailable
        default: .badRequest
        }
    }
}

/// Turns every error into a JSON error body: protocol errors with their code and status,
/// anything else into a logged 500 that says nothing about the data.
/// A store that cannot be reached (``SyncStorage/isOutage(_:)``) is a 503 `unavailable` with `Retry-After`.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let storage: any SyncStorage
    let readiness: Readiness
    let retryAfter: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as WireError {
            context.logger.info("refused", metadata: ["code": .string(error.code.rawValue)])
            return unavailableAware(SyncServer.jsonResponse(error.json, status: error.status))
        } catch  where storage.isOutage(error) {
            readiness.markUnavailable()
            context.logger.warning(
                "store unavailable", metadata: ["error": .string(String(describing: type(of: error)))])
            return unavailableAware(SyncServer.jsonResponse(Readiness.unavailable.json, status: .serviceUnavailable))
        } catch let error as any HTTPResponseError {
            let code: WireError.Code = error.status == .notFound ? .notFound : .badMessage
            let wire = WireError(code, "\(error.status.code) \(error.status.reasonPhrase)")
            return SyncServer.jsonResponse(wire.json, status: error.status)
        } catch {
            context.logger.error("request failed", metadata: ["error": .string(String(describing: type(of: error)))])
            return SyncServer.jsonResponse(
                WireError(.internalError, "the server failed to handle the request; it may be retried").json,
                status: .internalServerError)
        }
    }

    func unavailableAware(_ response: Response) -> Response {
        guard response.status == .serviceUnavailable else { return response }
        var response = response
        response.headers[.retryAfter] = "\(retryAfter)"
        return response
    }
}

/// At most `limit` request bodies read and parsed at once; the others wait their turn in order,
/// their bytes left unread in the socket. This bounds the memory requests cost.
actor BodyGate {
    let limit: Int
    let timeout: Duration
    var running = 0
    var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int, timeout: Duration) {
        self.limit = max(1, limit)
        self.timeout = timeout
    }

    func acquire() async {
        if running < limit {
            running += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty {
            running -= 1
        } else {
            waiting.removeFirst().resume()  // the permit passes on
        }
    }

    /// Runs `body` in its turn; if it takes longer than `timeout`, cancels it (reading a body stops at
    /// cancellation) and throws 503 `unavailable`.
    nonisolated func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        await acquire()
        do {
            let value = try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask { try await body() }
                group.addTask {
                    try await Task.sleep(for: self.timeout)
                    return nil
                }
                let first = try await group.next()!
                group.cancelAll()
                guard let first else {
                    throw WireError(.unavailable, "the request body did not arrive in \(self.timeout); retry later")
                }
                return first
            }
            await release()
            return value
        } catch {
            await release()
            throw error
        }
    }
}

/// Whether the store answers, checked every `interval` while the server runs (a service of the application).
/// Requests that need the store are refused with 503 `unavailable` while it does not.
final class Readiness: Service, Sendable {
    static let unavailable = WireError(.unavailable, "the server's database cannot be reached; retry later")
    let storage: any SyncStorage
    let interval: Duration
    let logger: Logger
    private let ready = Atomic<Bool>(true)

    init(storage: any SyncStorage, interval: Duration, logger: Logger) {
        self.storage = storage
        self.interval = interval
        self.logger = logger
    }

    var isReady: Bool { ready.load(ordering: .relaxed) }

    /// - Throws: 503 `unavailable` while the store cannot be reached.
    func check() throws(WireError) {
        guard isReady else { throw Self.unavailable }
    }

    func markUnavailable() { set(false) }

    private func set(_ value: Bool) {
        if ready.exchange(value, ordering: .relaxed) != value {
            if value { logger.notice("store ready") } else { logger.warning("store unavailable") }
        }
    }

    /// Runs `body` (a store call), cancelling it with 503 `unavailable` if the store becomes unreachable
    /// meanwhile: a request waiting for a database connection does not wait for the pool to give up.
    func guarding<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                while self.isReady { try await Task.sleep(for: .milliseconds(100)) }
                return nil
            }
            let first = try await group.next()!
            group.cancelAll()
            guard let first else { throw Self.unavailable }
            return first
        }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await self.storage.checkReady()
                    self.set(true)
                } catch {
                    self.set(false)
                }
                try? await Task.sleep(for: self.interval)
            }
        }
    }
}
