import FieldbookCore
import FieldbookSchemas
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import GRDB

/// The checks after the clean sync, on the files themselves (the server is stopped).
///
/// - lost: a change a device made that the server lacks, holds with other content, or holds
///   under another server sequence number than the device was told; or an effect of the
///   changes missing on the server: a record inserted and gone, a counter below the sum of
///   its increments, a set member added and absent, a last-writer-wins field not holding the
///   latest write.
/// - duplicated: a (device, sequence) stored twice on the server or received twice by a
///   device, or a counter above the sum of its increments (on the server or any device).
/// - diverged: devices whose records differ from the server's, or with changes pending.
struct Verifier {
    let devices: [String]
    let server: String
    let schema = try! Schema(json: BundledSchemas.inspection)

    struct Verdict {
        var changes = 0
        var lost = 0
        var duplicated = 0
        var diverged = 0
        var integrityFailures = 0
        var details: [String] = []
        var files = 0

        var failed: Bool { lost + duplicated + diverged + integrityFailures > 0 }

        /// The problems found (the first 20), the integrity line, and the summary line last.
        func print(faults: Int) {
            for line in details.prefix(20) { say("  " + line) }
            if details.count > 20 { say("  … and \(details.count - 20) more") }
            say("integrity: \(integrityFailures == 0 ? "ok" : "\(integrityFailures) files FAILED") (\(files) files)")
            say(
                "faults: \(faults)  changes: \(changes)  lost: \(lost)  duplicated: \(duplicated)  diverged: \(diverged)"
            )
        }
    }

    typealias Snapshot = [String: [String: [String: Value]]]

    struct Made {
        var device: String
        var sequence: Int64
        var entity: String
        var record: String
        var op: Int
        var hlc: Int64
        var base: Int64
        var fields: String
        var serverSequence: Int64?
    }

    func check() throws -> Verdict {
        var verdict = Verdict()
        for path in devices + [server] {
            verdict.files += 1
            let result = try integrityCheck(path)
            if result != "ok" {
                verdict.integrityFailures += 1
                verdict.details.append("integrity_check of \(path): \(result)")
            }
        }

        // What every device made, from its changelog.
        var made: [Made] = []
        var received: [String: [(device: String, sequence: Int64)]] = [:]
        for path in devices {
            try DatabaseQueue(path: path).read { db in
                let device =
                    try String.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'device_id'") ?? "?"
                for row in try Row.fetchAll(
                    db, sql: "SELECT seq, entity, record, op, hlc, base, fields, sseq FROM _changelog ORDER BY seq")
                {
                    made.append(
                        Made(
                            device: device, sequence: row[0], entity: row[1], record: row[2], op: row[3], hlc: row[4],
                            base: row[5], fields: row[6], serverSequence: row[7]))
                }
                received[path] = try Row.fetchAll(db, sql: "SELECT device, seq FROM _received").map { ($0[0], $0[1]) }
            }
        }
        verdict.changes = made.count

        // The server's changes and records.
        var stored: [String: [Int64: [(sseq: Int64, made: Made)]]] = [:]
        var serverSnapshot: Snapshot = [:]
        var head: Int64 = 0
        try DatabaseQueue(path: server).read { db in
            for row in try Row.fetchAll(
                db, sql: "SELECT sseq, device, seq, entity, record, op, hlc, base, fields FROM changes")
            {
                let change = Made(
                    device: row[1], sequence: row[2], entity: row[3], record: row[4], op: row[5], hlc: row[6],
                    base: row[7], fields: row[8], serverSequence: row[0])
                stored[change.device, default: [:]][change.sequence, default: []].append((row[0], change))
                head = max(head, row[0])
            }
            for entity in schema.entities { serverSnapshot[entity.name] = [:] }
            for row in try Row.fetchAll(db, sql: "SELECT entity, id, state FROM records WHERE live = 1") {
                let name: String = row[0]
                guard let entity = schema.entity(name) else { continue }
                let text: String = row[2]
                let values = try RecordState(encoded: Array(text.utf8), entity: entity).values.filter {
                    !$0.value.isNull
                }
                serverSnapshot[name, default: [:]][row[1] as String] = values
            }
        }

        // Every change made is on the server once, as made, under the number its device was told.
        let madeKeys = Set(made.map { "\($0.device)/\($0.sequence)" })
        for change in made {
            guard let copies = stored[change.device]?[change.sequence], let copy = copies.first else {
                verdict.lost += 1
                verdict.details.append(
                    "lost: change \(change.sequence) of device \(change.device) is not on the server")
                continue
            }
            let same =
                copy.made.entity == change.entity && copy.made.record == change.record && copy.made.op == change.op
                && copy.made.hlc == change.hlc && copy.made.base == change.base && copy.made.fields == change.fields
            if !same {
                verdict.lost += 1
                verdict.details.append(
                    "lost: change \(change.sequence) of device \(change.device) is on the server with other content")
            } else if let told = change.serverSequence, told != copy.sseq {
                verdict.lost += 1
                verdict.details.append(
                    "lost: change \(change.sequence) of device \(change.device) was acknowledged as \(told), the server has it as \(copy.sseq)"
                )
            }
        }
        for (device, bySequence) in stored {
            for (sequence, copies) in bySequence {
                if copies.count > 1 {
                    verdict.duplicated += copies.count - 1
                    verdict.details.append(
                        "duplicated: change \(sequence) of device \(device) is on the server \(copies.count) times")
                }
                if !madeKeys.contains("\(device)/\(sequence)") {
                    verdict.duplicated += 1
                    verdict.details.append(
                        "duplicated: the server has change \(sequence) of device \(device), which no device made")
                }
            }
        }
        for (path, pairs) in received {
            var seen = Set<String>()
            for pair in pairs where !seen.insert("\(pair.device)/\(pair.sequence)").inserted {
                verdict.duplicated += 1
                verdict.details.append(
                    "duplicated: \(path) received change \(pair.sequence) of device \(pair.device) twice")
            }
        }

        // The effects every peer must show, computed from the changes made alone.
        let expected = try expectedEffects(made)
        for (ref, _) in expected.inserted where serverSnapshot[ref.entity]?[ref.id] == nil {
            verdict.lost += 1
            verdict.details.append("lost: \(ref.entity) \(ref.id) was inserted and is not on the server")
        }
        func checkCounters(_ snapshot: Snapshot, _ place: String, lostToo: Bool) {
            for (key, sum) in expected.counters {
                let value = snapshot[key.entity]?[key.id]?[key.field]?.integer ?? 0
                if value > sum {
                    verdict.duplicated += 1
                    verdict.details.append(
                        "duplicated: \(place) counts \(value) for \(key.entity).\(key.field) of \(key.id); the increments add up to \(sum)"
                    )
                } else if value < sum && lostToo {
                    verdict.lost += 1
                    verdict.details.append(
                        "lost: \(place) counts \(value) for \(key.entity).\(key.field) of \(key.id); the increments add up to \(sum)"
                    )
                }
            }
        }
        checkCounters(serverSnapshot, "the server", lostToo: true)
        for (key, members) in expected.members {
            let present = Set(serverSnapshot[key.entity]?[key.id]?[key.field]?.setMembers ?? [])
            if !members.isSubset(of: present) {
                verdict.lost += 1
                verdict.details.append(
                    "lost: \(key.entity).\(key.field) of \(key.id) lacks \(members.subtracting(present).sorted()) on the server"
                )
            }
        }
        for (key, latest) in expected.latest {
            let value = serverSnapshot[key.entity]?[key.id]?[key.field] ?? .null
            if value != latest.value {
                verdict.lost += 1
                verdict.details.append(
                    "lost: \(key.entity).\(key.field) of \(key.id) is \(value) on the server; the latest write was \(latest.value)"
                )
            }
        }

        // Every device holds what the server holds, with nothing pending.
        for (n, path) in devices.enumerated() {
            let store = try Store(path: path, schema: schema)
            let snapshot = try snapshot(store)
            checkCounters(snapshot, "device \(n + 1)", lostToo: false)
            let pending = try store.pendingCount()
            if snapshot != serverSnapshot || pending > 0 {
                verdict.diverged += 1
                var differing: [String] = []
                for entity in schema.entities {
                    let mine = snapshot[entity.name] ?? [:]
                    let theirs = serverSnapshot[entity.name] ?? [:]
                    for id in Set(mine.keys).union(theirs.keys) where mine[id] != theirs[id] {
                        differing.append("\(entity.name) \(id)")
                    }
                }
                verdict.details.append(
                    "diverged: device \(n + 1) has \(pending) changes pending and differs from the server in \(differing.count) records\(differing.prefix(3).map { ": " + $0 }.joined())"
                )
            }
        }
        return verdict
    }

