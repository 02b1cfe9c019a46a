import FieldbookCore
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import Synchronization
import Testing

/// Devices of the office, inspectors and an auditor write at random — what their roles allow and
/// what they do not (an inspector reporting a finding rectified without evidence among them), offline before they know their roles and concurrently with each other — and
/// sync in random orders through a transport that loses and repeats requests.
@Suite("Sync: property test over roles, forbidden writes and faults", .tags(.device))
struct RolePropertyTests {
    /// Cases: FIELDBOOK_ROLE_CASES (default 1,000; 20 in the fast tier); FIELDBOOK_ROLE_SEED replays one.
    static let seeds: [UInt64] = {
        let env = ProcessInfo.processInfo.environment
        if let seed = env["FIELDBOOK_ROLE_SEED"].flatMap(UInt64.init) { return [seed] }
        let count = env["FIELDBOOK_ROLE_CASES"].flatMap(Int.init) ?? TestTier.cases(full: 1_000, fast: 20)
        return (0..<UInt64(count)).map { $0 }
    }()

    /// How many writes the servers rejected and the devices refused, over all cases.
    static let rejected = Atomic<Int>(0)
    static let refused = Atomic<Int>(0)

    @Test(
        "devices converge; no change a role may not make is ever merged; rejected changes never block",
        arguments: Backend.all)
    func roles(backend: Backend) async throws {
        try await runCases(Self.seeds, label: "\(backend)", replay: "FIELDBOOK_ROLE_SEED") { seed in
            try await Self.scenario(seed: seed, backend: backend)
        }
        // Not vacuous: the servers rejected writes, and the devices refused some themselves.
        if Self.seeds.count >= 20 {
            #expect(Self.rejected.load(ordering: .relaxed) > 0)
            #expect(Self.refused.load(ordering: .relaxed) > 0)
        }
    }

    static let roles = ["office", "inspector", "auditor"]

    static func scenario(seed: UInt64, backend: Backend) async throws {
        var rng = SeededGenerator(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ 3)
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        var devices: [Store] = []
        var flaky: [FlakyTransport] = []
        var reliable: [FlakyTransport] = []
        var roleOf: [String: String] = [:]
        for (n, role) in roles.enumerated() {
            let name = "\(role)\(n)"
            roleOf[name] = role
            let identity = try #require(
                try await storage.authenticate(token: try await storage.createToken(name: name, role: role)))
            devices.append(try Store(path: dir.path("device\(n).sqlite"), schema: schema))
            flaky.append(FlakyTransport(storage: storage, identity: identity, seed: seed &+ UInt64(n), faults: true))
            reliable.append(FlakyTransport(storage: storage, identity: identity, seed: 0, faults: false))
        }

        var options = SyncOptions()
        options.attempts = 1
        options.pushBatch = Int.random(in: 1...4, using: &rng)
        options.pageSize = Int.random(in: 1...5, using: &rng)
        for _ in 0..<Int.random(in: 8...20, using: &rng) {
            let n = Int.random(in: 0..<devices.count, using: &rng)
            if Int.random(in: 0..<4, using: &rng) == 0 {
                _ = try? await devices[n].sync(flaky[n], options: options)
                continue
            }
            do {
                try write(devices[n], &rng)
            } catch let error as StoreError where error.code == .forbidden {
                refused.add(1, ordering: .relaxed)
            } catch is StoreError {
                // A write the store refuses for other reasons (a finding still referenced, say).
            }
        }
        // Quiet rounds: every device syncs until all have everything.
        for _ in 0..<2 {
            for n in devices.indices { _ = try await devices[n].sync(reliable[n], options: options) }
        }

