import FieldbookCore
import FieldbookHTTP
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import Synchronization
import Testing

/// Four versions of a small ledger: v2 adds a field with a default and renames one, v3 retires
/// one, adds an enum value (between two others in a `max` order) and an optional field, v4
/// renames the renamed field again (a device of v1 upgrading to v4 follows it through v2).
enum FleetSchemas {
    static let v1 = """
        {"schema": "fleet", "version": 1, "entities": [{"name": "item", "fields": [
          {"name": "title", "type": "text", "policy": "lww"},
          {"name": "note", "type": "text", "policy": "manual"},
          {"name": "status", "type": "enum", "values": ["open", "done"], "policy": "max", "order": ["open", "done"]},
          {"name": "count", "type": "integer", "policy": "counter"},
          {"name": "old", "type": "text", "policy": "lww"}]}]}
        """
    static let v2 = """
        {"schema": "fleet", "version": 2, "entities": [{"name": "item", "fields": [
          {"name": "title", "type": "text", "policy": "lww"},
          {"name": "remark", "renamedFrom": "note", "type": "text", "policy": "manual"},
          {"name": "status", "type": "enum", "values": ["open", "done"], "policy": "max", "order": ["open", "done"]},
          {"name": "count", "type": "integer", "policy": "counter"},
          {"name": "old", "type": "text", "policy": "lww"},
          {"name": "priority", "type": "text", "default": "normal", "policy": "lww"}]}]}
        """
    static let v3 = """
        {"schema": "fleet", "version": 3, "entities": [{"name": "item", "fields": [
          {"name": "title", "type": "text", "policy": "lww"},
          {"name": "remark", "renamedFrom": "note", "type": "text", "policy": "manual"},
          {"name": "status", "type": "enum", "values": ["open", "done", "waived"], "policy": "max",
           "order": ["open", "waived", "done"]},
          {"name": "count", "type": "integer", "policy": "counter"},
          {"name": "old", "retired": true, "type": "text", "policy": "lww"},
          {"name": "priority", "type": "text", "default": "normal", "policy": "lww"},
          {"name": "tag", "type": "text", "policy": "lww"}]}]}
        """
    static let v4 = """
        {"schema": "fleet", "version": 4, "entities": [{"name": "item", "fields": [
          {"name": "title", "type": "text", "policy": "lww"},
          {"name": "comment", "renamedFrom": "remark", "type": "text", "policy": "manual"},
          {"name": "status", "type": "enum", "values": ["open", "done", "waived"], "policy": "max",
           "order": ["open", "waived", "done"]},
          {"name": "count", "type": "integer", "policy": "counter"},
          {"name": "old", "retired": true, "type": "text", "policy": "lww"},
          {"name": "priority", "type": "text", "default": "normal", "policy": "lww"},
          {"name": "tag", "type": "text", "policy": "lww"}]}]}
        """
    static let all: [Schema] = [v1, v2, v3, v4].map { try! Schema(json: $0) }
}

/// An HTTP transport that loses requests and answers, and sends requests twice, as a bad network
/// would: the server it talks to is real.
final class FlakyHTTP: SyncTransport {
    let inner: HTTPTransport
    let rng: Mutex<SeededGenerator>
    let faults: Bool

    init(server: URL, token: String, seed: UInt64, faults: Bool) {
        inner = HTTPTransport(server: server, token: token)
        rng = Mutex(SeededGenerator(seed: seed))
        self.faults = faults
    }

    private func run<T>(_ body: () async throws -> T) async throws -> T {
        let fault = faults ? rng.withLock { Int.random(in: 0..<12, using: &$0) } : 99
        switch fault {
        case 0: throw SyncError(.network, "request lost")
        case 1:
            _ = try await body()
            throw SyncError(.network, "answer lost")
        case 2:
            _ = try? await body()
            return try await body()
        default: return try await body()
        }
    }

    func push(_ request: PushRequest) async throws -> PushResponse { try await run { try await inner.push(request) } }
    func push(encoded: EncodedPush) async throws -> PushResponse {
        try await run { try await inner.push(encoded: encoded) }
    }
    func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse {
        try await run { try await inner.pull(request, schema: schema) }
    }
    func pullArriving(_ request: PullRequest, schema: Schema) async throws -> ArrivingPage {
        try await run { try await inner.pullArriving(request, schema: schema) }
    }
    func schema(version: Int) async throws -> Schema { try await run { try await inner.schema(version: version) } }
    func catchUp(_ request: CatchUpRequest, schema: Schema) async throws -> CatchUpResponse {
        try await run { try await inner.catchUp(request, schema: schema) }
    }
}

