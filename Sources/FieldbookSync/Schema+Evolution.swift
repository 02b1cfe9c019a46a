public import FieldbookCore

extension Schema {
    /// Why this schema cannot be the version after `old`, one line each (`entity.field: reason`);
    /// empty when it is a compatible evolution. The same rules hold for a device's store and for
    /// `fieldbook-server schema publish`: a fleet whose devices run several versions must merge
    /// every change the same way on each of them, and lose nothing any version wrote.
    ///
    /// Compatible: a new entity; a new field that is optional, or required with a default; a new
    /// enum value (anywhere in a `max` order, the existing values keeping theirs); a longer or no
    /// `maxLength`; a field that stops being required; a field renamed (`renamedFrom`); a field or
    /// entity retired (`retired`: kept, readable); changed labels, defaults (later inserts), roles,
    /// access rules and scopes. Not compatible: removing an entity or a field (retire it instead),
    /// a type change, a policy change (the policy, an enum's order, `epoch`, `observedBy`,
    /// `onDelete`, `appendOnly`), a narrower constraint (a value removed, a shorter or new
    /// `maxLength`, a field becoming required), bringing a retired field or entity back, and giving
    /// a new field a name an earlier version used for another (`earlier`: the versions before
    /// `old`, when known).
    public func evolutionProblems(from old: Schema, earlier: [Schema] = []) -> [String] {
        var problems: [String] = []
        if name != old.name { problems.append("the schema is called '\(name)', not '\(old.name)'") }
        if version <= old.version {
            problems.append("version \(version) is not after version \(old.version)")
        }
        for oldEntity in old.entities {
            guard let newEntity = entity(oldEntity.name) else {
                problems.append("\(oldEntity.name): removing an entity would lose its records; retire it instead")
                continue
            }
            problems += Self.entityProblems(
                old: oldEntity, new: newEntity,
                earlierNames: Set(earlier.compactMap { $0.entity(oldEntity.name) }.flatMap { $0.fields.map(\.name) }))
        }
        for newEntity in entities where old.entity(newEntity.name) == nil && newEntity.retired {
            problems.append("\(newEntity.name): a new entity cannot be retired")
        }
        return problems
    }

    private static func entityProblems(old: Entity, new: Entity, earlierNames: Set<String>) -> [String] {
        var problems: [String] = []
        let path = old.name
        if old.retired && !new.retired { problems.append("\(path): a retired entity stays retired") }
        if old.appendOnly != new.appendOnly { problems.append("\(path): 'appendOnly' cannot change") }
        if old.onDelete != new.onDelete {
            problems.append("\(path): 'onDelete' cannot change (devices of every version must merge a delete alike)")
        }
        let renames = new.renames(from: old)
        var mapped = Set<String>()
        for newField in new.fields {
            let fieldPath = "\(path).\(newField.name)"
            let oldName = renames[newField.name] ?? newField.name
            guard let oldField = old.field(oldName) else {
                if let from = newField.renamedFrom, old.field(newField.name) == nil, old.field(from) == nil,
                    !earlierNames.contains(from)
                {
                    problems.append(
                        "\(fieldPath): 'renamedFrom' names '\(from)', which the previous version's \(path) lacks")
                }
                if earlierNames.contains(newField.name) {
                    problems.append(
                        "\(fieldPath): an earlier version had a field of this name; a new field cannot take it")
                }
                if newField.retired { problems.append("\(fieldPath): a new field cannot be retired") }
                if newField.required && newField.insertDefault == nil {
                    problems.append(
                        "\(fieldPath): a new required field needs a default (devices of earlier versions do not write it)"
                    )
                }
                continue
            }
            mapped.insert(oldName)
            if oldName != newField.name {
                if oldField.retired { problems.append("\(fieldPath): a retired field cannot be renamed") }
                if earlierNames.contains(newField.name) {
                    problems.append(
                        "\(fieldPath): an earlier version had a field of this name; a rename cannot take it")
                }
            }
            problems += fieldProblems(path: fieldPath, old: oldField, new: newField, renames: renames)
        }
        for oldField in old.fields where !mapped.contains(oldField.name) {
            problems.append(
                "\(path).\(oldField.name): removing a field would lose its values; retire it, or rename it with 'renamedFrom'"
            )
        }
        return problems
    }

    private static func fieldProblems(path: String, old: Field, new: Field, renames: [String: String]) -> [String] {
        var problems: [String] = []
        if old.retired && !new.retired { problems.append("\(path): a retired field stays retired") }
        switch (old.type, new.type) {
        case (.enumeration(let oldValues), .enumeration(let newValues)):
            let removed = oldValues.filter { !newValues.contains($0) }
            if !removed.isEmpty {
                problems.append(
                    "\(path): removing enum values (\(removed.joined(separator: ", "))) could orphan records")
            }
        case (let a, let b) where a != b:
            problems.append("\(path): changing the type from \(a.expectation) to \(b.expectation) is not supported")
        default: break
        }
        if new.maxLength.map({ $0 < old.maxLength ?? Int.max }) ?? false {
            problems.append(
                old.maxLength.map { "\(path): lowering maxLength from \($0) could make stored text invalid" }
                    ?? "\(path): adding a maxLength could make stored text invalid")
        }
        if new.required && !old.required {
            problems.append("\(path): a field cannot become required (devices of earlier versions may leave it empty)")
        }
        if old.onDelete != new.onDelete {
            problems.append("\(path): 'onDelete' cannot change (devices of every version must merge a delete alike)")
        }
        if let reason = policyChange(old: old.policy, new: new.policy, renames: renames) {
            problems.append("\(path): \(reason)")
        }
        return problems
    }

    /// Why `new` merges differently from `old`, or nil: the policy, an enum's order of the values
    /// both know, the field that carries an epoch or the domain time (through renames).
    private static func policyChange(old: MergePolicy, new: MergePolicy, renames: [String: String]) -> String? {
        let renamed = { (name: String?) in name.map { n in renames.first { $0.value == n }?.key ?? n } }
        switch (old, new) {
        case (.max(let oldOrder, let oldEpoch), .max(let newOrder, let newEpoch)):
            if renamed(oldEpoch) != newEpoch { return "'epoch' cannot change (it decides which value wins)" }
            if let oldOrder, let newOrder, newOrder.filter(oldOrder.contains) != oldOrder {
                return "the order of the existing enum values cannot change (it decides which value wins)"
            }
            return nil
        case (.observed(let oldBy), .observed(let newBy)):
            return renamed(oldBy) == newBy ? nil : "'observedBy' cannot change (it decides which value wins)"
        case (let a, let b) where a.name != b.name:
            return
                "changing the policy from \(a.name) to \(b.name) would merge changes differently on devices of other versions"
        default:
            return nil
        }
    }

    /// The fields this version renames relative to `old`, new name → old name, by entity. An
    /// entity without renames is left out.
    public func renames(from old: Schema) -> [String: [String: String]] {
        var result: [String: [String: String]] = [:]
        for entity in entities {
            guard let oldEntity = old.entity(entity.name) else { continue }
            let renames = entity.renames(from: oldEntity)
            if !renames.isEmpty { result[entity.name] = renames }
        }
        return result
    }
}

extension Entity {
    /// The fields renamed from `old`: new name → old name, for each field `old` lacks whose
    /// `renamedFrom` names a field `old` has.
    func renames(from old: Entity) -> [String: String] {
        var result: [String: String] = [:]
        for field in fields where old.field(field.name) == nil {
            if let from = field.renamedFrom, old.field(from) != nil { result[field.name] = from }
        }
        return result
    }
}
