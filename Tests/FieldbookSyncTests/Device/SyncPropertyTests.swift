import FieldbookCore
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import Synchronization
import Testing

/// A transport straight into the server's storage that loses requests and answers,
/// and sends requests twice, as a bad network would. With a clock bound, it refuses pushes
/// stamped too far ahead as the server's HTTP layer does (`clock_ahead`).
final class FlakyTransport: SyncTransport {
    let storage: any SyncStorage
    let identity: Identity
    let rng: Mutex<SeededGenerator>
    let faults: Bool
    let clockBound: Duration?

    init(storage: any SyncStorage, identity: Identity, seed: UInt64, faults: Bool, clockBound: Duration? = nil) {
        self.storage = storage
        self.identity = identity
        self.rng = Mutex(SeededGenerator(seed: seed))
        self.faults = faults
        self.clockBound = clockBound
    }

    enum Fault { case none, requestLost, answerLost, repeated }

    func fault() -> Fault {
        guard faults else { return .none }
        return rng.withLock { rng in
            switch Int.random(in: 0..<10, using: &rng) {
            case 0: .requestLost
            case 1: .answerLost
            case 2: .repeated
            default: .none
            }
        }
    }

    /// Runs `body` under the fault drawn, reporting a refusal as a real transport does.
    func run<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await faulty(body)
        } catch let error as WireError {
            throw SyncError(refusal: error)
        }
    }

    private func faulty<T>(_ body: () async throws -> T) async throws -> T {
        switch fault() {
        case .requestLost: throw SyncError(.network, "request lost")
        case .answerLost:
            _ = try await body()
            throw SyncError(.network, "answer lost")
        case .repeated:
            _ = try await body()
            return try await body()
        case .none: return try await body()
        }
    }

    func push(_ request: PushRequest) async throws -> PushResponse {
        try await run {
            if let clockBound { try ClockBound.check(request, now: ClockBound.now(), bound: clockBound) }
            return try await storage.push(request, identity: identity)
        }
    }

    func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse {
        try await run { try await storage.pull(request, identity: identity) }
    }
}

@Suite("Sync: property test over random edits, sync orders, faults and skewed device clocks", .tags(.device))
struct SyncPropertyTests {
    /// Cases: FIELDBOOK_SYNC_CASES (default 1,000; 30 in the fast tier); FIELDBOOK_SYNC_SEED replays one.
    static let seeds: [UInt64] = {
        let env = ProcessInfo.processInfo.environment
        if let seed = env["FIELDBOOK_SYNC_SEED"].flatMap(UInt64.init) { return [seed] }
        let count = env["FIELDBOOK_SYNC_CASES"].flatMap(Int.init) ?? TestTier.cases(full: 1_000, fast: 30)
        return (0..<UInt64(count)).map { $0 }
    }()

    /// How many conflicts the scenarios have settled.
    static let settled = Atomic<Int>(0)

