import FieldbookJSON
import FieldbookTesting
import Foundation
import Testing

/// The real `fieldbook` binary killed mid-transfer of a large photo: the next command resumes
/// where the transfer stopped and moves only the rest; what arrives is the file, byte for byte.
@Suite("fieldbook CLI: transfers killed mid-way", .tags(.endToEnd))
struct FileKillTests {
    /// The largest file under `directory` (recursively), and its size; nil if none.
    static func largest(under directory: String) -> Int64? {
        guard let names = FileManager.default.subpaths(atPath: directory) else { return nil }
        return names.compactMap {
            (try? FileManager.default.attributesOfItem(atPath: directory + "/" + $0))?[.size] as? Int64
        }.max()
    }

    /// Runs `fieldbook ARGS…` and kills it with SIGKILL once `ready()` holds; true if it was killed
    /// (not finished first).
    static func killed(_ arguments: [String], when ready: () -> Bool) throws -> Bool {
        let process = Process()
        process.executableURL = try BuiltProducts.url("fieldbook")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        while process.isRunning && !ready() { usleep(1000) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return process.terminationReason == .uncaughtSignal
    }

    @Test("SIGKILL mid-upload and mid-download: each resumes, moving only what was missing")
    func killedTransfers() throws {
        let world = try CLIWorld()
        let size = 96 << 20
        let photo = world.dir.appendingPathComponent("全景.jpg").path
        var random = SeededGenerator(seed: 11)
        var bytes = [UInt8](repeating: 0, count: size)
        bytes[0] = 0xFF
        bytes[1] = 0xD8
        bytes[2] = 0xFF
        for i in stride(from: 3, to: size, by: 4096) { bytes[i] = UInt8.random(in: 0...255, using: &random) }
        try Data(bytes).write(to: URL(fileURLWithPath: photo))
        for (device, name) in [("li", "李明"), ("office", "王芳")] {
            #expect(
                try world.fieldbook(device, ["init", "--server", world.url, "--token", world.token(name)]).status == 0)
        }
        let finding = try world.fieldbook("li", ["add", "finding", "title=围墙倒塌"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let attached = try world.json("li", ["attach", "finding", finding, "evidence", photo])
        let hash = try #require(attached.array.first?["sha256"]?.string)

        // Killed once the server holds part of the upload (a chunk or more, not all).
        let partial = world.dir.appendingPathComponent("server.sqlite.files/partial").path
        let cut = try Self.killed(["--store", world.path("li"), "sync"]) {
            (Self.largest(under: partial) ?? 0) >= 8 << 20
        }
        try #require(cut, "the sync finished before it could be killed")
        Thread.sleep(forTimeInterval: 0.3)  // the server takes back a chunk cut off mid-way
        let held = try #require(Self.largest(under: partial))
        #expect(held > 0 && held < Int64(size))
        let sync = try world.json("li", ["sync"])
        #expect(sync["file_bytes_uploaded"]?.int == Int64(size) - held)
        #expect(sync["pushed"]?.int == 2)

        // The office: the record arrives, the 96 MiB photo waits (over the download limit) until asked for.
        let pulled = try world.json("office", ["sync"])
        #expect(pulled["files_waiting"]?.int == 1 && pulled["files_downloaded"]?.int == 0)
        let downloading = world.path("office") + "/device.sqlite.files/partial"
        let stopped = try Self.killed([
            "--store", world.path("office"), "attachment", "get", hash, "-o",
            world.dir.appendingPathComponent("x").path,
        ]) {
            (Self.largest(under: downloading) ?? 0) >= 4 << 20
        }
        try #require(stopped, "the download finished before it could be killed")
        let got = try #require(Self.largest(under: downloading))
        #expect(got < Int64(size))
        let out = world.dir.appendingPathComponent("到达.jpg").path
        let fetched = try world.json("office", ["attachment", "get", String(hash.prefix(12)), "-o", out])
        #expect(fetched["received"]?.int == Int64(size) - got)
        #expect(FileManager.default.contentsEqual(atPath: out, andPath: photo))
        let listed = try world.json("office", ["attachment", "list", "finding", finding])
        #expect(listed.array.first?["here"] == .bool(true))
    }

    @Test(
        "SIGKILL at random moments of attaching a large photo: never a reference to a half file; the next attach finishes"
    )
    func killedAttach() throws {
        let world = try CLIWorld()
        let size = 64 << 20
        let photo = world.dir.appendingPathComponent("航拍.jpg").path
        var bytes = [UInt8](repeating: 0x5A, count: size)
        bytes[0] = 0xFF
        bytes[1] = 0xD8
        bytes[2] = 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: photo))
        #expect(try world.fieldbook("li", ["init", "--server", world.url, "--token", world.token("李明")]).status == 0)
        let finding = try world.fieldbook("li", ["add", "finding", "title=围墙倒塌"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let files = world.path("li") + "/device.sqlite.files"
        var random = SeededGenerator(seed: 23)
        var killed = 0
        for _ in 0..<6 {
            let delay = Double.random(in: 0...0.4, using: &random)
            let started = Date()
            if try Self.killed(
                ["--store", world.path("li"), "attach", "finding", finding, "evidence", photo],
                when: {
                    Date().timeIntervalSince(started) >= delay
                })
            {
                killed += 1
            }
            // Whatever the moment: the record refers to no file, or to one that is here whole.
            let listed = try world.json("li", ["attachment", "list", "finding", finding])
            for file in listed.array {
                #expect(file["here"] == .bool(true))
                let hash = try #require(file["sha256"]?.string)
                let stored = files + "/sha256/\(hash.prefix(2))/\(hash)"
                #expect(FileManager.default.contentsEqual(atPath: stored, andPath: photo))
            }
            // No half file under a hash.
            for name in (FileManager.default.subpaths(atPath: files + "/sha256") ?? []) where name.count > 3 {
                let path = files + "/sha256/" + name
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                    #expect(FileManager.default.contentsEqual(atPath: path, andPath: photo))
                }
            }
        }
        #expect(killed > 0, "no attach was killed before it finished")
        // Attached once more, it is there: one file, whole.
        #expect(try world.fieldbook("li", ["attach", "finding", finding, "evidence", photo]).status == 0)
        let listed = try world.json("li", ["attachment", "list", "finding", finding])
        #expect(listed.array.count == 1 && listed.array.first?["here"] == .bool(true))
        #expect(try world.json("li", ["sync"])["files_uploaded"]?.int == 1)
    }

    @Test("a photo deleted from the device's files: sync says which and how, and restore puts it back")
    func restored() throws {
        let world = try CLIWorld()
        let photo = world.dir.appendingPathComponent("消防通道.jpg").path
        try Data([0xFF, 0xD8, 0xFF, 0xE0] + Array(repeating: 4, count: 6000)).write(to: URL(fileURLWithPath: photo))
        #expect(try world.fieldbook("li", ["init", "--server", world.url, "--token", world.token("李明")]).status == 0)
        let finding = try world.fieldbook("li", ["add", "finding", "title=消防通道堵塞"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let hash = try #require(
            try world.json("li", ["attach", "finding", finding, "evidence", photo]).array.first?["sha256"]?.string)
        try FileManager.default.removeItem(
            atPath: world.path("li") + "/device.sqlite.files/sha256/\(hash.prefix(2))/\(hash)")

        let stuck = try world.fieldbook("li", ["sync"])
        #expect(stuck.status == 66)
        #expect(stuck.stderr.contains(String(hash.prefix(12))) && stuck.stderr.contains("fieldbook attachment restore"))
        #expect(!stuck.stderr.contains("消防通道"))
        #expect(try world.json("li", ["status"])["pending"]?.int == 2)
        // Offline, status says so too.
        #expect(try world.json("li", ["status"])["files_not_here"] == .array([.string(hash)]))
        #expect(try world.fieldbook("li", ["status"]).stdout.contains("attachment restore"))
        let wrong = world.dir.appendingPathComponent("别的.jpg").path
        try Data([0xFF, 0xD8, 0xFF, 0xE0, 9]).write(to: URL(fileURLWithPath: wrong))
        #expect(try world.fieldbook("li", ["attachment", "restore", wrong]).status == 66)
        let restored = try world.fieldbook("li", ["attachment", "restore", photo])
        #expect(restored.status == 0 && restored.stdout.contains("restored 消防通道.jpg"))
        #expect(try world.json("li", ["status"])["files_not_here"] == .array([]))
        let sync = try world.json("li", ["sync"])
        #expect(sync["pushed"]?.int == 2 && sync["files_missing"] == .array([]))
    }

}
