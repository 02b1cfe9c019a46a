import FieldbookServerTesting
import FieldbookTesting
import Foundation
import GRDB
import Testing

/// Runs the built `fieldbook-chaos` with ARGUMENTS; returns its exit status and what it printed.
func runChaos(_ arguments: [String]) throws -> (status: Int32, lines: [String]) {
    let (status, stdout, _) = try BuiltProducts.run("fieldbook-chaos", arguments)
    return (status, stdout.split(separator: "\n").map(String.init))
}

/// The numbers of a line like `faults: 31  changes: 3000  lost: 0  duplicated: 0  diverged: 0`, by name.
func counts(_ line: String) -> [String: Int] {
    let words = line.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
    var result: [String: Int] = [:]
    for (name, value) in zip(words, words.dropFirst()) {
        if let number = Int(value) { result[name.trimmingCharacters(in: CharacterSet(charactersIn: ":"))] = number }
    }
    return result
}

@Suite("Sync: fault injection, end to end", .tags(.endToEnd, .slow), .fullRunOnly)
struct ChaosTests {
    /// The small configuration of scripts/faults: 3 device processes, 3,000 changes, the server
    /// and devices killed, requests dropped, delayed and cut — then nothing lost, doubled or diverged.
    @Test("devices and server killed, connections dropped, delayed and cut: nothing lost, nothing twice, all converge")
    func chaos() throws {
        let dir = TemporaryDirectory()
        let run = try runChaos([
            "--devices", "3", "--changes", "3000", "--seed", "20211102", "--duration-limit", "150",
            "--server-kill-every", "2.5", "--device-kill-every", "1", "--drop", "0.05", "--delay", "0.06", "--cut",
            "0.05",
            "--round", "150", "--batch", "50", "--directory", dir.path("run"),
        ])
        let summary = run.lines.last ?? ""
        #expect(run.status == 0, "\(run.lines.suffix(25).joined(separator: "\n"))")
        #expect(summary.hasPrefix("faults: "), "the summary line comes last: \(summary)")
        let totals = counts(summary)
        #expect(totals["changes"] == 3000)
        #expect(totals["lost"] == 0)
        #expect(totals["duplicated"] == 0)
        #expect(totals["diverged"] == 0)
        #expect(run.lines.contains("integrity: ok (4 files)"))
        // Every kind of fault happened.
        let kinds = counts(run.lines.first { $0.hasPrefix("faults: server killed") } ?? "")
        for kind in ["killed", "mid-sync", "dropped", "delayed", "cut"] {
            #expect((kinds[kind] ?? 0) > 0, "no fault of kind '\(kind)': \(kinds)")
        }
        #expect((totals["faults"] ?? 0) == kinds.values.reduce(0, +))

        // The checks catch what they are for: a change gone from the server, an increment
        // applied twice on a device (which then differs from the server).
        let files = dir.path("run")
        let server = try DatabaseQueue(path: "\(files)/server.sqlite")
        try server.write { try $0.execute(sql: "DELETE FROM changes WHERE sseq = (SELECT max(sseq) / 2 FROM changes)") }
        let device = try DatabaseQueue(path: "\(files)/device-2.sqlite")
        try device.write {
            try $0.execute(
                sql:
                    "UPDATE site SET illegal_graves_found = illegal_graves_found + 1 WHERE id = (SELECT min(id) FROM site WHERE illegal_graves_found > 0)"
            )
        }
        let check = try runChaos(["check", "--directory", files])
        #expect(check.status == 1)
        let found = counts(check.lines.last ?? "")
        #expect(
            found["lost"] == 1 && found["duplicated"] == 1 && found["diverged"] == 1,
            "\(check.lines.joined(separator: "\n"))")
    }
}
