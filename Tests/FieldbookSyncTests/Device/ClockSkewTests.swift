import FieldbookCore
import FieldbookHTTP
import FieldbookJSON
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import GRDB
import Synchronization
import Testing

/// A wall clock a test sets: `offset` milliseconds from the real one, or a fixed time.
final class SkewedClock: Sendable {
    private let value: Mutex<(offset: Int64, fixed: UInt64?)>

    init(offset: Int64 = 0) { value = Mutex((offset, nil)) }

    /// Milliseconds since 1970, as the device sees them.
    func now() -> UInt64 {
        value.withLock { v in
            if let fixed = v.fixed { return fixed }
            return UInt64(Int64(Date().timeIntervalSince1970 * 1000) + v.offset)
        }
    }

    func set(offset: Int64) { value.withLock { $0 = (offset, nil) } }
    func set(fixed: UInt64) { value.withLock { $0.fixed = fixed } }

    var configuration: Store.Configuration {
        var configuration = Store.Configuration()
        configuration.wallClock = { self.now() }
        return configuration
    }
}

let hour: Int64 = 3_600_000

/// Every timestamp of a device's changelog, in sequence order.
func changelogTimestamps(_ path: String) throws -> [Int64] {
    var configuration = Configuration()
    configuration.readonly = true
    return try DatabaseQueue(path: path, configuration: configuration).read { db in
        try Int64.fetchAll(db, sql: "SELECT hlc FROM _changelog ORDER BY seq")
    }
}

/// Two inspectors whose device clocks are hours apart, against one live server.
struct SkewedPair {
    let dir = TemporaryDirectory()
    let storage: any SyncStorage
    /// Device A: its clock 5 hours behind. Device B: 3 hours ahead.
    let clockA = SkewedClock(offset: -5 * hour)
    let clockB = SkewedClock(offset: 3 * hour)
    let a: Store
    let b: Store
    let tokenA: String
    let tokenB: String

    init(_ backend: Backend, offsetA: Int64 = -5 * hour, offsetB: Int64 = 3 * hour) async throws {
        storage = try await makeStorage(dir, backend)
        clockA.set(offset: offsetA)
        clockB.set(offset: offsetB)
        a = try Store(path: dir.path("a.sqlite"), schema: schema, configuration: clockA.configuration)
        b = try Store(path: dir.path("b.sqlite"), schema: schema, configuration: clockB.configuration)
        tokenA = try await storage.createToken(name: "王芳")
        tokenB = try await storage.createToken(name: "李明")
    }

    func syncA(_ url: URL) async throws { _ = try await a.sync(HTTPTransport(server: url, token: tokenA)) }
    func syncB(_ url: URL) async throws { _ = try await b.sync(HTTPTransport(server: url, token: tokenB)) }

    func syncBoth(_ url: URL) async throws {
        try await syncA(url)
        try await syncB(url)
        try await syncA(url)
    }

