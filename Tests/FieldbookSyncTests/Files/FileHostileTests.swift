import Crypto
import FieldbookCore
import FieldbookFiles
import FieldbookHTTP
import FieldbookJSON
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Hostile and broken file transfers against a live server: each gets a clear error and stores nothing.
@Suite("Files: hostile uploads, downloads and references", .tags(.server))
struct FileHostileTests {
    static func sha256(_ bytes: [UInt8]) -> String { FileDirectory.hex(SHA256.hash(data: bytes)) }

    /// A JPEG-looking file of `size` bytes.
    static func photo(size: Int, seed: UInt64) -> [UInt8] {
        var random = SeededGenerator(seed: seed)
        return [0xFF, 0xD8, 0xFF, 0xE0] + (4..<size).map { _ in UInt8.random(in: 0...255, using: &random) }
    }

    func put(
        _ url: URL, _ token: String, _ hash: String, offset: Int, size: Int, _ chunk: [UInt8],
        chunkHash: String? = nil
    ) async throws -> (status: Int, code: String?, body: [UInt8]) {
        var headers = [
            "Authorization": "Bearer \(token)", "Fieldbook-Offset": String(offset), "Fieldbook-File-Size": String(size),
        ]
        if let chunkHash { headers["Fieldbook-Chunk-SHA256"] = chunkHash }
        return try await send(url, "v1/files/\(hash)", method: "PUT", headers: headers, body: chunk)
    }

    func held(_ url: URL, _ token: String, _ hash: String) async throws -> (state: String?, offset: Int?) {
        var request = URLRequest(url: url.appendingPathComponent("v1/files/\(hash)"))
        request.httpMethod = "HEAD"
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        let (_, response) = try await URLSession.shared.data(for: request)
        let http = response as? HTTPURLResponse
        return (
            http?.value(forHTTPHeaderField: "Fieldbook-File"),
            http?.value(forHTTPHeaderField: "Fieldbook-Offset").flatMap { Int($0) }
        )
    }

    func finding(_ reference: String, seq: Int = 1) -> [UInt8] {
        var fields: [UInt8] = []
        JSON.object([
            ("title", .string("消防通道堵塞")), ("status", .string("in_progress")),
            ("evidence", .object([("add", .array([.string(reference)])), ("remove", .array([]))])),
        ]).write(to: &fields)
        return pushBody(change(seq: seq, entity: "finding", fields: String(decoding: fields, as: UTF8.self)))
    }

