import FieldbookTesting
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What the proxy does to requests, as probabilities per request.
struct ProxyFaults: Sendable {
    /// Close the connection without forwarding the request: the server never sees it.
    var drop = 0.0
    /// Hold the request a while (sometimes past the device's timeout), then forward it.
    var delay = 0.0
    /// Forward the request, then cut the connection when the answer starts (part of it may
    /// get through): the server has done the work, the device never hears of it.
    var cut = 0.0
}

/// The faults the proxy injected.
struct ProxyCounts: Sendable {
    var connections = 0
    var requests = 0
    var drops = 0
    var delays = 0
    var cuts = 0
}

/// A TCP proxy on loopback between devices and the server that drops, delays and cuts
/// requests at random. It knows just enough HTTP/1.1 to tell requests apart on a kept-alive
/// connection: data from the device after data from the server starts a new request.
///
/// Plain POSIX sockets, two threads per connection: blocking reads, and `shutdown` to end both.
final class FaultProxy: Sendable {
    /// The port devices connect to.
    let port: Int
    let upstreamPort: Int
    private let listener: Int32
    private let state: Mutex<State>

    struct State {
        var random: SeededGenerator
        var faults = ProxyFaults()
        var counts = ProxyCounts()
    }

    enum Action {
        case pass
        case drop
        case delay(milliseconds: Int)
        case cut
    }

    init(upstreamPort: Int, seed: UInt64) throws {
        self.upstreamPort = upstreamPort
        state = Mutex(State(random: SeededGenerator(seed: seed)))
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ChaosError("proxy: socket() failed (errno \(errno))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 128) == 0 else {
            close(fd)
            throw ChaosError("proxy: cannot listen on 127.0.0.1 (errno \(errno))")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        listener = fd
        let proxy = self
        Thread.detachNewThread { proxy.acceptLoop() }
    }

    var url: URL { URL(string: "http://127.0.0.1:\(port)")! }

    /// Sets the fault rates (all zero: a plain pass-through).
    func setFaults(_ faults: ProxyFaults) { state.withLock { $0.faults = faults } }

    var counts: ProxyCounts { state.withLock { $0.counts } }

    /// Stops accepting connections (the ones open run on until they close).
    func stop() { shutdown(listener, Int32(SHUT_RDWR)) }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                close(listener)
                return
            }
            state.withLock { $0.counts.connections += 1 }
            let proxy = self
            Thread.detachNewThread { proxy.serve(client) }
        }
    }

    private func serve(_ client: Int32) {
        var one: Int32 = 1
        setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = loopback(port: upstreamPort)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard upstream >= 0, connected == 0 else {
            // The server is down (killed): the device sees a broken connection, as it would without us.
            if upstream >= 0 { close(upstream) }
            close(client)
            return
        }
        setsockopt(upstream, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let connection = Connection(client: client, upstream: upstream)
        let proxy = self
        Thread.detachNewThread { proxy.relayAnswers(connection) }
        relayRequests(connection)
    }

    /// Device to server: decides each request's fate as it starts.
    private func relayRequests(_ connection: Connection) {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = read(connection.client, &buffer, buffer.count)
            if count <= 0 { return connection.finish() }
            let action: Action = connection.state.withLock { conn in
                guard conn.awaitingRequest else { return .pass }
                conn.awaitingRequest = false
                let action = decide()
                if case .cut = action { conn.cutPending = true }
                return action
            }
            switch action {
            case .pass, .cut: break
            case .drop:
                state.withLock { $0.counts.drops += 1 }
                return connection.finish()
            case .delay(let milliseconds):
                state.withLock { $0.counts.delays += 1 }
                usleep(useconds_t(milliseconds * 1000))
            }
            if !sendAll(connection.upstream, buffer, count) { return connection.finish() }
        }
    }

    /// Server to device: cuts the answer if its request was marked.
    private func relayAnswers(_ connection: Connection) {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = read(connection.upstream, &buffer, buffer.count)
            if count <= 0 { return connection.finish() }
            let cut = connection.state.withLock { conn in
                conn.awaitingRequest = true
                defer { conn.cutPending = false }
                return conn.cutPending
            }
            if cut {
                // Part of the answer (maybe none of it) gets through, then the connection breaks.
                let prefix = state.withLock { Int($0.random.next() % UInt64(count)) }
                _ = sendAll(connection.client, buffer, prefix)
                state.withLock { $0.counts.cuts += 1 }
                return connection.finish()
            }
            if !sendAll(connection.client, buffer, count) { return connection.finish() }
        }
    }

    private func decide() -> Action {
        state.withLock { state in
            state.counts.requests += 1
            let faults = state.faults
            let roll = state.random.unit()
            if roll < faults.drop { return .drop }
            if roll < faults.drop + faults.cut { return .cut }
            if roll < faults.drop + faults.cut + faults.delay {
                // Mostly short; one in five longer than a device waits for an answer.
                let long = state.random.unit() < 0.2
                return .delay(
                    milliseconds: long ? 2_500 + Int(state.random.next() % 2_000) : 10 + Int(state.random.next() % 500))
            }
            return .pass
        }
    }

    /// One proxied connection: its two sockets, closed once both directions are done.
    final class Connection: Sendable {
        let client: Int32
        let upstream: Int32
        let state = Mutex(ConnectionState())

        struct ConnectionState {
            /// The next data from the device starts a new request.
            var awaitingRequest = true
            /// The answer to the current request is to be cut.
            var cutPending = false
            var finished = 0
        }

        init(client: Int32, upstream: Int32) {
            self.client = client
            self.upstream = upstream
        }

        /// Ends both directions; the second direction to end closes the sockets.
        func finish() {
            shutdown(client, Int32(SHUT_RDWR))
            shutdown(upstream, Int32(SHUT_RDWR))
            let last = state.withLock {
                $0.finished += 1
                return $0.finished == 2
            }
            if last {
                close(client)
                close(upstream)
            }
        }
    }
}

private func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return address
}

private func sendAll(_ fd: Int32, _ buffer: [UInt8], _ count: Int) -> Bool {
    var sent = 0
    while sent < count {
        let n = buffer.withUnsafeBytes { send(fd, $0.baseAddress! + sent, count - sent, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { return false }
        sent += n
    }
    return true
}

/// The chaos run could not be set up or driven.
struct ChaosError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
