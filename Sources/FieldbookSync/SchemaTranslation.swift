public import FieldbookCore

/// How changes written for an earlier version of a schema read in a later one, and back: what a
/// server does for a device that has not upgraded yet (docs/protocol.md, "Schema versions"), and
/// what a device does to its own changes when it upgrades.
///
/// Upgrading a change renames its fields along every rename between the versions, and gives an
/// insert the default of each field the earlier version lacks (as a device of the later version
/// does when it inserts). Downgrading leaves out what the earlier version lacks (its entities, its
/// fields) and renames back. A field that was retired stays in both (its values are kept).
public struct SchemaTranslation: Sendable {
    /// The earlier version.
    public let older: Schema
    /// The later version.
    public let newer: Schema
    /// Per entity of `older`: its fields' names in `older` → names in `newer`, for the renamed ones.
    private let forward: [String: [String: String]]
    /// Per entity: names in `newer` → names in `older`, for the renamed ones.
    private let backward: [String: [String: String]]

    /// The translation between the first and the last of `versions`, a run of consecutive
    /// versions of one schema, oldest first (each a compatible evolution of the one before).
    public init(_ versions: [Schema]) {
        precondition(!versions.isEmpty, "a translation needs at least one version")
        older = versions.first!
        newer = versions.last!
        // Follow each field of `older` through every version's renames.
        var names: [String: [String: String]] = [:]
        for entity in older.entities {
            names[entity.name] = Dictionary(uniqueKeysWithValues: entity.fields.map { ($0.name, $0.name) })
        }
        for (previous, next) in zip(versions, versions.dropFirst()) {
            for (entity, renames) in next.renames(from: previous) {
                guard var current = names[entity] else { continue }
                let inverse = Dictionary(uniqueKeysWithValues: renames.map { ($0.value, $0.key) })
                for (original, name) in current { if let renamed = inverse[name] { current[original] = renamed } }
                names[entity] = current
            }
        }
        var forward: [String: [String: String]] = [:]
        var backward: [String: [String: String]] = [:]
        for (entity, map) in names {
            let renamed = map.filter { $0.key != $0.value }
            guard !renamed.isEmpty else { continue }
            forward[entity] = renamed
            backward[entity] = Dictionary(uniqueKeysWithValues: renamed.map { ($0.value, $0.key) })
        }
        self.forward = forward
        self.backward = backward
    }

    /// `change`, written for `older`, as `newer` reads it; `defaults`: whether an insert is given
    /// the defaults of the fields `older` lacks (as a server does for a push of `older`).
    public func upgrade(_ change: Change, defaults: Bool = true) -> Change {
        guard let entity = newer.entity(change.entity) else { return change }
        let renames = forward[change.entity] ?? [:]
        var upgraded = change
        upgraded.fields = change.fields.map { field in
            var field = field
            if let name = renames[field.field] { field.field = name }
            return field
        }
        if defaults, change.operation == .insert, let olderEntity = older.entity(change.entity) {
            let known = Set(olderEntity.fields.map { renames[$0.name] ?? $0.name })
            for field in entity.fields where !known.contains(field.name) && !field.retired {
                guard let value = field.insertDefault else { continue }
                upgraded.fields.append(FieldChange(field: field.name, kind: .set(value)))
            }
            upgraded.fields.sort { (entity.fieldIndex($0.field) ?? .max) < (entity.fieldIndex($1.field) ?? .max) }
        }
        return upgraded
    }

    /// `change`, written for `newer`, as `older` reads it: nil for an entity `older` lacks; the
    /// fields `older` lacks left out (an update may be left with none: it still counts as one).
    public func downgrade(_ change: Change) -> Change? {
        guard let entity = older.entity(change.entity) else { return nil }
        let renames = backward[change.entity] ?? [:]
        var downgraded = change
        downgraded.fields = change.fields.compactMap { field in
            var field = field
            if let name = renames[field.field] { field.field = name }
            return entity.fieldIndex(field.field) == nil ? nil : field
        }
        return downgraded
    }

    /// The name `newer` gives a field of `older`'s `entity`; nil if `newer` lacks it.
    public func newerName(entity: String, field: String) -> String? {
        let name = forward[entity]?[field] ?? field
        return newer.entity(entity)?.field(name) == nil ? nil : name
    }

    /// The name `older` gives a field of `newer`'s `entity`; nil if `older` lacks it.
    public func olderName(entity: String, field: String) -> String? {
        let name = backward[entity]?[field] ?? field
        return older.entity(entity)?.field(name) == nil ? nil : name
    }
}