    /// The timestamp of a device's last change.
    func lastTimestamp(_ store: Store) throws -> HybridTimestamp {
        HybridTimestamp(rawValue: UInt64(bitPattern: try #require(try changelogTimestamps(store.path).last)))
    }
}

@Suite(
    "Clock skew: devices hours apart merge by HLC; a clock that goes back never reissues a timestamp", .tags(.device))
struct ClockSkewTests {
    @Test("lww: concurrent writes go to the later HLC, not to the later real time", arguments: Backend.all)
    func lwwByHLC(backend: Backend) async throws {
        let pair = try await SkewedPair(backend)
        try await withServer(storage: pair.storage) { url in
            let site = try pair.a.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home"])
            try await pair.syncBoth(url)

            // B (3 h fast) writes first in real time, A (5 h slow) after it, neither having seen the other's.
            try pair.b.update("site", id: site, ["town": "B 写的"])
            let stampB = try pair.lastTimestamp(pair.b)
            try await Task.sleep(for: .milliseconds(5))
            try pair.a.update("site", id: site, ["town": "A 写的"])
            let stampA = try pair.lastTimestamp(pair.a)
            #expect(stampB > stampA)
            #expect(stampB.millis - stampA.millis > UInt64(7 * hour))
            try await pair.syncBoth(url)
            // Concurrent: lww keeps the later HLC, B's, on every peer.
            for store in [pair.a, pair.b] { #expect(try store.record("site", id: site)?["town"] == "B 写的") }
            #expect(try await pair.storage.records("site").first { $0.id == site }?.values["town"] == "B 写的")

            // A has now pulled B's change: its clock moved past B's, so its next write, which saw
            // B's value, is later by HLC too, although A's wall clock is 8 hours behind B's.
            try pair.a.update("site", id: site, ["town": "A 看过后改的"])
            let after = try pair.lastTimestamp(pair.a)
            #expect(after > stampB)
            #expect(UInt64(pair.clockA.now()) + UInt64(7 * hour) < after.millis)
            try await pair.syncBoth(url)
            for store in [pair.a, pair.b] { #expect(try store.record("site", id: site)?["town"] == "A 看过后改的") }
            #expect(try await pair.storage.records("site").first { $0.id == site }?.values["town"] == "A 看过后改的")
            #expect(try await pair.storage.conflicts().isEmpty)
        }
    }

    @Test("observed: the later visit date wins, whatever the clocks say", arguments: Backend.all)
    func observedByVisitDate(backend: Backend) async throws {
        let pair = try await SkewedPair(backend)
        try await withServer(storage: pair.storage) { url in
            let site = try pair.a.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home"])
            try await pair.syncBoth(url)
            // Concurrent: the slow device saw the beds on a later visit; the fast one has the later HLC.
            try pair.a.update("site", id: site, ["beds_total": 120, "observed_on": "2021-09-02"])
            try pair.b.update("site", id: site, ["beds_total": 110, "observed_on": "2021-08-16"])
            #expect(try pair.lastTimestamp(pair.b) > pair.lastTimestamp(pair.a))
            try await pair.syncBoth(url)
            for store in [pair.a, pair.b] {
                #expect(try store.record("site", id: site)?["beds_total"] == 120)
                #expect(try store.record("site", id: site)?["observed_on"] == "2021-09-02")
            }
            #expect(
                try await pair.storage.records("site").first { $0.id == site }?.values["beds_total"] == .integer(120))
        }
    }

    @Test("a wall clock that jumps back, across writes and reopenings, never yields a timestamp already used")
    func backwardsClock() throws {
        var random = SeededGenerator(seed: 0x5EED_C10C)
        for trial in 0..<25 {
            let dir = TemporaryDirectory()
            let path = dir.path("device.sqlite")
            let clock = SkewedClock()
            var wall: Int64 = 1_700_000_000_000 + Int64.random(in: 0...hour, using: &random)
            clock.set(fixed: UInt64(wall))
            var store: Store? = try Store(path: path, schema: schema, configuration: clock.configuration)
            let site = try store!.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home"])
            var issued: [Int64] = []
            for step in 0..<40 {
                switch Int.random(in: 0..<10, using: &random) {
                case 0..<4: wall -= Int64.random(in: 1...(6 * hour), using: &random)  // back, by up to 6 hours
                case 4..<6: wall += Int64.random(in: 0...2, using: &random)  // stuck, or barely moving
                case 6: wall = 0  // reset to 1970
                default: wall += Int64.random(in: 1...hour, using: &random)
                }
                clock.set(fixed: UInt64(max(wall, 0)))
                if Int.random(in: 0..<5, using: &random) == 0 {
                    // The device restarts: the clock is restored from the store.
                    store = nil
                    store = try Store(path: path, schema: schema, configuration: clock.configuration)
                }
                if step % 3 == 0 {
                    // Several changes in one transaction.
                    try store!.write { tx in
                        try tx.update("site", id: site, ["town": .text("第\(step)步")])
                        try tx.increment("site", id: site, "illegal_graves_found")
                    }
                } else {
                    try store!.update(
                        "site", id: site, ["beds_total": .integer(Int64(step)), "observed_on": "2021-09-02"])
                }
                issued = try changelogTimestamps(path)
            }
            #expect(issued.count >= 40, "trial \(trial)")
            for (earlier, later) in zip(issued, issued.dropFirst()) {
                #expect(earlier < later, "trial \(trial): \(earlier) then \(later)")
            }
        }
    }

    @Test(
        "a clock 10 years fast: refused, re-stamped by the server's time, and no peer's clock moves",
        arguments: Backend.all)
    func farFuture(backend: Backend) async throws {
        let tenYears = 10 * 365 * 24 * hour
        let pair = try await SkewedPair(backend, offsetA: 0, offsetB: tenYears)
        try await withServer(storage: pair.storage) { url in
            let site = try pair.a.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home"])
            try await pair.syncBoth(url)
            try pair.b.update("site", id: site, ["town": "未来"])
            try pair.b.update("site", id: site, ["village": "新村"])
            #expect(try pair.lastTimestamp(pair.b).millis > UInt64(pair.clockA.now()) + UInt64(9 * 365 * 24 * hour))
            try await Task.sleep(for: .milliseconds(5))
            try pair.a.update("site", id: site, ["town": "现在"])
            try await pair.syncA(url)
            // B's push is refused (clock_ahead); B re-stamps its two changes by the server's time
            // and pushes them again, in the same sync.
            let report = try await pair.b.sync(HTTPTransport(server: url, token: pair.tokenB))
            #expect(report.pushed == 2)
            #expect(try pair.b.pendingCount() == 0)
            let correction = pair.b.clockCorrection
            #expect(abs(correction + tenYears) < 60_000, "B learned it is ten years fast: \(correction)")
            let day = UInt64(24 * hour)
            for stamp in try changelogTimestamps(pair.b.path) {
                #expect(UInt64(stamp) >> 16 < UInt64(pair.clockA.now()) + day)
            }
            try await pair.syncA(url)
            // Re-stamped after A's write and having pulled it, B's write is later by HLC: it shows everywhere.
            for store in [pair.a, pair.b] {
                #expect(try store.record("site", id: site)?["town"] == "未来")
                #expect(try store.record("site", id: site)?["village"] == "新村")
            }
            // A's clock did not move ten years: its next write is stamped by its own wall clock.
            try pair.a.update("site", id: site, ["town": "现在看过后"])
            #expect(try pair.lastTimestamp(pair.a).millis < UInt64(pair.clockA.now()) + day)
            // B's later writes use the corrected clock: not refused again.
            try pair.b.update("site", id: site, ["village": "旧村"])
            #expect(try pair.lastTimestamp(pair.b).millis < UInt64(pair.clockA.now()) + day)
            try await pair.syncBoth(url)
            #expect(pair.b.clockCorrection == correction)
            for store in [pair.a, pair.b] {
                #expect(try store.record("site", id: site)?["town"] == "现在看过后")
                #expect(try store.record("site", id: site)?["village"] == "旧村")
                #expect(try store.pendingCount() == 0)
            }
            // The correction is kept in the store: a reopened device stamps by it too.
            let reopened = try Store(path: pair.b.path, schema: schema, configuration: pair.clockB.configuration)
            #expect(reopened.clockCorrection == correction)
            // Someone sets B's clock right: the correction no longer applies.
            pair.clockB.set(offset: 0)
            #expect(reopened.clockCorrection == 0)
        }
    }

    @Test(
        "a re-stamped change already merged on the device is merged again with its new timestamp",
        arguments: Backend.all)
    func restampedMergeState(backend: Backend) async throws {
        // A is 12 hours fast (within the bound), B ten years fast.
        let pair = try await SkewedPair(backend, offsetA: 12 * hour, offsetB: 10 * 365 * 24 * hour)
        try await withServer(storage: pair.storage) { url in
            let site = try pair.a.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home"])
            try await pair.syncBoth(url)
            // B writes the town (pending, ten years ahead), then pulls A's change to the same record:
            // B's merge state of the record now holds B's change with its first timestamp.
            try pair.b.update("site", id: site, ["town": "B 写的"])
            try pair.a.update("site", id: site, ["village": "新村"])
            try await pair.syncA(url)
            let transportB = HTTPTransport(server: url, token: pair.tokenB)
            _ = try await pair.b.pull(transportB)
            #expect(try pair.b.record("site", id: site)?["village"] == "新村")
            _ = try await pair.b.push(transportB)
            #expect(pair.b.clockCorrection < 0)
            // A, not having seen B's change, writes the town: stamped 12 hours ahead, later than
            // B's re-stamped change (server time), so A's value wins on every peer.
            try pair.a.update("site", id: site, ["town": "A 写的"])
            try await pair.syncBoth(url)
            try await pair.syncB(url)
            #expect(try await pair.storage.records("site").first { $0.id == site }?.values["town"] == "A 写的")
            for store in [pair.a, pair.b] { #expect(try store.record("site", id: site)?["town"] == "A 写的") }
        }
    }

    @Test(
        "changes the server took, their answer lost, keep their timestamps when the device re-stamps",
        arguments: Backend.all)
    func restampKeepsTaken(backend: Backend) async throws {
        /// Delivers each push, then loses its answer.
        struct AnswerLost: SyncTransport {
            let inner: HTTPTransport
            func push(_ request: PushRequest) async throws -> PushResponse {
                _ = try await inner.push(request)
                throw SyncError(.network, "answer lost")
            }
            func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse {
                try await inner.pull(request, schema: schema)
            }
        }
        let pair = try await SkewedPair(backend, offsetA: 0, offsetB: 0)
        try await withServer(storage: pair.storage) { url in
            let transport = HTTPTransport(server: url, token: pair.tokenB)
            let site = try pair.b.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home"])
            try pair.b.update("site", id: site, ["town": "新度镇"])
            var once = SyncOptions()
            once.attempts = 1
            await #expect(throws: SyncError.self) { try await pair.b.push(AnswerLost(inner: transport), options: once) }
            #expect(try pair.b.pendingCount() == 2)
            #expect(try await pair.storage.changeCount() == 2)
            // The device's clock is then set three days ahead, and it writes again.
            pair.clockB.set(offset: 3 * 24 * hour)
            try pair.b.update("site", id: site, ["village": "新村"])
            let before = try changelogTimestamps(pair.b.path)
            // The push of all three is refused for the third; only it is re-stamped, so the server
            // finds the first two as it took them (not `sequence_reused`).
            let report = try await pair.b.sync(transport)
            #expect(report.pushed == 3)
            let after = try changelogTimestamps(pair.b.path)
            #expect(Array(after.prefix(2)) == Array(before.prefix(2)))
            #expect(after[2] != before[2])
            #expect(try await pair.storage.changeCount() == 3)
            #expect(try await pair.storage.records("site").first { $0.id == site }?.values["village"] == "新村")
        }
    }

    @Test(
        "the server refuses a change stamped beyond its bound with 409 clock_ahead and its time", arguments: Backend.all
    )
    func refusedBeyondBound(backend: Backend) async throws {
        let pair = try await SkewedPair(backend, offsetA: 0, offsetB: 0)
        try await withServer(storage: pair.storage, configure: { $0.maxClockAhead = .seconds(3600) }) { url in
            let token = try await pair.storage.createToken(name: "坏客户端")
            let hostile = "0190c4e0-0000-7000-8000-0000000000cc"
            func body(hlc: Int64) -> [UInt8] {
                Array(
                    #"{"protocol":1,"schema":{"name":"inspection","version":\#(schema.version)},"device":"\#(hostile)","changes":[{"seq":1,"entity":"site","id":"0190c4e0-0000-7000-8000-000000000001","op":"insert","hlc":\#(hlc),"base":0,"fields":{"name":"新度镇敬老院","kind":"elderly_home"}}]}"#
                        .utf8)
            }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            for hlc in [Int64.max, (now + 2 * hour) << 16] {
                let answer = try await send(
                    url, "v1/push", headers: ["Authorization": "Bearer \(token)"], body: body(hlc: hlc))
                #expect(answer.status == 409)
                #expect(answer.code == "clock_ahead")
                let error = try #require(WireError(json: try JSON(parsing: answer.body)))
                let serverTime = try #require(error.serverTime)
                #expect(abs(serverTime - now) < 60_000)
                #expect(error.maxAhead == hour)
                #expect(!error.message.contains("新度镇"))
            }
            #expect(try await pair.storage.changeCount() == 0)
            // Within the bound: taken.
            #expect(try await post(url, "v1/push", token: token, body: body(hlc: (now + hour / 2) << 16)) == (200, nil))
        }
    }

    @Test(
        "a device does not move its clock to an absurd pulled timestamp, merges it as every peer does, and still pushes",
        arguments: Backend.all)
    func largestTimestamp(backend: Backend) async throws {
        let pair = try await SkewedPair(backend, offsetA: 0, offsetB: 0)
        // A server without a bound (as before it had one) takes a change stamped Int64.max.
        try await withServer(storage: pair.storage, configure: { $0.maxClockAhead = nil }) { url in
            let site = try pair.a.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home"])
            try await pair.syncBoth(url)
            let hostile = "0190c4e0-0000-7000-8000-0000000000cc"
            let body = Array(
                #"{"protocol":1,"schema":{"name":"inspection","version":\#(schema.version)},"device":"\#(hostile)","changes":[{"seq":1,"entity":"site","id":"\#(site)","op":"update","hlc":9223372036854775807,"base":0,"fields":{"village":"x"}}]}"#
                    .utf8)
            let token = try await pair.storage.createToken(name: "坏客户端")
            #expect(try await post(url, "v1/push", token: token, body: body) == (200, nil))
            try await pair.syncB(url)
            // Merged as on the server: the absurd timestamp wins the concurrent write.
            #expect(try pair.b.record("site", id: site)?["village"] == "x")
            try pair.b.update("site", id: site, ["town": "之后"])
            // B's clock stopped at its wall clock plus a day: its timestamps still fit, and its push is taken.
            #expect(try pair.lastTimestamp(pair.b).millis < UInt64(pair.clockB.now()) + UInt64(25 * hour))
            try await pair.syncB(url)
            try await pair.syncA(url)
            #expect(try pair.b.pendingCount() == 0)
            // A change that saw the absurd one replaces it, though stamped lower: "saw" is by base, not timestamp.
            try pair.a.update("site", id: site, ["village": "新村"])
            try await pair.syncBoth(url)
            for store in [pair.a, pair.b] {
                #expect(try store.record("site", id: site)?["village"] == "新村")
                #expect(try store.record("site", id: site)?["town"] == "之后")
            }
            #expect(try await pair.storage.records("site").first { $0.id == site }?.values["village"] == "新村")
        }
    }
}