        // Converged on the server's records, with nothing left to send.
        let server = try await snapshot(storage)
        for (n, device) in devices.enumerated() {
            #expect(try snapshot(device) == server, "seed \(seed): device \(n) differs from the server")
            #expect(try device.pendingChanges(limit: 1).isEmpty, "seed \(seed): device \(n) has pending changes")
            #expect(device.role == roles[n])
        }
        // No merged change is one its author's role may not make, judged against the record as the
        // changes before it left it: replayed in server order from what a pull returns.
        let office = Identity(tokenID: 1, name: "office0", role: "office")
        let page = try await storage.pull(
            PullRequest(schema: SchemaVersion(schema), device: devices[0].deviceID, cursor: 0, limit: 100_000),
            identity: office)
        var states: [String: RecordState] = [:]
        for change in page.changes {
            let entity = try #require(schema.entity(change.entity))
            let state = states[change.recordID] ?? RecordState()
            let refusal = entity.refusal(
                role: roleOf[change.author ?? ""], change.operation,
                fields: change.fields.map { ($0.field, $0.setValue) },
                current: { name in entity.fieldIndex(name).flatMap { state.value(at: $0, of: entity) } })
            #expect(refusal == nil, "seed \(seed): a merged change was forbidden: \(refusal!.rule)")
            // Nor one that breaks a requirement (an inspector's finding reported rectified without evidence).
            let before = { (name: String) in entity.fieldIndex(name).flatMap { state.value(at: $0, of: entity) } }
            let unproven = entity.requirementRefusal(
                change.operation, role: roleOf[change.author ?? ""], changed: Set(change.fields.map(\.field)),
                before: before,
                after: { name in
                    change.fields.first { $0.field == name }.map { $0.applied(to: before(name) ?? .null) }
                        ?? before(name)
                })
            #expect(unproven == nil, "seed \(seed): a merged change broke \(unproven!.rule)")
            #expect(roleOf[change.author ?? ""] != "auditor", "seed \(seed): an auditor's change was merged")
            var next = state
            next.apply(change, entity: entity)
            states[change.recordID] = next
        }
        let all = try await storage.changeCount()
        rejected.add(all - page.changes.count, ordering: .relaxed)
        // Every change a device made is on the server, merged or rejected: none lost, none blocking.
        var made = 0
        for device in devices { made += try device.changeCount() }
        #expect(made == all, "seed \(seed): \(made) changes made, \(all) on the server")
    }

    /// One random write: allowed or not for the device's role, valid or not.
    static func write(_ device: Store, _ rng: inout SeededGenerator) throws {
        let sites = try device.fetch(Query("site")).map(\.id)
        let findings = try device.fetch(Query("finding")).map(\.id)
        let statuses: [Value] = ["not_started", "in_progress", "completed", "closed"]
        switch Int.random(in: 0..<8, using: &rng) {
        case 0:
            try device.insert("site", ["name": "幸福院", "kind": "happiness_home", "town": "新度镇"])
        case 1 where !sites.isEmpty:
            try device.insert(
                "finding",
                [
                    "site": .text(sites.randomElement(using: &rng)!), "title": "消防通道堵塞",
                    "status": statuses.randomElement(using: &rng)!,
                ])
        case 2 where !findings.isEmpty:
            try device.update(
                "finding", id: findings.randomElement(using: &rng)!, ["status": statuses.randomElement(using: &rng)!])
        case 3 where !findings.isEmpty:
            try device.update("finding", id: findings.randomElement(using: &rng)!, ["deadline": "2022-06-30"])
        case 4 where !findings.isEmpty:
            try device.update("finding", id: findings.randomElement(using: &rng)!, ["results": "已整改"])
        case 5 where !findings.isEmpty:
            try device.insert(
                "accountability_action",
                ["finding": .text(findings.randomElement(using: &rng)!), "person": "张三", "kind": "reminder"])
        case 6 where !findings.isEmpty:
            try device.insert("progress_note", ["finding": .text(findings.randomElement(using: &rng)!), "text": "复查"])
        case 7 where !sites.isEmpty:
            try device.update("site", id: sites.randomElement(using: &rng)!, ["village": "前村", "town": "后镇"])
        default:
            try device.insert("site", ["name": "公墓", "kind": "cemetery"])
        }
    }
}
