// A device that writes changes and syncs them, for tests that kill it mid-sync.
//
//   fieldbook-sync-device STORE SERVER-URL TOKEN CHANGES BATCH
//
// Makes sure the store holds CHANGES changes (writing what is missing: sites, then
// updates of their fields), then syncs in batches of BATCH until nothing is pending,
// printing "progress …" after each batch, and "synced PUSHED PULLED" at the end.
// Killed at any moment, it is simply run again.
import FieldbookCore
import FieldbookHTTP
import FieldbookSchemas
import FieldbookStore
import Foundation

let arguments = CommandLine.arguments
guard arguments.count == 6, let url = URL(string: arguments[2]), let total = Int(arguments[4]),
    let batch = Int(arguments[5])
else {
    FileHandle.standardError.write(Data("usage: fieldbook-sync-device STORE SERVER-URL TOKEN CHANGES BATCH\n".utf8))
    exit(2)
}
let store = try Store(path: arguments[1], schema: try Schema(json: BundledSchemas.inspection))
var made = try store.changeCount()
while made < total {
    try store.write { tx in
        var sites = try tx.fetch(Query("site")).map(\.id)
        for _ in 0..<min(100, total - made) {
            if sites.isEmpty || made % 5 == 0 {
                sites.append(try tx.insert("site", ["name": .text("幸福院\(made)"), "kind": "happiness_home"]))
            } else {
                let site = sites[made % sites.count]
                if made % 2 == 0 {
                    try tx.increment("site", id: site, "illegal_graves_found", by: 1)
                } else {
                    try tx.update("site", id: site, ["town": .text("镇\(made)")])
                }
            }
            made += 1
        }
    }
}
var options = SyncOptions()
options.pushBatch = batch
options.pageSize = batch
options.initialBackoff = .milliseconds(100)
options.attempts = 8
options.progress = { report in
    // One line per batch, so a test can kill the process in the middle of a sync.
    FileHandle.standardOutput.write(Data("progress pushed \(report.pushed) pulled \(report.pulled)\n".utf8))
}
let report = try await store.sync(HTTPTransport(server: url, token: arguments[3], timeout: 10), options: options)
print("synced \(report.pushed) \(report.pulled)")
