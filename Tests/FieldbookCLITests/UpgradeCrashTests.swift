import FieldbookCore
import FieldbookSchemas
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import Testing

/// A device's move to a newer schema version, killed: the real `fieldbook` binary upgrading a
/// store of thousands of records (some pulled, some its own and pending) is SIGKILLed at random
/// moments; the store is sound, and the next command finishes the upgrade to exactly what an
/// upgrade that was never cut off gives.
@Suite("fieldbook CLI: an upgrade killed mid-way", .tags(.endToEnd))
struct UpgradeCrashTests {
    @Test("SIGKILL at random moments of an upgrade: the store is sound, the next command finishes it, nothing is lost")
    func killedUpgrade() throws {
        let world = try CLIWorld()
        let bundled = try Schema(json: BundledSchemas.inspection)
        let next = try nextInspectionVersion()
        let token = try world.token("王芳")
        let count = TestTier.cases(full: 1_500, fast: 300)

        // The office's findings, pushed by the real binary; the field device pulls them, then writes
        // its own offline: inserts and updates of the renamed field, pending.
        for device in ["desk", "field"] {
            #expect(try world.fieldbook(device, ["init", "--server", world.url, "--token", token]).status == 0)
        }
        do {
            let desk = try Store(path: world.path("desk") + "/device.sqlite", schema: bundled)
            let site = try desk.insert("site", ["name": "城关敬老院", "kind": "elderly_home", "town": "新度镇"])
            for i in 0..<count {
                try desk.insert(
                    "finding",
                    [
                        "site": .text(site), "title": .text("第\(i)号问题"), "description": .text("办公室记录\(i)"),
                        "results": "已整改",
                    ])
            }
        }
        #expect(try world.fieldbook("desk", ["sync"]).status == 0)
        #expect(try world.fieldbook("field", ["sync"]).status == 0)
        do {
            let field = try Store(path: world.path("field") + "/device.sqlite", schema: bundled)
            let pulled = try field.fetch(Query("finding"))
            #expect(pulled.count == count)
            for (i, finding) in pulled.enumerated() where i % 3 == 0 {
                try field.update("finding", id: finding.id, ["description": .text("现场补充\(i)")])
            }
            for i in 0..<count {
                try field.insert("finding", ["title": .text("现场问题\(i)"), "description": .text("现场记录\(i)")])
            }
        }
        let upgradedSchema = try nextInspectionVersionText()

        /// A copy of the field device with the next version's schema file: the state `fieldbook
        /// sync` leaves when cut off after writing the file, before the store migrated.
        func copy(_ name: String) throws {
            try? FileManager.default.removeItem(atPath: world.path(name))
            try FileManager.default.copyItem(atPath: world.path("field"), toPath: world.path(name))
            try Data(upgradedSchema.utf8).write(to: URL(fileURLWithPath: world.path(name) + "/schema.json"))
        }
        /// What a device holds, read in the next version: records, its own changes, conflicts.
        func contents(_ name: String) throws -> (RecordsSnapshot, [Change], [Conflict]) {
            let store = try Store(path: world.path(name) + "/device.sqlite", schema: next)
            return (try snapshot(store), try store.pendingChanges(limit: 1_000_000), try store.conflicts())
        }

        // An upgrade never cut off: the yardstick, and how long one takes.
        try copy("reference")
        let started = Date()
        let status = try world.fieldbook("reference", ["status", "--json"])
        let seconds = Date().timeIntervalSince(started)
        #expect(status.status == 0, "\(status.stderr)")
        let reference = try contents("reference")
        let findings = reference.0["finding"] ?? [:]
        #expect(findings.count == 2 * count)
        #expect(findings.values.filter { $0["source"] == "巡察" }.count == count, "its own inserts get the default")
        #expect(findings.values.allSatisfy { $0["details"] != nil && $0["description"] == nil })
        #expect(reference.1.count == count + (count + 2) / 3)

        var generator = SeededGenerator(seed: UInt64.random(in: 0...UInt64.max))
        var killed = 0
        var stood: [String] = []
        for round in 0..<8 {
            let name = "round\(round)"
            try copy(name)
            let process = Process()
            process.executableURL = try BuiltProducts.url("fieldbook")
            process.arguments = ["--store", world.path(name), "status", "--json"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            let delay = Double.random(in: 0...seconds, using: &generator)
            try process.run()
            Thread.sleep(forTimeInterval: delay)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            if process.terminationReason == .uncaughtSignal { killed += 1 }

            #expect(try integrityCheck(world.path(name) + "/device.sqlite") == "ok", "round \(round)")
            let standing = try storedUpgrade(world.path(name) + "/device.sqlite")
            #expect(standing.version == bundled.version || standing.version == next.version)
            stood.append(
                standing.version == bundled.version ? "before" : standing.rebuilding ? "rebuilding" : "upgraded")
            let again = try world.fieldbook(name, ["status", "--json"])
            #expect(again.status == 0, "round \(round), killed after \(delay) s: \(again.stderr)")
            let upgraded = try contents(name)
            #expect(upgraded.0 == reference.0, "round \(round), killed after \(delay) s: the records differ")
            #expect(upgraded.1 == reference.1, "round \(round), killed after \(delay) s: the pending changes differ")
            #expect(upgraded.2 == reference.2, "round \(round), killed after \(delay) s: the conflicts differ")
        }
        #expect(killed > 0, "no round killed the upgrade before it finished")
        print("upgrade of \(2 * count) findings: \(String(format: "%.2f", seconds)) s; killed rounds stood: \(stood)")
    }
}
