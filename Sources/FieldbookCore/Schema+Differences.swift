extension Schema {
    /// What differs between this schema and `other`, one line each, for people:
    /// versions, entities and fields only one has, fields whose type, policy or rules differ.
    public func differences(from other: Schema) -> [String] {
        var lines: [String] = []
        if name != other.name { lines.append("schema: '\(name)' here, '\(other.name)' there") }
        if version != other.version { lines.append("version: \(version) here, \(other.version) there") }
        for entity in entities where other.entity(entity.name) == nil {
            lines.append("\(entity.name): only here")
        }
        for entity in other.entities where self.entity(entity.name) == nil {
            lines.append("\(entity.name): only there")
        }
        if roles != other.roles { lines.append("roles differ") }
        if scopes != other.scopes { lines.append("scopes differ") }
        for entity in entities {
            guard let theirs = other.entity(entity.name) else { continue }
            if entity.access != theirs.access { lines.append("\(entity.name): access rules differ") }
            if entity.follows != theirs.follows || entity.everyone != theirs.everyone {
                lines.append("\(entity.name): 'follows' or 'everyone' differ")
            }
            for field in entity.fields {
                guard let their = theirs.field(field.name) else {
                    lines.append("\(entity.name).\(field.name): only here")
                    continue
                }
                if field.type != their.type {
                    lines.append("\(entity.name).\(field.name): type \(field.type.name) here, \(their.type.name) there")
                }
                if field.policy != their.policy {
                    lines.append(
                        "\(entity.name).\(field.name): policy \(field.policy.name) here, \(their.policy.name) there")
                }
                if field.onDelete != their.onDelete {
                    lines.append(
                        "\(entity.name).\(field.name): onDelete \(field.onDelete.rawValue) here, \(their.onDelete.rawValue) there"
                    )
                }
                if field.required != their.required || field.maxLength != their.maxLength
                    || field.defaultValue != their.defaultValue
                {
                    lines.append("\(entity.name).\(field.name): required, maxLength or default differ")
                }
            }
            for field in theirs.fields where entity.field(field.name) == nil {
                lines.append("\(entity.name).\(field.name): only there")
            }
        }
        return lines
    }
}

extension Schema {
    /// This schema with each enum field's `values` and `max` order taken from the same field in
    /// `later`, a later version (`laterName` gives a field's name there, nil if it has none): how a
    /// device of this version stores, shows and merges the values later versions added, in the order
    /// every version merges them. Nothing else changes.
    public func widened(by later: Schema, laterName: (_ entity: String, _ field: String) -> String?) -> Schema {
        let entities = entities.map { entity -> Entity in
            guard let laterEntity = later.entity(entity.name) else { return entity }
            var changed = false
            let fields = entity.fields.map { field -> Field in
                guard case .enumeration(let values) = field.type,
                    let name = laterName(entity.name, field.name),
                    case .enumeration(let laterValues)? = laterEntity.field(name)?.type,
                    laterValues.count > values.count
                else { return field }
                changed = true
                var policy = field.policy
                if case .max(_, let epoch) = field.policy, case .max(let order, _)? = laterEntity.field(name)?.policy {
                    policy = .max(order: order, epoch: epoch)
                }
                return Field(
                    name: field.name, label: field.label, type: .enumeration(laterValues), required: field.required,
                    maxLength: field.maxLength, defaultValue: field.defaultValue, policy: policy,
                    onDelete: field.onDelete, renamedFrom: field.renamedFrom, retired: field.retired)
            }
            guard changed else { return entity }
            return Entity(
                name: entity.name, label: entity.label, appendOnly: entity.appendOnly, onDelete: entity.onDelete,
                fields: fields, access: entity.access, follows: entity.follows, everyone: entity.everyone,
                retired: entity.retired, requirements: entity.requirements)
        }
        return Schema(name: name, version: version, entities: entities, roles: roles, scopes: scopes)
    }
}
