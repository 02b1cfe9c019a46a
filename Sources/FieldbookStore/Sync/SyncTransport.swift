public import FieldbookCore
public import Foundation
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// How a device reaches a sync server: one push, one pull.
///
/// ``HTTPTransport`` is the real one; tests may put another in between (one
/// that drops answers, say) to prove that sync survives it.
public protocol SyncTransport: Sendable {
    func push(_ request: PushRequest) async throws -> PushResponse
    func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse
}

/// Why a sync request failed.
public struct SyncError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The server could not be reached, or the connection broke: retry later.
        case network
        /// The server refused the request with a protocol error.
        case refused(WireError.Code)
        /// The server answered something that is not the protocol.
        case badResponse
    }

    public var kind: Kind
    /// The HTTP status, when there was one.
    public var status: Int?
    public var message: String

    public init(_ kind: Kind, status: Int? = nil, _ message: String) {
        self.kind = kind
        self.status = status
        self.message = message
    }

    /// Whether the same request may succeed later: network failures and server-side failures.
    public var isRetryable: Bool {
        switch kind {
        case .network: return true
        case .refused(let code): return code == .internalError || code == .unavailable
        case .badResponse: return status.map { $0 >= 500 } ?? false
        }
    }

    public var description: String {
        switch kind {
        case .network: "network: \(message)"
        case .refused(let code): "refused (\(code)): \(message)"
        case .badResponse: "bad response\(status.map { " (HTTP \($0))" } ?? ""): \(message)"
        }
    }
}

/// The sync protocol over HTTP(S), with a bearer token.
public struct HTTPTransport: SyncTransport {
    /// The server's base URL, e.g. `http://127.0.0.1:8080`.
    public let server: URL
    let token: String
    let session: URLSession

    public init(server: URL, token: String, timeout: TimeInterval = 60) {
        self.server = server
        self.token = token
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        session = URLSession(configuration: configuration)
    }

    public func push(_ request: PushRequest) async throws -> PushResponse {
        let json = try await post("v1/push", request.json)
        do { return try PushResponse(json: json) } catch { throw SyncError(.badResponse, error.message) }
    }

    public func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse {
        let json = try await post("v1/pull", request.json)
        do { return try PullResponse(json: json, schema: schema) } catch { throw SyncError(.badResponse, error.message) }
    }

    /// The server's schema (`GET /v1/schema`): to tell people what differs when versions disagree.
    public func schema() async throws -> Schema {
        let json = try await send("v1/schema", nil)
        do { return try Schema(json: Array(json.serialized.utf8)) } catch {
            throw SyncError(.badResponse, "the server's schema does not load: \(error)")
        }
    }

    func post(_ path: String, _ body: JSON) async throws -> JSON {
        try await send(path, body)
    }

    func send(_ path: String, _ body: JSON?) async throws -> JSON {
        var request = URLRequest(url: server.appendingPathComponent(path))
        request.httpMethod = body == nil ? "GET" : "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        if let body {
            var bytes: [UInt8] = []
            body.write(to: &bytes)
            request.httpBody = Data(bytes)
        }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await session.data(for: request)
        } catch {
            throw SyncError(.network, "\(server.absoluteString) could not be reached (\(type(of: error)))")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let json = try? JSON(parsing: Array(data))
        guard status == 200 else {
            if let json, let wire = WireError(json: json) {
                throw SyncError(.refused(wire.code), status: status, wire.message)
            }
            throw SyncError(.badResponse, status: status, "HTTP \(status) without a protocol error")
        }
        guard let json else { throw SyncError(.badResponse, status: status, "the body is not JSON") }
        return json
    }
}
