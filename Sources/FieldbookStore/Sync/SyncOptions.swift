/// What one ``Store/sync(_:options:)`` did.
public struct SyncReport: Sendable, Hashable {
    /// Local changes the server acknowledged.
    public var pushed = 0
    /// Changes from other devices applied here.
    public var pulled = 0
    /// Conflicts open after the sync.
    public var openConflicts = 0
    /// The server cursor after the sync.
    public var cursor: Int64 = 0
    /// A newer version of the schema that the server publishes and this device has fetched (at
    /// this sync or an earlier one); nil if none. A sync that learns of it stops pulling there:
    /// open the store again — with that version to upgrade (``Store/newestSchema``), or with its
    /// own to stay, reading the newer version's enum values — and sync again for the rest.
    public var newestSchema: Int?
    /// Files uploaded (those this device's pending changes refer to).
    public var filesUploaded = 0
    /// Files downloaded (those pulled records refer to, up to ``SyncOptions/downloadFilesUpTo`` bytes each).
    public var filesDownloaded = 0
    /// Files pulled records refer to that this device does not hold after the sync: larger than
    /// ``SyncOptions/downloadFilesUpTo`` (downloaded on demand, ``Store/downloadFile(_:_:options:)``),
    /// or not downloaded yet (a cut connection: the next sync resumes them).
    public var filesWaiting = 0
    /// The files that changes not yet pushed refer to and that neither this device nor the server
    /// holds (deleted from the device's files by hand, or a store copied without its files): by
    /// hash. Nothing was pushed — the changes wait, in order, until each is put back
    /// (``Store/restoreFile(at:)``); the pull ran.
    public var filesMissing: [String] = []
    /// Bytes of files sent: a file's upload that resumed counts only what it sent this time.
    public var fileBytesUploaded: Int64 = 0
    /// Bytes of files received: a download that resumed counts only what it received this time.
    public var fileBytesDownloaded: Int64 = 0
}

/// How ``Store/sync(_:options:)`` talks to the server.
public struct SyncOptions: Sendable {
    /// Changes per push.
    public var pushBatch = 1000
    /// Changes per pulled page, at most: a pull's first page asks for a sixteenth of it (but 250
    /// at least, or all of it if smaller), so that applying starts early; each page after for
    /// twice the one before, up to it.
    public var pageSize = 1000
    /// Tries per request before giving up on a network or server failure.
    public var attempts = 5
    /// The wait before the first retry; it doubles each time.
    public var initialBackoff: Duration = .milliseconds(200)
    /// How long a request is tried for, from its first try, on network and server failures: no
    /// retry starts later than this. With no signal a request gives up within this window, or
    /// within it plus one connect timeout when connections go unanswered.
    public var retryWindow: Duration = .seconds(10)
    /// The largest file a sync downloads, in bytes; larger ones are downloaded on demand
    /// (``Store/downloadFile(_:_:options:)``). 0: none; `.max`: every file.
    public var downloadFilesUpTo: Int64 = 32 << 20
    /// The bytes of a file sent in one request when uploading: a chunk cut off is sent again whole.
    public var fileChunkBytes = 8 << 20
    /// Called after each pushed batch and each applied page.
    public var progress: (@Sendable (SyncReport) -> Void)?

    /// The defaults: batches and pages of 1,000, five tries within 10 s.
    public init() {}
}
