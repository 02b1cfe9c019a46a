public import FieldbookCore

extension Schema {
    /// Why this schema cannot replace `old` in a store that holds records of `old`, one line each
    /// (`entity.field: reason`); empty when every change is safe. The same rules hold on a device
    /// and on both server stores.
    ///
    /// Safe: a new entity, a new field, a new enum value, a longer `maxLength`, a field that stops
    /// being required. Not safe: removing an entity or a field (their data would be lost), changing
    /// `appendOnly`, a field's type, or a field to or from policy `counter` (its changes are deltas),
    /// removing an enum value, a shorter `maxLength`. Whether a field may become required, or a new
    /// required field may lack a default, depends on the records a store holds: the store checks that.
    public func evolutionProblems(from old: Schema) -> [String] {
        var problems: [String] = []
        for oldEntity in old.entities {
            guard let newEntity = entity(oldEntity.name) else {
                problems.append("\(oldEntity.name): removing an entity would lose its records")
                continue
            }
            if oldEntity.appendOnly != newEntity.appendOnly {
                problems.append("\(oldEntity.name): 'appendOnly' cannot change")
            }
            for oldField in oldEntity.fields {
                let path = "\(oldEntity.name).\(oldField.name)"
                guard let newField = newEntity.field(oldField.name) else {
                    problems.append("\(path): removing a field would lose its values")
                    continue
                }
                problems += Self.fieldChangeProblems(path: path, old: oldField, new: newField)
            }
        }
        return problems
    }

    private static func fieldChangeProblems(path: String, old: Field, new: Field) -> [String] {
        var problems: [String] = []
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
        if let oldMax = old.maxLength, new.maxLength.map({ $0 < oldMax }) ?? false {
            problems.append("\(path): lowering maxLength from \(oldMax) could make stored text invalid")
        }
        if (old.policy == .counter) != (new.policy == .counter) {
            problems.append("\(path): a field cannot change to or from policy 'counter' (its changes are deltas)")
        }
        return problems
    }
}
