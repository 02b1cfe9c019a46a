import Crypto
import FieldbookCore
import FieldbookFiles
import FieldbookSync
import GRDB

extension Store {
    /// Uploads the files this device's pending changes refer to that the server is not known to
    /// hold, each from where its upload stopped (a cut connection or a killed process loses at most
    /// the chunk in flight), counting them in `report`. A push goes after it: the server takes no
    /// change before its files (`missing_files`). Returns whether the push may go: not if a file
    /// is on neither side (``SyncReport/filesMissing``).
    func uploadFiles(_ transport: any SyncTransport, options: SyncOptions, into report: inout SyncReport)
        async throws -> Bool
    {
        let waiting = try await read { tx in
            try Row.fetchAll(tx.db, sql: Self.pendingUploadsSQL).map { (sha256: $0[0] as String, size: $0[1] as Int64) }
        }
        let directory = try fileDirectory()
        var missing: [String] = []
        for file in waiting {
            guard
                let sent = try await upload(file.sha256, size: file.size, from: directory, transport, options: options)
            else {
                missing.append(file.sha256)
                continue
            }
            report.fileBytesUploaded += sent
            report.filesUploaded += 1
            try await write { tx in
                try tx.db.execute(sql: "UPDATE _files SET uploaded = 1 WHERE sha256 = ?", arguments: [file.sha256])
            }
        }
        report.filesMissing = missing
        return missing.isEmpty
    }

    /// The files (hash, size) that changes not yet pushed refer to and that the server is not known
    /// to hold: what a sync uploads first. Smallest first.
    static let pendingUploadsSQL = """
        SELECT f.sha256, f.size FROM _files f WHERE f.uploaded = 0 AND EXISTS (
            SELECT 1 FROM _changelog c
            WHERE c.seq > (SELECT value FROM _fieldbook_meta WHERE key = 'acked') AND c.rejected = 0
                AND instr(c.fields, f.sha256) > 0)
        ORDER BY f.size, f.sha256
        """

    /// The files the next sync uploads: those changes not yet pushed refer to, that the server is
    /// not known to hold and that this device holds. Smallest first.
    public func filesToUpload() throws -> [StoredFile] {
        try pendingUploads().here
    }

    /// The files that changes not yet pushed refer to, that the server is not known to hold and
    /// that this device does not hold: unless the server holds them after all (another device
    /// uploaded them), the next sync pushes nothing and reports them (``SyncReport/filesMissing``).
    /// Known offline; ``restoreFile(at:)`` puts one back.
    public func pendingFilesNotHere() throws -> [String] {
        try pendingUploads().notHere.map(\.sha256)
    }

    /// The files of ``pendingUploadsSQL``, smallest first, by whether this device's files hold them.
    private func pendingUploads() throws -> (here: [StoredFile], notHere: [StoredFile]) {
        let directory = try fileDirectory()
        let files = try read { tx in
            try Row.fetchAll(
                tx.db,
                sql: """
                    \(Self.storedFileSQL) WHERE sha256 IN (SELECT sha256 FROM (\(Self.pendingUploadsSQL)))
                    ORDER BY size, sha256
                    """
            ).map(StoredFile.init(row:))
        }
        var split: (here: [StoredFile], notHere: [StoredFile]) = ([], [])
        for file in files {
            if directory.contains(file.sha256) { split.here.append(file) } else { split.notHere.append(file) }
        }
        return split
    }

    /// Sends the file `sha256` from where the server's copy of this device's upload ends, a chunk
    /// at a time, until the server holds it whole; returns how many bytes it sent, or nil if the
    /// server lacks it and this device does not hold it (any more).
    private func upload(
        _ sha256: String, size: Int64, from directory: FileDirectory, _ transport: any SyncTransport,
        options: SyncOptions
    ) async throws -> Int64? {
        let status = try await retrying(options) { try await transport.fileStatus(sha256) }
        guard !status.complete else { return 0 }
        guard directory.contains(sha256) else {
            try await write { tx in
                try tx.db.execute(sql: "UPDATE _files SET here = 0 WHERE sha256 = ?", arguments: [sha256])
            }
            return nil
        }
        var held = status.held
        var sent: Int64 = 0
        while true {
            var chunk: [UInt8] = []
            try directory.read(sha256, from: held, upTo: Int64(options.fileChunkBytes)) { chunk += $0 }
            let offset = held
            sent += Int64(chunk.count)
            do {
                held = try await retrying(options) { [chunk] in
                    try await transport.uploadFile(sha256, size: size, offset: offset, chunk: chunk)
                }
            } catch let error as SyncError where error.refusal == .offsetMismatch {
                // Another request of this device's (a retry whose first answer was lost) moved it on.
                held = (error.underlying as? WireError)?.held ?? 0
            }
            if held >= size { break }
        }
        return sent
    }

