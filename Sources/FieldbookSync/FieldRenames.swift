public import FieldbookCore
import FieldbookJSON

/// The fields one schema version renames relative to another, for one entity: what a store rewrites
/// when it moves to the new version (its changes, merge states and conflicts name fields by their
/// current names, so pages for devices of the current version need no translation).
public struct FieldRenames: Sendable, Hashable {
    /// Old name → new name.
    public let newNames: [String: String]

    /// The renames `new` makes of `old`'s fields for `entity`; nil when there are none.
    public init?(entity: String, from old: Schema, to new: Schema) {
        guard let renames = new.renames(from: old)[entity] else { return nil }
        newNames = Dictionary(uniqueKeysWithValues: renames.map { ($0.value, $0.key) })
    }

    /// A change's `fields` object (field → what the change wrote) with its keys renamed; nil when
    /// it names none of the renamed fields.
    public func renamingChangeFields(_ text: String) throws -> String? {
        guard case .object(let pairs) = try JSON(parsing: text) else { return nil }
        guard let renamed = renamed(pairs) else { return nil }
        return JSON.object(renamed).serialized
    }

    /// A record's stored merge state (`RecordState` JSON) with the fields in its `values`, `reg`
    /// and `mem` members renamed; nil when it names none of the renamed fields.
    public func renamingState(_ text: String) throws -> String? {
        guard case .object(var members) = try JSON(parsing: text) else { return nil }
        var changed = false
        for n in members.indices where ["values", "reg", "mem"].contains(members[n].key) {
            if case .object(let pairs) = members[n].value, let renamed = renamed(pairs) {
                members[n].value = .object(renamed)
                changed = true
            }
        }
        return changed ? JSON.object(members).serialized : nil
    }

    /// The new name of `field`, or `field` when it is not renamed.
    public func newName(_ field: String) -> String { newNames[field] ?? field }

    private func renamed(_ pairs: [(key: String, value: JSON)]) -> [(key: String, value: JSON)]? {
        guard pairs.contains(where: { newNames[$0.key] != nil }) else { return nil }
        return pairs.map { (newName($0.key), $0.value) }
    }
}
