import Crypto
import FieldbookCore
import FieldbookFiles
import FieldbookJSON
import FieldbookSync
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// The files a server holds (``ServerConfiguration/filesDirectory``), and the running hash of each
/// upload in progress in this process: a finished upload is checked without reading it again.
/// (After a restart, or a chunk taken by another process, the partial file is read again once.)
final class ServerFiles: Sendable {
    let directory: FileDirectory
    private let hashing = Mutex<[String: (length: Int64, hasher: SHA256)]>([:])

    init(root: String) throws(FileError) {
        directory = try FileDirectory(root: root)
    }

    /// The hash of the partial file `key`'s first `length` bytes, if kept; taken out.
    func takeHasher(_ key: String, length: Int64) -> SHA256? {
        hashing.withLock { running in
            guard let kept = running.removeValue(forKey: key), kept.length == length else { return nil }
            return kept.hasher
        }
    }

    /// Keeps the hash of the partial file `key`'s first `length` bytes (at most 1,000 uploads kept).
    func keepHasher(_ key: String, length: Int64, _ hasher: SHA256) {
        hashing.withLock { running in
            if running.count >= 1_000 { running.removeAll() }
            running[key] = (length, hasher)
        }
    }
}

extension Routes {
    static let offsetHeader = HTTPFields.Element.Name("Fieldbook-Offset")!
    static let fileSizeHeader = HTTPFields.Element.Name("Fieldbook-File-Size")!
    static let fileStateHeader = HTTPFields.Element.Name("Fieldbook-File")!
    static let chunkHashHeader = HTTPFields.Element.Name("Fieldbook-Chunk-SHA256")!

    /// The server's files, or 404 `not_found` if it keeps none.
    func keptFiles() throws -> ServerFiles {
        guard let files else {
            throw WireError(
                .notFound, "this server keeps no files; its administrator starts it with a files directory (--files)")
        }
        return files
    }

    /// The hash a file route names; 400 `bad_message` unless it is 64 lower-case hex digits.
    func fileHash(_ context: BasicRequestContext) throws -> String {
        guard let hash = context.parameters.get("sha256"), Attachment.isHash(hash) else {
            throw WireError(.badMessage, "a file is named by its SHA-256, 64 lower-case hex digits")
        }
        return hash
    }

    /// Whether `identity` may read the file `hash` (``SyncStorage/mayRead(file:identity:)``); asked
    /// of the store only for a scoped token. To one that may not, a file the server holds is as
    /// one it does not: not served, not said to be there, and uploaded in full to be referred to.
    func mayRead(_ hash: String, _ identity: Identity) async throws -> Bool {
        guard identity.scopes != nil else { return true }
        return try await readiness.guarding { try await storage.mayRead(file: hash, identity: identity) }
    }

    /// The name of the partial file of an upload by `identity`: each token's transfer resumes on its own.
    static func uploadKey(_ hash: String, _ identity: Identity) -> String { "\(hash).t\(identity.tokenID)" }

    /// `HEAD /v1/files/{sha256}`: how much of the file the server holds — `Fieldbook-File: complete`
    /// (with its size in `Fieldbook-Offset`), or `partial` or `absent` with how many bytes of this
    /// token's upload it holds: where an upload resumes. (A file a scoped token may not read is
    /// `absent` to it.)
    func fileStatus(_ request: Request, context: BasicRequestContext) async throws -> Response {
        try readiness.check()
        let identity = try await SyncServer.authenticate(request, storage, readiness)
        let files = try keptFiles()
        let hash = try fileHash(context)
        var headers = HTTPFields()
        if let size = files.directory.size(of: hash), try await mayRead(hash, identity) {
            headers[Self.fileStateHeader] = "complete"
            headers[Self.offsetHeader] = String(size)
        } else {
            let held = files.directory.partialSize(Self.uploadKey(hash, identity))
            headers[Self.fileStateHeader] = held > 0 ? "partial" : "absent"
            headers[Self.offsetHeader] = String(held)
        }
        return Response(status: .ok, headers: headers)
    }