    /// Downloads the files pulled records refer to that this device does not hold, those of at
    /// most `maxSize` bytes, each from where its download stopped; each is checked against its hash
    /// before it is kept. Returns how many arrived, and how many wanted files are not here after.
    /// A download that fails — cut off, refused, or bytes that are not the file — is left for the
    /// next sync (or ``downloadFile(_:_:options:)``): the records synced stand, and show the file as
    /// not arrived yet.
    /// Files in `missing` (``SyncReport/filesMissing``: the server lacks them too) are neither
    /// asked for nor counted as waiting.
    func downloadFiles(_ transport: any SyncTransport, options: SyncOptions, missing: [String]) async throws -> (
        arrived: Int, waiting: Int, bytes: Int64
    ) {
        var arrived = 0
        var bytes: Int64 = 0
        let wanted = try forgetUnreferencedWants().filter { !missing.contains($0.sha256) }
        for file in wanted where file.size <= options.downloadFilesUpTo {
            do {
                bytes += try await downloadFile(file.sha256, transport, options: options)
                arrived += 1
            } catch let error as SyncError where error.kind == .network || error.refusal != nil {
                continue  // cut off, or the server cannot serve it now: the next sync resumes it
            } catch let error as StoreError where error.code == .file {
                continue  // not the file: dropped, fetched again whole next time
            }
        }
        return (arrived, wanted.count - arrived, bytes)
    }

    /// Downloads the file with hash `sha256` (one the records refer to: ``filesWanted()``), from
    /// where an earlier download of it stopped, and keeps it once its hash is checked. Returns how
    /// many bytes it received (0 if the file was here already).
    /// - Throws: ``SyncError`` if the server cannot be reached or refuses; ``StoreError`` (`file`)
    ///   if the bytes received are not the file (what was received is dropped: the next try starts
    ///   again from the beginning).
    @discardableResult
    public func downloadFile(
        _ sha256: String, _ transport: any SyncTransport, options: SyncOptions = SyncOptions()
    ) async throws -> Int64 {
        let directory = try fileDirectory()
        guard !directory.contains(sha256) else {
            try markHere(sha256)
            return 0
        }
        var received: Int64 = 0
        guard
            let size = try await read({ tx in
                try Int64.fetchOne(tx.db, sql: "SELECT size FROM _files WHERE sha256 = ?", arguments: [sha256])
            })
        else { throw StoreError(.file, "no record of this store refers to the file") }
        // The hash of the whole, kept as the bytes arrive when the download starts from the
        // beginning (a resumed one is read again once whole).
        var hasher: SHA256?
        try await retrying(options) {
            let offset = directory.partialSize(sha256)
            hasher = offset == 0 ? SHA256() : nil
            if offset < size {
                let writer = try directory.openPartial(sha256, at: offset)
                defer { writer.close() }
                try await transport.downloadFile(sha256, from: offset) { bytes in
                    guard offset + writer.written + Int64(bytes.count) <= size else {
                        writer.rollBack()
                        throw SyncError(.badResponse, "the server sent more bytes than the file has")
                    }
                    try writer.write(bytes)
                    hasher?.update(data: bytes)
                    received += Int64(bytes.count)
                }
            }
        }
        do {
            try directory.complete(sha256, as: sha256, size: size, hashed: hasher?.finalize())
        } catch  where error.code == .incomplete {
            throw SyncError(.network, "the download stopped short of the file's end; the next try resumes it")
        } catch {
            throw StoreError(.file, "the file received does not have the hash it was sent under; it was dropped")
        }
        try markHere(sha256)
        return received
    }

    /// Forgets the files this device waits for that nothing here refers to any more (taken off
    /// since they were pulled; ``referencedFiles(_:)``): they are not downloaded, and not counted
    /// as waiting. Returns the files it still waits for (``filesWanted()``), smallest first.
    func forgetUnreferencedWants() throws -> [StoredFile] {
        try write { tx in
            let waiting = try wantedFiles(tx)
            guard !waiting.isEmpty else { return [] }
            let referenced = try referencedFiles(tx)
            for file in waiting where !referenced.contains(file.sha256) {
                try tx.db.execute(sql: "DELETE FROM _files WHERE sha256 = ? AND here = 0", arguments: [file.sha256])
            }
            return waiting.filter { referenced.contains($0.sha256) }
        }
    }

    private func markHere(_ sha256: String) throws {
        try write { tx in
            try tx.db.execute(sql: "UPDATE _files SET here = 1 WHERE sha256 = ?", arguments: [sha256])
        }
    }

    /// After a push refused with `missing_files`: the server lacks these files after all (it was
    /// restored, say), so they are uploaded again.
    func forgetUploads(_ hashes: [String]) async throws {
        try await write { tx in
            for sha256 in hashes {
                try tx.db.execute(sql: "UPDATE _files SET uploaded = 0 WHERE sha256 = ?", arguments: [sha256])
            }
        }
    }
}
