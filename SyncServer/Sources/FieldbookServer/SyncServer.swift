public import FieldbookCore
public import Hummingbird
public import Logging
import NIOCore

/// Limits and address of a sync server.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// The largest request body accepted, in bytes (larger: 413 `body_too_large`).
    public var maxBodyBytes = 32 * 1024 * 1024
    /// The most changes in one push (more: 413 `batch_too_large`).
    public var maxBatch = 10_000
    /// The most changes in one pull page; a larger `limit` is lowered to it.
    public var maxPage = 10_000
    /// How far ahead of the server's clock a change may be stamped (further: 409 `clock_ahead`,
    /// and the device re-stamps it). Nil: no bound. A day by default: phones' clocks drift and
    /// are set by hand, but a clock days ahead would win every concurrent `lww` write for days.
    public var maxClockAhead: Duration? = .seconds(86_400)

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
    public static func application(
        storage: any SyncStorage, configuration: ServerConfiguration, logger: Logger,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router()
        router.middlewares.add(ErrorMiddleware())
        router.get("/health") { _, _ in
            jsonResponse(.object([("status", .string("ok"))]))
        }
        router.get("/v1/schema") { request, _ in
            _ = try await authenticate(request, storage)
            return jsonResponse(storage.schema.json)
        }
        let arrivals = PushArrivals()
        router.post("/v1/push") { request, context in
            let identity = try await authenticate(request, storage)
            let (push, response) = try await arrivals.run(token: identity.tokenID) {
                let bytes = try await body(request, limit: configuration.maxBodyBytes)
                let push = try PushRequest(utf8: bytes, schema: storage.schema, maxChanges: configuration.maxBatch)
                if let bound = configuration.maxClockAhead { try ClockBound.check(push, now: ClockBound.now(), bound: bound) }
                return (push, try await arrivals.store(token: identity.tokenID) { try await storage.push(push, identity: identity) })
            }
            context.logger.info(
                "push", metadata: ["device": .string(push.device), "changes": .stringConvertible(push.changes.count)])
            var out: [UInt8] = []
            out.reserveCapacity(16 * push.changes.count + 32)
            response.encode(to: &out)
            return jsonResponse(bytes: out)
        }
        router.post("/v1/pull") { request, context in
            let identity = try await authenticate(request, storage)
            let bytes = try await body(request, limit: configuration.maxBodyBytes)
            var pull = try PullRequest(utf8: bytes, schema: storage.schema)
            pull.limit = min(pull.limit, configuration.maxPage)
            let response = try await storage.pullResponseBody(pull, identity: identity)
            context.logger.debug("pull", metadata: ["cursor": .stringConvertible(pull.cursor)])
            return jsonResponse(bytes: response)
        }
        router.get("/v1/conflicts") { request, _ in
            _ = try await authenticate(request, storage)
            let conflicts = try await storage.conflicts()
            return jsonResponse(
                .object([
                    ("conflicts", .array(conflicts.map { c in
                        .object([
                            ("id", .string(c.id)), ("entity", .string(c.entity)), ("record", .string(c.recordID)),
                            ("field", c.field.map(JSON.string) ?? .null), ("sides", c.sidesJSON),
                        ])
                    }))
                ]))
        }
        // Another method on a known path: 405 with the method it takes, not a 404 that says it does not exist.
        for (path, allowed) in [
            ("/health", "GET"), ("/v1/schema", "GET"), ("/v1/push", "POST"), ("/v1/pull", "POST"), ("/v1/conflicts", "GET"),
        ] {
            for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch] where method.rawValue != allowed {
                router.on(RouterPath(path), method: method) { _, _ in
                    var response = jsonResponse(
                        WireError(.methodNotAllowed, "\(path) takes \(allowed) only").json, status: .methodNotAllowed)
                    response.headers[.allow] = allowed
                    return response
                }
            }
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "fieldbook-server"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
            logger: logger)
    }

    static func authenticate(_ request: Request, _ storage: any SyncStorage) async throws -> Identity {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            throw WireError(.unauthorized, "send 'Authorization: Bearer TOKEN'; an administrator makes tokens with 'fieldbook-server token create --name NAME'")
        }
        let token = String(header.dropFirst("Bearer ".count).drop { $0 == " " })
        guard let identity = try await storage.authenticate(token: token) else {
            throw WireError(.unauthorized, "the token is unknown or revoked; ask an administrator for a new one")
        }
        return identity
    }

    /// The request body's bytes; the caller parses them (a syntax error is `malformed_json`).
    static func body(_ request: Request, limit: Int) async throws -> [UInt8] {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw WireError(.bodyTooLarge, "the request body is larger than \(limit) bytes; push fewer changes at a time")
        }
        return Array(buffer.readableBytesView)
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

extension WireError {
    /// The HTTP status each code is sent with.
    public var status: HTTPResponse.Status {
        switch code {
        case .unauthorized: .unauthorized
        case .forbidden: .forbidden
        case .notFound: .notFound
        case .methodNotAllowed: .methodNotAllowed
        case .bodyTooLarge, .batchTooLarge: .contentTooLarge
        case .protocolMismatch, .schemaMismatch, .sequenceGap, .clockAhead: .conflict
        case .internalError: .internalServerError
        case .unavailable: .serviceUnavailable
        default: .badRequest
        }
    }
}

/// Turns every error into a JSON error body: protocol errors with their code and status,
/// anything else into a logged 500 that says nothing about the data.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as WireError {
            context.logger.info("refused", metadata: ["code": .string(error.code.rawValue)])
            return SyncServer.jsonResponse(error.json, status: error.status)
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
}
