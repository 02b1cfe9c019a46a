public import FieldbookCore
import FieldbookJSON
public import FieldbookSync

/// How a device reaches a sync server: one push, one pull.
///
/// `HTTPTransport` is the real one; tests may put another in between (one
/// that drops answers, say) to prove that sync survives it. A transport throws ``SyncError``:
/// a failure to reach the server as `.network`, and a refusal by the server as `.refused`
/// with its code (``Store/push(_:options:progress:)`` sends a batch refused with
/// `sequence_gap` again once the batch ahead of it is answered).
public protocol SyncTransport: Sendable {
    func push(_ request: PushRequest) async throws -> PushResponse
    /// Pushes a batch already written as the body the server reads (what ``Store/push(_:options:progress:)``
    /// sends). The default reads the request back and calls ``push(_:)``.
    func push(encoded: EncodedPush) async throws -> PushResponse
    func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse
}

extension SyncTransport {
    /// Reads the body back into a `PushRequest` and sends it with ``push(_:)``.
    public func push(encoded: EncodedPush) async throws -> PushResponse {
        try await push(encoded.request())
    }
}

/// A batch of pending changes written as a push body: the changelog's stored field text is
/// spliced in as it is, not decoded and encoded again.
public struct EncodedPush: Sendable {
    /// A `PushRequest` as JSON.
    public let body: [UInt8]
    /// The device sequence numbers of its changes, in order.
    public let sequences: [Int64]
    let schema: Schema

    /// The request the body holds.
    public func request() throws -> PushRequest {
        try PushRequest(utf8: body, schema: schema)
    }
}
