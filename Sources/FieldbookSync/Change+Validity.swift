public import FieldbookCore

extension Change {
    /// Why the schema forbids this change, or nil if it allows it.
    public func validity(_ entity: Entity) -> String? {
        switch operation {
        case .delete:
            if !fields.isEmpty { return "a delete carries no fields" }
            if entity.appendOnly { return "\(entity.name) records are append-only and cannot be deleted" }
        case .update:
            if entity.appendOnly { return "\(entity.name) records are append-only and cannot be updated" }
            var hint = 0
            for change in fields {
                guard let position = entity.position(of: change.field, hint: hint) else { continue }
                hint = position + 1
                let field = entity.fields[position]
                if case .append = field.policy {
                    return "\(entity.name).\(field.name) is set only when the record is added"
                }
                if case .union = field.policy, case .set = change.kind {
                    return "\(entity.name).\(field.name) is a set merged by union: send members added and removed"
                }
                if case .counter = field.policy, case .set = change.kind {
                    return "\(entity.name).\(field.name) is a counter: send a delta"
                }
            }
        case .insert:
            for field in entity.fields where field.required && !fields.contains(where: { $0.field == field.name }) {
                return "\(entity.name).\(field.name) is required"
            }
        }
        // A change names a few fields: comparing pairs costs less than hashing them.
        for (n, change) in fields.enumerated() where fields[..<n].contains(where: { $0.field == change.field }) {
            return "\(entity.name).\(change.field) appears twice"
        }
        return nil
    }
}
