import ArgumentParser
import AsyncHTTPClient
import FieldbookCore
import FieldbookHTTP
import FieldbookJSON
import FieldbookSchemas
import FieldbookServerProcess
import FieldbookStore
import FieldbookSync
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// `fieldbook-bench files`: evidence photos from device A through a server process to device B,
/// against the same bytes moved by plain HTTP on loopback; then the peak memory of a device and the
/// server moving one large file.
struct FilesBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "files",
        abstract: "Move photos device A → server → device B over loopback; compare with plain HTTP; peak memory.",
        discussion: """
            Device A attaches N photos of SIZE bytes to N findings (offline: each copied into its files
            and hashed), syncs (uploads them, then pushes the findings); device B, new, syncs and
            downloads them all, each checked against its hash. The server is a `fieldbook-server`
            process (beside this one) on the embedded SQLite store. The baseline, in the same run: the
            same files PUT to a plain HTTP server in this process (written to disk as they arrive) and
            GET back (written to disk), one request each, one after another. ratio_to_raw_http is the
            baseline's time over Fieldbook's (1: as fast as plain HTTP).

            Then, with --large-mib M (0: skip): the real `fieldbook` binary attaches one file of M MiB,
            syncs it up, and a second device syncs it down, against a fresh server process; the peak
            resident memory of the largest `fieldbook` process (device_peak_rss_mb) and of the server
            (server_peak_rss_mb).
            """)

    @Option(help: "How many photos.")
    var count = 400

    @Option(help: "Each photo's size in bytes.")
    var size = 2_621_440

    @Option(help: "The one large file's size in MiB for the memory phase (0: skip it).")
    var largeMib = 1024

    @Flag(help: "End with one JSON object on the last line.")
    var json = false

    @Option(help: "Directory for the files (default: a new temporary directory).")
    var directory: String?

    func run() async throws {
        let dir =
            directory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                "fieldbook-files-bench-\(UUID().uuidString)"
            ).path
        try FileManager.default.createDirectory(atPath: dir + "/photos", withIntermediateDirectories: true)
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: dir) } }
        var paths: [String] = []
        for n in 0..<count {
            let path = dir + "/photos/现场\(n).jpg"
            try Data(Self.photo(size: size, seed: UInt64(n))).write(to: URL(fileURLWithPath: path))
            paths.append(path)
        }
        let megabytes = Double(count * size) / Double(1 << 20)
        print("\(count) photos of \(size) bytes (\(String(format: "%.0f", megabytes)) MiB)")

        let raw = try await rawHTTP(paths, dir: dir)
        print(String(format: "plain HTTP, up and down:       %7.2f s  (%6.0f MiB/s)", raw, 2 * megabytes / raw))

        let fieldbook = try await throughFieldbook(paths, dir: dir)
        print(String(format: "device A attaches (hashing):   %7.2f s", fieldbook.attach))
        print(String(format: "A uploads and pushes:          %7.2f s", fieldbook.up))
        print(String(format: "B pulls and downloads:         %7.2f s", fieldbook.down))
        let moved = fieldbook.up + fieldbook.down
        let ratio = raw / moved
        print(String(format: "Fieldbook, up and down:        %7.2f s  (%6.0f MiB/s)", moved, 2 * megabytes / moved))
        print(String(format: "ratio to plain HTTP:           %7.2f  (target ≥ 0.5)", ratio))

        var memory: (device: Double, server: Double)?
        if largeMib > 0 {
            memory = try large(dir: dir)
            print(
                String(
                    format: "one %d MiB file: device peak %.0f MiB, server peak %.0f MiB (target ≤ 128 each)",
                    largeMib, memory!.device, memory!.server))
        }
        if json {
            var pairs: [(String, String)] = [
                ("files", "\(count)"), ("file_bytes", "\(size)"), ("raw_http_s", String(format: "%.3f", raw)),
                ("attach_s", String(format: "%.3f", fieldbook.attach)),
                ("upload_s", String(format: "%.3f", fieldbook.up)),
                ("download_s", String(format: "%.3f", fieldbook.down)),
                ("ratio_to_raw_http", String(format: "%.3f", ratio)),
            ]
            if let memory {
                pairs += [
                    ("large_file_mib", "\(largeMib)"), ("device_peak_rss_mb", String(format: "%.1f", memory.device)),
                    ("server_peak_rss_mb", String(format: "%.1f", memory.server)),
                ]
            }
            print("{" + pairs.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
        }
    }

    /// A JPEG-looking file of `size` bytes: the signature, then bytes that do not compress.
    static func photo(size: Int, seed: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: size)
        var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
        bytes.withUnsafeMutableBytes { buffer in
            let words = buffer.bindMemory(to: UInt64.self)
            for i in words.indices {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                words[i] = state
            }
        }
        bytes[0] = 0xFF
        bytes[1] = 0xD8
        bytes[2] = 0xFF
        bytes[3] = 0xE0
        return bytes
    }

    /// Device A attaches and syncs; device B syncs and downloads every file. Seconds for each part.
    func throughFieldbook(_ paths: [String], dir: String) async throws -> (attach: Double, up: Double, down: Double) {
        let server = try ServerProcess(database: dir + "/server.sqlite")
        defer { server.stop() }
        let schema = try Schema(json: BundledSchemas.inspection)
        let a = try Store(path: dir + "/a.sqlite", schema: schema)
        let b = try Store(path: dir + "/b.sqlite", schema: schema)
        let toA = HTTPTransport(server: server.url, token: try server.token(name: "李明", role: "inspector"))
        let toB = HTTPTransport(server: server.url, token: try server.token(name: "王芳", role: "office"))
        var options = SyncOptions()
        options.downloadFilesUpTo = .max
        var attachments: [Attachment] = []
        let attach = try measure {
            for (n, path) in paths.enumerated() {
                let finding = try a.insert("finding", ["title": .text("第\(n)号问题")])
                attachments += try a.attach("finding", id: finding, field: "evidence", files: [path])
            }
        }
        var up: SyncReport?
        let upSeconds = try await measureAsync { up = try await a.sync(toA, options: options) }
        var down: SyncReport?
        let downSeconds = try await measureAsync { down = try await b.sync(toB, options: options) }
        guard let up, let down else { throw ValidationError("a sync did not report") }
        guard up.filesUploaded == paths.count, down.filesDownloaded == paths.count, down.filesWaiting == 0 else {
            throw ValidationError(
                "moved \(up.filesUploaded) up and \(down.filesDownloaded) down of \(paths.count) files")
        }
        for attachment in attachments where try !b.holdsFile(attachment.sha256) {
            throw ValidationError("device B lacks a file")
        }
        return (attach, upSeconds, downSeconds)
    }

    /// Each file PUT to a plain HTTP server in this process (written to disk as it arrives), then
    /// GET back and written to disk: the seconds for all of them.
    func rawHTTP(_ paths: [String], dir: String) async throws -> Double {
        try FileManager.default.createDirectory(atPath: dir + "/raw-in", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/raw-out", withIntermediateDirectories: true)
        let group = MultiThreadedEventLoopGroup.singleton
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(PlainFileHandler(root: dir + "/raw-in"))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        let client = HTTPClient(eventLoopGroup: group)
        do {
            let seconds = try await plainTransfers(paths, port: port, client: client, dir: dir)
            try await client.shutdown()
            try await channel.close()
            return seconds
        } catch {
            try? await client.shutdown()
            try? await channel.close()
            throw error
        }
    }

    private func plainTransfers(_ paths: [String], port: Int, client: HTTPClient, dir: String) async throws -> Double {
        return try await measureAsync {
            for (n, path) in paths.enumerated() {
                var put = HTTPClientRequest(url: "http://127.0.0.1:\(port)/\(n)")
                put.method = .PUT
                put.body = .bytes(ByteBuffer(bytes: try Data(contentsOf: URL(fileURLWithPath: path))))
                _ = try await client.execute(put, deadline: .distantFuture).body.collect(upTo: 1 << 20)
                let got = try await client.execute(
                    HTTPClientRequest(url: "http://127.0.0.1:\(port)/\(n)"), deadline: .distantFuture)
                guard
                    let handle = FileHandle(forWritingAtPath: dir + "/raw-out/\(n)")
                        ?? (FileManager.default.createFile(atPath: dir + "/raw-out/\(n)", contents: nil)
                            ? FileHandle(forWritingAtPath: dir + "/raw-out/\(n)") : nil)
                else { throw ValidationError("cannot write the baseline's file") }
                for try await buffer in got.body { handle.write(Data(buffer.readableBytesView)) }
                try handle.synchronize()
                try handle.close()
            }
        }
    }

    /// The real `fieldbook` binary moves one large file from one device to another through a fresh
    /// server process: the peak resident memory of the largest `fieldbook` process and of the server.
    func large(dir: String) throws -> (device: Double, server: Double) {
        let path = dir + "/全景.jpg"
        do {
            guard FileManager.default.createFile(atPath: path, contents: nil),
                let handle = FileHandle(forWritingAtPath: path)
            else { throw ValidationError("cannot write \(path)") }
            for n in 0..<largeMib { handle.write(Data(Self.photo(size: 1 << 20, seed: UInt64(n) &+ 1000))) }
            try handle.synchronize()
            try handle.close()
        }
        let server = try ServerProcess(database: dir + "/large-server.sqlite")
        defer { server.stop() }
        let binary = try ServerProcess.builtProduct("fieldbook")
        func fieldbook(_ device: String, _ arguments: [String]) throws -> String {
            let process = Process()
            process.executableURL = binary
            process.arguments = ["--store", dir + "/" + device] + arguments
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw ValidationError("fieldbook \(arguments.first ?? "") failed (\(process.terminationStatus))")
            }
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        _ = try fieldbook(
            "la",
            ["init", "--server", server.url.absoluteString, "--token", server.token(name: "李明", role: "inspector")])
        _ = try fieldbook(
            "lb", ["init", "--server", server.url.absoluteString, "--token", server.token(name: "王芳", role: "office")])
        _ = try fieldbook("lb", ["config", "set", "download-limit", "all"])
        let before = Self.childrenPeakMiB()
        let finding = try fieldbook("la", ["add", "finding", "title=围墙倒塌"])
        let attached = try JSON(
            parsing: try fieldbook("la", ["--json", "attach", "finding", finding, "evidence", path]))
        guard case .array(let list) = attached, case .string(let hash)? = list.first?["sha256"] else {
            throw ValidationError("attach said no hash")
        }
        _ = try fieldbook("la", ["sync"])
        _ = try fieldbook("lb", ["sync"])
        let device = Self.childrenPeakMiB()
        guard device > before || before == 0 else { throw ValidationError("no child's memory was measured") }
        let out = dir + "/到达.jpg"
        _ = try fieldbook("lb", ["attachment", "get", hash, "-o", out])
        guard FileManager.default.contentsEqual(atPath: out, andPath: path) else {
            throw ValidationError("device B's copy differs")
        }
        return (device, server.peakMemoryMiB())
    }

    /// The largest peak resident memory of the child processes waited for so far, in MiB.
    static func childrenPeakMiB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}

/// A plain HTTP file server for the baseline: PUT /NAME writes the body to ROOT/NAME as it arrives;
/// GET /NAME sends the file back.
final class PlainFileHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let root: String
    var handle: FileHandle?
    var head: HTTPRequestHead?

    init(root: String) { self.root = root }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            head = request
            if request.method == .PUT {
                let path = root + request.uri
                handle =
                    FileManager.default.createFile(atPath: path, contents: nil)
                    ? FileHandle(forWritingAtPath: path) : nil
            }
        case .body(let buffer):
            handle?.write(Data(buffer.readableBytesView))
        case .end:
            guard let request = head else { return }
            var body = ByteBuffer()
            if request.method == .PUT {
                try? handle?.synchronize()
                try? handle?.close()
                handle = nil
            } else if let data = FileManager.default.contents(atPath: root + request.uri) {
                body = context.channel.allocator.buffer(bytes: data)
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: String(body.readableBytes))
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: .ok, headers: headers))),
                promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
