// A child process for the crash-safety test: writes to a store in a loop until it is killed.
// After each committed transaction it prints "committed <number of changes so far>".
//
// usage: fieldbook-crash-writer STORE_PATH SEED
import FieldbookCore
import FieldbookSchemas
import FieldbookStore
import FieldbookTesting
import Foundation

let arguments = CommandLine.arguments
guard arguments.count == 3, let seed = UInt64(arguments[2]) else {
    FileHandle.standardError.write(Data("usage: fieldbook-crash-writer STORE_PATH SEED\n".utf8))
    exit(2)
}
var rng = SeededGenerator(seed: seed)
let store = try Store(path: arguments[1], schema: try Schema(json: BundledSchemas.inspection))
var findings = try store.fetch(Query("finding")).map(\.id)
var sites = try store.fetch(Query("site")).map(\.id)
let statuses: [Value] = ["not_started", "in_progress", "completed"]

while true {
    do {
        try store.write { tx in
            for _ in 0..<Int.random(in: 1...20, using: &rng) {
                switch Int.random(in: 0..<10, using: &rng) {
                case 0...2:
                    if sites.isEmpty || Bool.random(using: &rng) {
                        sites.append(
                            try tx.insert("site", ["name": .text("敬老院\(rng.next() % 1000)"), "kind": "elderly_home"]))
                    } else {
                        try tx.increment(
                            "site", id: sites.randomElement(using: &rng)!, "illegal_graves_found",
                            by: Int64.random(in: -3...5, using: &rng))
                    }
                case 3...5:
                    var values: [String: Value] = ["title": .text("问题 \(rng.next() % 100_000)")]
                    if let site = sites.randomElement(using: &rng) { values["site"] = .text(site) }
                    findings.append(try tx.insert("finding", values))
                case 6...8 where !findings.isEmpty:
                    try tx.update(
                        "finding", id: findings.randomElement(using: &rng)!,
                        [
                            "status": statuses.randomElement(using: &rng)!,
                            "reopen_count": .integer(Int64.random(in: 0...3, using: &rng)),
                            "deadline": .text("2022-0\(Int.random(in: 1...9, using: &rng))-15"),
                        ])
                case 9 where !findings.isEmpty:
                    let index = Int.random(in: 0..<findings.count, using: &rng)
                    try tx.delete("finding", id: findings[index])
                    findings.remove(at: index)
                default:
                    break
                }
            }
            // Sometimes a transaction fails part-way and must leave no trace.
            if Int.random(in: 0..<10, using: &rng) == 0 {
                try tx.update("finding", id: findings.first ?? UUID().uuidString, ["status": "closed"])
            }
        }
        // Unbuffered: a line on the pipe means the transaction had committed.
        FileHandle.standardOutput.write(Data("committed \(try store.pendingCount())\n".utf8))
    } catch {
        // A refused transaction: reload what exists, since the in-memory lists may be ahead.
        findings = try store.fetch(Query("finding")).map(\.id)
        sites = try store.fetch(Query("site")).map(\.id)
    }
}