/// A fleet on four schema versions, through a real server: devices start on any version, the
/// server publishes the next versions at random moments, devices write what their version knows,
/// sync through a network that loses and repeats requests, are opened again (staying on their
/// version) or upgrade at random moments. After quiet rounds every device of the newest version
/// holds the same records as a new device of it, every older one exactly their projection onto its
/// version, and the server holds every change every device made.
@Suite("Sync: property test over a fleet on several schema versions", .tags(.device))
struct FleetPropertyTests {
    /// Cases: FIELDBOOK_FLEET_CASES (default 1,000; 10 in the fast tier); FIELDBOOK_FLEET_SEED replays one.
    static let seeds: [UInt64] = {
        let env = ProcessInfo.processInfo.environment
        if let seed = env["FIELDBOOK_FLEET_SEED"].flatMap(UInt64.init) { return [seed] }
        let count = env["FIELDBOOK_FLEET_CASES"].flatMap(Int.init) ?? TestTier.cases(full: 1_000, fast: 10)
        return (0..<UInt64(count)).map { $0 }
    }()

    /// Over all cases: upgrades made, catch-ups that brought something, devices that stayed behind.
    static let upgrades = Atomic<Int>(0)
    static let behind = Atomic<Int>(0)
    /// Upgrades across more than one version (through a field renamed twice, from v1 to v4).
    static let jumps = Atomic<Int>(0)

