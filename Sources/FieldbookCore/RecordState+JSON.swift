// The stored form of a record's merge state, on devices and on the server:
// one JSON object, compact, with field names as keys (so a schema that adds
// fields reads old states).
//
//   {"values":{field:value,…},
//    "reg":{field:[[stamp,value,at,epoch],…],…},
//    "mem":{field:{member:[[stamp,present],…],…},…},
//    "applied":[stamp,…], "writes":[stamp,…], "deletes":[stamp,…]}
//
// where a stamp is [device, sequence, hlc, base, serverSequence or null].

extension ChangeStamp {
    var json: JSON {
        .array([
            .string(device), .int(sequence), .int(Int64(bitPattern: timestamp.rawValue)), .int(base),
            serverSequence.map(JSON.int) ?? .null,
        ])
    }

    init?(json: JSON) {
        guard case .array(let items) = json, items.count == 5, case .string(let device) = items[0],
            case .int(let sequence) = items[1], case .int(let hlc) = items[2], case .int(let base) = items[3]
        else { return nil }
        var serverSequence: Int64?
        if case .int(let s) = items[4] { serverSequence = s }
        self.init(
            device: device, sequence: sequence, timestamp: HybridTimestamp(rawValue: UInt64(bitPattern: hlc)),
            base: base, serverSequence: serverSequence)
    }
}

/// A stored merge state that cannot be read.
public struct RecordStateFormatError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

extension RecordState {
    /// The state as JSON (see the format above).
    public var json: JSON {
        func sortedObject<V>(_ dict: [String: V], _ transform: (V) -> JSON) -> JSON {
            .object(dict.keys.sorted().map { ($0, transform(dict[$0]!)) })
        }
        func stamps(_ list: some Sequence<ChangeStamp>) -> JSON {
            .array(list.sorted { $0.device < $1.device || ($0.device == $1.device && $0.sequence < $1.sequence) }.map(\.json))
        }
        return .object([
            ("values", sortedObject(values) { $0.json }),
            (
                "reg",
                sortedObject(registers) { candidates in
                    .array(
                        candidates.map {
                            .array([$0.stamp.json, $0.value.json, $0.observedAt.map(JSON.string) ?? .null, $0.epoch.map(JSON.int) ?? .null])
                        })
                }
            ),
            (
                "mem",
                sortedObject(members) { operations in
                    sortedObject(operations) { ops in .array(ops.map { .array([$0.stamp.json, .bool($0.present)]) }) }
                }
            ),
            ("applied", stamps(applied.values)),
            ("writes", stamps(writes.values)),
            ("deletes", .array(deletes.map(\.json))),
        ])
    }

    /// Reads a state written by ``json`` for a record of `entity`. Fields the entity no longer has are dropped.
    public init(json: JSON, entity: Entity) throws(RecordStateFormatError) {
        self.init()
        func fail(_ what: String) -> RecordStateFormatError {
            RecordStateFormatError(description: "stored merge state of a \(entity.name) record: bad \(what)")
        }
        func object(_ key: String) throws(RecordStateFormatError) -> [(key: String, value: JSON)] {
            guard case .object(let pairs)? = json[key] else { throw fail(key) }
            return pairs
        }
        func stampList(_ key: String) throws(RecordStateFormatError) -> [ChangeStamp] {
            guard case .array(let items)? = json[key] else { throw fail(key) }
            var result: [ChangeStamp] = []
            for item in items {
                guard let stamp = ChangeStamp(json: item) else { throw fail(key) }
                result.append(stamp)
            }
            return result
        }
        for (name, valueJSON) in try object("values") {
            guard let field = entity.field(name) else { continue }
            guard let value = try? Value(json: valueJSON, for: field.type) else { throw fail("value of \(name)") }
            values[name] = value
        }
        for (name, list) in try object("reg") {
            guard let field = entity.field(name) else { continue }
            guard case .array(let items) = list else { throw fail("register \(name)") }
            var candidates: [Candidate] = []
            for item in items {
                guard case .array(let parts) = item, parts.count == 4, let stamp = ChangeStamp(json: parts[0]),
                    let value = try? Value(json: parts[1], for: field.type)
                else { throw fail("register \(name)") }
                var at: String?
                if case .string(let s) = parts[2] { at = s }
                var epoch: Int64?
                if case .int(let e) = parts[3] { epoch = e }
                candidates.append(Candidate(stamp: stamp, value: value, observedAt: at, epoch: epoch))
            }
            registers[name] = candidates
        }
        for (name, memberJSON) in try object("mem") {
            guard entity.field(name) != nil else { continue }
            guard case .object(let pairs) = memberJSON else { throw fail("members of \(name)") }
            var operations: [String: [MemberOperation]] = [:]
            for (member, list) in pairs {
                guard case .array(let items) = list else { throw fail("members of \(name)") }
                var ops: [MemberOperation] = []
                for item in items {
                    guard case .array(let parts) = item, parts.count == 2, let stamp = ChangeStamp(json: parts[0]),
                        case .bool(let present) = parts[1]
                    else { throw fail("members of \(name)") }
                    ops.append(MemberOperation(stamp: stamp, present: present))
                }
                operations[member] = ops
            }
            members[name] = operations
        }
        for stamp in try stampList("applied") { applied[stamp.device] = stamp }
        for stamp in try stampList("writes") { writes[stamp.device] = stamp }
        deletes = try stampList("deletes")
    }
}
