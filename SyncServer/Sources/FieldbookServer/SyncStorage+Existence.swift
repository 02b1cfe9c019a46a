public import FieldbookCore
public import FieldbookSync

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
    ///
    /// For a token with a scope (`identity`), only those of the records in its scope.
    public func conflicts(visibleTo identity: Identity? = nil) async throws -> [Conflict] {
        var result = try await storedConflicts()
        let states = try await allStates()
        if let scopes = identity?.scopes {
            let index = ScopeIndex(schema: schema)
            let entries = index.rebuild(
                states.flatMap { entity, byID in
                    byID.map { (key: PushPlan.RecordKey(entity: entity, id: $0.key), state: $0.value) }
                })
            let tokenKeys = ScopeIndex.tokenKeys(scopes)
            result.removeAll {
                entries[PushPlan.RecordKey(entity: $0.entity, id: $0.recordID)]?.keys.isDisjoint(with: tokenKeys)
                    ?? true
            }
        }
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
