import FieldbookCore
import FieldbookJSON
import FieldbookTesting
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A loopback socket that listens and never serves: with `backlog` full, connections to it go
/// unanswered (as with no signal); otherwise it accepts them and never sends a byte.
final class DeafListener: @unchecked Sendable {
    enum Mode { case unanswered, silent }

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
        }
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
        case closedPort, unresolvableHost, unansweredConnection, silentServer
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
