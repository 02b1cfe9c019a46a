public import FieldbookCore
public import FieldbookJSON

// The stored form of a record's merge state, on devices and on the server:
// one JSON object, compact, with field names as keys (so a schema that adds
// fields reads old states). Each distinct stamp is written once, in "stamps",
// and referred to by its index there:
//
//   {"stamps":[stamp,…],
//    "values":{field:value,…},       counters only: the other fields' values follow from "reg" and "mem"
//    "reg":{field:[[i,value,at,epoch],…],…},
//    "mem":{field:{member:[[i,present],…],…},…},
//    "applied":[i,…], "writes":[i,…], "deletes":[i,…]}
//
// where a stamp is [device, sequence, hlc, base, serverSequence or null] and the
// stamps are sorted by device, sequence, hlc, base and server sequence (null first).
// The earlier forms still read: the first, without "stamps" and with each stamp
// written where it is used, and the second, with every field's value in "values".

extension ChangeStamp {
    var json: JSON {
        .array([
            .string(device), .int(sequence), .int(Int64(bitPattern: timestamp.rawValue)), .int(base),
            serverSequence.map(JSON.int) ?? .null,
        ])
    }

    /// Appends the bytes of `json.serialized`.
    func encode(to out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        JSON.writeString(device, to: &out)
        out.append(UInt8(ascii: ","))
        JSON.writeInt(sequence, to: &out)
        out.append(UInt8(ascii: ","))
        JSON.writeInt(Int64(bitPattern: timestamp.rawValue), to: &out)
        out.append(UInt8(ascii: ","))
        JSON.writeInt(base, to: &out)
        out.append(UInt8(ascii: ","))
        if let serverSequence { JSON.writeInt(serverSequence, to: &out) } else { out.append(contentsOf: "null".utf8) }
        out.append(UInt8(ascii: "]"))
    }

    init?(_ tape: JSONTape, _ index: Int) {
        guard tape.kind(index) == .array, tape[index].length == 5, let device = tape.string(index + 1),
            let sequence = tape.int(index + 2), let hlc = tape.int(index + 3), let base = tape.int(index + 4)
        else { return nil }
        self.init(
            device: device, sequence: sequence, timestamp: HybridTimestamp(rawValue: UInt64(bitPattern: hlc)),
            base: base, serverSequence: tape.int(index + 5))
    }
}

/// A stored merge state that cannot be read.
public struct RecordStateFormatError: Error, CustomStringConvertible, Sendable {
    /// What is wrong: the record's entity and the part of the state that is bad (never a value).
    public var description: String
}

extension RecordState {
    /// The state as JSON (see the format above).
    public var json: JSON {
        // Checked by construction: the encoder writes JSON.
        try! JSON(parsing: encoded)
    }

