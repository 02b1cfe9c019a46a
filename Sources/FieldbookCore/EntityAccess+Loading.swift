import FieldbookJSON

extension SchemaLoader {
    /// The schema's `roles`: a list of `{"name", "label", "description"}`.
    mutating func loadRoles(_ json: JSON?) -> [Role] {
        guard let json else { return [] }
        guard case .array(let list) = json else {
            issue("roles", "'roles' must be a list of objects")
            return []
        }
        var roles: [Role] = []
        for (n, item) in list.enumerated() {
            let path = "roles[\(n)]"
            guard let r = object(item, at: path, allowed: ["name", "label", "description"]) else { continue }
            guard let name = string(r["name"], at: path, key: "name") else {
                if r["name"] == nil { issue(path, "missing 'name'") }
                continue
            }
            guard isValidName(name) else {
                issue(path, "role name '\(name)' must be a lower-case identifier (a-z, 0-9, _), at most 63 long")
                continue
            }
            if roles.contains(where: { $0.name == name }) {
                issue(path, "role '\(name)' declared twice")
                continue
            }
            _ = string(r["description"], at: path, key: "description")
            roles.append(Role(name: name, label: string(r["label"], at: path, key: "label")))
        }
        if roles.isEmpty { issue("roles", "'roles' is empty: leave it out for a schema without roles") }
        return roles
    }

    /// An entity's `access`: role name → `{"insert", "update", "delete", "transitions"}`.
    mutating func loadAccess(_ json: JSON, entity: String, fields: [Field], roles: [Role]) -> [String: EntityAccess]? {
        let path = "\(entity).access"
        guard case .object(let pairs) = json else {
            issue(path, "'access' must be an object of roles")
            return nil
        }
        if roles.isEmpty { issue(path, "the schema declares no 'roles'") }
        var result: [String: EntityAccess] = [:]
        for (role, rulesJSON) in pairs {
            let rolePath = "\(path).\(role)"
            if !roles.isEmpty && !roles.contains(where: { $0.name == role }) {
                issue(rolePath, "unknown role '\(role)' (declared: \(roles.map(\.name).joined(separator: ", ")))")
                continue
            }
            guard
                let r = object(rulesJSON, at: rolePath, allowed: ["insert", "update", "delete", "transitions"])
            else { continue }
            var access = EntityAccess(
                insert: bool(r["insert"], at: rolePath, key: "insert") ?? false,
                update: loadUpdatable(r["update"], at: rolePath, fields: fields),
                delete: bool(r["delete"], at: rolePath, key: "delete") ?? false)
            if let transitions = r["transitions"] {
                access.transitions = loadTransitions(transitions, at: rolePath, fields: fields)
            }
            result[role] = access
        }
        return result
    }

    /// `update`: true (every field), false (none), or a list of field names.
    private mutating func loadUpdatable(_ json: JSON?, at path: String, fields: [Field]) -> Set<String>? {
        switch json {
        case nil, .bool(false)?: return []
        case .bool(true)?: return nil
        case .array?:
            let names = stringList(json, at: path, key: "update") ?? []
            for name in names where !fields.contains(where: { $0.name == name }) {
                issue("\(path).update", "unknown field '\(name)'")
            }
            return Set(names)
        case let other?:
            issue(path, "'update' must be true, false or a list of field names, found \(other.typeName)")
            return []
        }
    }

    /// `transitions`: enum field → value (`""` for none) → the values the role may set it to.
    private mutating func loadTransitions(_ json: JSON, at path: String, fields: [Field]) -> [String: [String: Set<
        String
    >]] {
        let path = "\(path).transitions"
        guard case .object(let pairs) = json else {
            issue(path, "'transitions' must be an object of enum fields")
            return [:]
        }
        var result: [String: [String: Set<String>]] = [:]
        for (fieldName, stepsJSON) in pairs {
            let fieldPath = "\(path).\(fieldName)"
            guard let field = fields.first(where: { $0.name == fieldName }) else {
                issue(fieldPath, "unknown field '\(fieldName)'")
                continue
            }
            guard case .enumeration(let values) = field.type else {
                issue(fieldPath, "transitions are for enum fields; '\(fieldName)' is \(field.type.name)")
                continue
            }
            guard case .object(let steps) = stepsJSON else {
                issue(fieldPath, "must be an object: value → the values it may become")
                continue
            }
            var map: [String: Set<String>] = [:]
            for (from, tosJSON) in steps {
                if !from.isEmpty && !values.contains(from) {
                    issue(fieldPath, "'\(from)' is not a value of \(fieldName) (\"\" stands for none)")
                }
                let tos = stringList(tosJSON, at: fieldPath, key: from) ?? []
                for to in tos where !values.contains(to) {
                    issue(fieldPath, "'\(to)' is not a value of \(fieldName)")
                }
                map[from] = Set(tos)
            }
            result[fieldName] = map
        }
        return result
    }
}
