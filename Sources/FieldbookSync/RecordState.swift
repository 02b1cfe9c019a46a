public import FieldbookCore
import FieldbookJSON

/// One record as every peer merges it: its field values and what the merge
/// needs to know about the changes that made them.
///
/// Device and server hold a `RecordState` for a record and call
/// ``apply(_:entity:)`` with each change they learn of. The result depends
/// only on the set of changes applied, not on the order they arrive in (as
/// long as each device's own changes arrive in their order, which the
/// protocol guarantees), so peers that have seen the same changes hold the
/// same state.
///
/// The merge is three-way per field: a change that saw the field's current
/// value replaces it, whatever the policy. Only changes made without
/// knowledge of each other (see ``ChangeStamp/saw(_:)``) are merged by the
/// field's policy:
///
/// - `lww` and `append`: the later hybrid-logical-clock timestamp wins (ties by device id);
/// - `observed`: the later domain time (``FieldChange/observedAt``) wins, then the later timestamp;
/// - `max`: the higher epoch wins, then the greater value (in the declared order), then the later timestamp;
/// - `manual`: the later timestamp shows, and the field is in ``conflicts`` until a change that saw every
///   side replaces them, or until every side was seen by a delete;
/// - `counter`: every delta is added, concurrent or not;
/// - `union`: members added and removed merge member by member; a concurrent add and remove of one member keeps it.
///
/// A delete keeps the record's values (a tombstone). A delete that did not see
/// an insert or update of the record is contested: with the entity's
/// ``DeletePolicy/conflict`` the record stays and the delete is a conflict until a later
/// change (an update that saw it, or another delete) settles it. (A deleted record that other
/// records still refer to is held: see ``heldConflict(entity:recordID:holders:)``.)
public struct RecordState: Sendable, Hashable {
    /// The entity's fields by position, as the state was laid out for them; empty before the first write.
    var layout: FieldLayout = .empty
    /// Each field's value and register, by position in ``layout``.
    var slots: [Slot] = []
    /// For each `union` field, by name: for each member, the adds and removes not replaced.
    var members: [String: [String: [MemberOperation]]] = [:]
    /// For each device, the last of its changes applied.
    var applied: [String: ChangeStamp] = [:]
    /// For each device, its last insert or update.
    var writes: [String: ChangeStamp] = [:]
    /// Deletes no later write has replaced.
    var deletes: [ChangeStamp] = []

    /// The state of a record no change has been applied to.
    public init() {}

    /// One field of the record.
    struct Slot: Sendable {
        /// The value that shows; nil for a field never written.
        var value: Value?
        /// For a register field (neither a counter nor a set): the writes no other write has replaced.
        var candidates: [Candidate] = []
    }

    /// One write to a register field.
    struct Candidate: Sendable {
        var stamp: ChangeStamp
        var value: Value
        var observedAt: String?
        var epoch: Int64?
    }

    struct MemberOperation: Sendable {
        var stamp: ChangeStamp
        var present: Bool
    }

    /// The field values, by field name; a field never written is absent.
    public var values: [String: Value] {
        var result: [String: Value] = [:]
        for (n, slot) in slots.enumerated() {
            if let value = slot.value { result[layout.names[n]] = value }
        }
        return result
    }

    /// The value of `entity`'s field at `position` (in ``Entity/fields``), or nil if it was never written.
    public func value(at position: Int, of entity: Entity) -> Value? {
        slot(position, of: entity)?.value
    }

    /// The slot of `entity`'s field at `position`: at that position when the state is laid out for
    /// `entity` (always, but for a state of another version of it), else found by name.
    func slot(_ position: Int, of entity: Entity) -> Slot? {
        if layout === entity.layout { return slots[position] }
        return layout.position(entity.fields[position].name).map { slots[$0] }
    }

    /// Two states are equal when they hold the same merge information: when their stored forms are equal.
    public static func == (lhs: RecordState, rhs: RecordState) -> Bool {
        lhs.encoded == rhs.encoded
    }

