import FieldbookCore
import FieldbookJSON
import FieldbookServer
import FieldbookServerProcess
import FieldbookServerTesting
import FieldbookTesting
import Foundation
import Glibc
import Hummingbird
import Logging
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A raw TCP connection to a server on loopback: for what an HTTP client will not send
/// (half a request, a 100 KiB header, TRACE) and for holding many idle connections.
final class RawConnection: @unchecked Sendable {
    let fd: Int32

    /// Connects to 127.0.0.1:`port`; `waiting: false` starts the connect and returns at once.
    init(port: Int, waiting: Bool = true) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RawError("socket: errno \(errno)") }
        if !waiting { _ = fcntl(fd, F_SETFL, O_NONBLOCK) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if result != 0 && !(errno == EINPROGRESS && !waiting) {
            let code = errno
            close(fd)
            throw RawError("connect: errno \(code)")
        }
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 { return }
            sent += n
        }
    }

    /// Reads until the server closes the connection or `timeout` passes.
    func read(timeout: Duration) -> (bytes: [UInt8], closed: Bool) {
        let deadline = ContinuousClock.now + timeout
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let left = deadline - ContinuousClock.now
            let ms = Int32(max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
            guard poll(&poller, 1, ms) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) { return (bytes, true) }
            if n > 0 { bytes += buffer[0..<n] }
        }
        return (bytes, false)
    }

    /// ``read(timeout:)`` on a thread of its own.
    func waitForAnswer(timeout: Duration) async throws -> (bytes: [UInt8], closed: Bool) {
        try await offThread { self.read(timeout: timeout) }
    }

    deinit { close(fd) }
}

struct RawError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// An HTTP/1.1 answer read from a raw connection.
struct RawAnswer {
    var status = 0
    var headers: [String: String] = [:]
    var body: [UInt8] = []

    init(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        status = Int(lines[0].split(separator: " ").dropFirst().first ?? "") ?? 0
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        body = Array(text[split.upperBound...].utf8)
    }

    /// The error code of a JSON error body, if it is one.
    var code: String? {
        (try? JSON(parsing: body)).flatMap { if case .string(let c)? = $0["error"]?["code"] { c } else { nil } }
    }
}

/// Sends one raw request on a new connection and reads the answer (the server closes after it: `Connection: close`).
func raw(_ port: Int, _ request: String) async throws -> RawAnswer {
    try await offThread {
        let connection = try RawConnection(port: port)
        connection.send(request)
        return RawAnswer(connection.read(timeout: .seconds(10)).bytes)
    }
}

/// Runs blocking work (a socket read, a child process waited for) on a thread of its own, not on one
/// of the few threads that run every test's tasks and the in-process servers' handlers.
func offThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

