public import FieldbookCore
public import FieldbookFiles
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
                    INSERT INTO _files (sha256, size, media_type, here, uploaded) VALUES (?, ?, ?, 1, 0)
                    ON CONFLICT (sha256) DO UPDATE SET here = 1
                    """, arguments: [attachment.sha256, attachment.size, attachment.mediaType])
        }
        return attachment
    }

    /// Attaches the files at `sources` to a record's `attachment` or `attachments` field: each is
    /// imported (``importFile(at:name:mediaType:)``) before the one write that refers to them, so the
    /// record never refers to a file this device does not hold. A set field gets them added to what
    /// it holds; a single-file field takes the one file. Returns their references.
    /// - Throws: ``StoreError``: `unknown_field` or `wrong_type` for a field that does not hold files,
    ///   and what importing or the update throws (the record is then unchanged).
    @discardableResult
    public func attach(_ entity: String, id: String, field: String, files sources: [String]) throws -> [Attachment] {
        guard let fieldInfo = schema.entity(entity)?.field(field) else {
            throw StoreError(.unknownField, entity: entity, field: field, "no such field")
        }
        guard fieldInfo.type.isAttachment else {
            throw StoreError(.wrongType, entity: entity, field: field, "the field does not hold files")
        }
        guard fieldInfo.type == .attachments || sources.count == 1 else {
            throw StoreError(.wrongType, entity: entity, field: field, "the field holds one file; attach one")
        }
        let attachments = try sources.map { try importFile(at: $0) }
        try write { tx in
            guard let record = try tx.record(entity, id: id) else {
                throw StoreError(.notFound, entity: entity, "no record has this id")
            }
            let value: Value =
                fieldInfo.type == .attachments
                ? .set(record[field].setMembers + attachments.map(\.text)) : .text(attachments[0].text)
            try tx.update(entity, id: id, [field: value])
        }
        return attachments
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
    public func filesWanted() throws -> [(sha256: String, size: Int64)] {
        try read { tx in
            try Row.fetchAll(tx.db, sql: "SELECT sha256, size FROM _files WHERE here = 0 ORDER BY size, sha256")
                .map { ($0[0], $0[1]) }
        }
    }
}
