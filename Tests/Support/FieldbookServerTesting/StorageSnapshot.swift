public import FieldbookCore
public import FieldbookServer

/// Every live record of a server store with its non-null values: entity → id → field → value.
public func snapshot(_ storage: any SyncStorage) async throws -> [String: [String: [String: Value]]] {
    var result: [String: [String: [String: Value]]] = [:]
    for entity in storage.schema.entities {
        var records: [String: [String: Value]] = [:]
        for (id, values) in try await storage.records(entity.name) { records[id] = values.filter { !$0.value.isNull } }
        result[entity.name] = records
    }
    return result
}

/// The references in `records` (a ``snapshot(_:)``) that name a record it does not hold, as
/// `entity id.field`: a silent dangling reference, which the merge must never leave.
public func danglingReferences(_ records: [String: [String: [String: Value]]], in schema: Schema) -> [String] {
    var result: [String] = []
    for entity in schema.entities {
        for (id, values) in records[entity.name] ?? [:] {
            for field in entity.fields {
                guard let target = field.target, case .text(let named)? = values[field.name] else { continue }
                if records[target]?[named] == nil { result.append("\(entity.name) \(id).\(field.name)") }
            }
        }
    }
    return result.sorted()
}
