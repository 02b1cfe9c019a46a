import FieldbookJSON

/// A data model read from a schema file: named, versioned, a list of entities.
///
/// Load one with ``Schema/init(json:)``; every mistake in the file is reported
/// at once, each with where it is (see ``SchemaError``). A loaded schema is
/// valid: references point at entities that exist, policies fit their types.
///
/// ## Topics
/// - ``Entity``
/// - ``Field``
/// - ``FieldType``
/// - ``MergePolicy``
public struct Schema: Sendable, Hashable {
    /// The schema's name, e.g. `inspection`.
    public let name: String
    /// The schema's version. A store migrates forward to a higher version and refuses a lower one.
    public let version: Int
    /// The entities in file order.
    public let entities: [Entity]
    /// The roles a token may have, in file order; empty when the schema declares none (every
    /// writer may write everything). Each entity's ``Entity/access`` says what each may write.
    public let roles: [Role]
    /// The scopes tokens may be given, in file order; empty when the schema declares none (every
    /// token sees everything).
    public let scopes: [Scope]
    private let index: [String: Int]

    /// Builds a schema from parts that are already valid. ``Schema/init(json:)`` is the checked way in.
    init(name: String, version: Int, entities: [Entity], roles: [Role] = [], scopes: [Scope] = []) {
        self.name = name
        self.version = version
        self.entities = entities
        self.roles = roles
        self.scopes = scopes
        var index: [String: Int] = [:]
        for (n, e) in entities.enumerated() { index[e.name] = n }
        self.index = index
    }

    /// The entity called `name`, if there is one.
    public func entity(_ name: String) -> Entity? {
        index[name].map { entities[$0] }
    }

    /// The role called `name`, if the schema declares one.
    public func role(_ name: String) -> Role? {
        roles.first { $0.name == name }
    }

    /// Equal when the names, versions, entities, roles and scopes are equal.
    public static func == (lhs: Schema, rhs: Schema) -> Bool {
        lhs.name == rhs.name && lhs.version == rhs.version && lhs.entities == rhs.entities && lhs.roles == rhs.roles
            && lhs.scopes == rhs.scopes
    }

    /// Hashes the name, version and entities.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(version)
        hasher.combine(entities)
    }
}

/// A role a token can be given (`fieldbook-server token create --role`), e.g. `inspector`.
public struct Role: Sendable, Hashable {
    /// The role's name, a lower-case identifier.
    public let name: String
    /// A name for people, e.g. `巡察员 Inspector`.
    public let label: String?
}

/// What a delete does against a concurrent update of the same record.
public enum DeletePolicy: String, Sendable, Hashable {
    /// The two become a conflict that a person resolves (the default).
    case conflict
    /// The delete wins; the concurrent update is kept in the history only.
    case deleteWins = "delete-wins"
}