@Suite("The server's edges: methods, unreadable requests, timeouts, limits", .tags(.server))
struct ServerEdgeTests {
    @Test(
        "every other method on a known path is 405 with Allow; HEAD of /health and /ready answers like GET, without a body"
    )
    func methods() async throws {
        let dir = TemporaryDirectory()
        let storage = try SQLiteSyncStorage(path: dir.path("server.sqlite"), schema: schema)
        try await withServer(storage: storage) { url in
            let port = url.port!
            let get = try await raw(port, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let head = try await raw(port, "HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(get.status == 200 && head.status == 200)
            #expect(head.body.isEmpty && head.headers["content-length"] == "\(get.body.count)")
            #expect(head.headers["content-type"] == get.headers["content-type"])
            #expect(try await raw(port, "HEAD /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").status == 200)
            let allowed = [
                "/health": "GET, HEAD", "/ready": "GET, HEAD", "/v1/schema": "GET", "/v1/push": "POST",
                "/v1/pull": "POST", "/v1/conflicts": "GET",
            ]
            for (path, allow) in allowed {
                for method in ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]
                where !allow.contains(method) {
                    let answer = try await raw(
                        port, "\(method) \(path) HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    #expect(answer.status == 405, "\(method) \(path)")
                    #expect(answer.headers["allow"] == allow, "\(method) \(path)")
                    if method != "HEAD" { #expect(answer.code == "method_not_allowed", "\(method) \(path)") }
                }
            }
        }
    }

    @Test("a request NIO cannot read (an oversized header, a malformed request line) gets the JSON error body")
    func unreadableRequests() async throws {
        let dir = TemporaryDirectory()
        let storage = try SQLiteSyncStorage(path: dir.path("server.sqlite"), schema: schema)
        try await withServer(storage: storage) { url in
            let port = url.port!
            let big = String(repeating: "长", count: 40 * 1024)  // 120 KiB of UTF-8
            for request in [
                "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: \(big)\r\n\r\n",
                "GARBAGE\r\n\r\n",
                "GET /health HTTP/9.9 extra\r\n\r\n",
            ] {
                let answer = try await raw(port, request)
                #expect(answer.status == 400, "\(request.prefix(30))")
                #expect(answer.code == "bad_message", "\(request.prefix(30))")
                #expect(answer.headers["content-type"]?.hasPrefix("application/json") == true)
            }
            // The server still serves.
            #expect(try await raw(port, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").status == 200)
        }
    }

    @Test("a connection idle, stalled in its headers or stalled in its body is closed after the idle timeout")
    func idleTimeouts() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path("server.sqlite")
        let server = try await offThread { try ServerProcess(database: path, serveArguments: ["--idle-timeout", "1"]) }
        let token = try await offThread { try server.token(name: "王芳", role: "office") }
        let idle = try RawConnection(port: server.port)
        let halfHeaders = try RawConnection(port: server.port)
        halfHeaders.send("POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\n")
        let halfBody = try RawConnection(port: server.port)
        halfBody.send(
            "POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: 1000\r\n\r\n{\"protocol\":1,"
        )
        // Waited for on a thread of its own (as below): not on a pool busy with the other suites.
        let (closed, waited) = try await offThread {
            let start = ContinuousClock.now
            let closed = [idle, halfHeaders, halfBody].map { $0.read(timeout: .seconds(5)).closed }
            return (closed, ContinuousClock.now - start)
        }
        #expect(closed == [true, true, true])
        #expect(waited < .seconds(5))
        // A connection that keeps talking is not cut: five requests 1 s apart, 5 s in all, with a 3 s
        // idle timeout (slack for a machine busy with the other suites).
        let patientPath = dir.path("patient.sqlite")
        let patient = try await offThread {
            try ServerProcess(database: patientPath, serveArguments: ["--idle-timeout", "3"])
        }
        let busy = try RawConnection(port: patient.port)
        // On a thread of its own throughout: a test task waiting for its turn on a pool busy with
        // the other suites would not send on time, and the server would rightly cut it.
        let answered = try await offThread {
            (0..<5).map { _ in
                busy.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                let answer = busy.read(timeout: .seconds(1))
                return !answer.closed && RawAnswer(answer.bytes).status == 200
            }
        }
        #expect(answered == Array(repeating: true, count: 5))
    }

    @Test(
        "clients trickling their bodies do not hold the body turns: they get 503 after the body timeout, others are served"
    )
    func slowBodies() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path("server.sqlite")
        let server = try await offThread { try ServerProcess(database: path, serveArguments: ["--body-timeout", "2"]) }
        let token = try await offThread { try server.token(name: "王芳", role: "office") }
        // Two pushes (the default two turns) that send half their body and then nothing.
        let slow = try (0..<2).map { _ in
            let connection = try RawConnection(port: server.port)
            connection.send(
                "POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Length: 1000\r\n\r\n{\"protocol\":1,"
            )
            return connection
        }
        try await Task.sleep(for: .milliseconds(300))
        let start = ContinuousClock.now
        let pulled = try await post(server.url, "v1/pull", token: token, body: pullBody(#","cursor":0"#))
        #expect(pulled.status == 200)
        #expect(
            ContinuousClock.now - start < .seconds(8),
            "a pull waited \(ContinuousClock.now - start) behind two trickling bodies")
        for connection in slow {
            let answer = RawAnswer(try await connection.waitForAnswer(timeout: .seconds(5)).bytes)
            #expect(answer.status == 503 && answer.code == "unavailable")
        }
    }

    @Test(
        "1,100 idle connections to a server limited to 1,024 open files do not lock out a device", .tags(.slow),
        .fullRunOnly)
    func idleConnectionsDoNotLockOut() async throws {
        // A child process holds the 1,100 sockets, not this one: with a thousand descriptors open here,
        // Foundation's Process.run (used by the tests running beside this one) can over-read
        // /proc/self/fd and crash the test process (swift-corelibs-foundation PR 5472).
        let dir = TemporaryDirectory()
        let path = dir.path("server.sqlite")
        let server = try await offThread { try ServerProcess(database: path, serveArguments: ["--idle-timeout", "2"]) }
        let pid = try #require(server.processIdentifier)
        // `ulimit -n 1024` for the running server (util-linux's prlimit; Glibc's is not visible from Swift).
        let prlimit = Process()
        prlimit.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
        prlimit.arguments = ["--pid", "\(pid)", "--nofile=1024:1024"]
        try await offThread {
            try prlimit.run()
            prlimit.waitUntilExit()
        }
        #expect(prlimit.terminationStatus == 0)
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        #expect(
            limits.contains { _ in true }
                && limits.split(separator: "\n").contains { $0.hasPrefix("Max open files") && $0.contains(" 1024 ") })
        let token = try await offThread { try server.token(name: "王芳", role: "office") }
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = [
            "python3", "-c",
            """
            import resource, socket, sys
            resource.setrlimit(resource.RLIMIT_NOFILE, (4096, max(4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1])))
            held = []
            for _ in range(1100):
                s = socket.socket(); s.setblocking(False)
                try: s.connect(("127.0.0.1", \(server.port)))
                except BlockingIOError: pass
                held.append(s)
            print("holding", flush=True)
            sys.stdin.read()
            """,
        ]
        let ready = Pipe()
        let hold = Pipe()
        holder.standardOutput = ready
        holder.standardInput = hold
        try await offThread { try holder.run() }
        defer {
            try? hold.fileHandleForWriting.close()
            holder.waitUntilExit()
        }
        let said = try await offThread { ready.fileHandleForReading.availableData }
        #expect(String(decoding: said, as: UTF8.self).hasPrefix("holding"))
        try await Task.sleep(for: .milliseconds(500))
        let start = ContinuousClock.now
        var request = URLRequest(url: server.url.appendingPathComponent("v1/schema"))
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        request.timeoutInterval = 60
        let (_, response) = try await URLSession.shared.data(for: request)
        let waited = ContinuousClock.now - start
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        #expect(waited < .seconds(20), "the device waited \(waited)")
    }

    @Test(
        "request bodies are read a few at a time and a push's JSON values are bounded, so hostile bodies cost bounded memory",
        .tags(.slow), .fullRunOnly)
    func memoryBound() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path("server.sqlite")
        let server = try await offThread { try ServerProcess(database: path) }
        let token = try await offThread { try server.token(name: "王芳", role: "office") }
        let zeros =
            Array("[".utf8) + Array(repeating: Array("0,".utf8), count: 15 << 20).flatMap { $0 } + Array("0]".utf8)
        for parallel in [1, 4, 16] {
            let answers = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
                for _ in 0..<parallel {
                    group.addTask { try await post(server.url, "v1/push", token: token, body: zeros) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(answers.allSatisfy { $0 == (413, "batch_too_large") }, "\(answers)")
            let peak = server.peakMemoryMiB()
            // 2 bodies at once × (30 MiB of body + 2M values × 24 bytes) + the process itself.
            #expect(peak < 400, "peak \(peak) MiB with \(parallel) in parallel")
            print("hostile 30 MiB bodies, \(parallel) in parallel: server peak RSS \(Int(peak)) MiB")
        }
    }
}
