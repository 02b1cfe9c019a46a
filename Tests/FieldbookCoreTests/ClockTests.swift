import FieldbookCore
import FieldbookTesting
import Testing

@Suite("Hybrid logical clock and ids", .tags(.core))
struct ClockTests {
    @Test("follows the wall clock forward and never goes backwards when it jumps back")
    func monotonic() {
        var clock = HybridLogicalClock()
        let a = clock.now(wallMillis: 1_000)
        #expect(a == HybridTimestamp(millis: 1_000, counter: 0))
        let b = clock.now(wallMillis: 1_000)
        #expect(b == HybridTimestamp(millis: 1_000, counter: 1))
        let c = clock.now(wallMillis: 500)  // wall clock jumped back
        #expect(c > b)
        #expect(c.millis == 1_000)
        let d = clock.now(wallMillis: 2_000)
        #expect(d == HybridTimestamp(millis: 2_000, counter: 0))
    }

    @Test("stays ahead of timestamps received from other devices")
    func receive() {
        var clock = HybridLogicalClock()
        _ = clock.now(wallMillis: 1_000)
        clock.receive(HybridTimestamp(millis: 5_000, counter: 7))
        let next = clock.now(wallMillis: 1_001)
        #expect(next == HybridTimestamp(millis: 5_000, counter: 8))
    }

    @Test("a full counter borrows the next millisecond")
    func counterOverflow() {
        var clock = HybridLogicalClock(last: HybridTimestamp(millis: 10, counter: .max))
        #expect(clock.now(wallMillis: 10) == HybridTimestamp(millis: 11, counter: 0))
    }

    @Test("random wall clocks: every timestamp is greater than the one before")
    func randomWalk() {
        var clock = HybridLogicalClock()
        var rng = SystemRandomNumberGenerator()
        var last = HybridTimestamp.zero
        for _ in 0..<10_000 {
            let next = clock.now(wallMillis: UInt64.random(in: 0...1_000, using: &rng))
            #expect(next > last)
            last = next
        }
    }

    @Test("UUIDv7 ids are well-formed version 7, unique and increasing")
    func uuidV7() throws {
        var generator = UUIDv7Generator()
        var previous = ""
        var seen = Set<String>()
        for n in 0..<20_000 {
            let id = generator.next(millis: 1_700_000_000_000 + UInt64(n / 5_000))
            #expect(UUIDText.canonical(id) == id)
            let bytes = try #require(UUIDText.parse(id))
            #expect(bytes[6] >> 4 == 7)
            #expect(bytes[8] >> 6 == 0b10)
            #expect(id > previous)
            previous = id
            seen.insert(id)
        }
        #expect(seen.count == 20_000)
    }
}
