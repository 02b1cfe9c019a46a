// The files of the power-cut test (PowerCutTests): two devices and a server in this process,
// every SQLite file on a VFS that records writes and syncs (CFieldbookPowerCut).
//
//   fieldbook-power-cut DIRECTORY [--old-settings]
//
// Devices A and B write and sync in rounds (A leaves an edit unpushed at the end of each).
// Then, for moments spread over the run (right after a push reached the server, right after
// the server acknowledged one, and in between), it writes DIRECTORY/cut-N-worst/ (every write
// not yet synced lost) and DIRECTORY/cut-N-some/ (each lost or kept at random): a.sqlite,
// b.sqlite and server.sqlite, with their WALs, as a power cut at that moment leaves them.
// DIRECTORY/manifest.json lists the cuts and, for each, what every device had sent or
// flushed (`Store.flush()`) and the server had acknowledged by then. The live files stay in DIRECTORY: what was written, to
// compare with.
//
// --old-settings: the server with `synchronous = NORMAL`, and pushes that do not make their
// changes durable first (the settings before issue 6): to show what the test catches.
//
// The server is called in process, not over HTTP: what counts is that its answer comes after
// its commit, as in the HTTP server.
import CFieldbookPowerCut
import FieldbookCore
import FieldbookSchemas
import FieldbookServer
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import Synchronization

/// When each push was sent and acknowledged, by the recording clock.
final class Events: Sendable {
    enum Kind { case sent, acknowledged, flushed }

    struct Event {
        var kind: Kind
        var device: String
        var through: Int64
        var clock: Int64
    }

    let list = Mutex<[Event]>([])

    func note(_ kind: Kind, _ device: String, _ through: Int64) {
        let clock = fieldbook_powercut_clock()
        list.withLock { $0.append(Event(kind: kind, device: device, through: through, clock: clock)) }
    }
}

/// The server, called in process.
struct InProcessTransport: SyncTransport {
    let storage: SQLiteSyncStorage
    let identity: Identity
    let events: Events

    func push(_ request: PushRequest) async throws -> PushResponse {
        let through = request.changes.map(\.sequence).max() ?? 0
        events.note(.sent, request.device, through)
        let response: PushResponse
        do {
            response = try await storage.push(request, identity: identity)
        } catch let error as WireError {
            throw SyncError(refusal: error)  // as a real transport reports it
        }
        events.note(.acknowledged, request.device, through)
        return response
    }

    func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse {
        try await storage.pull(request, identity: identity)
    }
}

let arguments = CommandLine.arguments
guard arguments.count >= 2, arguments.dropFirst(2).allSatisfy({ $0 == "--old-settings" }) else {
    FileHandle.standardError.write(Data("usage: fieldbook-power-cut DIRECTORY [--old-settings]\n".utf8))
    exit(2)
}
let directory = URL(fileURLWithPath: arguments[1])
let oldSettings = arguments.contains("--old-settings")
guard fieldbook_powercut_install() == 0 else { fatalError("could not install the recording VFS") }

let schema = try Schema(json: BundledSchemas.inspection)
let server = try SQLiteSyncStorage(
    path: directory.appendingPathComponent("server.sqlite").path, schema: schema,
    synchronous: oldSettings ? "NORMAL" : "FULL")
let events = Events()
var configuration = Store.Configuration()
configuration.durableBeforePush = !oldSettings
var devices: [(store: Store, transport: InProcessTransport, entry: PowerCutManifest.Device)] = []
for (file, person) in [("a.sqlite", "王芳"), ("b.sqlite", "李明")] {
    let token = try await server.createToken(name: person)
    guard let identity = try await server.authenticate(token: token) else { fatalError("a new token was refused") }
    let store = try Store(
        path: directory.appendingPathComponent(file).path, schema: schema, configuration: configuration)
    devices.append(
        (
            store: store, transport: InProcessTransport(storage: server, identity: identity, events: events),
            entry: PowerCutManifest.Device(file: file, id: store.deviceID, token: token)
        ))
}
let (a, b) = (devices[0], devices[1])
let start = fieldbook_powercut_clock()

var options = SyncOptions()
options.pushBatch = 7
options.pageSize = 9
options.attempts = 1
var sites: [String] = []
for round in 0..<6 {
    for t in 0..<4 {
        try a.store.write { tx in
            let site = try tx.insert("site", ["name": .text("幸福院\(round)-\(t)"), "kind": "happiness_home"])
            try tx.update("site", id: site, ["town": .text("新度镇")])
            if let earlier = sites.last { try tx.increment("site", id: earlier, "illegal_graves_found", by: 1) }
            sites.append(site)
        }
    }
    _ = try await a.store.sync(a.transport, options: options)
    let seen = try b.store.fetch(Query("site")).map(\.id)
    try b.store.write { tx in
        try tx.insert("site", ["name": .text("敬老院\(round)"), "kind": "elderly_home"])
        if let site = seen.first { try tx.update("site", id: site, ["beds_total": .integer(Int64(10 + round))]) }
    }
    _ = try await b.store.sync(b.transport, options: options)
    // Left unpushed until the next round: what a power cut may take, unless flushed.
    try a.store.update("site", id: sites[round], ["town": .text("城厢区")])
    if round % 2 == 1 {
        try a.store.flush()
        let made = try a.store.changeCount()
        events.note(.flushed, a.store.deviceID, Int64(made))
    }
}
try a.store.update("site", id: sites[0], ["town": .text("涵江区")])
let end = fieldbook_powercut_clock()

// The moments: right after a push reached the server and right after it was acknowledged (a
// sample of them), evenly spread ones, and the end.
let recorded = events.list.withLock { $0 }
var clocks = Set(recorded.enumerated().filter { $0.offset % 3 == 0 }.map(\.element.clock))
for i in 1..<10 { clocks.insert(start + (end - start) * Int64(i) / 10) }
clocks.insert(end)

var manifest = PowerCutManifest(devices: devices.map(\.entry), cuts: [])
for (n, clock) in clocks.sorted().enumerated() {
    var sent: [String: Int64] = [:]
    var flushed: [String: Int64] = [:]
    var acknowledged: [String: Int64] = [:]
    for event in recorded where event.clock <= clock {
        switch event.kind {
        case .sent: sent[event.device] = max(sent[event.device] ?? 0, event.through)
        case .flushed: flushed[event.device] = max(flushed[event.device] ?? 0, event.through)
        case .acknowledged: acknowledged[event.device] = max(acknowledged[event.device] ?? 0, event.through)
        }
    }
    for (variant, keepPercent) in [("worst", Int32(0)), ("some", Int32(50))] {
        let name = "cut-\(n)-\(variant)"
        let cut = directory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: cut, withIntermediateDirectories: true)
        guard fieldbook_powercut_snapshot(clock, cut.path, keepPercent, UInt32(n + 1)) == 0 else {
            fatalError("could not write \(name)")
        }
        manifest.cuts.append(
            .init(directory: name, clock: clock, sent: sent, flushed: flushed, acknowledged: acknowledged))
    }
}
let encoder = JSONEncoder()
encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
try encoder.encode(manifest).write(to: directory.appendingPathComponent("manifest.json"))
print(
    "\(manifest.cuts.count) cuts over \(end - start) recorded writes and syncs, \(recorded.filter { $0.kind == .sent }.count) pushes"
)
