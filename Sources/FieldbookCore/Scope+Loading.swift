import FieldbookJSON

extension SchemaLoader {
    /// The schema's `scopes`: a list of `{"name", "entity", "field", "label"}`.
    mutating func loadScopes(_ json: JSON?, entities: [Entity]) -> [Scope] {
        guard let json else { return [] }
        guard case .array(let list) = json else {
            issue("scopes", "'scopes' must be a list of objects")
            return []
        }
        var scopes: [Scope] = []
        for (n, item) in list.enumerated() {
            let path = "scopes[\(n)]"
            guard let s = object(item, at: path, allowed: ["name", "entity", "field", "label", "description"]),
                let name = string(s["name"], at: path, key: "name"),
                let entityName = string(s["entity"], at: path, key: "entity"),
                let field = string(s["field"], at: path, key: "field")
            else {
                issue(path, "a scope has a 'name', an 'entity' and a 'field'")
                continue
            }
            _ = string(s["description"], at: path, key: "description")
            guard isValidName(name) else {
                issue(path, "scope name '\(name)' must be a lower-case identifier (a-z, 0-9, _), at most 63 long")
                continue
            }
            if scopes.contains(where: { $0.name == name }) {
                issue(path, "scope '\(name)' declared twice")
                continue
            }
            guard let entity = entities.first(where: { $0.name == entityName }) else {
                issue(path, "unknown entity '\(entityName)'")
                continue
            }
            if field != "id" {
                guard let f = entity.field(field) else {
                    issue(path, "\(entityName) has no field '\(field)' (or use 'id')")
                    continue
                }
                switch f.type {
                case .text, .enumeration, .reference: break
                default:
                    issue(path, "a scope's field holds text (text, enum or reference); '\(field)' is \(f.type.name)")
                }
            }
            scopes.append(
                Scope(name: name, entity: entityName, field: field, label: string(s["label"], at: path, key: "label")))
        }
        return scopes
    }

    /// Reports a cycle of `follows` (a record would follow itself into scopes).
    mutating func checkFollows(_ entities: [Entity]) {
        var state: [String: Int] = [:]  // 1: visiting, 2: done
        func visit(_ entity: Entity) -> Bool {
            if state[entity.name] == 2 { return true }
            if state[entity.name] == 1 { return false }
            state[entity.name] = 1
            for field in entity.follows {
                if let target = entity.field(field)?.target, let parent = entities.first(where: { $0.name == target }),
                    !visit(parent)
                {
                    return false
                }
            }
            state[entity.name] = 2
            return true
        }
        for entity in entities where !visit(entity) {
            issue("\(entity.name).follows", "'follows' makes a cycle")
            return
        }
    }
}
