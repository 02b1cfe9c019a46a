/// A way to cut the data into the parts a token may see, declared in the schema: the records of
/// `entity` whose `field` has a given value, and every record that follows them.
///
/// ```json
/// "scopes": [
///   {"name": "town", "entity": "site", "field": "town"},
///   {"name": "site", "entity": "site", "field": "id"},
///   {"name": "round", "entity": "inspection_round", "field": "id"}
/// ]
/// ```
///
/// A token is given scope keys such as `town=新度镇` (`fieldbook-server token create --scope`). A
/// record's keys are its own — one per scope declared on its entity whose field has a value — and
/// those of the records it follows (``Entity/follows``): a finding that follows its site and its
/// round has the site's `town=…` and `site=…` keys and the round's `round=…` key. A token sees the
/// records whose keys meet its own, and every record of an entity that is ``Entity/everyone``.
public struct Scope: Sendable, Hashable {
    /// The scope's name, a lower-case identifier: the part of a key before `=`.
    public let name: String
    /// The entity whose records the scope selects.
    public let entity: String
    /// The field whose value the key holds, or `id` for the record's id.
    public let field: String
    /// A name for people, e.g. `镇/街道 Town`.
    public let label: String?
}

/// One scope key, `scope=value`: what a token is given and what a record carries.
public struct ScopeKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The scope's name.
    public var scope: String
    /// The value of the scope's field (or the record id).
    public var value: String

    /// The key of `scope` with `value`.
    public init(scope: String, value: String) {
        self.scope = scope
        self.value = value
    }

    /// Reads `scope=value` (split at the first `=`); nil if there is no `=` or either side is empty.
    public init?(_ text: String) {
        guard let equals = text.firstIndex(of: "=") else { return nil }
        let scope = String(text[..<equals])
        let value = String(text[text.index(after: equals)...])
        guard !scope.isEmpty, !value.isEmpty else { return nil }
        self.init(scope: scope, value: value)
    }

    /// `scope=value`.
    public var description: String { "\(scope)=\(value)" }

    /// Ordered by their text.
    public static func < (lhs: ScopeKey, rhs: ScopeKey) -> Bool { lhs.description < rhs.description }
}

extension Schema {
    /// The scope called `name`, if the schema declares one.
    public func scope(_ name: String) -> Scope? {
        scopes.first { $0.name == name }
    }

    /// The keys a record of `entity` has of its own (not those of the records it follows): one per
    /// scope declared on the entity whose field has a text value (or the id, for `id`).
    public func ownKeys(_ entity: Entity, id: String, value: (String) -> Value?) -> Set<ScopeKey> {
        var keys: Set<ScopeKey> = []
        for scope in scopes where scope.entity == entity.name {
            if scope.field == "id" {
                keys.insert(ScopeKey(scope: scope.name, value: id))
            } else if case .text(let text)? = value(scope.field), !text.isEmpty {
                keys.insert(ScopeKey(scope: scope.name, value: text))
            }
        }
        return keys
    }

    /// Checks a token's scope keys against the schema: each names a declared scope and a value.
    /// - Returns: what is wrong with the first bad key, or nil.
    public func scopeProblem(_ keys: [String]) -> String? {
        for text in keys {
            guard let key = ScopeKey(text) else {
                return "a scope is 'NAME=VALUE' (or 'all'); '\(text)' is not"
            }
            guard scope(key.scope) != nil else {
                let known = scopes.map(\.name).joined(separator: ", ")
                return scopes.isEmpty
                    ? "the schema declares no scopes; give the token 'all'"
                    : "the schema has no scope '\(key.scope)' (its scopes: \(known))"
            }
        }
        return nil
    }
}
