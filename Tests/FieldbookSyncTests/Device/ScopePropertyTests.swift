import FieldbookCore
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import Synchronization
import Testing

/// The office, two inspectors of different towns and an auditor who follows one inspection round
/// write at random — inside their scopes and outside them, sites moved between towns, an inspector
/// rescoped mid-run — and sync in random orders through a transport that loses and repeats requests
/// and checks every page it carries against the token's scope.
@Suite("Sync: property test over scopes, moves, rescoping and faults", .tags(.device))
struct ScopePropertyTests {
    /// Cases: FIELDBOOK_SCOPE_CASES (default 1,000; 20 in the fast tier); FIELDBOOK_SCOPE_SEED replays one.
    static let seeds: [UInt64] = {
        let env = ProcessInfo.processInfo.environment
        if let seed = env["FIELDBOOK_SCOPE_SEED"].flatMap(UInt64.init) { return [seed] }
        let count = env["FIELDBOOK_SCOPE_CASES"].flatMap(Int.init) ?? TestTier.cases(full: 1_000, fast: 20)
        return (0..<UInt64(count)).map { $0 }
    }()

    /// Over all cases: pages checked, records that left a device's scope, changes rejected by scope,
    /// and rescopes — so the test is not vacuous.
    static let pages = Atomic<Int>(0)
    static let departures = Atomic<Int>(0)
    static let rejectedByScope = Atomic<Int>(0)
    static let refusedHere = Atomic<Int>(0)
    static let rescopes = Atomic<Int>(0)

    @Test(
        "every page holds only the token's scope; devices converge on their scopes; nothing is lost",
        arguments: Backend.all)
    func scopes(backend: Backend) async throws {
        try await runCases(Self.seeds, label: "\(backend)", replay: "FIELDBOOK_SCOPE_SEED") { seed in
            try await Self.scenario(seed: seed, backend: backend)
        }
        if Self.seeds.count >= 20 {
            #expect(Self.pages.load(ordering: .relaxed) > 0)
            #expect(Self.departures.load(ordering: .relaxed) > 0)
            #expect(Self.rejectedByScope.load(ordering: .relaxed) > 0)
            #expect(Self.refusedHere.load(ordering: .relaxed) > 0)
            #expect(Self.rescopes.load(ordering: .relaxed) > 0)
        }
    }

    static let towns = ["甲镇", "乙镇"]

    static func scenario(seed: UInt64, backend: Backend) async throws {
        var rng = SeededGenerator(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ 5)
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)

        // The office opens a round first: the auditor's token follows it.
        let office = try Store(path: dir.path("office.sqlite"), schema: schema)
        let round = try office.insert("inspection_round", ["title": "第一轮", "team": "第一巡察组", "unit": "民政局"])
        let tokens: [(name: String, role: String, scopes: [String]?)] = [
            ("王芳", "office", nil), ("李明", "inspector", ["town=甲镇"]), ("张伟", "inspector", ["town=乙镇"]),
            ("纪检", "auditor", ["round=\(round)"]),
        ]
        var devices = [office]
        var flaky: [ScopedTransport] = []
        var reliable: [ScopedTransport] = []
        for (n, token) in tokens.enumerated() {
            let secret = try await storage.createToken(name: token.name, role: token.role, scopes: token.scopes)
            if n > 0 { devices.append(try Store(path: dir.path("device\(n).sqlite"), schema: schema)) }
            flaky.append(ScopedTransport(storage: storage, token: secret, seed: seed &+ UInt64(n), faults: true))
            reliable.append(ScopedTransport(storage: storage, token: secret, seed: 0, faults: false))
        }