    @Test(
        "uploads: bad names, sizes, offsets, overlaps and corrupt chunks are refused; nothing stored",
        arguments: Backend.all)
    func uploads(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let token = try await storage.createToken(name: "李明")
        let files = dir.path("files")
        let bytes = Self.photo(size: 100_000, seed: 1)
        let hash = Self.sha256(bytes)
        try await withServer(
            storage: storage,
            configure: {
                $0.filesDirectory = files
                $0.maxFileBytes = 1 << 20
                $0.maxChunkBytes = 64 << 10
            }
        ) { url in
            // No token; a name that is not a hash (a path, upper case, too short).
            #expect(try await put(url, "", hash, offset: 0, size: bytes.count, bytes).status == 401)
            for name in ["..%2F..%2Fetc%2Fpasswd", hash.uppercased(), String(hash.prefix(63)), hash + "0"] {
                let answer = try await put(url, token, name, offset: 0, size: 10, Array(bytes.prefix(10)))
                #expect(answer.status == 400 || answer.status == 404, "\(name)")
            }
            // Missing or bad headers.
            let bare = try await send(
                url, "v1/files/\(hash)", method: "PUT", headers: ["Authorization": "Bearer \(token)"], body: [1])
            #expect(bare.status == 400 && bare.code == "bad_message")
            #expect(try await put(url, token, hash, offset: -1, size: 10, [1]).code == "bad_message")
            // Larger than the server takes: the file, and one chunk.
            #expect(try await put(url, token, hash, offset: 0, size: 2 << 20, [1]).code == "file_too_large")
            let big = try await put(url, token, hash, offset: 0, size: bytes.count, Array(bytes.prefix(70_000)))
            #expect(big.status == 413 && big.code == "body_too_large")
            // Out of order: the first chunk must start at 0.
            let ahead = try await put(url, token, hash, offset: 10, size: bytes.count, Array(bytes[10..<20]))
            #expect(ahead.status == 409 && ahead.code == "offset_mismatch")
            let aheadHeld = try JSON(parsing: ahead.body)["error"]?["held"]
            #expect(aheadHeld == .int(0))
            // A chunk whose bytes are not what its hash says: taken back.
            let corrupt = try await put(
                url, token, hash, offset: 0, size: bytes.count, Array(bytes.prefix(1000)),
                chunkHash: Self.sha256(Array(bytes.prefix(999)) + [0]))
            #expect(corrupt.status == 400 && corrupt.code == "file_mismatch")
            #expect(try await held(url, token, hash).offset == 0)
            // A chunk past the file's end.
            #expect(try await put(url, token, hash, offset: 0, size: 10, Array(bytes.prefix(20))).code != nil)
            // A good first chunk, then one overlapping it.
            let first = try await put(
                url, token, hash, offset: 0, size: bytes.count, Array(bytes.prefix(60_000)),
                chunkHash: Self.sha256(Array(bytes.prefix(60_000))))
            #expect(first.status == 200)
            let overlap = try await put(
                url, token, hash, offset: 30_000, size: bytes.count, Array(bytes[30_000..<90_000]))
            #expect(overlap.status == 409 && overlap.code == "offset_mismatch")
            #expect(try await held(url, token, hash) == ("partial", 60_000))
            // The rest, but not the file's bytes: the whole does not hash to the name; dropped.
            var wrong = Array(bytes[60_000...])
            wrong[100] ^= 0xFF
            let mismatch = try await put(url, token, hash, offset: 60_000, size: bytes.count, wrong)
            #expect(mismatch.status == 400 && mismatch.code == "file_mismatch")
            #expect(try await held(url, token, hash) == ("absent", 0))
            #expect(
                try await send(
                    url, "v1/files/\(hash)", method: "GET", headers: ["Authorization": "Bearer \(token)"], body: nil
                ).status == 404)
            #expect(!FileManager.default.fileExists(atPath: try FileDirectory(root: files).path(of: hash)))

            // Sent right, in two chunks: stored, and served whole or from an offset.
            #expect(
                try await put(url, token, hash, offset: 0, size: bytes.count, Array(bytes.prefix(50_000))).status == 200
            )
            let last = try await put(url, token, hash, offset: 50_000, size: bytes.count, Array(bytes[50_000...]))
            let complete = try JSON(parsing: last.body)["complete"]
            #expect(last.status == 200 && complete == .bool(true))
            #expect(try await held(url, token, hash) == ("complete", bytes.count))
            let whole = try await send(
                url, "v1/files/\(hash)", method: "GET", headers: ["Authorization": "Bearer \(token)"], body: nil)
            #expect(whole.status == 200 && whole.body == bytes)
            let tail = try await send(
                url, "v1/files/\(hash)", method: "GET",
                headers: ["Authorization": "Bearer \(token)", "Range": "bytes=99000-"], body: nil)
            #expect(tail.status == 206 && tail.body == Array(bytes[99_000...]))
            let beyond = try await send(
                url, "v1/files/\(hash)", method: "GET",
                headers: ["Authorization": "Bearer \(token)", "Range": "bytes=200000-"], body: nil)
            #expect(beyond.status == 400)
            // Sent again once stored: nothing to do.
            #expect(
                try await put(url, token, hash, offset: 0, size: bytes.count, Array(bytes.prefix(10))).status == 200)
            #expect(try await put(url, token, hash, offset: 0, size: 5, [1]).code == "file_mismatch")
        }
    }

    @Test(
        "pushes: a reference to a file never uploaded, of another size, or of a type its content is not; a path for a name",
        arguments: Backend.all)
    func references(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let token = try await storage.createToken(name: "李明")
        let bytes = Self.photo(size: 2000, seed: 2)
        let hash = Self.sha256(bytes)
        try await withServer(storage: storage, configure: { $0.filesDirectory = dir.path("files") }) { url in
            let never = String(repeating: "7", count: 64)
            let missing = try await post(url, "v1/push", token: token, body: finding("\(never) 10 image/jpeg a.jpg"))
            #expect(missing.status == 409 && missing.code == "missing_files")
            #expect(try await put(url, token, hash, offset: 0, size: bytes.count, bytes).status == 200)
            let size = try await post(url, "v1/push", token: token, body: finding("\(hash) 2001 image/jpeg a.jpg"))
            #expect(size.status == 400 && size.code == "file_mismatch")
            let lie = try await post(url, "v1/push", token: token, body: finding("\(hash) 2000 image/png a.png"))
            #expect(lie.status == 400 && lie.code == "file_mismatch")
            for name in ["../../etc/passwd", "..", "a/b.jpg", "C:\\\\x.jpg"] {
                let path = try await post(
                    url, "v1/push", token: token, body: finding("\(hash) 2000 image/jpeg \(name)"))
                #expect(path.status == 400 && path.code == "invalid_value", "\(name)")
            }
            #expect(try await storage.standing(device: device).head == 0)
            // The same reference, right: taken.
            #expect(
                try await post(url, "v1/push", token: token, body: finding("\(hash) 2000 image/jpeg 照片.jpg")).status
                    == 200)
            #expect(try await storage.standing(device: device).head == 1)
        }
    }

    @Test("a server without a files directory refuses file routes and pushes that refer to files")
    func noFiles() async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, .sqlite)
        let token = try await storage.createToken(name: "李明")
        try await withServer(storage: storage) { url in
            let hash = String(repeating: "a", count: 64)
            #expect(try await put(url, token, hash, offset: 0, size: 1, [1]).code == "not_found")
            let push = try await send(
                url, "v1/push", headers: ["Authorization": "Bearer \(token)"],
                body: finding("\(hash) 1 image/jpeg a.jpg"))
            #expect(push.code == "missing_files", "\(String(decoding: push.body, as: UTF8.self))")
        }
    }

    func get(_ url: URL, _ token: String, _ hash: String) async throws -> (status: Int, code: String?, body: [UInt8]) {
        try await send(url, "v1/files/\(hash)", method: "GET", headers: ["Authorization": "Bearer \(token)"], body: nil)
    }

    @Test(
        "scoped tokens: another town's file is not served, not said to be held, not referred to without its bytes",
        arguments: Backend.all)
    func scopedFiles(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let (storage, officeToken, xindu, office, inspector) = try await officeAndInspector(dir, backend)
        let chengguan = try await storage.createToken(name: "张伟", role: "inspector", scopes: ["town=城关镇"])
        let bytes = [Self.photo(size: 30_000, seed: 11), Self.photo(size: 40_000, seed: 12)]
        for (n, photo) in bytes.enumerated() { try Data(photo).write(to: URL(fileURLWithPath: dir.path("\(n).jpg"))) }
        var sites: [String] = []
        var photos: [FieldbookCore.Attachment] = []
        for (n, town) in ["新度镇", "城关镇"].enumerated() {
            let site = try office.insert(
                "site", ["name": .text("\(town)敬老院"), "kind": "elderly_home", "town": .text(town)])
            let finding = try office.insert("finding", ["title": "消防通道堵塞", "site": .text(site)])
            photos += try office.attach("finding", id: finding, field: "evidence", files: [dir.path("\(n).jpg")])
            sites.append(site)
        }
        let (mine, theirs, site) = (photos[0], photos[1], sites[0])
        try await withServer(storage: storage, configure: { $0.filesDirectory = dir.path("server.files") }) { url in
            _ = try await office.sync(HTTPTransport(server: url, token: officeToken))
            // The inspector's device downloads its town's photo, and never learns of the other.
            let report = try await inspector.sync(HTTPTransport(server: url, token: xindu))
            #expect(report.filesDownloaded == 1 && report.filesWaiting == 0)
            #expect(try inspector.holdsFile(mine.sha256) && !inspector.holdsFile(theirs.sha256))

            // The other town's hash, known from elsewhere, opens nothing: not served, not said to be held.
            let refused = try await get(url, xindu, theirs.sha256)
            #expect(refused.status == 404 && refused.code == "not_found")
            #expect(try await get(url, chengguan, theirs.sha256).body == bytes[1])
            #expect(try await get(url, officeToken, theirs.sha256).body == bytes[1])
            #expect(try await held(url, xindu, theirs.sha256) == ("absent", 0))
            #expect(try await held(url, xindu, mine.sha256) == ("complete", bytes[0].count))
            // Nor may it be referred to in a record of one's own scope without its bytes.
            var fields: [UInt8] = []
            JSON.object([
                ("title", .string("呼叫按钮失灵")), ("status", .string("not_started")), ("site", .string(site)),
                ("evidence", .object([("add", .array([.string(theirs.text)])), ("remove", .array([]))])),
            ]).write(to: &fields)
            let push = pushBody(change(entity: "finding", fields: String(decoding: fields, as: UTF8.self)))
            let head = try await storage.standing(device: device).head
            let missing = try await send(url, "v1/push", headers: ["Authorization": "Bearer \(xindu)"], body: push)
            #expect(
                missing.status == 409 && missing.code == "missing_files",
                "\(String(decoding: missing.body, as: UTF8.self))")
            #expect(try JSON(parsing: missing.body)["error"]?["files"] == .array([.string(theirs.sha256)]))
            #expect(try await storage.standing(device: device).head == head)
            // Uploading it is no shortcut: the first chunk is not answered "complete"; all of it must come.
            let half = bytes[1].count / 2
            let first = try await put(
                url, xindu, theirs.sha256, offset: 0, size: bytes[1].count, Array(bytes[1][..<half]))
            #expect(try first.status == 200 && JSON(parsing: first.body)["complete"] == .bool(false))
            let rest = try await put(
                url, xindu, theirs.sha256, offset: half, size: bytes[1].count, Array(bytes[1][half...]))
            #expect(try rest.status == 200 && JSON(parsing: rest.body)["complete"] == .bool(true))
            // Having sent the bytes, the token holds them: it may refer to the file and read it.
            #expect(try await held(url, xindu, theirs.sha256) == ("complete", bytes[1].count))
            #expect(try await post(url, "v1/push", token: xindu, body: push).status == 200)
            #expect(try await get(url, xindu, theirs.sha256).body == bytes[1])

            // A file the token uploaded and no record refers to, then a rescope to the other town:
            // what the old scope opened is closed.
            let loose = Self.photo(size: 5_000, seed: 13)
            let looseHash = Self.sha256(loose)
            #expect(try await put(url, xindu, looseHash, offset: 0, size: loose.count, loose).status == 200)
            #expect(try await get(url, xindu, looseHash).body == loose)
            #expect(try await get(url, chengguan, looseHash).status == 404)
            #expect(try await storage.rescope(name: "李明", scopes: ["town=城关镇"]) == 1)
            #expect(try await get(url, xindu, looseHash).status == 404)
            #expect(try await held(url, xindu, looseHash) == ("absent", 0))
            #expect(try await get(url, xindu, mine.sha256).status == 404)
            #expect(try await get(url, xindu, theirs.sha256).body == bytes[1])
        }
    }

}
