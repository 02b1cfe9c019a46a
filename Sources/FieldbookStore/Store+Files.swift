public import FieldbookCore
public import FieldbookFiles
import FieldbookSync
import Foundation
import GRDB

extension Store {
    /// The directory beside the store that holds the files its records refer to:
    /// the store's path + `.files` (created when first used).
    /// - Throws: ``StoreError`` (`file`) if it cannot be created.
    public func fileDirectory() throws -> FileDirectory {
        do { return try FileDirectory(root: path + ".files") } catch {
            throw StoreError(.file, error.message)
        }
    }

    /// Copies the file at `source` into the store's files, a chunk at a time (never whole in memory),
    /// and returns its reference: its SHA-256, size, media type and name. Written under a temporary
    /// name, flushed and renamed: a process killed meanwhile leaves no file under its hash. The same
    /// file imported twice is stored once.
    ///
    /// - Parameters:
    ///   - source: the path of the file to copy in.
    ///   - name: the name the reference carries (default: `source`'s last path component).
    ///   - mediaType: its media type (default: from the name's extension, e.g. `image/jpeg`).
    /// - Throws: ``StoreError`` (`file`) if the file cannot be read, or its content is not what its
    ///   media type says (a `.jpg` that is no JPEG); (`bad_format`) for a name that is not a file name.
    public func importFile(at source: String, name: String? = nil, mediaType: String? = nil) throws -> Attachment {
        let name = name ?? String(source.split(separator: "/").last ?? "")
        let type = mediaType ?? Attachment.mediaType(forFileName: name)
        if let problem = Attachment.nameProblem(name) { throw StoreError(.badFormat, problem) }
        let directory = try fileDirectory()
        let imported: (sha256: String, size: Int64, head: [UInt8])
        do { imported = try directory.importFile(at: source) } catch { throw StoreError(.file, error.message) }
        guard Attachment.contentMatches(mediaType: type, head: imported.head) else {
            throw StoreError(.file, "the file's content is not \(type), as its name or --type says")
        }
        let attachment: Attachment
        do {
            attachment = try Attachment(sha256: imported.sha256, size: imported.size, mediaType: type, name: name)
        } catch { throw StoreError(.badFormat, error.reason) }
        try write { tx in
            try tx.db.execute(
                sql: """
                    INSERT INTO _files (sha256, size, media_type, name, here, uploaded) VALUES (?, ?, ?, ?, 1, 0)
                    ON CONFLICT (sha256) DO UPDATE SET here = 1
                    """, arguments: [attachment.sha256, attachment.size, attachment.mediaType, attachment.name])
        }
        return attachment
    }

    /// Puts back a file this store's records or changes refer to, from a copy (the photo still in
    /// the camera's folder, a backup): copied in and checked as ``importFile(at:name:mediaType:)``
    /// does. For a file deleted from the store's files by hand, or a store copied without them:
    /// changes waiting on it (``SyncReport/filesMissing``) go with the next sync.
    ///
    /// - Parameter source: the path of the copy.
    /// - Returns: the file, as the store knows it.
    /// - Throws: ``StoreError``: `not_found` if nothing here refers to a file with the copy's hash
    ///   (nothing is kept: attach a new file with ``attach(_:id:field:files:)``); `file` if it
    ///   cannot be read.
    @discardableResult
    public func restoreFile(at source: String) throws -> StoredFile {
        let directory = try fileDirectory()
        let sha256: String
        do { sha256 = try directory.importFile(at: source).sha256 } catch { throw StoreError(.file, error.message) }
        let known = try write { tx -> StoredFile? in
            try tx.db.execute(sql: "UPDATE _files SET here = 1 WHERE sha256 = ?", arguments: [sha256])
            return try Row.fetchOne(tx.db, sql: "\(Self.storedFileSQL) WHERE sha256 = ?", arguments: [sha256]).map(
                StoredFile.init(row:))
        }
        guard let file = known else {
            // No row names it: nothing refers to it (a write refers only to files it has a row for).
            directory.remove(sha256)
            throw StoreError(
                .notFound,
                "nothing on this device refers to a file with this content (\(sha256.prefix(12))); to add it to a record, attach it"
            )
        }
        return file
    }

    /// Attaches the files at `sources` to a record's `attachment` or `attachments` field: each is
    /// imported (``importFile(at:name:mediaType:)``) before the one write that refers to them, so the
    /// record never refers to a file this device does not hold. A set field gets them added to what
    /// it holds; a single-file field takes the one file. Returns their references.
    /// - Throws: ``StoreError``: `unknown_field` or `wrong_type` for a field that does not hold files,
    ///   and what importing or the update throws (the record is then unchanged).
    @discardableResult
    public func attach(_ entity: String, id: String, field: String, files sources: [String]) throws -> [Attachment] {
        try checkFileField(entity, field, count: sources.count)
        return try attach(entity, id: id, field: field, attachments: sources.map { try importFile(at: $0) })
    }

