/// Who a request comes from: the token it carried.
public struct Identity: Sendable, Hashable {
    /// The token's id in the store.
    public var tokenID: Int64
    /// The name the token was created with (a person or a device); stamped on every change accepted.
    public var name: String

    /// The identity of the token with id `tokenID` and name `name`.
    public init(tokenID: Int64, name: String) {
        self.tokenID = tokenID
        self.name = name
    }
}