    /// Scenarios run two at a time (each opens a server and up to five device files).
    @Test("devices and server converge; nothing acknowledged is lost or applied twice", arguments: Backend.all)
    func converge(backend: Backend) async throws {
        try await runCases(Self.seeds, label: "\(backend)", replay: "FIELDBOOK_SYNC_SEED") { seed in
            try await Self.scenario(seed: seed, backend: backend)
        }
        // The settling at the end of each scenario is not vacuous: conflicts arise, and are settled.
        if Self.seeds.count >= 100 { #expect(Self.settled.load(ordering: .relaxed) > 0) }
    }

    static func scenario(seed: UInt64, backend: Backend) async throws {
        var rng = SeededGenerator(seed: seed &* 0x2545_F491_4F6C_DD1D &+ 17)
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let count = Int.random(in: 3...5, using: &rng)
        var devices: [Store] = []
        var flaky: [FlakyTransport] = []
        var reliable: [FlakyTransport] = []
        // Device clocks: most right, some hours off either way, some days behind, some days ahead
        // (beyond the server's bound of a day: refused, re-stamped), some ten years ahead.
        let day = 24 * hour
        var clocks: [SkewedClock] = []
        for n in 0..<count {
            let offset: Int64 =
                switch Int.random(in: 0..<8, using: &rng) {
                case 0, 1, 2: 0
                case 3: Int64.random(in: -20 * hour...20 * hour, using: &rng)
                case 4: -Int64.random(in: day...5 * day, using: &rng)
                case 5: Int64.random(in: 2 * day...5 * day, using: &rng)
                case 6: 10 * 365 * day
                default: Int64.random(in: -day / 2...day / 2, using: &rng)
                }
            clocks.append(SkewedClock(offset: offset))
            devices.append(
                try Store(path: dir.path("device\(n).sqlite"), schema: schema, configuration: clocks[n].configuration))
            let name = "检查员\(n)"
            _ = try await storage.createToken(name: name)
            let identity = Identity(tokenID: Int64(n + 1), name: name)
            flaky.append(
                FlakyTransport(
                    storage: storage, identity: identity, seed: seed &+ UInt64(n), faults: true,
                    clockBound: .seconds(86_400)))
            reliable.append(
                FlakyTransport(
                    storage: storage, identity: identity, seed: 0, faults: false, clockBound: .seconds(86_400)))
        }
        var options = SyncOptions()
        options.attempts = 1
        options.pushBatch = Int.random(in: 1...4, using: &rng)
        options.pageSize = Int.random(in: 1...5, using: &rng)

        var increments: [String: Int64] = [:]
        let people: [Value] = ["王芳", "李明", "张伟", "陈静"]
        let statuses: [Value] = ["not_started", "in_progress", "completed"]
        for _ in 0..<Int.random(in: 10...40, using: &rng) {
            let n = Int.random(in: 0..<count, using: &rng)
            let device = devices[n]
            let sites = try device.fetch(Query("site"))
            let findings = try device.fetch(Query("finding"))
            do {
                switch Int.random(in: 0..<14, using: &rng) {
                case 0:
                    try device.insert(
                        "site", ["name": .text("敬老院\(Int.random(in: 1...9, using: &rng))号"), "kind": "elderly_home"])
                case 1:
                    try device.insert(
                        "finding",
                        ["title": "问题", "site": sites.randomElement(using: &rng).map { .text($0.id) } ?? .null])
                case 2 where !findings.isEmpty:
                    try device.update(
                        "finding", id: findings.randomElement(using: &rng)!.id,
                        ["deadline": .text("2022-0\(Int.random(in: 1...9, using: &rng))-30")])
                case 3 where !findings.isEmpty:
                    try device.update(
                        "finding", id: findings.randomElement(using: &rng)!.id,
                        [
                            "responsible_person": people.randomElement(using: &rng)!,
                            "status": statuses.randomElement(using: &rng)!,
                        ])
                case 4 where !sites.isEmpty:
                    let site = sites.randomElement(using: &rng)!.id
                    try await device.write { try $0.increment("site", id: site, "illegal_graves_found", by: 1) }
                    increments[site, default: 0] += 1
                case 5 where !sites.isEmpty:
                    try device.update(
                        "site", id: sites.randomElement(using: &rng)!.id,
                        [
                            "beds_total": .integer(Int64.random(in: 50...200, using: &rng)),
                            "observed_on": .text("2021-0\(Int.random(in: 1...9, using: &rng))-01"),
                        ])
                case 6 where !sites.isEmpty:
                    try device.update(
                        "site", id: sites.randomElement(using: &rng)!.id,
                        ["tags": .set(["示范", "消防", "四星"].filter { _ in Bool.random(using: &rng) })])
                case 7 where !findings.isEmpty:
                    try device.insert(
                        "progress_note", ["finding": .text(findings.randomElement(using: &rng)!.id), "text": "进展"])
                case 8 where !findings.isEmpty:
                    try device.delete("finding", id: findings.randomElement(using: &rng)!.id)
                case 11 where !findings.isEmpty:
                    try device.insert(
                        "measure", ["finding": .text(findings.randomElement(using: &rng)!.id), "description": "整改措施"])
                case 12 where !sites.isEmpty:
                    // Refused while a finding here refers to it; concurrently elsewhere, a conflict.
                    try device.delete("site", id: sites.randomElement(using: &rng)!.id)
                case 10 where Int.random(in: 0..<3, using: &rng) == 0:
                    // Someone sets the device's clock: right, or days or years ahead.
                    clocks[n].set(offset: [0, 0, 3 * day, 10 * 365 * day].randomElement(using: &rng)!)
                case 9:
                    // A pull alone: after a push whose answer was lost, the device learns the
                    // server numbers of its own changes from the pulled pages, not from a push.
                    _ = try? await device.pull(flaky[n], options: options)
                default:
                    _ = try? await device.sync(flaky[n], options: options)
                }
            } catch is StoreError {
                // A delete of a referenced record, say: refused locally, nothing written.
            }
        }
        // The network heals: everyone syncs until nothing moves.
        for _ in 0..<2 {
            for n in devices.indices { _ = try await devices[n].sync(reliable[n], options: options) }
        }

        let server = try await snapshot(storage)
        #expect(danglingReferences(server).isEmpty, "seed \(seed): dangling \(danglingReferences(server))")
        let serverConflicts = try await storage.conflicts().map(\.id).sorted()
        var written = 0
        for (n, device) in devices.enumerated() {
            #expect(try snapshot(device) == server, "seed \(seed): device \(n) differs from the server")
            #expect(try device.conflicts().map(\.id).sorted() == serverConflicts, "seed \(seed): conflicts differ")
            #expect(try device.pendingCount() == 0, "seed \(seed)")
            // Whatever its clock, the device's changes were taken within the server's bound.
            let ceiling = Int64(Date().timeIntervalSince1970 * 1000) + day
            #expect(
                try changelogTimestamps(device.path).allSatisfy { $0 >> 16 <= ceiling },
                "seed \(seed): device \(n) stamps")
            written += try device.changeCount()
        }
        // Counters: every increment made anywhere is counted once.
        for (id, values) in server["site"] ?? [:] {
            #expect(values["illegal_graves_found"] == .integer(increments[id] ?? 0), "seed \(seed): counter")
        }
        // Every change made is on the server exactly once.
        #expect(try await storage.changeCount() == written, "seed \(seed): changes lost or duplicated")

        // Every open conflict can be settled, from any device: each from a device picked at random,
        // by a side's value, another value, keeping or deleting the record. Settlements of one conflict
        // from two devices that had not seen each other's would be a new conflict, settled in the next round.
        for _ in 0..<3 {
            let open = try await storage.conflicts()
            if open.isEmpty { break }
            for conflict in open {
                let n = Int.random(in: 0..<count, using: &rng)
                // A settlement of another conflict on the record may have settled it (a delete).
                _ = try await devices[n].sync(reliable[n], options: options)
                guard let seen = try devices[n].conflicts().first(where: { $0.id == conflict.id }) else { continue }
                let resolution: ConflictResolution =
                    if conflict.field != nil {
                        Bool.random(using: &rng)
                            ? .value(seen.sides.randomElement(using: &rng)!.value) : .value("2023-01-01")
                    } else {
                        Bool.random(using: &rng) ? .keep : .delete
                    }
                do {
                    try devices[n].resolve(seen, with: resolution)
                } catch let error as StoreError where error.code == .referenced {
                    // Deleting a record others refer to is refused (nothing written): keep it instead.
                    try devices[n].resolve(seen, with: .keep)
                }
                settled.add(1, ordering: .relaxed)
                _ = try await devices[n].sync(reliable[n], options: options)
            }
            for n in devices.indices { _ = try await devices[n].sync(reliable[n], options: options) }
        }
        let settled = try await snapshot(storage)
        #expect(
            danglingReferences(settled).isEmpty, "seed \(seed): dangling after settling \(danglingReferences(settled))")
        #expect(try await storage.conflicts().isEmpty, "seed \(seed): a conflict no resolution settles")
        for (n, device) in devices.enumerated() {
            #expect(try device.conflicts().isEmpty, "seed \(seed): device \(n) has open conflicts")
            #expect(try snapshot(device) == settled, "seed \(seed): device \(n) differs after settling")
        }
    }
}
