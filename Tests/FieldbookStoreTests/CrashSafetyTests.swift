import FieldbookCore
import FieldbookStore
import FieldbookTesting
import Foundation
import GRDB
import Testing

@Suite("Store: crash safety", .tags(.store, .endToEnd))
struct CrashSafetyTests {
    let dir = TemporaryDirectory()

    /// Replays the whole changelog and returns each record's fields as the changelog says they are.
    func replay(_ changes: [Change]) -> [String: [String: Value]] {
        var records: [String: [String: Value]] = [:]
        for change in changes {
            switch change.operation {
            case .insert:
                var fields: [String: Value] = [:]
                for f in change.fields { fields[f.field] = f.applied(to: .null) }
                records[change.recordID] = fields
            case .update:
                var fields = records[change.recordID] ?? [:]
                for f in change.fields { fields[f.field] = f.applied(to: fields[f.field] ?? .null) }
                records[change.recordID] = fields
            case .delete:
                records[change.recordID] = nil
            }
        }
        return records
    }

    @Test(
        "SIGKILL at random moments: integrity holds, data and changelog agree, committed writes survive", .tags(.slow),
        .fullRunOnly)
    func killedWriter() throws {
        let writer = try BuiltProducts.url("fieldbook-crash-writer")
        try #require(FileManager.default.isExecutableFile(atPath: writer.path), "build fieldbook-crash-writer first")
        let path = dir.path("device.sqlite")
        var rng = SystemRandomNumberGenerator()
        var previousCount = 0
        for round in 0..<6 {
            let process = Process()
            process.executableURL = writer
            process.arguments = [path, String(UInt64.random(in: 0...UInt64.max, using: &rng))]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            // Wait until it is writing, then kill it at a random moment.
            let deadline = Date().addingTimeInterval(20)
            var seen = Data()
            while !String(decoding: seen, as: UTF8.self).contains("committed"), Date() < deadline {
                seen.append(output.fileHandleForReading.availableData)
            }
            usleep(UInt32.random(in: 10_000...400_000, using: &rng))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal, "round \(round): the writer must die by SIGKILL")
            seen.append(output.fileHandleForReading.readDataToEndOfFile())
            let lastCommitted =
                String(decoding: seen, as: UTF8.self).split(separator: "\n")
                .compactMap { $0.hasPrefix("committed ") ? Int($0.dropFirst(10)) : nil }.last ?? 0

            #expect(try integrityCheck(path) == "ok", "round \(round)")

            let store = try makeStore(dir, name: "device.sqlite")
            let changes = try store.pendingChanges(limit: 10_000_000)
            #expect(changes.count >= lastCommitted, "round \(round): a commit the writer reported was lost")
            #expect(changes.count > previousCount, "round \(round): the writer wrote nothing")
            #expect(changes.map(\.sequence) == Array(1...Int64(changes.count)), "sequence numbers have no gaps")
            previousCount = changes.count

            // Every record in the tables is exactly what the changelog says, and nothing more.
            let expected = replay(changes)
            var actual: [String: [String: Value]] = [:]
            for entity in store.schema.entities {
                for record in try store.fetch(Query(entity.name)) {
                    var fields: [String: Value] = [:]
                    for (field, value) in zip(entity.fields, record.values) where !value.isNull {
                        fields[field.name] = value
                    }
                    actual[record.id] = fields
                }
            }
            #expect(actual.count == expected.count, "round \(round)")
            #expect(actual == expected, "round \(round): data and changelog disagree")
        }
    }
}
