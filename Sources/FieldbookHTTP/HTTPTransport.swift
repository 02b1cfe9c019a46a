import AsyncHTTPClient
public import FieldbookCore
import FieldbookJSON
public import FieldbookStore
public import FieldbookSync
public import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The sync protocol over HTTP(S), with a bearer token, through AsyncHTTPClient
/// (connection pooling, TLS, timeouts). On Linux, URLSession (libcurl) spent more CPU
/// moving sync bodies of a few megabytes than the device spent applying them.
///
/// With no signal a request fails fast: a connection that is refused, a name that does not
/// resolve or no route fails at once, and a connection not made within `connectTimeout` fails
/// then (the client does not keep trying to connect until the request's deadline: retrying is
/// ``Store/sync(_:options:)``'s, within ``SyncOptions/retryWindow``). Once connected, a slow link
/// is given time: only a server that sends nothing for `timeout` seconds is given up on.
public struct HTTPTransport: SyncTransport {
    /// The server's base URL, e.g. `http://127.0.0.1:8080`.
    public let server: URL
    let token: String
    let timeout: TimeInterval
    let client: HTTPClient

    /// - Parameters:
    ///   - timeout: how long a request may wait for the server's next bytes once connected, in seconds
    ///     (a request that keeps receiving is not cut).
    ///   - connectTimeout: how long making a connection may take, in seconds.
    public init(server: URL, token: String, timeout: TimeInterval = 60, connectTimeout: TimeInterval = 5) {
        self.server = server
        self.token = token
        self.timeout = timeout
        self.client = Self.client(connectTimeout: connectTimeout, readTimeout: timeout)
    }

    /// One client per pair of timeouts, kept for the life of the process (as `HTTPClient.shared` is).
    private static let clients = Mutex<[[Int64]: HTTPClient]>([:])

    private static func client(connectTimeout: TimeInterval, readTimeout: TimeInterval) -> HTTPClient {
        let key = [Int64(connectTimeout * 1000), Int64(readTimeout * 1000)]
        return clients.withLock { clients in
            if let client = clients[key] { return client }
            var configuration = HTTPClient.Configuration()
            configuration.timeout = .init(connect: .milliseconds(max(key[0], 1)), read: .milliseconds(max(key[1], 1)))
            // A failed connection fails the request: the sync's retries decide whether to try again.
            configuration.connectionPool.retryConnectionEstablishment = false
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            clients[key] = client
            return client
        }
    }

    /// Sends a push (`POST v1/push` under ``server``) and returns the server's answer.
    ///
    /// - Throws: ``SyncError``: `network` when the server cannot be reached, `refused` with the code of a
    ///   server that refuses, `bad_response` for an answer that is not the protocol.
    public func push(_ request: PushRequest) async throws -> PushResponse {
        var body: [UInt8] = []
        body.reserveCapacity(256 * request.changes.count + 256)
        request.encode(to: &body)
        return try await push(body: body)
    }

    /// Sends a push body already written (``EncodedPush/body``) as it is, without reading it back.
    /// Throws as ``push(_:)`` does.
    public func push(encoded: EncodedPush) async throws -> PushResponse {
        try await push(body: encoded.body)
    }

    private func push(body: [UInt8]) async throws -> PushResponse {
        let bytes = try await send("v1/push", body)
        do { return try PushResponse(utf8: bytes) } catch {
            throw SyncError(.badResponse, error.message, underlying: error)
        }
    }

    /// Sends a pull (`POST v1/pull` under ``server``) and returns the page, checking every change against
    /// `schema`. Throws as ``push(_:)`` does.
    public func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse {
        try await pullArriving(request, schema: schema).page()
    }

