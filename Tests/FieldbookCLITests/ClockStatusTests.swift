import FieldbookCore
import FieldbookJSON
import FieldbookSchemas
import FieldbookStore
import FieldbookTesting
import Foundation
import Testing

@Suite("fieldbook status: the clock line", .tags(.endToEnd))
struct ClockStatusTests {
    @Test("once the server has said this device's clock is ahead, status says by how much")
    func clockLine() async throws {
        let world = try CLIWorld()
        let token = try world.token("王芳")
        #expect(
            try world.fieldbook("a", ["init", "--server", world.url, "--token", token, "--name", "王芳"]).status == 0)
        #expect(try world.fieldbook("a", ["add", "site", "name=新度镇敬老院", "kind=elderly_home"]).status == 0)
        let before = try world.fieldbook("a", ["status"])
        #expect(before.status == 0)
        #expect(!before.stdout.contains("clock"))
        #expect(try world.json("a", ["status"])["clock_ahead_ms"]?.int == 0)

        // What a push refused with clock_ahead does on the device: the server's time is 2 days
        // (and a few minutes) behind this device's clock.
        let day: Int64 = 86_400_000
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        do {
            let store = try Store(
                path: world.path("a") + "/device.sqlite", schema: try Schema(json: BundledSchemas.inspection))
            try await store.correctClock(serverTime: now - 2 * day - 300_000, maxAhead: day)
        }
        let after = try world.fieldbook("a", ["status"])
        #expect(after.status == 0)
        #expect(
            after.stdout.contains(
                "clock          this device's clock is 2 days ahead of the server's; changes are stamped by the server's time"
            ),
            "\(after.stdout)")
        let ahead = try #require(try world.json("a", ["status"])["clock_ahead_ms"]?.int)
        #expect(abs(ahead - 2 * day - 300_000) < 60_000)
        // The re-stamped change is taken.
        #expect(try world.fieldbook("a", ["sync"]).status == 0)
        #expect(try world.json("a", ["status"])["pending"]?.int == 0)
    }
}