    /// Hashes the stored form, the one equality compares.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(encoded)
    }

    /// Lays the state out for `layout`: a new state gets a slot per field; a state laid out for
    /// another version of the entity keeps its fields by name and drops the fields `layout` lacks.
    mutating func adopt(_ layout: FieldLayout) {
        if self.layout === layout { return }
        var moved = [Slot](repeating: Slot(), count: layout.names.count)
        for (n, slot) in slots.enumerated() {
            if let position = layout.position(self.layout.names[n]) { moved[position] = slot }
        }
        self.layout = layout
        slots = moved
    }

    /// Whether no insert, update or delete has been applied: the state of a record never written.
    package var isUnwritten: Bool { writes.isEmpty && deletes.isEmpty }

    /// Whether the record exists: inserted, and not deleted (or its delete is contested).
    public func exists(onDelete: DeletePolicy) -> Bool {
        if writes.isEmpty { return false }
        if deletes.isEmpty { return true }
        return onDelete == .conflict && deleteIsContested
    }

    /// A write that no delete saw: the delete was made without knowing of it.
    var deleteIsContested: Bool {
        writes.values.contains { write in deletes.allSatisfy { !$0.saw(write) } }
    }

    /// Whether the record was inserted and its delete stands: it exists only if something holds it
    /// (a reference through a field with `onDelete: conflict`, see ``heldConflict(entity:recordID:holders:)``).
    public func isDeletedRecord(onDelete: DeletePolicy) -> Bool {
        !writes.isEmpty && !exists(onDelete: onDelete)
    }

    /// The stamp of the write whose value of the field at `position` shows, if any.
    public func shownStamp(at position: Int, of entity: Entity) -> ChangeStamp? {
        guard let candidates = slot(position, of: entity)?.candidates, !candidates.isEmpty else { return nil }
        let field = entity.fields[position]
        return Self.winner(candidates, policy: field.policy, type: field.type).stamp
    }

    /// The conflict of a deleted record that other records still refer to through fields with
    /// `onDelete: conflict`, made without knowing of the delete: its sides are the deletes and, for
    /// each holder, the write that set the reference that shows. Every peer holding the same
    /// records finds the same one. Settled by keeping the record (an update that saw the deletes),
    /// or by changing or deleting what refers to it.
    public func heldConflict(entity: Entity, recordID: String, holders: [(Conflict.Referrer, ChangeStamp)]) -> Conflict
    {
        var sides = deletes.map { Conflict.Side(stamp: $0, value: .null, deletes: true) }
        for (referrer, stamp) in holders {
            sides.append(Conflict.Side(stamp: stamp, value: .null, deletes: false, referrer: referrer))
        }
        sides.sort {
            $0.stamp.precedes($1.stamp)
                || ($0.stamp == $1.stamp && ($0.referrer?.record ?? "") < ($1.referrer?.record ?? ""))
        }
        return Conflict(entity: entity.name, recordID: recordID, field: nil, sides: sides)
    }

    /// Whether a change from this device with this sequence number has been applied.
    public func hasApplied(device: String, sequence: Int64) -> Bool {
        guard let last = applied[device] else { return false }
        return sequence <= last.sequence
    }

    /// Merges `change` (a change to this record) into the state.
    ///
    /// A change already applied (by its device and sequence number) changes nothing.
    /// Field changes the entity does not declare are ignored; decode changes with
    /// ``FieldChange/decode(_:entity:)`` to reject them first.
    public mutating func apply(_ change: Change, entity: Entity) {
        apply(change, stamp: change.stamp, entity: entity)
    }

    /// ``apply(_:entity:)`` for a change the server numbers `serverSequence` as it merges it
    /// (so it need not copy the change to set it).
    package mutating func apply(_ change: Change, serverSequence: Int64, entity: Entity) {
        var stamp = change.stamp
        stamp.serverSequence = serverSequence
        apply(change, stamp: stamp, entity: entity)
    }

    private mutating func apply(_ change: Change, stamp: ChangeStamp, entity: Entity) {
        // One lookup of the device, to check and to replace.
        if let last = applied.index(forKey: stamp.device) {
            if stamp.sequence <= applied.values[last].sequence { return }
            applied.values[last] = stamp
        } else {
            applied[stamp.device] = stamp
        }
        if change.operation == .delete {
            deletes.removeAll { stamp.saw($0) }
            deletes.append(stamp)
            deletes.sort { $0.precedes($1) }
            return
        }
        writes[stamp.device] = stamp
        if !deletes.isEmpty { deletes.removeAll { stamp.saw($0) } }
        adopt(entity.layout)
        var hint = 0
        change.fields.withUnsafeBufferPointer { fields in  // each read in place, not copied
            for i in fields.indices {
                guard let position = entity.position(of: fields[i].field, hint: hint) else { continue }
                hint = position + 1
                apply(fields[i], at: position, field: entity.fields[position], stamp: stamp)
            }
        }
    }

    private mutating func apply(_ change: FieldChange, at position: Int, field: Field, stamp: ChangeStamp) {
        switch (field.policy, change.kind) {
        case (.counter, .add(let delta)):
            slots[position].value = .integer((slots[position].value?.integer ?? 0) &+ delta)
        case (.counter, .set(let value)):
            // An insert's value is the counter's first delta.
            slots[position].value = .integer((slots[position].value?.integer ?? 0) &+ (value.integer ?? 0))
        case (.union, .members(let added, let removed)):
            mergeMembers(field.name, at: position, added: added, removed: removed, stamp: stamp)
        case (.union, .set(let value)):
            mergeMembers(field.name, at: position, added: value.setMembers, removed: [], stamp: stamp)
        case (_, .set(let value)):
            let candidate = Candidate(stamp: stamp, value: value, observedAt: change.observedAt, epoch: change.epoch)
            let shown = Self.add(candidate, to: &slots[position].candidates, policy: field.policy, type: field.type)
            slots[position].value = shown
        case (_, .add), (_, .members):
            // A form that does not fit the field's policy; decoding rejects it.
            break
        }
    }

    private mutating func mergeMembers(
        _ name: String, at position: Int, added: [String], removed: [String], stamp: ChangeStamp
    ) {
        var operations = members[name] ?? [:]
        for (list, present) in [(added, true), (removed, false)] {
            for member in list {
                var ops = operations[member] ?? []
                ops.removeAll { stamp.saw($0.stamp) }
                ops.append(MemberOperation(stamp: stamp, present: present))
                ops.sort { $0.stamp.precedes($1.stamp) }
                operations[member] = ops
            }
        }
        members[name] = operations
        slots[position].value = Self.present(operations)
    }

    /// A `union` field's value: the members with an add no remove replaced.
    static func present(_ operations: [String: [MemberOperation]]) -> Value {
        .set(operations.compactMap { member, ops in ops.contains(where: \.present) ? member : nil })
    }

    /// Adds a write to a register (in place: the common case, a write that saw the one before,
    /// replaces it without copying the list) and returns the value that shows.
    private static func add(
        _ candidate: Candidate, to candidates: inout [Candidate], policy: MergePolicy, type: FieldType
    ) -> Value {
        let stamp = candidate.stamp
        candidates.removeAll { stamp.saw($0.stamp) }
        candidates.append(candidate)
        if candidates.count == 1 { return candidate.value }
        candidates.sort { $0.stamp.precedes($1.stamp) }
        return winner(candidates, policy: policy, type: type).value
    }

    /// The candidate whose value shows: the policy's greatest, ties by timestamp and device.
    static func winner(_ candidates: [Candidate], policy: MergePolicy, type: FieldType) -> Candidate {
        // Candidates are sorted by stamp, so the last of equals is the latest.
        var best = candidates[0]
        for candidate in candidates.dropFirst() {
            switch policy {
            case .observed:
                if (best.observedAt ?? "").utf8.lexicographicallyPrecedes((candidate.observedAt ?? "").utf8) {
                    best = candidate
                } else if (best.observedAt ?? "") == (candidate.observedAt ?? "") {
                    best = candidate
                }
            case .max(let order, _):
                let be = best.epoch ?? 0
                let ce = candidate.epoch ?? 0
                if ce != be {
                    if ce > be { best = candidate }
                } else {
                    let c = compare(candidate.value, best.value, order: order)
                    if c >= 0 { best = candidate }
                }
            default:
                best = candidate
            }
        }
        return best
    }

    /// Compares two values of a `max` field: -1, 0 or 1. Null is the least.
    static func compare(_ a: Value, _ b: Value, order: [String]?) -> Int {
        func rank(_ v: Value) -> Int? {
            guard let order, case .text(let t) = v else { return nil }
            return order.firstIndex(of: t)
        }
        switch (a, b) {
        case (.null, .null): return 0
        case (.null, _): return -1
        case (_, .null): return 1
        default: break
        }
        if order != nil {
            let ra = rank(a) ?? -1
            let rb = rank(b) ?? -1
            return ra == rb ? 0 : (ra < rb ? -1 : 1)
        }
        switch (a, b) {
        case (.integer(let x), .integer(let y)): return x == y ? 0 : (x < y ? -1 : 1)
        case (.real(let x), .real(let y)): return x == y ? 0 : (x < y ? -1 : 1)
        case (.boolean(let x), .boolean(let y)): return x == y ? 0 : (!x ? -1 : 1)
        case (.text(let x), .text(let y)):
            return x == y ? 0 : (x.utf8.lexicographicallyPrecedes(y.utf8) ? -1 : 1)
        default: return 0
        }
    }

    /// The fields whose concurrent writes wait for a person: `manual` fields with more than one value,
    /// but for those whose every value a delete saw (a delete settles what it saw, so a conflict never
    /// outlives its record).
    public func conflictingFields(_ entity: Entity) -> [String] {
        entity.fields.indices.compactMap { position in
            let field = entity.fields[position]
            guard case .manual = field.policy, let candidates = slot(position, of: entity)?.candidates,
                candidates.count > 1
            else {
                return nil
            }
            if !deletes.isEmpty && candidates.allSatisfy({ c in deletes.contains { $0.saw(c.stamp) } }) { return nil }
            return Set(candidates.map(\.value)).count > 1 ? field.name : nil
        }
    }

    /// The open conflicts of this record: each `manual` field with concurrent different values,
    /// and a contested delete. A record that no longer exists has none: no command could settle them.
    public func conflicts(entity: Entity, recordID: String) -> [Conflict] {
        if !exists(onDelete: entity.onDelete) { return [] }
        var result: [Conflict] = []
        for name in conflictingFields(entity) {
            let candidates = slot(entity.fieldIndex(name)!, of: entity)!.candidates
            let sides = candidates.map { Conflict.Side(stamp: $0.stamp, value: $0.value, deletes: false) }
            result.append(Conflict(entity: entity.name, recordID: recordID, field: name, sides: sides))
        }
        if !deletes.isEmpty && entity.onDelete == .conflict && deleteIsContested {
            var sides = deletes.map { Conflict.Side(stamp: $0, value: .null, deletes: true) }
            for write in writes.values where deletes.allSatisfy({ !$0.saw(write) }) {
                sides.append(Conflict.Side(stamp: write, value: .null, deletes: false))
            }

            sides.sort { $0.stamp.precedes($1.stamp) }
            result.append(Conflict(entity: entity.name, recordID: recordID, field: nil, sides: sides))
        }
        return result
    }

    /// Fills in the server sequence number of this device's changes once the server has ordered them.
    ///
    /// A device learns the number of its own change from the server's answer to a push,
    /// after it may already have merged the change here.
    public mutating func assignServerSequences(device: String, _ lookup: (Int64) -> Int64?) {
        func fill(_ stamp: inout ChangeStamp) {
            if stamp.device == device, stamp.serverSequence == nil { stamp.serverSequence = lookup(stamp.sequence) }
        }
        for n in slots.indices {
            for i in slots[n].candidates.indices { fill(&slots[n].candidates[i].stamp) }
        }
        for (name, var operations) in members {
            for (member, var ops) in operations {
                for i in ops.indices { fill(&ops[i].stamp) }
                operations[member] = ops
            }
            members[name] = operations
        }
        if var stamp = applied[device] {
            fill(&stamp)
            applied[device] = stamp
        }
        if var stamp = writes[device] {
            fill(&stamp)
            writes[device] = stamp
        }
        for i in deletes.indices { fill(&deletes[i]) }
    }

    /// The server sequence numbers of this device's changes the state refers to, not yet known.
    public func unassignedSequences(device: String) -> [Int64] {
        var result: Set<Int64> = []
        func visit(_ stamp: ChangeStamp) {
            if stamp.device == device, stamp.serverSequence == nil { result.insert(stamp.sequence) }
        }
        for slot in slots { slot.candidates.forEach { visit($0.stamp) } }
        for operations in members.values { for ops in operations.values { ops.forEach { visit($0.stamp) } } }
        applied[device].map(visit)
        writes[device].map(visit)
        deletes.forEach(visit)
        return result.sorted()
    }
}
