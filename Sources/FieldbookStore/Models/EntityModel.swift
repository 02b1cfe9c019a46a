import FieldbookCore
import Foundation

/// A typed Swift model of one entity, stored through the same path as the dynamic API.
///
/// Declare a `Codable` struct whose coding keys are the entity's field names
/// (plus `id`), and every field of the entity. Property types map to field types:
/// `String` (text, enum, reference), `Int`/`Int64` (integer), `Double` (real),
/// `Bool`, ``CalendarDate`` (date), `Date` (timestamp), `Set<String>` (set), a
/// `String`-backed enum (enum), and `Optional` of any of these.
///
/// ```swift
/// var finding = Finding(title: "消防通道堆放杂物", status: .inProgress)
/// finding = try store.insert(finding)
/// finding.status = .completed
/// try store.save(finding)
/// ```
public protocol EntityModel: Codable, Sendable {
    /// The entity's name in the schema.
    static var entityName: String { get }
    /// The record id; empty until the record is inserted.
    var id: String { get set }
}

extension Store {
    /// Inserts the model's record and returns the model with its new id (or the id it had).
    @discardableResult
    public func insert<M: EntityModel>(_ model: M) throws -> M {
        var values = try RecordEncoder.encode(model)
        values.removeValue(forKey: "id")
        let id = try insert(M.entityName, values.filter { !$0.value.isNull }, id: model.id.isEmpty ? nil : model.id)
        var inserted = model
        inserted.id = id
        return inserted
    }

    /// Writes the fields of the model that differ from the stored record, as one change.
    public func save<M: EntityModel>(_ model: M) throws {
        try write { tx in
            guard let current = try tx.record(M.entityName, id: model.id) else {
                throw StoreError(.notFound, entity: M.entityName, "no record with this id")
            }
            let encoded = try RecordEncoder.encode(model)
            if let unknown = encoded.keys.first(where: { $0 != "id" && current.entity.field($0) == nil }) {
                throw StoreError(
                    .unknownField, entity: M.entityName, field: unknown, "the model has a field the schema lacks")
            }
            // Synthesized Codable leaves nil optionals out: a field the model did not encode is null.
            var changed: [String: Value] = [:]
            for field in current.entity.fields {
                if case .append = field.policy { continue }
                let value = encoded[field.name] ?? .null
                if (try? field.normalize(value)) != current[field.name] { changed[field.name] = value }
            }
            if !changed.isEmpty { try tx.update(M.entityName, id: model.id, changed) }
        }
    }

    /// The record with this id as a model, or nil.
    public func fetch<M: EntityModel>(_ type: M.Type, id: String) throws -> M? {
        try record(M.entityName, id: id).map { try RecordDecoder.decode(M.self, from: $0) }
    }

    /// The records a query selects, as models. The query's entity is the model's.
    public func fetch<M: EntityModel>(_ type: M.Type, where refine: (Query) -> Query = { $0 }) throws -> [M] {
        try fetch(refine(Query(M.entityName))).map { try RecordDecoder.decode(M.self, from: $0) }
    }
}
