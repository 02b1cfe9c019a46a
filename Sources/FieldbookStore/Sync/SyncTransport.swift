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
    /// Sends a pull and returns once its answer has arrived, before the page is read: a device asks
    /// for the next page while it reads and applies this one, if the answer says where this one
    /// ends. The default reads the page with ``pull(_:schema:)``.
    func pullArriving(_ request: PullRequest, schema: Schema) async throws -> ArrivingPage
    /// The version `version` of the server's schema: a device fetches the newest version a page
    /// announces (`PullResponse.newestSchema`). The default refuses (the transport cannot ask).
    func schema(version: Int) async throws -> Schema
    /// Asks for what the device's earlier version left out of the changes it pulled
    /// (`CatchUpRequest`). The default refuses (the transport cannot ask).
    func catchUp(_ request: CatchUpRequest, schema: Schema) async throws -> CatchUpResponse
    /// How much of the file with hash `sha256` the server holds: all of it, or how many bytes of
    /// this device's upload of it (where the upload resumes). The default refuses (the transport
    /// cannot move files).
    func fileStatus(_ sha256: String) async throws -> ServerFileStatus
    /// Sends `chunk`, the bytes of the file `sha256` (of `size` bytes) from `offset`; returns how
    /// many bytes of it the server holds after it. The default refuses.
    func uploadFile(_ sha256: String, size: Int64, offset: Int64, chunk: [UInt8]) async throws -> Int64
    /// Receives the file `sha256` from byte `offset` to its end, handing each piece to `receive` in
    /// order as it arrives. The default refuses.
    func downloadFile(_ sha256: String, from offset: Int64, _ receive: ([UInt8]) throws -> Void) async throws
}

/// How much of a file a server holds (``SyncTransport/fileStatus(_:)``).
public struct ServerFileStatus: Sendable, Hashable {
    /// Whether it holds the whole file, its hash checked.
    public var complete: Bool
    /// The file's size when complete; else how many bytes of this device's upload it holds.
    public var held: Int64

    /// A status from its parts.
    public init(complete: Bool, held: Int64) {
        self.complete = complete
        self.held = held
    }
}

extension SyncTransport {
    /// Reads the page with ``pull(_:schema:)``; its cursor is known at once.
    public func pullArriving(_ request: PullRequest, schema: Schema) async throws -> ArrivingPage {
        ArrivingPage(try await pull(request, schema: schema))
    }

    /// Refuses: this transport cannot fetch a schema version.
    public func schema(version: Int) async throws -> Schema {
        throw SyncError(.badResponse, "this transport cannot fetch schema version \(version)")
    }

    /// Refuses: this transport cannot ask to catch up.
    public func catchUp(_ request: CatchUpRequest, schema: Schema) async throws -> CatchUpResponse {
        throw SyncError(.badResponse, "this transport cannot ask to catch up from schema version \(request.from)")
    }

    /// Refuses: this transport cannot move files.
    public func fileStatus(_ sha256: String) async throws -> ServerFileStatus {
        throw SyncError(.badResponse, "this transport cannot move files")
    }

    /// Refuses: this transport cannot move files.
    public func uploadFile(_ sha256: String, size: Int64, offset: Int64, chunk: [UInt8]) async throws -> Int64 {
        throw SyncError(.badResponse, "this transport cannot move files")
    }

    /// Refuses: this transport cannot move files.
    public func downloadFile(_ sha256: String, from offset: Int64, _ receive: ([UInt8]) throws -> Void) async throws {
        throw SyncError(.badResponse, "this transport cannot move files")
    }

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

/// A pulled page that has arrived and may not have been read yet, with where it ends if its answer
/// said so ahead of its body (over HTTP, the `Fieldbook-Cursor`, `Fieldbook-More` and
/// `Fieldbook-Scope` headers; docs/protocol.md, "Pull"). A device checks what was announced
/// against the page when it reads it.
public struct ArrivingPage: Sendable {
    /// The page's cursor and whether more pages follow, as announced; nil if not announced.
    public var announced: (cursor: Int64, more: Bool, scopeGeneration: Int64?)?
    private let read: @Sendable () throws -> PullResponse

    /// Reads the page.
    public func page() throws -> PullResponse { try read() }

    /// A page to be read by `read` (which throws ``SyncError`` `.badResponse` for one that is not
    /// the protocol), with what its answer announced of it.
    public init(
        announced: (cursor: Int64, more: Bool, scopeGeneration: Int64?)?,
        read: @escaping @Sendable () throws -> PullResponse
    ) {
        self.announced = announced
        self.read = read
    }

    /// A page already read.
    public init(_ page: PullResponse) {
        self.init(announced: (page.cursor, page.more, page.scopeGeneration)) { page }
    }
}