    struct FieldKey: Hashable {
        var entity: String
        var id: String
        var field: String
    }

    struct RecordRef: Hashable {
        var entity: String
        var id: String
    }

    struct Expected {
        var inserted: [RecordRef: Bool] = [:]
        var counters: [FieldKey: Int64] = [:]
        var members: [FieldKey: Set<String>] = [:]
        var latest: [FieldKey: (hlc: UInt64, device: String, value: Value)] = [:]
    }

    /// Counters: the sum of every increment. Sets: every member added (the devices never
    /// remove). Last-writer-wins fields: the write with the latest (timestamp, device).
    func expectedEffects(_ made: [Made]) throws -> Expected {
        var expected = Expected()
        var removesMembers = Set<FieldKey>()
        for change in made {
            guard let entity = schema.entity(change.entity) else { continue }
            if change.op == ChangeOperation.insert.rawValue {
                expected.inserted[RecordRef(entity: change.entity, id: change.record)] = true
            }
            for fieldChange in try FieldChange.decode(utf8: Array(change.fields.utf8), entity: entity) {
                guard let field = entity.fields.first(where: { $0.name == fieldChange.field }) else { continue }
                let key = FieldKey(entity: change.entity, id: change.record, field: field.name)
                switch (field.policy, fieldChange.kind) {
                case (.counter, .add(let delta)): expected.counters[key, default: 0] += delta
                case (.counter, .set(let value)): expected.counters[key, default: 0] += value.integer ?? 0
                case (.union, .members(let added, let removed)):
                    expected.members[key, default: []].formUnion(added)
                    if !removed.isEmpty { removesMembers.insert(key) }
                case (.union, .set(let value)): expected.members[key, default: []].formUnion(value.setMembers)
                case (.lww, .set(let value)):
                    // The later (timestamp, device) wins; a write made knowing another always has the later timestamp.
                    let hlc = UInt64(bitPattern: change.hlc)
                    if let current = expected.latest[key],
                        current.hlc > hlc
                            || current.hlc == hlc && !current.device.utf8.lexicographicallyPrecedes(change.device.utf8)
                    {
                        continue
                    }
                    expected.latest[key] = (hlc, change.device, value)
                default: break
                }
            }
        }
        for key in removesMembers { expected.members[key] = nil }
        return expected
    }

}