    /// Sends a pull and returns its answer unread, with the cursor its headers announce
    /// (``ArrivingPage``). Throws as ``push(_:)`` does; reading the page throws `bad_response`
    /// for one that is not the protocol.
    public func pullArriving(_ request: PullRequest, schema: Schema) async throws -> ArrivingPage {
        var body: [UInt8] = []
        request.encode(to: &body)
        let (bytes, headers) = try await exchange("v1/pull", body)
        var announced: (cursor: Int64, more: Bool, scopeGeneration: Int64?)?
        if let cursor = headers.first(name: PullResponse.cursorHeader).flatMap({ Int64($0) }),
            let more = headers.first(name: PullResponse.moreHeader).flatMap({ Bool($0) })
        {
            announced = (cursor, more, headers.first(name: PullResponse.scopeHeader).flatMap { Int64($0) })
        }
        return ArrivingPage(announced: announced) {
            do { return try PullResponse(utf8: bytes, schema: schema) } catch let error as WireError {
                throw SyncError(.badResponse, error.message, underlying: error)
            }
        }
    }

    /// The server's schema (`GET /v1/schema`): to tell people what differs when versions disagree.
    public func schema() async throws -> Schema {
        let bytes = try await send("v1/schema", nil)
        do { return try Schema(json: bytes) } catch {
            throw SyncError(.badResponse, "the server's schema does not load: \(error)", underlying: error)
        }
    }

    /// What the device's earlier version left out of the changes it pulled (`POST /v1/catch-up`).
    public func catchUp(_ request: CatchUpRequest, schema: Schema) async throws -> CatchUpResponse {
        var body: [UInt8] = []
        request.encode(to: &body)
        let bytes = try await send("v1/catch-up", body)
        do { return try CatchUpResponse(utf8: bytes, schema: schema) } catch {
            throw SyncError(.badResponse, "the catch-up answer is not one: \(error.message)", underlying: error)
        }
    }

    /// The version `version` of the server's schema (`GET /v1/schema?version=N`).
    public func schema(version: Int) async throws -> Schema {
        let bytes = try await send("v1/schema", nil, query: "version=\(version)")
        do { return try Schema(json: bytes) } catch {
            throw SyncError(
                .badResponse, "the server's schema version \(version) does not load: \(error)", underlying: error)
        }
    }

    /// How much of a file the server holds (`HEAD /v1/files/{sha256}`).
    public func fileStatus(_ sha256: String) async throws -> ServerFileStatus {
        let response = try await execute(filesRequest(sha256, method: .HEAD))
        let (status, headers, _) = try await collect(response, limit: 1 << 16)
        guard status == 200, let state = headers.first(name: "Fieldbook-File"),
            let held = headers.first(name: "Fieldbook-Offset").flatMap({ Int64($0) })
        else { throw SyncError(.badResponse, status: status, "the server's answer about a file is not the protocol") }
        return ServerFileStatus(complete: state == "complete", held: held)
    }

    /// Sends one chunk of a file (`PUT /v1/files/{sha256}`); returns how many bytes the server holds.
    public func uploadFile(_ sha256: String, size: Int64, offset: Int64, chunk: [UInt8]) async throws -> Int64 {
        var request = filesRequest(sha256, method: .PUT)
        request.headers.add(name: "Fieldbook-Offset", value: String(offset))
        request.headers.add(name: "Fieldbook-File-Size", value: String(size))
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        request.body = .bytes(ByteBuffer(bytes: chunk))
        let response = try await execute(request)
        let (_, _, body) = try await collect(response, limit: 1 << 16)
        guard let json = try? JSON(parsing: body), case .int(let held)? = json["held"], held >= 0 else {
            throw SyncError(.badResponse, "the server's answer to a file's chunk is not the protocol")
        }
        return held
    }