    @Test(
        "devices of every version converge on their projection of the newest; nothing any version wrote is lost",
        arguments: Backend.all)
    func fleet(backend: Backend) async throws {
        try await runCases(Self.seeds, label: "\(backend)", replay: "FIELDBOOK_FLEET_SEED") { seed in
            try await Self.scenario(seed: seed, backend: backend)
        }
        if Self.seeds.count >= 10 {
            #expect(Self.upgrades.load(ordering: .relaxed) > 0)
            #expect(Self.behind.load(ordering: .relaxed) > 0)
        }
        if Self.seeds.count >= 100 { #expect(Self.jumps.load(ordering: .relaxed) > 0) }
    }

    struct Device {
        var path: String
        var file: Schema
        var store: Store
    }

    static func scenario(seed: UInt64, backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend, schema: FleetSchemas.all[0])
        let token = try await storage.createToken(name: "王芳", role: nil)
        try await withServer(storage: storage) { url in
            var rng = SeededGenerator(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ 29)
            let versions = FleetSchemas.all
            // When the server publishes v2, v3 and v4 (a step number; past the end: never).
            let steps = Int.random(in: 10...24, using: &rng)
            let publishAt = [
                Int.random(in: 0...steps, using: &rng), Int.random(in: 0...steps + 2, using: &rng),
                Int.random(in: 0...steps + 4, using: &rng),
            ].sorted()
            var published = 1
            var devices: [Device] = []
            for n in 0..<Int.random(in: 3...4, using: &rng) {
                let file = versions[Int.random(in: 0..<versions.count, using: &rng)]
                let path = dir.path("device\(n).sqlite")
                devices.append(Device(path: path, file: file, store: try Store(path: path, schema: file)))
            }
            var options = SyncOptions()
            options.attempts = 1
            options.pushBatch = Int.random(in: 1...4, using: &rng)
            options.pageSize = Int.random(in: 1...5, using: &rng)
            let flaky = devices.indices.map {
                FlakyHTTP(server: url, token: token, seed: seed &+ UInt64($0), faults: true)
            }
            for step in 0..<steps {
                while published < versions.count, publishAt[published - 1] <= step {
                    try await storage.publish(versions[published])
                    published += 1
                }
                let n = Int.random(in: 0..<devices.count, using: &rng)
                switch Int.random(in: 0..<10, using: &rng) {
                case 0..<3: _ = try? await devices[n].store.sync(flaky[n], options: options)
                case 3:
                    // The app is opened again: the store reads a newer version's values it fetched.
                    devices[n].store = try Store(path: devices[n].path, schema: devices[n].file)
                case 4:
                    // The app upgrades, if the device has fetched a newer version (at any earlier sync).
                    let opened = try Store(path: devices[n].path, schema: devices[n].file)
                    if let newest = opened.newestSchema {
                        if newest.version > devices[n].file.version + 1 { jumps.add(1, ordering: .relaxed) }
                        devices[n].file = newest
                        devices[n].store = try Store(path: devices[n].path, schema: newest)
                        upgrades.add(1, ordering: .relaxed)
                    }
                default:
                    try write(devices[n].store, &rng)
                }
            }
            // Quiet rounds: every device opened again, then syncing until all have everything.
            let reliable = devices.indices.map { _ in
                FlakyHTTP(server: url, token: token, seed: 0, faults: false)
            }
            for round in 0..<3 {
                for n in devices.indices {
                    devices[n].store = try Store(path: devices[n].path, schema: devices[n].file)
                    if round == 1, let newest = devices[n].store.newestSchema, Bool.random(using: &rng) {
                        if newest.version > devices[n].file.version + 1 { jumps.add(1, ordering: .relaxed) }
                        devices[n].file = newest
                        devices[n].store = try Store(path: devices[n].path, schema: newest)
                        upgrades.add(1, ordering: .relaxed)
                    }
                    if devices[n].file.version > published { continue }  // ahead of the server: refused
                    do {
                        _ = try await devices[n].store.sync(reliable[n], options: options)
                    } catch let error as SyncError where error.kind == .badResponse && round == 0 {
                        // Learned a newer version this round: read once opened again.
                    }
                }
            }
            // A device of the newest version, new, is the reference.
            let newest = versions[published - 1]
            let reference = try Store(path: dir.path("reference.sqlite"), schema: newest)
            _ = try await reference.sync(reliable[0], options: options)
            let expected = try reference.fetch(Query("item"))
            for (n, device) in devices.enumerated() {
                let store = device.store
                if device.file.version > published {
                    // Refused as ahead of the server: it keeps every change.
                    #expect(try store.pendingCount() == store.changeCount(), "seed \(seed) device \(n) ahead")
                    continue
                }
                if device.file.version < newest.version { behind.add(1, ordering: .relaxed) }
                #expect(try store.pendingCount() == 0, "seed \(seed) device \(n): pending")
                let translation = SchemaTranslation(Array(versions[(device.file.version - 1)..<published]))
                let projected = expected.map { project($0, translation) }
                let held = try store.fetch(Query("item")).map { record in
                    [("id", Value.text(record.id))]
                        + store.schema.entity("item")!.fields.map { ($0.name, record[$0.name]) }
                }
                #expect(
                    held.map { $0.map { "\($0.0)=\($0.1)" } } == projected.map { $0.map { "\($0.0)=\($0.1)" } },
                    "seed \(seed) device \(n) (version \(device.file.version) of \(published))")
                let conflicts = try reference.conflicts().compactMap { conflict -> String? in
                    guard let field = conflict.field else { return conflict.id }
                    return translation.olderName(entity: conflict.entity, field: field).map {
                        "\(conflict.recordID)/\($0)"
                    }
                }
                #expect(
                    try store.conflicts().map(\.id).sorted() == conflicts.sorted(),
                    "seed \(seed) device \(n): conflicts")
            }
            // Every change every device made (and could send) is on the server.
            let sent = try devices.filter { $0.file.version <= published }.map { try $0.store.changeCount() }.reduce(
                0, +)
            #expect(try await storage.changeCount() == sent, "seed \(seed): changes on the server")
        }
    }

    /// A record of the newest version as a device of `translation.older` holds it: its fields under
    /// their names there, those it lacks left out.
    static func project(_ record: Record, _ translation: SchemaTranslation) -> [(String, Value)] {
        [("id", .text(record.id))]
            + translation.older.entity("item")!.fields.map { field in
                (field.name, translation.newerName(entity: "item", field: field.name).map { record[$0] } ?? .null)
            }
    }

    /// One write a device of its version may make.
    static func write(_ store: Store, _ rng: inout SeededGenerator) throws {
        let entity = store.schema.entity("item")!
        let ids = try store.fetch(Query("item")).map(\.id)
        let texts = ["甲", "乙", "丙", "a", "b"]
        func value(_ field: Field) -> Value {
            switch field.type {
            case .enumeration(let values): .text(values.randomElement(using: &rng)!)
            case .integer: .integer(Int64.random(in: 0...9, using: &rng))
            default: .text(texts.randomElement(using: &rng)!)
            }
        }
        let writable = entity.fields.filter { !$0.retired }
        if ids.isEmpty || Int.random(in: 0..<4, using: &rng) == 0 {
            var values: [String: Value] = [:]
            for field in writable where Bool.random(using: &rng) { values[field.name] = value(field) }
            try store.insert("item", values)
            return
        }
        let id = ids.randomElement(using: &rng)!
        switch Int.random(in: 0..<8, using: &rng) {
        case 0:
            try store.delete("item", id: id)
        case 1:
            try store.write { try $0.increment("item", id: id, "count", by: Int64.random(in: 1...3, using: &rng)) }
        default:
            let field = writable.filter { $0.policy != .counter }.randomElement(using: &rng)!
            try store.update("item", id: id, [field.name: value(field)])
        }
    }
}
