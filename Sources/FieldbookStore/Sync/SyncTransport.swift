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
///
/// `https://` goes through URLSession; `http://` through a small SwiftNIO client,
/// which costs a fraction of URLSession's CPU on Linux for bodies of megabytes.
public struct HTTPTransport: SyncTransport {
    /// The server's base URL, e.g. `http://127.0.0.1:8080`.
    public let server: URL
    let token: String
    let session: URLSession
    /// For a plain `http://` server.
    let plain: PlainHTTPClient?

    public init(server: URL, token: String, timeout: TimeInterval = 60) {
        self.server = server
        self.token = token
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        session = URLSession(configuration: configuration)
        if server.scheme?.lowercased() == "http", let host = server.host {
            plain = PlainHTTPClient(host: host, port: server.port ?? 80, timeout: .seconds(timeout))
        } else {
            plain = nil
        }
    }

    public func push(_ request: PushRequest) async throws -> PushResponse {
        var body: [UInt8] = []
        body.reserveCapacity(256 * request.changes.count + 256)
        request.encode(to: &body)
        let bytes = try await post("v1/push", body)
        do { return try PushResponse(utf8: bytes) } catch { throw SyncError(.badResponse, error.message) }
    }

    public func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse {
        var body: [UInt8] = []
        request.encode(to: &body)
        let bytes = try await post("v1/pull", body)
        do { return try PullResponse(utf8: bytes, schema: schema) } catch { throw SyncError(.badResponse, error.message) }
    }

    /// Posts a JSON body; returns the answer's body if the status is 200, or throws the protocol error.
    func post(_ path: String, _ body: [UInt8]) async throws -> [UInt8] {
        let (status, data) = try await exchange(path, body)
        guard status == 200 else {
            if let json = try? JSON(parsing: data), let wire = WireError(json: json) {
                throw SyncError(.refused(wire.code), status: status, wire.message)
            }
            throw SyncError(.badResponse, status: status, "HTTP \(status) without a protocol error")
        }
        return data
    }

    func exchange(_ path: String, _ body: [UInt8]) async throws -> (status: Int, body: [UInt8]) {
        if let plain {
            let base = server.path.hasSuffix("/") ? String(server.path.dropLast()) : server.path
            do {
                return try await plain.post(
                    base + "/" + path,
                    headers: [("Content-Type", "application/json"), ("Authorization", "Bearer \(token)")], body: body)
            } catch let error as SyncError {
                throw error
            } catch {
                throw SyncError(.network, "\(server.absoluteString) could not be reached (\(type(of: error)))")
            }
        }
        var request = URLRequest(url: server.appendingPathComponent(path))
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        request.httpBody = Data(body)
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await session.data(for: request)
        } catch {
            throw SyncError(.network, "\(server.absoluteString) could not be reached (\(type(of: error)))")
        }
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, Array(data))
    }
}
