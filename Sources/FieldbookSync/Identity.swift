/// Who a request comes from: the token it carried.
public struct Identity: Sendable, Hashable {
    /// The token's id in the store.
    public var tokenID: Int64
    /// The name the token was created with (a person or a device); stamped on every change accepted.
    public var name: String
    /// The token's role (one of the schema's ``Schema/roles``), which the schema's access rules
    /// apply to; nil for a token made without one, which may write everything.
    public var role: String?
    /// The token's scope keys (`town=新度镇`, see ``Scope``): it sees and writes only the records
    /// whose keys meet them. Nil for a token that sees everything.
    public var scopes: [String]?
    /// How many times the token was rescoped: a device whose records were pulled under another
    /// generation starts again (`scope_changed`).
    public var scopeGeneration: Int64

    /// The identity of the token with id `tokenID`, name `name`, role `role` and scope `scopes`.
    public init(
        tokenID: Int64, name: String, role: String? = nil, scopes: [String]? = nil, scopeGeneration: Int64 = 0
    ) {
        self.tokenID = tokenID
        self.name = name
        self.role = role
        self.scopes = scopes
        self.scopeGeneration = scopeGeneration
    }
}
