import FieldbookCore
import FieldbookHTTP
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookTesting
import Foundation
import GRDB
import Testing

/// Power cuts, simulated: `fieldbook-power-cut` runs two devices and a server on a SQLite VFS
/// that records every write and sync, and writes the files as a power cut at many moments
/// would leave them (every unsynced write lost, or some). Each cut is then checked here: every
/// file passes `integrity_check`; nothing the server acknowledged is gone from the server;
/// nothing a device sent (else it would give the sequence number to another change) or
/// flushed is gone from the device; and sync resumes and converges.
@Suite("Durability: power cuts", .tags(.endToEnd, .slow), .fullRunOnly)
struct PowerCutTests {
    @Test("a power cut at any moment loses no change the server acknowledged or a device sent or flushed; sync resumes")
    func powerCuts() async throws {
        let (cuts, violations) = try await powerCutViolations(oldSettings: false)
        #expect(cuts >= 30)
        #expect(violations.isEmpty, "\(violations.prefix(10).joined(separator: "\n"))")
    }

    @Test("the old settings (NORMAL everywhere, nothing made durable before a push) fail the same test")
    func oldSettingsFail() async throws {
        let (_, violations) = try await powerCutViolations(oldSettings: true)
        #expect(violations.contains { $0.contains("the server lost") }, "the server acknowledges pushes it may lose")
        #expect(violations.contains { $0.contains("lost change") }, "a device may lose changes the server holds")
    }
}

/// Runs `fieldbook-power-cut` and checks every cut it wrote; returns how many cuts, and what went wrong.
func powerCutViolations(oldSettings: Bool) async throws -> (cuts: Int, violations: [String]) {
    let dir = TemporaryDirectory()
    let process = Process()
    process.executableURL = try BuiltProducts.url("fieldbook-power-cut")
    process.arguments = [dir.url.path] + (oldSettings ? ["--old-settings"] : [])
    process.standardOutput = Pipe()
    try process.run()
    process.waitUntilExit()
    try #require(process.terminationStatus == 0)
    let manifest = try JSONDecoder().decode(
        PowerCutManifest.self, from: Data(contentsOf: dir.url.appendingPathComponent("manifest.json")))
    // The live files: every change as the server stored it and as each device wrote it.
    let finalServer = try serverChanges(dir.path("server.sqlite"))
    var finalDevices: [String: [Int64: String]] = [:]
    for device in manifest.devices { finalDevices[device.id] = try deviceChanges(dir.path(device.file)).changes }

    var violations: [String] = []
    for cut in manifest.cuts {
        func path(_ file: String) -> String {
            dir.url.appendingPathComponent(cut.directory).appendingPathComponent(file).path
        }
        func note(_ what: String) { violations.append("\(cut.directory) (clock \(cut.clock)): \(what)") }
        for file in ["server.sqlite"] + manifest.devices.map(\.file)
        where FileManager.default.fileExists(atPath: path(file)) {
            let result = try integrityCheck(path(file))
            if result != "ok" { note("\(file): integrity_check says \(result)") }
        }
        let server = try serverChanges(path("server.sqlite"))
        for device in manifest.devices {
            let acknowledged = cut.acknowledged[device.id] ?? 0
            if acknowledged > 0,
                let lost = (1...acknowledged).first(where: {
                    let key = ChangeKey(device: device.id, sequence: $0)
                    return server[key] != finalServer[key]
                })
            {
                note("the server lost \(device.file)'s change \(lost) (acknowledged through \(acknowledged))")
            }
            // What the device sent (the server may hold it) or flushed.
            let sent = cut.sent[device.id] ?? 0
            let kept = max(sent, cut.flushed[device.id] ?? 0)
            let recovered = try deviceChanges(path(device.file))
            if kept > 0, recovered.device != device.id {
                note(
                    "\(device.file) is a new store (device \(recovered.device ?? "none")) after keeping changes through \(kept)"
                )
            } else if kept > 0,
                let lost = (1...kept).first(where: { recovered.changes[$0] != finalDevices[device.id]?[$0] })
            {
                note(
                    "\(device.file) lost change \(lost) (sent through \(sent), flushed through \(cut.flushed[device.id] ?? 0))"
                )
            }
        }
        do {
            try await resumeSync(manifest, dir.url.appendingPathComponent(cut.directory))
        } catch {
            note("sync after the cut: \(error)")
        }
    }
    return (manifest.cuts.count, violations)
}

/// After the cut: each device makes a change (it would take a lost sequence number) and syncs,
/// twice round, with the server over HTTP; all three must end up with the same records.
private func resumeSync(_ manifest: PowerCutManifest, _ directory: URL) async throws {
    let storage = try SQLiteSyncStorage(path: directory.appendingPathComponent("server.sqlite").path, schema: schema)
    try await withServer(storage: storage) { url in
        // A few tries: with the whole suite running on two cores, a connection can time out.
        var options = SyncOptions()
        options.attempts = 3
        options.initialBackoff = .milliseconds(100)
        var devices: [(store: Store, token: String)] = []
        for device in manifest.devices {
            let store = try Store(path: directory.appendingPathComponent(device.file).path, schema: schema)
            try store.insert("site", ["name": "城厢区公墓", "kind": "cemetery"])
            devices.append((store, device.token))
        }
        for (store, token) in devices + devices {
            _ = try await store.sync(HTTPTransport(server: url, token: token), options: options)
        }
        let expected = try await snapshot(storage)
        for (store, _) in devices {
            if try snapshot(store) != expected {
                throw PowerCutFailure("\(store.path) did not converge with the server")
            }
        }
    }
}

struct PowerCutFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct ChangeKey: Hashable {
    var device: String
    var sequence: Int64
}

/// Every change a server file holds, by device and sequence number: its server sequence number
/// and content. Empty if the file is missing or holds no server store yet.
func serverChanges(_ path: String) throws -> [ChangeKey: String] {
    guard FileManager.default.fileExists(atPath: path) else { return [:] }
    return try DatabaseQueue(path: path).read { db in
        guard try db.tableExists("changes") else { return [:] }
        var result: [ChangeKey: String] = [:]
        for row in try Row.fetchAll(
            db, sql: "SELECT device, seq, sseq, entity, record, op, hlc, base, fields FROM changes")
        {
            result[ChangeKey(device: row[0], sequence: row[1])] = "\(row)"
        }
        return result
    }
}

/// A device file's id and changelog (content by sequence number); nothing if missing or not a store yet.
func deviceChanges(_ path: String) throws -> (device: String?, changes: [Int64: String]) {
    guard FileManager.default.fileExists(atPath: path) else { return (nil, [:]) }
    return try DatabaseQueue(path: path).read { db in
        guard try db.tableExists("_changelog") else { return (nil, [:]) }
        let device = try String.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'device_id'")
        var changes: [Int64: String] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT seq, entity, record, op, hlc, base, fields FROM _changelog") {
            changes[row[0]] = "\(row)"
        }
        return (device, changes)
    }
}