        var options = SyncOptions()
        options.attempts = 1
        options.pushBatch = Int.random(in: 1...4, using: &rng)
        options.pageSize = Int.random(in: 1...5, using: &rng)
        for _ in 0..<Int.random(in: 10...25, using: &rng) {
            let n = Int.random(in: 0..<devices.count, using: &rng)
            switch Int.random(in: 0..<11, using: &rng) {
            case 0, 1, 2:
                _ = try? await devices[n].sync(flaky[n], options: options)
            case 4:
                // The office moves one of its sites to a town drawn at random (the same one, at times).
                if let site = try office.fetch(Query("site")).map(\.id).randomElement(using: &rng) {
                    try office.update("site", id: site, ["town": .text(towns.randomElement(using: &rng)!)])
                }
            case 3:
                // The inspector of 甲镇 is given another town, or both.
                let scopes = [["town=甲镇"], ["town=乙镇"], ["town=甲镇", "town=乙镇"]].randomElement(using: &rng)!
                #expect(try await storage.rescope(name: "李明", scopes: scopes) == 1)
                rescopes.add(1, ordering: .relaxed)
            default:
                do {
                    try write(devices[n], round: round, &rng)
                } catch let error as StoreError {
                    // Refused here: the role may not (the auditor, an inspector closing off), the write
                    // would leave the device's scope, or a reference. The server rejects by scope only
                    // what the device could not know: a rescope or a move it has not pulled yet.
                    if error.message.hasSuffix(".scope)") { refusedHere.add(1, ordering: .relaxed) }
                }
            }
        }
        // Quiet rounds: every device syncs until all have what their scopes hold.
        for _ in 0..<3 {
            for n in devices.indices { _ = try await devices[n].sync(reliable[n], options: options) }
        }

        // Each device holds exactly the server's records its token sees now, and nothing to send.
        let server = try await snapshot(storage)
        let keys = try await recordKeys(storage)
        for (n, device) in devices.enumerated() {
            let identity = try #require(try await storage.authenticate(token: reliable[n].token))
            var expected = server
            if let scopes = identity.scopes {
                let tokenKeys = ScopeIndex.tokenKeys(scopes)
                for (entity, records) in server {
                    expected[entity] = records.filter {
                        !(keys[PushPlan.RecordKey(entity: entity, id: $0.key)] ?? []).isDisjoint(with: tokenKeys)
                    }
                }
            }
            #expect(try snapshot(device) == expected, "seed \(seed): device \(n) differs from its scope")
            #expect(try device.pendingChanges(limit: 1).isEmpty, "seed \(seed): device \(n) has pending changes")
            #expect(try device.scopes() == identity.scopes)
        }
        for transport in flaky + reliable {
            #expect(transport.violations.load(ordering: .relaxed) == 0, "seed \(seed): a page left the scope")
        }
        // Every change a device made is on the server, merged or rejected: none lost, none blocking.
        var made = 0
        for device in devices {
            made += try device.changeCount()
            rejectedByScope.add(
                try device.rejectedChanges().filter { $0.rule.hasSuffix(".scope") }.count, ordering: .relaxed)
        }
        #expect(made == (try await storage.changeCount()), "seed \(seed): a change made is not on the server")
    }

    /// One random write: inside the device's scope or outside it, allowed by its role or not.
    static func write(_ device: Store, round: String, _ rng: inout SeededGenerator) throws {
        let sites = try device.fetch(Query("site")).map(\.id)
        let findings = try device.fetch(Query("finding")).map(\.id)
        let town = Value.text(towns.randomElement(using: &rng)!)
        switch Int.random(in: 0..<7, using: &rng) {
        case 0:
            try device.insert("site", ["name": "幸福院", "kind": "happiness_home", "town": town])
        case 1 where !sites.isEmpty:
            try device.insert(
                "finding",
                [
                    "site": .text(sites.randomElement(using: &rng)!), "title": "消防通道堵塞",
                    "round": Bool.random(using: &rng) ? .text(round) : .null,
                ])
        case 2 where !sites.isEmpty:
            // Only the office moves a site; an inspector's move is refused (by role here, by scope there).
            try device.update("site", id: sites.randomElement(using: &rng)!, ["town": town])
        case 3 where !findings.isEmpty:
            try device.update(
                "finding", id: findings.randomElement(using: &rng)!,
                ["status": ["in_progress", "completed"].randomElement(using: &rng)!])
        case 4 where !findings.isEmpty:
            try device.insert("progress_note", ["finding": .text(findings.randomElement(using: &rng)!), "text": "复查"])
        case 5 where !findings.isEmpty:
            try device.insert("measure", ["finding": .text(findings.randomElement(using: &rng)!), "description": "整改"])
        default:
            if let site = sites.randomElement(using: &rng) {
                try device.update("site", id: site, ["village": "前村"])
            } else {
                try device.insert("site", ["name": "公墓", "kind": "cemetery", "town": town])
            }
        }
    }

    /// Every record's scope keys as the server's records make them now.
    static func recordKeys(_ storage: any SyncStorage) async throws -> [PushPlan.RecordKey: Set<String>] {
        let states = try await storage.allStates()
        let entries = ScopeIndex(schema: storage.schema).rebuild(
            states.flatMap { entity, byID in
                byID.map { (key: PushPlan.RecordKey(entity: entity, id: $0.key), state: $0.value) }
            })
        return entries.mapValues(\.keys)
    }
}