    /// `PUT /v1/files/{sha256}`: one chunk of a file, appended to this token's upload of it at
    /// `Fieldbook-Offset` (which must be where the upload ends: 409 `offset_mismatch` with where it
    /// does), of a file of `Fieldbook-File-Size` bytes. A chunk that does not hash to
    /// `Fieldbook-Chunk-SHA256`, when sent, is taken back (400 `file_mismatch`). The last chunk
    /// completes the file: kept only if the whole hashes to its name (else 400 `file_mismatch`,
    /// and the upload starts again). Answers `{"held": N, "complete": BOOL}`. A scoped token that
    /// may not read the file uploads it in full even if the server holds it; then it may.
    func upload(_ request: Request, context: BasicRequestContext) async throws -> Response {
        try readiness.check()
        let identity = try await SyncServer.authenticate(request, storage, readiness)
        let files = try keptFiles()
        let hash = try fileHash(context)
        guard let offset = request.headers[Self.offsetHeader].flatMap({ Int64($0) }), offset >= 0,
            let size = request.headers[Self.fileSizeHeader].flatMap({ Int64($0) }), size >= 0
        else {
            throw WireError(
                .badMessage, "send the chunk's place as Fieldbook-Offset and the file's size as Fieldbook-File-Size")
        }
        guard size <= configuration.maxFileBytes else {
            throw WireError(
                .fileTooLarge, "the file is larger than this server's limit of \(configuration.maxFileBytes) bytes")
        }
        let chunkHash = request.headers[Self.chunkHashHeader]
        if let chunkHash, !Attachment.isHash(chunkHash) {
            throw WireError(.badMessage, "Fieldbook-Chunk-SHA256 must be 64 lower-case hex digits")
        }
        if let held = files.directory.size(of: hash), try await mayRead(hash, identity) {
            guard held == size else {
                throw WireError(.fileMismatch, "the server holds this file with another size than the one sent")
            }
            return Self.uploadAnswer(held: held, complete: true)
        }
        let declared = request.headers[.contentLength].flatMap { Int64($0) }
        if let declared, declared > Int64(configuration.maxChunkBytes) {
            throw WireError(.bodyTooLarge, "a chunk may be at most \(configuration.maxChunkBytes) bytes")
        }
        if let declared, offset + declared > size {
            throw WireError(.badMessage, "the chunk goes past the file's size")
        }
        let key = Self.uploadKey(hash, identity)
        let held = try await appendChunk(
            request, to: key, at: offset, size: size, chunkHash: chunkHash, files: files)
        guard held == size else { return Self.uploadAnswer(held: held, complete: false) }
        let hasher = files.takeHasher(key, length: held)
        do throws(FileError) {
            try files.directory.complete(key, as: hash, size: size, hashed: hasher?.finalize())
        } catch {
            guard error.code == .hashMismatch else { throw error }
            throw WireError(.fileMismatch, "the file's bytes do not have the SHA-256 it was sent under; send it again")
        }
        if identity.scopes != nil {
            try await readiness.guarding {
                try await storage.noteUploaded(hash, token: identity.tokenID, generation: identity.scopeGeneration)
            }
        }
        context.logger.info("file", metadata: ["size": .stringConvertible(size)])
        return Self.uploadAnswer(held: size, complete: true)
    }

    /// Writes the request's body to the partial file `key` at `offset` as it arrives, hashing it;
    /// takes it back if it is not the chunk it says it is. Returns the upload's length after it.
    private func appendChunk(
        _ request: Request, to key: String, at offset: Int64, size: Int64, chunkHash: String?, files: ServerFiles
    ) async throws -> Int64 {
        let writer: PartialWriter
        do throws(FileError) {
            writer = try files.directory.openPartial(key, at: offset)
        } catch {
            guard error.code == .offsetMismatch else { throw error }
            var refusal = WireError(
                .offsetMismatch, "the server holds \(error.held ?? 0) bytes of this upload; send from there")
            refusal.held = error.held
            throw refusal
        }
        defer { writer.close() }
        var chunkHasher = SHA256()
        // The hash of what the upload holds, if this process kept it (a fresh upload holds nothing).
        var hasher = files.takeHasher(key, length: offset) ?? (offset == 0 ? SHA256() : nil)
        let limit = min(Int64(configuration.maxChunkBytes), size - offset)
        do {
            for try await buffer in request.body {
                guard Int64(buffer.readableBytes) <= limit - writer.written else {
                    throw WireError(
                        .bodyTooLarge,
                        "a chunk may be at most \(configuration.maxChunkBytes) bytes, and not go past the file's size")
                }
                let failure: FileError? = buffer.withUnsafeReadableBytes { bytes in
                    do throws(FileError) { try writer.write(bytes) } catch { return error }
                    if chunkHash != nil { chunkHasher.update(bufferPointer: bytes) }
                    hasher?.update(bufferPointer: bytes)
                    return nil
                }
                if let failure { throw failure }
            }
            if let chunkHash, FileDirectory.hex(chunkHasher.finalize()) != chunkHash {
                throw WireError(
                    .fileMismatch, "the chunk's bytes do not have the SHA-256 sent with them; send it again")
            }
        } catch {
            writer.rollBack()
            throw error
        }
        let held = offset + writer.written
        if let hasher { files.keepHasher(key, length: held, hasher) }
        return held
    }

