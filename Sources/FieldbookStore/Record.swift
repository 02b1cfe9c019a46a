public import FieldbookCore
public import FieldbookJSON

/// One record: its entity, id, and a value for each of the entity's fields.
public struct Record: Sendable, Hashable {
    /// The entity this record belongs to.
    public let entity: Entity
    /// The record's id: a lower-case UUID.
    public let id: String
    /// One value per field, in the order of `Entity/fields`.
    public let values: [Value]

    /// The value of the field called `field` (`Value/null` for a field not in the entity).
    public subscript(field: String) -> Value {
        entity.fieldIndex(field).map { values[$0] } ?? .null
    }

    /// The record as a JSON object: `id` first, then every field in schema order.
    public var json: JSON {
        .object([("id", .string(id))] + zip(entity.fields, values).map { ($0.name, $1.json) })
    }

    /// Equal when of the same entity, with the same id and values.
    public static func == (lhs: Record, rhs: Record) -> Bool {
        lhs.entity.name == rhs.entity.name && lhs.id == rhs.id && lhs.values == rhs.values
    }

    /// Hashes the id and values.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(values)
    }
}
