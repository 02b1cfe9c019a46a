import NIOCore
import NIOHTTP1
import NIOPosix

/// POSTs over plain HTTP/1.1 with SwiftNIO: one connection per request, the body
/// written and read as whole byte buffers.
///
/// ``HTTPTransport`` uses it for `http://` servers (a server on the device's
/// network or loopback) and URLSession for `https://`. On Linux, URLSession
/// (FoundationNetworking over libcurl) spent more CPU moving sync bodies of a
/// few megabytes than the device spent applying them (docs/benchmarks.md).
struct PlainHTTPClient: Sendable {
    let host: String
    let port: Int
    /// The longest a request may take, from connecting to the end of the answer.
    let timeout: Duration

    /// Sends `body` to `path`; returns the answer's status and body.
    func post(_ path: String, headers: [(String, String)], body: [UInt8]) async throws -> (status: Int, body: [UInt8]) {
        try await withThrowingTaskGroup(of: (status: Int, body: [UInt8])?.self) { group in
            group.addTask { try await exchange(path, headers: headers, body: body) }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let answer = try await group.next(), let answer else {
                throw SyncError(.network, "http://\(host):\(port) did not answer within \(timeout)")
            }
            return answer
        }
    }

    private func exchange(_ path: String, headers: [(String, String)], body: [UInt8]) async throws -> (status: Int, body: [UInt8]) {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(10))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
            head.headers.add(name: "Host", value: "\(host):\(port)")
            head.headers.add(name: "Content-Length", value: String(body.count))
            head.headers.add(name: "Connection", value: "close")
            for (name, value) in headers { head.headers.add(name: name, value: value) }
            try await outbound.write(.head(head))
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body))))
            try await outbound.write(.end(nil))
            var status = 0
            var answer: [UInt8] = []
            for try await part in inbound {
                switch part {
                case .head(let response):
                    status = Int(response.status.code)
                    if let length = response.headers.first(name: "Content-Length").flatMap({ Int($0) }) {
                        answer.reserveCapacity(length)
                    }
                case .body(let buffer):
                    buffer.withUnsafeReadableBytes { answer.append(contentsOf: $0) }
                case .end:
                    return (status, answer)
                }
            }
            throw SyncError(.network, "http://\(host):\(port) closed the connection before the end of its answer")
        }
    }
}
