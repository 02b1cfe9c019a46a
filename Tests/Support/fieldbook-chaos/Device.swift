import ArgumentParser
import FieldbookCore
import FieldbookHTTP
import FieldbookSchemas
import FieldbookStore
import FieldbookTesting
import Foundation

/// One device, as a process of its own: writes a round of changes, syncs, again, until its
/// store holds `--target` changes; then syncs once more and prints "done". Killed at any
/// moment, it is simply run again on the same store.
///
/// It prints one line per step so the driver can tell where it is: "made N", "sync",
/// "progress …" after each pushed batch and pulled page, "synced PUSHED PULLED", "done".
struct Device: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run one device (the driver starts these).")

    @Option(help: "The device's SQLite file.") var store: String
    @Option(help: "The server's (or the proxy's) URL.") var server: String
    @Option(help: "The device's bearer token.") var token: String
    @Option(help: "Changes to make in all (counted in the store's changelog).") var target = 0
    @Option(help: "Changes per write round, on average.") var round = 250
    @Option(help: "Changes per push and per pulled page.") var batch = 100
    @Option(help: "Seconds to wait for an answer.") var timeout = 2.0
    @Option(help: "Seed of this run's choices.") var seed: UInt64 = 1

    func run() async throws {
        guard let url = URL(string: server) else { throw ValidationError("--server is not a URL") }
        let store = try Store(path: store, schema: try Schema(json: BundledSchemas.inspection))
        var random = SeededGenerator(seed: seed)
        let transport = HTTPTransport(server: url, token: token, timeout: timeout)
        var options = SyncOptions()
        options.pushBatch = batch
        options.pageSize = batch
        options.initialBackoff = .milliseconds(50)
        options.attempts = 7
        options.progress = { report in say("progress pushed \(report.pushed) pulled \(report.pulled)") }
        while true {
            let made = try store.changeCount()
            say("made \(made)")
            if made < target {
                let size = min(target - made, round / 2 + Int(random.next() % UInt64(round + 1)))
                try writeRound(store, changes: size, random: &random)
                say("made \(try store.changeCount())")
            }
            say("sync")
            let report = try await store.sync(transport, options: options)
            say("synced \(report.pushed) \(report.pulled)")
            if made >= target { break }
        }
        say("done")
    }

    /// Makes `changes` changes in small transactions. Most edit a few shared records (the
    /// oldest sites, which every device has pulled), so devices edit the same fields at the
    /// same time and merges really happen: counters, set members, last-writer-wins and
    /// observed values; a few insert sites and visits.
    func writeRound(_ store: Store, changes: Int, random: inout SeededGenerator) throws {
        var sites = try store.fetch(Query("site")).map(\.id).sorted()
        var visits = try store.fetch(Query("visit")).map(\.id).sorted()
        let device = String(store.deviceID.suffix(4))
        var left = changes
        while left > 0 {
            let size = min(left, 1 + Int(random.next() % 20))
            try store.write { tx in
                for _ in 0..<size {
                    let n = random.next()
                    func pick(_ ids: [String]) -> String {
                        // Three in four from the ten oldest: the records everyone edits.
                        let hot = random.unit() < 0.75 ? min(ids.count, 10) : ids.count
                        return ids[Int(random.next() % UInt64(hot))]
                    }
                    let roll = random.unit()
                    if sites.count < 3 || roll < 0.06 {
                        let kinds = ["elderly_home", "happiness_home", "elder_canteen", "cemetery"]
                        sites.append(
                            try tx.insert(
                                "site",
                                [
                                    "name": .text("幸福院\(device)-\(n % 10_000)"), "kind": .text(kinds[Int(n % 4)]),
                                    "tags": .set(["新建"]),
                                ]))
                    } else if roll < 0.36 {
                        try tx.increment("site", id: pick(sites), "illegal_graves_found", by: Int64(1 + n % 3))
                    } else if roll < 0.56 {
                        try tx.update("site", id: pick(sites), ["town": .text("新度镇\(device)-\(n % 1000)")])
                    } else if roll < 0.68 {
                        let site = pick(sites)
                        let tags = try tx.record("site", id: site)?["tags"].setMembers ?? []
                        try tx.update("site", id: site, ["tags": .set(tags + ["标签\(n % 40)"])])
                    } else if roll < 0.78 {
                        let day = 1 + Int(n % 28)
                        try tx.update(
                            "site", id: pick(sites),
                            [
                                "beds_total": .integer(Int64(n % 300)),
                                "observed_on": .text("2021-09-\(day < 10 ? "0" : "")\(day)"),
                            ])
                    } else if visits.count < 3 || roll < 0.82 {
                        visits.append(
                            try tx.insert(
                                "visit",
                                [
                                    "site": .text(pick(sites)), "visited_on": "2021-09-02",
                                    "inspectors": .set(["王芳", "李明"]), "summary": .text("走访\(device)"),
                                ]))
                    } else if roll < 0.94 {
                        try tx.increment("visit", id: pick(visits), "problems_found", by: 1)
                    } else {
                        let visit = pick(visits)
                        let inspectors = try tx.record("visit", id: visit)?["inspectors"].setMembers ?? []
                        try tx.update("visit", id: visit, ["inspectors": .set(inspectors + ["巡察员\(n % 12)"])])
                    }
                }
            }
            left -= size
        }
    }
}

/// Prints a line at once, unbuffered: the driver reads a device's progress as it happens, and
/// the driver's own progress shows in a pipe or a file as it happens.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
