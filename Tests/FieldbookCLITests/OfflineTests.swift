import FieldbookCore
import FieldbookJSON
import FieldbookTesting
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A loopback socket that listens and never serves: with `backlog` full, connections to it go
/// unanswered (as with no signal); otherwise it accepts them and never sends a byte — or, as a
/// Wi-Fi login page does, answers every request with the same HTTP answer.
final class DeafListener: @unchecked Sendable {
    enum Mode {
        case unanswered, silent
        /// Reads each request (headers and `Content-Length` bytes) and answers `response`.
        case answering(String)
    }

    let port: Int
    private let fd: Int32
    private var held: [Int32] = []
    private var accepting: Thread?

    init(_ mode: Mode) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && listen(fd, 0) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        guard bound else { throw POSIXError(.EADDRINUSE) }
        switch mode {
        case .unanswered:
            // Fill the accept queue: Linux then drops further SYNs, and a connect waits for ever.
            for _ in 0..<3 {
                let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
                _ = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, length) }
                }
                held.append(client)
            }
        case .silent:
            let thread = Thread {
                while true {
                    let connection = accept(fd, nil, nil)
                    if connection < 0 { return }  // closed
                }
            }
            thread.start()
            accepting = thread
        case .answering(let response):
            let thread = Thread {
                while true {
                    let connection = accept(fd, nil, nil)
                    if connection < 0 { return }  // closed
                    Self.answer(connection, with: Array(response.utf8))
                }
            }
            thread.start()
            accepting = thread
        }
    }

    private static func answer(_ connection: Int32, with response: [UInt8]) {
        defer { close(connection) }
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var needed: Int?
        while needed.map({ request.count < $0 }) ?? true {
            let n = read(connection, &buffer, buffer.count)
            if n <= 0 { return }
            request += buffer[..<n]
            if needed == nil,
                let end = request.indices.first(where: { request[$0...].starts(with: Array("\r\n\r\n".utf8)) })
            {
                let head = String(decoding: request[..<end], as: UTF8.self).lowercased()
                let length =
                    head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                needed = end + 4 + length
            }
        }
        _ = response.withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        for client in held { close(client) }
    }
}

@Suite("fieldbook sync with no signal: exit 69 within seconds, in plain words, nothing lost", .tags(.endToEnd))
struct OfflineTests {
    enum Place: String, CaseIterable, Sendable {
        case closedPort, unresolvableHost, unansweredConnection, silentServer, loginPage, notFoundPage
    }

    @Test("each way of being offline", arguments: Place.allCases)
    func offline(place: Place) throws {
        let world = try CLIWorld()
        var listener: DeafListener?
        let server: String
        let expected: String
        let bound: Duration
        switch place {
        case .closedPort:
            let probe = try DeafListener(.silent)
            server = "http://127.0.0.1:\(probe.port)"
            _ = consume probe  // closed: nothing listens there now
            expected = "refused the connection"
            bound = .seconds(9)
        case .unresolvableHost:
            server = "http://fieldbook-test.invalid:8080"
            expected = "was not found"
            bound = .seconds(9)
        case .unansweredConnection:
            listener = try DeafListener(.unanswered)
            server = "http://127.0.0.1:\(listener!.port)"
            expected = "did not answer the connection"
            bound = .seconds(14)  // the 10 s window and one 5 s connect timeout, at most
        case .silentServer:
            listener = try DeafListener(.silent)
            server = "http://127.0.0.1:\(listener!.port)"
            expected = "stopped answering"
            bound = .seconds(24)  // one 20 s wait for an answer
        case .loginPage, .notFoundPage:
            // Something answers, but not the protocol: said at once, not retried.
            let body = place == .loginPage ? "<html><body>请登录机场 Wi-Fi</body></html>" : "no such page"
            let status = place == .loginPage ? "200 OK" : "404 Not Found"
            listener = try DeafListener(
                .answering(
                    "HTTP/1.1 \(status)\r\nContent-Type: text/html\r\nContent-Length: \(body.utf8.count)\r\n"
                        + "Connection: close\r\n\r\n\(body)"))
            server = "http://127.0.0.1:\(listener!.port)"
            expected = "does not speak Fieldbook's protocol"
            bound = .seconds(3)
        }
        #expect(try world.fieldbook("a", ["init", "--server", server, "--token", "fbt_x"]).status == 0)
        try world.fieldbook("a", ["add", "site", "name=西天尾镇公益性公墓", "kind=cemetery"])
        let before = try world.dump("a")
        let start = ContinuousClock.now
        let result = try world.fieldbook("a", ["sync"])
        let took = ContinuousClock.now - start
        #expect(result.status == 69, "\(result.stderr)")
        #expect(took < bound, "\(place): \(took)")
        #expect(result.stderr.contains(expected), "\(result.stderr)")
        #expect(result.stderr.contains("the changes stay here"), "\(result.stderr)")
        if place == .loginPage || place == .notFoundPage {
            #expect(result.stderr.contains("'fieldbook config show'"), "\(result.stderr)")
        }
        #expect(!result.stderr.contains("Error"), "no type names: \(result.stderr)")
        #expect(try world.dump("a") == before)
        withExtendedLifetime(listener) {}
    }

    @Test("--timeout 0: one try, then exit 69 at once")
    func noRetry() throws {
        let world = try CLIWorld()
        let probe = try DeafListener(.silent)
        let server = "http://127.0.0.1:\(probe.port)"
        _ = consume probe
        #expect(try world.fieldbook("a", ["init", "--server", server, "--token", "fbt_x"]).status == 0)
        let start = ContinuousClock.now
        let result = try world.fieldbook("a", ["sync", "--timeout", "0", "--json"])
        #expect(result.status == 69)
        #expect(ContinuousClock.now - start < .seconds(3))
        let error = try JSON(parsing: result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(error["exit"]?.int == 69)
    }
}
