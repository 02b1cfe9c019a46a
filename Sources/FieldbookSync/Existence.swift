package import FieldbookCore

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
