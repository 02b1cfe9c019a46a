public import FieldbookCore

/// Which records exist, decided from the merge states of all of them, as every device decides it
/// (docs/protocol.md, "A reference against a delete"):
///
/// - a record exists if its own changes leave it in existence, or if it was deleted but a record
///   that exists still refers to it through a field with `onDelete: conflict` (it is *held*, and
///   its delete is a conflict);
/// - but not if it refers through a field with `onDelete: cascade` to a record that does not exist.
///
/// The least such set: found by starting from the records their own changes keep and adding what
/// they hold, until nothing changes.
package struct Existence: Sendable {
    /// The ids of the records that exist, by entity.
    package private(set) var existing: [String: Set<String>] = [:]
    /// For each held record, by entity and id: what holds it (the referring record, and the write
    /// that set the reference that shows).
    package private(set) var holders: [String: [String: [(Conflict.Referrer, ChangeStamp)]]] = [:]

    package init(schema: Schema, states: [String: [String: RecordState]]) {
        var own: [String: Set<String>] = [:]
        for entity in schema.entities {
            own[entity.name] = Set(
                (states[entity.name] ?? [:]).compactMap { $0.value.exists(onDelete: entity.onDelete) ? $0.key : nil })
        }
        var alive = own
        while true {
            // Followers of records that do not exist do not exist either.
            var present = alive
            var changed = true
            while changed {
                changed = false
                for entity in schema.entities {
                    for (position, field) in entity.fields.enumerated() where field.onDelete == .cascade {
                        guard let target = field.target else { continue }
                        for id in present[entity.name] ?? [] {
                            guard case .text(let parent)? = states[entity.name]?[id]?.value(at: position, of: entity),
                                !(present[target]?.contains(parent) ?? false)
                            else { continue }
                            present[entity.name]!.remove(id)
                            changed = true
                        }
                    }
                }
            }
            // Deleted records that a present record refers to are held.
            var held: [String: [String: [(Conflict.Referrer, ChangeStamp)]]] = [:]
            for entity in schema.entities {
                for (position, field) in entity.fields.enumerated() where field.onDelete == .conflict {
                    guard let target = field.target, let targetEntity = schema.entity(target) else { continue }
                    for id in present[entity.name] ?? [] {
                        let state = states[entity.name]![id]!
                        guard case .text(let named)? = state.value(at: position, of: entity),
                            !(own[target]?.contains(named) ?? false),
                            states[target]?[named]?.isDeletedRecord(onDelete: targetEntity.onDelete) == true,
                            let stamp = state.shownStamp(at: position, of: entity)
                        else { continue }
                        held[target, default: [:]][named, default: []].append(
                            (Conflict.Referrer(entity: entity.name, record: id), stamp))
                    }
                }
            }
            var next = own
            for (entity, records) in held { next[entity, default: []].formUnion(records.keys) }
            if next == alive {
                existing = present
                holders = held
                return
            }
            alive = next
        }
    }
}

extension SyncStorage {
    /// The merge states of every record, by entity and id.
    package func allStates() async throws -> [String: [String: RecordState]] {
        var result: [String: [String: RecordState]] = [:]
        for entity in schema.entities {
            var byID: [String: RecordState] = [:]
            for (id, state) in try await states(entity.name) { byID[id] = state }
            result[entity.name] = byID
        }
        return result
    }

    /// The merged records of an entity that exist (``Existence``), by id, with their values.
    public func records(_ entity: String) async throws -> [(id: String, values: [String: Value])] {
        let states = try await allStates()
        let existence = Existence(schema: schema, states: states)
        return (existence.existing[entity] ?? []).sorted().map { ($0, states[entity]![$0]!.values) }
    }

    /// The open conflicts: those the records' own changes leave, but for those of records that do
    /// not exist (a conflict never outlives its record), and a delete conflict for each held record.
    public func conflicts() async throws -> [Conflict] {
        var result = try await storedConflicts()
        let states = try await allStates()
        let existence = Existence(schema: schema, states: states)
        result.removeAll { !(existence.existing[$0.entity]?.contains($0.recordID) ?? false) }
        for entity in schema.entities {
            for (id, holders) in (existence.holders[entity.name] ?? [:]).sorted(by: { $0.key < $1.key })
            where existence.existing[entity.name]?.contains(id) ?? false {
                result.append(states[entity.name]![id]!.heldConflict(entity: entity, recordID: id, holders: holders))
            }
        }
        return result
    }
}
