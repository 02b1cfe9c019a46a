public import FieldbookJSON

extension Schema {
    /// The schema in the file format, canonical: the same schema always gives the same bytes.
    /// Descriptions are not kept; labels are.
    public var json: JSON {
        var pairs: [(key: String, value: JSON)] = [("schema", .string(name)), ("version", .int(Int64(version)))]
        if !roles.isEmpty {
            pairs.append(
                (
                    "roles",
                    .array(
                        roles.map { role in
                            var pairs: [(key: String, value: JSON)] = [("name", .string(role.name))]
                            if let label = role.label { pairs.append(("label", .string(label))) }
                            return .object(pairs)
                        })
                ))
        }
        if !scopes.isEmpty {
            pairs.append(
                (
                    "scopes",
                    .array(
                        scopes.map { scope in
                            var pairs: [(key: String, value: JSON)] = [
                                ("name", .string(scope.name)), ("entity", .string(scope.entity)),
                                ("field", .string(scope.field)),
                            ]
                            if let label = scope.label { pairs.append(("label", .string(label))) }
                            return .object(pairs)
                        })
                ))
        }
        pairs.append(("entities", .array(entities.map(\.json))))
        return .object(pairs)
    }
}

extension Entity {
    var json: JSON {
        var pairs: [(key: String, value: JSON)] = [("name", .string(name))]
        if let label { pairs.append(("label", .string(label))) }
        if appendOnly { pairs.append(("appendOnly", .bool(true))) }
        if onDelete != .conflict { pairs.append(("onDelete", .string(onDelete.rawValue))) }
        if !follows.isEmpty { pairs.append(("follows", .array(follows.map(JSON.string)))) }
        if everyone { pairs.append(("everyone", .bool(true))) }
        if retired { pairs.append(("retired", .bool(true))) }
        if let access {
            pairs.append(("access", .object(access.sorted { $0.key < $1.key }.map { ($0.key, $0.value.json) })))
        }
        if !requirements.isEmpty { pairs.append(("requires", .array(requirements.map(\.json)))) }
        pairs.append(("fields", .array(fields.map(\.json))))
        return .object(pairs)
    }
}

extension Field {
    var json: JSON {
        var pairs: [(key: String, value: JSON)] = [("name", .string(name))]
        if let renamedFrom { pairs.append(("renamedFrom", .string(renamedFrom))) }
        if retired { pairs.append(("retired", .bool(true))) }
        if let label { pairs.append(("label", .string(label))) }
        pairs.append(("type", .string(type.name)))
        switch type {
        case .enumeration(let values): pairs.append(("values", .array(values.map(JSON.string))))
        case .reference(let entity):
            pairs.append(("entity", .string(entity)))
            if onDelete != .conflict { pairs.append(("onDelete", .string(onDelete.rawValue))) }
        default: break
        }
        if required { pairs.append(("required", .bool(true))) }
        if let maxLength { pairs.append(("maxLength", .int(Int64(maxLength)))) }
        if let defaultValue { pairs.append(("default", defaultValue.json)) }
        pairs.append(("policy", .string(policy.name)))
        switch policy {
        case .observed(let by): pairs.append(("observedBy", .string(by)))
        case .max(let order, let epoch):
            if let order { pairs.append(("order", .array(order.map(JSON.string)))) }
            if let epoch { pairs.append(("epoch", .string(epoch))) }
        default: break
        }
        return .object(pairs)
    }
}

extension EntityAccess {
    /// The rules in the file format, canonical: keys and lists sorted.
    var json: JSON {
        var pairs: [(key: String, value: JSON)] = [("insert", .bool(insert))]
        if let update {
            pairs.append(("update", .array(update.sorted().map(JSON.string))))
        } else {
            pairs.append(("update", .bool(true)))
        }
        pairs.append(("delete", .bool(delete)))
        if !transitions.isEmpty {
            pairs.append(
                (
                    "transitions",
                    .object(
                        transitions.sorted { $0.key < $1.key }.map { field, steps in
                            (
                                field,
                                .object(
                                    steps.sorted { $0.key < $1.key }.map { from, tos in
                                        (from, .array(tos.sorted().map(JSON.string)))
                                    })
                            )
                        })
                ))
        }
        return .object(pairs)
    }
}