    /// Attaches files this store holds (``importFile(at:name:mediaType:)``) or its records refer
    /// to, as ``attach(_:id:field:files:)`` does. Returns `attachments`.
    @discardableResult
    public func attach(_ entity: String, id: String, field: String, attachments: [Attachment]) throws -> [Attachment] {
        let type = try checkFileField(entity, field, count: attachments.count)
        try write { tx in
            guard let record = try tx.record(entity, id: id) else {
                throw StoreError(.notFound, entity: entity, "no record has this id")
            }
            let value: Value =
                type == .attachments
                ? .set(record[field].setMembers + attachments.map(\.text)) : .text(attachments[0].text)
            try tx.update(entity, id: id, [field: value])
        }
        return attachments
    }

    /// Takes the file with hash `sha256` off a record's `attachment` or `attachments` field (the
    /// file itself stays here; the server collects it once no record refers to it).
    /// - Throws: ``StoreError``: `not_found` if the record does not refer to it there.
    public func detach(_ entity: String, id: String, field: String, sha256: String) throws {
        let type = try checkFileField(entity, field, count: 1)
        try write { tx in
            guard let record = try tx.record(entity, id: id) else {
                throw StoreError(.notFound, entity: entity, "no record has this id")
            }
            let members = record[field].attachments
            guard members.contains(where: { $0.sha256 == sha256 }) else {
                throw StoreError(.notFound, entity: entity, field: field, "the record does not refer to this file")
            }
            let value: Value =
                type == .attachments ? .set(members.filter { $0.sha256 != sha256 }.map(\.text)) : .null
            try tx.update(entity, id: id, [field: value])
        }
    }

    /// The type of `entity.field`, which must hold files (one, if `count` is not 1: a set).
    @discardableResult
    private func checkFileField(_ entity: String, _ field: String, count: Int) throws -> FieldType {
        guard let schemaEntity = schema.entity(entity) else {
            throw StoreError(.unknownEntity, entity: entity, "no such entity")
        }
        guard let fieldInfo = schemaEntity.field(field) else {
            throw StoreError(.unknownField, entity: entity, field: field, "no such field")
        }
        guard fieldInfo.type.isAttachment else {
            throw StoreError(.wrongType, entity: entity, field: field, "the field does not hold files")
        }
        guard count > 0 else { throw StoreError(.wrongType, entity: entity, field: field, "no file given") }
        guard fieldInfo.type == .attachments || count == 1 else {
            throw StoreError(.wrongType, entity: entity, field: field, "the field holds one file; attach one")
        }
        return fieldInfo.type
    }

    /// Whether this device holds the file with hash `sha256` whole (checked when it arrived).
    public func holdsFile(_ sha256: String) throws -> Bool {
        try fileDirectory().contains(sha256)
    }

    /// The path of the file with hash `sha256` if this device holds it (to open it), else nil.
    public func filePath(_ sha256: String) throws -> String? {
        let directory = try fileDirectory()
        return directory.contains(sha256) ? directory.path(of: sha256) : nil
    }

    /// Reads the file with hash `sha256` a chunk at a time (at most 1 MiB each), in order.
    /// - Throws: ``StoreError`` (`file`) if this device does not hold it (yet), or what `body` throws.
    public func readFile(_ sha256: String, _ body: ([UInt8]) throws -> Void) throws {
        do { try fileDirectory().read(sha256, body) } catch let error as FileError {
            throw StoreError(.file, error.code == .missing ? "this device does not hold the file (yet)" : error.message)
        }
    }

    /// The files the records of this store refer to that it does not hold yet, smallest first.
    /// One a local change has just taken off every record is not among them.
    public func filesWanted() throws -> [StoredFile] {
        try read { tx in
            let referenced = try referencedFiles(tx)
            return try wantedFiles(tx).filter { referenced.contains($0.sha256) }
        }
    }

    /// The rows of the files this store waits for, smallest first: some may be referred to by
    /// nothing any more (``forgetUnreferencedWants()``).
    func wantedFiles(_ tx: Transaction) throws -> [StoredFile] {
        try Row.fetchAll(tx.db, sql: "\(Self.storedFileSQL) WHERE here = 0 ORDER BY size, sha256").map(
            StoredFile.init(row:))
    }

