import FieldbookCore
import FieldbookHTTP
import FieldbookServer
import FieldbookServerProcess
import FieldbookServerTesting
import FieldbookStore
import FieldbookTesting
import Foundation
import Synchronization
import Testing

/// Several `fieldbook-server` processes on one PostgreSQL database, as behind a load balancer
/// (docs/deployment.md): real processes, real HTTP, devices switching between them.
@Suite("Sync: several server processes, one PostgreSQL database", .tags(.server, .endToEnd))
struct MultiProcessTests {
    @Test(
        "six devices editing the same records through three server processes, concurrently: all converge, every change seen once",
        .enabled(if: postgresURL != nil, "set FIELDBOOK_POSTGRES_URL"))
    func severalProcesses() async throws {
        let dir = TemporaryDirectory()
        // Three processes started at once on a fresh namespace: they race to create the tables.
        let started = Mutex<[Int: Result<ServerProcess, any Error>]>([:])
        DispatchQueue.concurrentPerform(iterations: 3) { n in
            let server = Result { try makeServerProcess(dir, .postgres) }
            started.withLock { $0[n] = server }
        }
        let servers = try (0..<3).map { n in try started.withLock { try $0[n]!.get() } }
        defer { for server in servers { server.stop() } }
        #expect(Set(servers.map(\.port)).count == 3)

        let names = ["王芳", "李明", "张伟", "刘洋", "陈静", "赵磊"]
        // Tokens made with `fieldbook-server token create --database URL --namespace …`, each by another process.
        let tokens = try names.indices.map { n in try servers[n % 3].token(name: names[n], role: "office") }
        let devices = try names.map { try Store(path: dir.path("\($0).sqlite"), schema: schema) }
        /// Device `n` in round `round` syncs through process `(n + round) % 3`: no device sticks to one.
        func transport(_ n: Int, _ round: Int) -> HTTPTransport {
            HTTPTransport(server: servers[(n + round) % 3].url, token: tokens[n])
        }
        var pulled = Array(repeating: 0, count: devices.count)

        // Shared records, made on device 0 and synced everywhere.
        var findings: [String] = []
        var sites: [String] = []
        for k in 0..<4 {
            findings.append(
                try devices[0].insert(
                    "finding", ["title": .text("敬老院消防通道堵塞\(k)"), "deadline": "2022-03-31", "responsible_person": "陈静"]))
            sites.append(try devices[0].insert("site", ["name": .text("城厢区公墓\(k)"), "kind": "cemetery"]))
        }
        for n in devices.indices { pulled[n] += try await devices[n].sync(transport(n, 0)).pulled }

        // Rounds of overlapping edits, every device syncing at the same time as the others.
        let rounds = 4
        for round in 1...rounds {
            let counts = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for n in devices.indices {
                    let device = devices[n]
                    let finding = findings[(n + round) % findings.count]
                    let person = findings[n % findings.count]
                    let site = sites[(n + round) % sites.count]
                    let transport = transport(n, round)
                    group.addTask {
                        // A manual field several devices set differently: a conflict.
                        try device.update(
                            "finding", id: finding,
                            ["deadline": .text("2022-\(String(format: "%02d", round + 3))-\(10 + n)")])
                        // An lww field: the latest write wins.
                        try device.update("finding", id: person, ["responsible_person": .text(names[n])])
                        // A counter: every increment counts once.
                        try await device.write { try $0.increment("site", id: site, "illegal_graves_found", by: 1) }
                        // A set: every tag is kept.
                        try device.update("site", id: site, ["tags": .set(["第\(round)轮", names[n]])])
                        _ = try device.insert("site", ["name": .text("幸福院\(n)-\(round)"), "kind": "happiness_home"])
                        return (n, try await device.sync(transport).pulled)
                    }
                }
                var counts: [(Int, Int)] = []
                for try await count in group { counts.append(count) }
                return counts
            }
            for (n, count) in counts { pulled[n] += count }
        }
        // Quiet now: two passes, each device through yet another process, so everyone has everything.
        for pass in 0..<2 {
            for n in devices.indices { pulled[n] += try await devices[n].sync(transport(n, rounds + 1 + pass)).pulled }
        }

        let storage = try await makeStorage(dir, .postgres)
        let server = try await snapshot(storage)
        let serverConflicts = Set(try await storage.conflicts())
        #expect(!serverConflicts.isEmpty, "concurrent deadlines conflict")
        let total = try await storage.changeCount()
        var written = 0
        for n in devices.indices {
            #expect(try snapshot(devices[n]) == server, "device \(n) converged with the database")
            #expect(Set(try devices[n].conflicts()) == serverConflicts, "device \(n) has the same conflicts")
            #expect(try devices[n].pendingCount() == 0)
            let own = try devices[n].changeCount()
            written += own
            #expect(pulled[n] == total - own, "device \(n) applied every other device's change exactly once")
        }
        #expect(total == written, "every change stored exactly once")
        #expect(total == 8 + rounds * devices.count * 5)
        // Every increment counted once, on every device.
        let graves = try devices[3].fetch(Query("site")).reduce(0) { $0 + ($1["illegal_graves_found"].integer ?? 0) }
        #expect(graves == Int64(rounds * devices.count))

        // A new device pulls everything through one process and agrees too.
        let late = try Store(path: dir.path("late.sqlite"), schema: schema)
        let report = try await late.sync(
            HTTPTransport(server: servers[2].url, token: try servers[1].token(name: "孙丽", role: "office")))
        #expect(report.pulled == total)
        #expect(try snapshot(late) == server)
        #expect(Set(try late.conflicts()) == serverConflicts)
    }
}
