public import FieldbookCore
public import FieldbookSync
import GRDB

/// How a person settles a conflict: the choice ``Store/resolve(_:with:)`` writes down.
///
/// Any device that has the conflict may settle it, whether or not it wrote a side: the
/// resolution is an ordinary change made knowing every side, so every peer that receives it
/// finds the conflict settled.
public enum ConflictResolution: Sendable, Hashable {
    /// A field conflict: the field takes this value (one side's, or another).
    case value(Value)
    /// A delete conflict: the record stays, with the values it shows.
    case keep
    /// A delete conflict: the record is deleted.
    case delete
}

extension StoreError.Code {
    /// The resolution does not fit the conflict: a value for a delete conflict, or keeping or
    /// deleting the record for a field conflict.
    public static let wrongResolution = StoreError.Code("wrong_resolution")
}

extension Store {
    /// Settles an open conflict with an ordinary change that saw every side: an update of the
    /// field to the chosen value, an update with no fields that keeps the record, or a delete.
    ///
    /// The change is pending like any other; the next sync takes it to the server and every
    /// device. The conflict is looked up again inside the write, so a conflict settled meanwhile
    /// (by a pull) is not settled twice.
    ///
    /// - Throws: ``StoreError``: `not_found` when the conflict is no longer open;
    ///   `wrong_resolution` when the resolution does not fit it; and what the write itself
    ///   throws (an invalid value; `referenced` when deleting a record others still refer to: a
    ///   deleted record held by a reference is settled by keeping it, or by changing or deleting
    ///   what refers to it, after which its delete stands).
    ///   Nothing is written.
    public func resolve(_ conflict: Conflict, with resolution: ConflictResolution) throws {
        try write { tx in
            let table = try entityTable(conflict.entity)
            let open =
                try tx.mergeState(table, conflict.recordID).state.conflicts(
                    entity: table.entity, recordID: conflict.recordID)
                + tx.heldConflicts().filter { $0.recordID == conflict.recordID }
            guard open.contains(where: { $0.id == conflict.id }) else {
                throw StoreError(.notFound, entity: conflict.entity, "the conflict is no longer open")
            }
            switch (conflict.field, resolution) {
            case (let field?, .value(let value)):
                try tx.update(conflict.entity, id: conflict.recordID, [field: value])
            case (nil, .keep):
                try tx.keep(conflict.entity, id: conflict.recordID)
            case (nil, .delete):
                try tx.delete(conflict.entity, id: conflict.recordID)
            case (let field?, _):
                throw StoreError(
                    .wrongResolution, entity: conflict.entity, field: field,
                    "a field conflict is settled with a value for the field")
            case (nil, .value):
                throw StoreError(
                    .wrongResolution, entity: conflict.entity,
                    "a delete conflict is settled by keeping or deleting the record")
            }
        }
    }
}