    /// Deletes from this device the files nothing here refers to any more — no record's current
    /// value, no change not yet pushed, no open conflict's side: files detached or replaced, files
    /// of records that left the token's scope, files imported by an attach whose write then failed
    /// — and partial downloads of such files. The server keeps them (until its own collection), so
    /// a record that refers to one again brings it back.
    ///
    /// - Parameters:
    ///   - age: a file or partial download written or touched within this long is kept (an attach
    ///     in another process may be about to refer to the file it just imported).
    ///   - dryRun: list what would be deleted, and delete nothing.
    /// - Returns: the hashes and sizes of the files deleted (or that would be).
    @discardableResult
    public func pruneFiles(olderThan age: Duration = .seconds(3600), dryRun: Bool = false) throws -> [(
        sha256: String, size: Int64
    )] {
        let directory = try fileDirectory()
        let cutoff = Date().addingTimeInterval(
            -(Double(age.components.seconds) + Double(age.components.attoseconds) / 1e18))
        // Listed before the references are read: a file imported after this is not a candidate.
        let stored = directory.stored()
        let partials = directory.partials()
        let referenced = try read { tx in try referencedFiles(tx) }
        var pruned: [(sha256: String, size: Int64)] = []
        for file in stored where file.modified < cutoff && !referenced.contains(file.sha256) {
            pruned.append((file.sha256, directory.size(of: file.sha256) ?? 0))
        }
        guard !dryRun else { return pruned }
        try write { tx in
            for file in pruned {
                try tx.db.execute(sql: "DELETE FROM _files WHERE sha256 = ?", arguments: [file.sha256])
            }
        }
        // After the rows are gone: a process stopped here leaves files no row names, which the
        // next prune deletes.
        for file in pruned { directory.remove(file.sha256) }
        for partial in partials where partial.modified < cutoff && !referenced.contains(partial.key) {
            directory.removePartial(partial.key)
        }
        return pruned
    }

    /// The hashes the records' current values, the changes not yet pushed and the open conflicts'
    /// sides name (in values and changes, every run of 64 hex digits: a reference begins with its
    /// hash, and a stray match only keeps a file). One pass over each.
    func referencedFiles(_ tx: Transaction) throws -> Set<String> {
        var hashes = Set<String>()
        for table in tables.values where table.entity.refersToFiles {
            let columns = table.entity.fields.filter(\.type.isAttachment).map { quoted($0.name) }
            let rows = try Row.fetchCursor(
                tx.db, sql: "SELECT \(columns.joined(separator: ", ")) FROM \(quoted(table.entity.name))")
            while let row = try rows.next() {
                for n in columns.indices { Self.collectHashes(in: row[n], into: &hashes) }
            }
        }
        let pending = try String.fetchCursor(
            tx.db, sql: "SELECT fields FROM _changelog WHERE seq > ?", arguments: [tx.acknowledged()])
        while let fields = try pending.next() { Self.collectHashes(in: fields, into: &hashes) }
        for conflict in try tx.openConflicts() {
            for side in conflict.sides { hashes.formUnion(side.value.attachments.map(\.sha256)) }
        }
        return hashes
    }

    /// Adds every run of exactly 64 lower-case hex digits in `text` to `hashes`.
    static func collectHashes(in text: String?, into hashes: inout Set<String>) {
        guard let text else { return }
        let bytes = Array(text.utf8)
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count, (48...57).contains(bytes[end]) || (97...102).contains(bytes[end]) { end += 1 }
            if end - start == 64 { hashes.insert(String(decoding: bytes[start..<end], as: UTF8.self)) }
            start = end + 1
        }
    }

    /// Every file this store holds or its records refer to, by hash.
    public func files() throws -> [StoredFile] {
        try read { tx in
            try Row.fetchAll(tx.db, sql: "\(Self.storedFileSQL) ORDER BY sha256").map(StoredFile.init(row:))
        }
    }
}

extension Store {
    /// The columns ``StoredFile/init(row:)`` reads.
    static let storedFileSQL = "SELECT sha256, size, media_type, name, here, uploaded FROM _files"
}

/// A file a store holds or its records refer to (``Store/files()``).
public struct StoredFile: Sendable, Hashable {
    /// The file's SHA-256.
    public var sha256: String
    /// Its size in bytes.
    public var size: Int64
    /// Its media type.
    public var mediaType: String
    /// The name it was first attached or met under (records may give it others).
    public var name: String
    /// Whether this device holds it whole (else it waits to be downloaded).
    public var here: Bool
    /// Whether the server is known to hold it.
    public var uploaded: Bool
}

extension StoredFile {
    /// A row of ``Store/storedFileSQL``.
    init(row: Row) {
        self.init(sha256: row[0], size: row[1], mediaType: row[2], name: row[3], here: row[4], uploaded: row[5])
    }
}
