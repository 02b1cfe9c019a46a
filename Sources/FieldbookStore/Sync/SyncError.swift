public import FieldbookSync

/// Why a sync request failed.
///
/// ``kind`` says how (the server could not be reached, it refused, or it answered something
/// that is not the protocol); a refusal carries the server's error code in ``refusal``. Both
/// are structs over codes, so new ones can be added without breaking a `switch` in an app.
public struct SyncError: Error, Sendable, CustomStringConvertible {
    /// How a sync request failed.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        /// The kind's name, e.g. `network`.
        public let rawValue: String
        init(_ rawValue: String) { self.rawValue = rawValue }
        /// The kind as text, e.g. `network`.
        public var description: String { rawValue }

        /// The server could not be reached, or the connection broke: retry later.
        public static let network = Kind("network")
        /// The server refused the request with a protocol error (``SyncError/refusal``).
        public static let refused = Kind("refused")
        /// The server answered something that is not the protocol.
        public static let badResponse = Kind("bad_response")
    }

    /// How it failed.
    public var kind: Kind
    /// The server's error code, when it refused (``Kind/refused``).
    public var refusal: WireError.Code?
    /// The HTTP status, when there was one.
    public var status: Int?
    /// What went wrong, for people (never a field value).
    public var message: String
    /// The error underneath, when there was one (the HTTP client's, a decoder's).
    public var underlying: (any Error)?
    /// With a `server_changed` refusal: the server's new identity and what it holds of this device's changes.
    public var serverChanged: WireError.ServerChanged?
    /// The server's clock when it refused (a `clock_ahead` refusal), in milliseconds since 1970.
    public var serverTime: Int64?
    /// How far ahead of its clock the server accepts a timestamp (a `clock_ahead` refusal), in milliseconds.
    public var maxAhead: Int64?

    /// A failure of `kind`; for a refusal, use ``init(refusal:status:)``.
    public init(_ kind: Kind, status: Int? = nil, _ message: String, underlying: (any Error)? = nil) {
        self.kind = kind
        self.status = status
        self.message = message
        self.underlying = underlying
    }

    /// The server's refusal of a request, as every transport reports it: ``Kind/refused`` with its code.
    public init(refusal: WireError, status: Int? = nil) {
        self.init(.refused, status: status, refusal.message, underlying: refusal)
        self.refusal = refusal.code
        serverChanged = refusal.serverChanged
        serverTime = refusal.serverTime
        maxAhead = refusal.maxAhead
    }

    /// Whether the same request may succeed later: network failures and server-side failures.
    public var isRetryable: Bool {
        switch kind {
        case .network: true
        case .refused: refusal == .internalError || refusal == .unavailable
        default: status.map { $0 >= 500 } ?? false
        }
    }

    /// `kind (code): message`, for people (never a field value).
    public var description: String {
        switch kind {
        case .network: "network: \(message)"
        case .refused: "refused (\(refusal.map(\.rawValue) ?? "?")): \(message)"
        default:
            "\(kind == .badResponse ? "bad response" : kind.rawValue)\(status.map { " (HTTP \($0))" } ?? ""): \(message)"
        }
    }
}
