import FieldbookCore
import FieldbookSchemas
import FieldbookStore
import FieldbookTesting
import Foundation
import Testing

@Suite("fieldbook demo", .tags(.endToEnd))
struct DemoTests {
    @Test(
        "the demo runs a server and three devices: offline work, sync, a conflict settled, aligned tables, tallies, history"
    )
    func demo() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "fieldbook-demo-test-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try BuiltProducts.run("fieldbook", ["demo", "--store", dir.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("Findings: 4 (not_started 1, in_progress 2, completed 1)"))
        #expect(result.stdout.contains("Accountability: admonishment 1, criticism 1, reminder 2"))
        #expect(result.stdout.contains("42户56穴  42户56墓"), "the corrected record shows old → new")

        // Table rows line up: every row of the sites table puts its second column at the same display column.
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = try #require(lines.firstIndex { $0.hasPrefix("场所 Site") })
        let rows = lines[header...].prefix { !$0.isEmpty }
        #expect(rows.count == 8)
        let columns = rows.map { row -> Int in
            // Display width up to the start of the second column (after the first run of two spaces).
            let first = row.components(separatedBy: "  ").first!
            var width = first.unicodeScalars.reduce(0) { $0 + ($1.value >= 0x2E80 ? 2 : 1) }
            var rest = row.dropFirst(first.count)
            while rest.first == " " {
                width += 1
                rest = rest.dropFirst()
            }
            return width
        }
        #expect(Set(columns).count == 1, "columns misaligned: \(columns)")

        // Offline work on three devices, a sync, a real conflict seen everywhere, settled, converged.
        #expect(result.stdout.contains("the same conflict on every device (1, 1, 1)"))
        #expect(result.stdout.contains("→ 310 everywhere (the later visit wins)"))
        #expect(result.stdout.contains("Devices agree: yes; open conflicts: 0"))
        // Evidence attached offline reaches the office, checked.
        #expect(
            result.stdout.contains("attaches a photo of the cleared fire escape to the finding, offline: 消防通道已清理.jpg"))
        #expect(result.stdout.contains("The office's device holds 李明's photo 消防通道已清理.jpg"))
        #expect(result.stdout.contains("files up 1 down 0") && result.stdout.contains("files up 0 down 1"))

        // The stores the demo left are real stores holding what it printed, nothing pending.
        let schema = try Schema(json: BundledSchemas.inspection)
        for device in ["office", "li", "zhang"] {
            let store = try Store(path: dir.appendingPathComponent("\(device).sqlite").path, schema: schema)
            #expect(try store.fetch(Query("finding")).count == 4)
            #expect(try store.fetch(Query("progress_note")).count == 3)
            #expect(try store.pendingCount() == 0)
            #expect(try store.conflicts().isEmpty)
            let evidence = try store.fetch(Query("finding")).flatMap { $0["evidence"].attachments }
            #expect(evidence.map(\.name) == ["消防通道已清理.jpg"])
            #expect(try evidence.allSatisfy { try store.holdsFile($0.sha256) })
        }
    }
}