    /// Receives a file from byte `offset` (`GET /v1/files/{sha256}`, with `Range` to resume),
    /// handing each piece to `receive` as it arrives.
    public func downloadFile(_ sha256: String, from offset: Int64, _ receive: ([UInt8]) throws -> Void) async throws {
        var request = filesRequest(sha256, method: .GET)
        if offset > 0 { request.headers.add(name: "Range", value: "bytes=\(offset)-") }
        let response = try await execute(request)
        let status = Int(response.status.code)
        guard status == (offset > 0 ? 206 : 200) else {
            _ = try await collect(response, limit: 1 << 16)  // throws the protocol error the server sent
            throw SyncError(.badResponse, status: status, "the server sent a file from another place than asked")
        }
        do {
            for try await buffer in response.body { try receive(Array(buffer.readableBytesView)) }
        } catch let error as HTTPClientError {
            throw SyncError(.network, "\(server.absoluteString) \(Self.failure(error))", underlying: error)
        } catch let error as NIOCore.IOError {
            throw SyncError(.network, "\(server.absoluteString) \(Self.failure(error))", underlying: error)
        }
    }

    private func filesRequest(_ sha256: String, method: HTTPMethod) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: server.appendingPathComponent("v1/files/\(sha256)").absoluteString)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        return request
    }

    private func execute(_ request: HTTPClientRequest) async throws -> HTTPClientResponse {
        do { return try await client.execute(request, deadline: .distantFuture) } catch {
            throw SyncError(.network, "\(server.absoluteString) \(Self.failure(error))", underlying: error)
        }
    }

    /// The answer's status, headers and body (at most `limit` bytes); throws the protocol error a
    /// status other than 200 or 206 carries.
    private func collect(_ response: HTTPClientResponse, limit: Int) async throws -> (Int, HTTPHeaders, [UInt8]) {
        let status = Int(response.status.code)
        let data: [UInt8]
        do {
            data = Array(try await response.body.collect(upTo: limit).readableBytesView)
        } catch {
            throw SyncError(.network, "\(server.absoluteString) \(Self.failure(error))", underlying: error)
        }
        guard status == 200 || status == 206 else {
            if let json = try? JSON(parsing: data), let wire = WireError(json: json) {
                throw SyncError(refusal: wire, status: status)
            }
            throw SyncError(.badResponse, status: status, "HTTP \(status) without a protocol error")
        }
        return (status, response.headers, data)
    }

    /// Sends a request (a POST with `body`, a GET without); returns the answer's body if the
    /// status is 200, or throws the protocol error the server sent.
    func send(_ path: String, _ body: [UInt8]?, query: String? = nil) async throws -> [UInt8] {
        try await exchange(path, body, query: query).body
    }

    /// ``send(_:_:)``, with the answer's headers.
    func exchange(_ path: String, _ body: [UInt8]?, query: String? = nil) async throws -> (
        body: [UInt8], headers: HTTPHeaders
    ) {
        var request = HTTPClientRequest(
            url: server.appendingPathComponent(path).absoluteString + (query.map { "?" + $0 } ?? ""))
        request.method = body == nil ? .GET : .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let (_, headers, data) = try await collect(try await execute(request), limit: 1 << 30)
        return (data, headers)
    }
}

extension HTTPTransport {
    /// What went wrong, in plain words, from the client's error (never its raw type name).
    static func failure(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError {
            if error.connectionErrors.isEmpty, error.dnsAError != nil || error.dnsAAAAError != nil {
                return "could not be reached: the name '\(error.host)' was not found (no network, or a wrong address)"
            }
            if let first = error.connectionErrors.first { return failure(first.error) }
        }
        if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: return "refused the connection (no server listens there)"
            case ENETUNREACH, EHOSTUNREACH: return "could not be reached: no route to it (no signal?)"
            case ETIMEDOUT: return "did not answer the connection (no signal?)"
            case ECONNRESET, EPIPE: return "closed the connection"
            default: return "could not be reached (\(String(cString: strerror(error.errnoCode))))"
            }
        }
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: return "did not answer the connection in time (no signal?)"
            case .readTimeout, .deadlineExceeded: return "stopped answering (a weak signal, or the server is stuck)"
            case .remoteConnectionClosed: return "closed the connection before answering"
            default: return "could not be reached (\(error))"
            }
        }
        if error is ChannelError, case ChannelError.connectTimeout = error {
            return "did not answer the connection in time (no signal?)"
        }
        return "could not be reached (\(String(describing: type(of: error))))"
    }
}