    /// The state's stored form: the compact JSON text of the format above.
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(1024)
        encode(to: &out)
        return out
    }

    /// Appends the state's stored form to `out`: keys sorted, each stamp once in a sorted table,
    /// stamps of `applied` and `writes` by device and sequence, so equal states give equal bytes.
    public func encode(to out: inout [UInt8]) {
        let stamps = StampIndex(stampTable)
        out.append(contentsOf: #"{"stamps":["#.utf8)
        for (n, stamp) in stamps.table.enumerated() {
            if n > 0 { out.append(UInt8(ascii: ",")) }
            stamp.encode(to: &out)
        }
        // "values": counters only, the other fields' values follow from "reg" and "mem".
        out.append(contentsOf: #"],"values":{"#.utf8)
        var first = true
        for n in layout.byName where slots[n].candidates.isEmpty {
            guard let value = slots[n].value, members.isEmpty || members[layout.names[n]] == nil else { continue }
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(contentsOf: layout.keys[n])
            value.writeJSON(to: &out)
        }
        out.append(contentsOf: #"},"reg":"#.utf8)
        encodeRegisters(to: &out, stamps)
        out.append(contentsOf: #","mem":"#.utf8)
        encodeMembers(to: &out, stamps)
        out.append(contentsOf: #","applied":"#.utf8)
        stamps.writeList(applied.values, sorted: true, to: &out)
        out.append(contentsOf: #","writes":"#.utf8)
        stamps.writeList(writes.values, sorted: true, to: &out)
        out.append(contentsOf: #","deletes":"#.utf8)
        stamps.writeList(deletes, sorted: false, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// `"reg"`: each register's candidates, `[stamp, value, observedAt, epoch]`, by field name.
    private func encodeRegisters(to out: inout [UInt8], _ stamps: StampIndex) {
        out.append(UInt8(ascii: "{"))
        var first = true
        for n in layout.byName where !slots[n].candidates.isEmpty {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(contentsOf: layout.keys[n])
            out.append(UInt8(ascii: "["))
            for (m, candidate) in slots[n].candidates.enumerated() {
                out.append(contentsOf: m > 0 ? ",[".utf8 : "[".utf8)
                stamps.write(candidate.stamp, to: &out)
                out.append(UInt8(ascii: ","))
                candidate.value.writeJSON(to: &out)
                out.append(UInt8(ascii: ","))
                if let at = candidate.observedAt {
                    JSON.writeString(at, to: &out)
                } else {
                    out.append(contentsOf: "null".utf8)
                }
                out.append(UInt8(ascii: ","))
                if let epoch = candidate.epoch {
                    JSON.writeInt(epoch, to: &out)
                } else {
                    out.append(contentsOf: "null".utf8)
                }
                out.append(UInt8(ascii: "]"))
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "}"))
    }

    /// `"mem"`: each set field's member operations, `[stamp, present]`, by field and member, sorted.
    private func encodeMembers(to out: inout [UInt8], _ stamps: StampIndex) {
        out.append(UInt8(ascii: "{"))
        for (n, (field, operations)) in members.sorted(by: { $0.key < $1.key }).enumerated() {
            if n > 0 { out.append(UInt8(ascii: ",")) }
            JSON.writeString(field, to: &out)
            out.append(contentsOf: ":{".utf8)
            for (n, member) in operations.keys.sorted().enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                JSON.writeString(member, to: &out)
                out.append(contentsOf: ":[".utf8)
                for (m, op) in operations[member]!.enumerated() {
                    out.append(contentsOf: m > 0 ? ",[".utf8 : "[".utf8)
                    stamps.write(op.stamp, to: &out)
                    out.append(UInt8(ascii: ","))
                    JSON.writeBool(op.present, to: &out)
                    out.append(UInt8(ascii: "]"))
                }
                out.append(UInt8(ascii: "]"))
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "}"))
    }

    /// Every stamp the state holds, each once, in the stored order.
    private var stampTable: [ChangeStamp] {
        // Most states hold a few distinct stamps, each used many times: keep each once as it
        // comes (a scan, or a set once there are many), then sort the few.
        var table: [ChangeStamp] = []
        var seen: Set<ChangeStamp>?
        func add(_ stamp: ChangeStamp) {
            if seen == nil {
                if table.contains(stamp) { return }
                table.append(stamp)
                if table.count > 16 { seen = Set(table) }
            } else if seen!.insert(stamp).inserted {
                table.append(stamp)
            }
        }
        for slot in slots { for candidate in slot.candidates { add(candidate.stamp) } }
        for operations in members.values { for ops in operations.values { for op in ops { add(op.stamp) } } }
        for stamp in applied.values { add(stamp) }
        for stamp in writes.values { add(stamp) }
        for stamp in deletes { add(stamp) }
        table.sort { a, b in
            if a.device != b.device { return a.device < b.device }
            if a.sequence != b.sequence { return a.sequence < b.sequence }
            if a.timestamp != b.timestamp { return a.timestamp < b.timestamp }
            if a.base != b.base { return a.base < b.base }
            return (a.serverSequence ?? -1) < (b.serverSequence ?? -1)
        }
        return table
    }

    /// Reads a state written by ``json`` for a record of `entity`. Fields the entity no longer has are dropped.
    public init(json: JSON, entity: Entity) throws(RecordStateFormatError) {
        var bytes: [UInt8] = []
        json.write(to: &bytes)
        try self.init(encoded: bytes, entity: entity)
    }

    /// Reads a state's stored form (``encoded``) for a record of `entity`. Fields the entity no longer has are dropped.
    public init(encoded bytes: [UInt8], entity: Entity) throws(RecordStateFormatError) {
        self.init()
        layout = entity.layout
        slots = [Slot](repeating: Slot(), count: entity.fields.count)
        let reader = try StoredStateReader(bytes, entity: entity)
        let tape = reader.tape
        var hint = 0
        for key in try reader.object("values") {
            guard let position = tape.fieldPosition(key, in: entity, hint: &hint) else { continue }
            let field = entity.fields[position]
            guard let value = try? Value(tape, key + 1, for: field.type) else {
                throw reader.fail("value of \(field.name)")
            }
            slots[position].value = value
        }
        for key in try reader.object("reg") {
            guard let position = tape.fieldPosition(key, in: entity, hint: &hint) else { continue }
            let field = entity.fields[position]
            let candidates = try reader.candidates(key + 1, of: field)
            slots[position].candidates = candidates
            slots[position].value = Self.winner(candidates, policy: field.policy, type: field.type).value
        }
        for key in try reader.object("mem") {
            guard let field = tape.field(key, in: entity, hint: &hint) else { continue }
            members[field.name] = try reader.memberOperations(key + 1, of: field)
        }
        // A register's value is its winner's (above), a set's its members present (the second form
        // also stored them in "values": the same values).
        for (name, operations) in members {
            slots[entity.fieldIndex(name)!].value = Self.present(operations)
        }
        for stamp in try reader.stampList("applied") { applied[stamp.device] = stamp }
        for stamp in try reader.stampList("writes") { writes[stamp.device] = stamp }
        deletes = try reader.stampList("deletes")
    }
}

/// The stored form's stamp table: each stamp written as its position in it.
private struct StampIndex {
    let table: [ChangeStamp]
    /// Most records have a few distinct stamps: a scan finds one sooner than hashing it.
    private let lookup: [ChangeStamp: Int]?

    init(_ table: [ChangeStamp]) {
        self.table = table
        lookup = table.count > 16 ? Dictionary(uniqueKeysWithValues: table.enumerated().map { ($1, $0) }) : nil
    }

    /// Writes `stamp`'s position in the table.
    func write(_ stamp: ChangeStamp, to out: inout [UInt8]) {
        JSON.writeInt(Int64(lookup?[stamp] ?? table.firstIndex(of: stamp)!), to: &out)
    }

    /// Writes `list` as an array of positions; `sorted`: by device, then sequence.
    func writeList(_ list: some Collection<ChangeStamp>, sorted: Bool, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        let ordered =
            sorted
            ? list.sorted { $0.device < $1.device || ($0.device == $1.device && $0.sequence < $1.sequence) }
            : Array(list)
        for (n, stamp) in ordered.enumerated() {
            if n > 0 { out.append(UInt8(ascii: ",")) }
            write(stamp, to: &out)
        }
        out.append(UInt8(ascii: "]"))
    }
}

/// Reads the parts of a state's stored form: its stamp table, objects, registers, members.
private struct StoredStateReader {
    let tape: JSONTape
    let entity: Entity
    /// The stamp table, or nil in the first form, which wrote each stamp in place.
    private let table: [ChangeStamp]?

    init(_ bytes: [UInt8], entity: Entity) throws(RecordStateFormatError) {
        self.entity = entity
        do {
            tape = try JSONTape(parsing: bytes)
        } catch {
            throw Self.failure(entity, "JSON (\(error))")
        }
        guard let index = tape.member(0, "stamps") else {
            table = nil
            return
        }
        guard tape.kind(index) == .array else { throw Self.failure(entity, "stamps") }
        var stamps: [ChangeStamp] = []
        stamps.reserveCapacity(Int(tape[index].length))
        for item in tape.elements(index) {
            guard let stamp = ChangeStamp(tape, item) else { throw Self.failure(entity, "stamps") }
            stamps.append(stamp)
        }
        table = stamps
    }

    func fail(_ what: String) -> RecordStateFormatError { Self.failure(entity, what) }

    static func failure(_ entity: Entity, _ what: String) -> RecordStateFormatError {
        RecordStateFormatError(description: "stored merge state of a \(entity.name) record: bad \(what)")
    }

    /// The stamp at `index`: an index into "stamps", or (the first form) the stamp itself.
    func stamp(_ index: Int) -> ChangeStamp? {
        guard let table else { return ChangeStamp(tape, index) }
        guard let i = tape.int(index), i >= 0, i < table.count else { return nil }
        return table[Int(i)]
    }

    /// The keys of the top-level object `key`.
    func object(_ key: StaticString) throws(RecordStateFormatError) -> JSONTape.Children {
        guard let index = tape.member(0, key), tape.kind(index) == .object else { throw fail(key.description) }
        return tape.keys(index)
    }

    /// The stamps of the top-level array `key`.
    func stampList(_ key: StaticString) throws(RecordStateFormatError) -> [ChangeStamp] {
        guard let index = tape.member(0, key), tape.kind(index) == .array else { throw fail(key.description) }
        var result: [ChangeStamp] = []
        result.reserveCapacity(Int(tape[index].length))
        for item in tape.elements(index) {
            guard let stamp = stamp(item) else { throw fail(key.description) }
            result.append(stamp)
        }
        return result
    }

    /// A register's candidates: the array at `list`, of `[stamp, value, observedAt, epoch]`.
    func candidates(_ list: Int, of field: Field) throws(RecordStateFormatError) -> [RecordState.Candidate] {
        guard tape.kind(list) == .array, tape[list].length > 0 else { throw fail("register \(field.name)") }
        var candidates: [RecordState.Candidate] = []
        candidates.reserveCapacity(Int(tape[list].length))
        for item in tape.elements(list) {
            guard tape.kind(item) == .array, tape[item].length == 4, let stamp = stamp(item + 1) else {
                throw fail("register \(field.name)")
            }
            let v = tape.next(item + 1)
            guard let value = try? Value(tape, v, for: field.type) else { throw fail("register \(field.name)") }
            let at = tape.next(v)
            let epoch = tape.next(at)
            candidates.append(
                RecordState.Candidate(stamp: stamp, value: value, observedAt: tape.string(at), epoch: tape.int(epoch)))
        }
        return candidates
    }

    /// A set field's member operations: the object at `object`, of `member: [[stamp, present]…]`.
    func memberOperations(_ object: Int, of field: Field) throws(RecordStateFormatError) -> [String: [RecordState
        .MemberOperation]]
    {
        guard tape.kind(object) == .object else { throw fail("members of \(field.name)") }
        var operations: [String: [RecordState.MemberOperation]] = [:]
        for member in tape.keys(object) {
            let list = member + 1
            guard tape.kind(list) == .array else { throw fail("members of \(field.name)") }
            var ops: [RecordState.MemberOperation] = []
            for item in tape.elements(list) {
                guard tape.kind(item) == .array, tape[item].length == 2, let stamp = stamp(item + 1),
                    let present = tape.bool(tape.next(item + 1))
                else { throw fail("members of \(field.name)") }
                ops.append(RecordState.MemberOperation(stamp: stamp, present: present))
            }
            operations[tape.string(member)!] = ops
        }
        return operations
    }
}
