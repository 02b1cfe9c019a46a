/// Who a request comes from: the token it carried.
public struct Identity: Sendable, Hashable {
    /// The token's id in the store.
    public var tokenID: Int64
    /// The name the token was created with (a person or a device); stamped on every change accepted.
    public var name: String
    /// The token's role (one of the schema's ``Schema/roles``), which the schema's access rules
    /// apply to; nil for a token made without one, which may write everything.
    public var role: String?

    /// The identity of the token with id `tokenID`, name `name` and role `role`.
    public init(tokenID: Int64, name: String, role: String? = nil) {
        self.tokenID = tokenID
        self.name = name
        self.role = role
    }
}