/// A transport straight to a server store, as the token `token` is now (a rescope takes effect at
/// the next request), losing and repeating requests at random, and checking every page against the
/// token's scope as the server's records are when it is served.
final class ScopedTransport: SyncTransport {
    let storage: any SyncStorage
    let token: String
    let rng: Mutex<SeededGenerator>
    let faults: Bool
    /// Pages that held a change of a record outside the token's scope, or named one in scope as left.
    let violations = Atomic<Int>(0)

    init(storage: any SyncStorage, token: String, seed: UInt64, faults: Bool) {
        self.storage = storage
        self.token = token
        self.rng = Mutex(SeededGenerator(seed: seed))
        self.faults = faults
    }

    private func identity() async throws -> Identity {
        guard let identity = try await storage.authenticate(token: token) else {
            throw SyncError(refusal: WireError(.unauthorized, "unknown token"))
        }
        return identity
    }

    private func faulty<T>(_ body: () async throws -> T) async throws -> T {
        let draw = faults ? rng.withLock { Int.random(in: 0..<10, using: &$0) } : 9
        do {
            switch draw {
            case 0: throw SyncError(.network, "request lost")
            case 1:
                _ = try await body()
                throw SyncError(.network, "answer lost")
            case 2:
                _ = try await body()
                return try await body()
            default: return try await body()
            }
        } catch let error as WireError {
            throw SyncError(refusal: error)
        }
    }

    func push(_ request: PushRequest) async throws -> PushResponse {
        try await faulty { try await storage.push(request, identity: try await identity()) }
    }

    func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse {
        try await faulty {
            let identity = try await identity()
            try identity.checkScope(of: request)
            let page = try await storage.pull(request, identity: identity)
            try await check(page, identity: identity)
            return page
        }
    }

    private func check(_ page: PullResponse, identity: Identity) async throws {
        guard let scopes = identity.scopes else { return }
        ScopePropertyTests.pages.add(1, ordering: .relaxed)
        let tokenKeys = ScopeIndex.tokenKeys(scopes)
        let keys = try await ScopePropertyTests.recordKeys(storage)
        func visible(_ entity: String, _ id: String) -> Bool {
            !(keys[PushPlan.RecordKey(entity: entity, id: id)] ?? []).isDisjoint(with: tokenKeys)
        }
        let sent = page.changes + page.entered.flatMap(\.changes)
        if !sent.allSatisfy({ visible($0.entity, $0.recordID) }) { violations.add(1, ordering: .relaxed) }
        if page.left.contains(where: { visible($0.entity, $0.id) }) { violations.add(1, ordering: .relaxed) }
        ScopePropertyTests.departures.add(page.left.count, ordering: .relaxed)
    }
}