    static func uploadAnswer(held: Int64, complete: Bool) -> Response {
        SyncServer.jsonResponse(.object([("held", .int(held)), ("complete", .bool(complete))]))
    }

    /// `GET /v1/files/{sha256}`: the file, streamed from disk; with `Range: bytes=N-`, from byte N
    /// (206, for a download that resumes). 404 `not_found` if the server does not hold it whole, or
    /// the token may not read it.
    func download(_ request: Request, context: BasicRequestContext) async throws -> Response {
        try readiness.check()
        let identity = try await SyncServer.authenticate(request, storage, readiness)
        let files = try keptFiles()
        let hash = try fileHash(context)
        guard let size = files.directory.size(of: hash), try await mayRead(hash, identity) else {
            throw WireError(.notFound, "the server does not hold this file (yet)")
        }
        var start: Int64 = 0
        if let range = request.headers[.range] {
            guard range.hasPrefix("bytes="), range.hasSuffix("-"),
                let from = Int64(range.dropFirst("bytes=".count).dropLast()), from >= 0, from <= size
            else {
                throw WireError(.badMessage, "only a range of the form 'bytes=N-' is served, N at most the file's size")
            }
            start = from
        }
        var headers: HTTPFields = [.contentType: "application/octet-stream", .contentLength: String(size - start)]
        headers[Self.fileSizeHeader] = String(size)
        if start > 0 { headers[.contentRange] = "bytes \(start)-\(size - 1)/\(size)" }
        let status: HTTPResponse.Status = start > 0 ? .partialContent : .ok
        guard start < size else { return Response(status: status, headers: headers) }
        let body = try await FileIO().loadFile(
            path: files.directory.path(of: hash), range: Int(start)...Int(size - 1), context: context,
            chunkLength: FileDirectory.chunkSize)
        return Response(status: status, headers: headers, body: body)
    }

    /// Refuses a push that refers to a file the server does not hold whole (409 `missing_files`,
    /// listing them) or holds otherwise than the reference says (400 `file_mismatch`: another size,
    /// or content that does not fit the media type). Nothing of such a push is stored: no device
    /// ever pulls a reference to a file it cannot download. A file `identity` may not read counts
    /// as missing: a scoped token refers only to files of its scope, or to those it uploaded.
    func checkFiles(_ push: PushRequest, identity: Identity) async throws {
        var missing: [String] = []
        var checked = Set<String>()
        for change in push.changes {
            guard let entity = storage.schema.entity(change.entity) else { continue }
            for attachment in change.attachments(in: entity) where checked.insert(attachment.text).inserted {
                guard let files, let size = files.directory.size(of: attachment.sha256),
                    try await mayRead(attachment.sha256, identity)
                else {
                    if !missing.contains(attachment.sha256) { missing.append(attachment.sha256) }
                    continue
                }
                guard size == attachment.size else {
                    throw WireError(
                        .fileMismatch,
                        "a \(change.entity) change refers to a file with another size than the server's copy")
                }
                let head = (try? files.directory.head(of: attachment.sha256)) ?? []
                guard Attachment.contentMatches(mediaType: attachment.mediaType, head: head) else {
                    throw WireError(
                        .fileMismatch,
                        "a \(change.entity) change refers to a file as \(attachment.mediaType), which its content is not"
                    )
                }
                // Referenced now: a collection keeps it for its grace period from here.
                files.directory.touch(attachment.sha256)
            }
        }
        guard missing.isEmpty else {
            var error = WireError(
                .missingFiles,
                files == nil
                    ? "the push refers to files, and this server keeps none; its administrator starts it with --files"
                    : "the push refers to \(missing.count) file(s) the server does not hold; upload them, then push again"
            )
            error.files = missing
            throw error
        }
    }
}
