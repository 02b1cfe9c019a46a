public import Crypto
import FieldbookCore
public import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A directory of files named by their SHA-256: what a device keeps next to its store and a server
/// beside its database (docs/protocol.md, "Files").
///
/// A file is in the directory (``contains(_:)``) only once all of it is there and its hash checked:
/// it is written under a temporary name, flushed to disk, and renamed into place, so a process killed
/// mid-write leaves no half file under a hash. Transfers in progress are kept apart as partial files
/// (``append(_:to:at:expectedSize:)``), each under a key of its own, and resume at their length.
/// Files are read and written a chunk at a time: no file is ever held in memory whole.
///
/// Layout: `sha256/ab/abcdef…` (the first two digits make a level of 256 directories),
/// `partial/KEY`, `tmp/`.
public struct FileDirectory: Sendable {
    /// The directory's path.
    public let root: String

    /// The size of the chunks files are read and hashed in.
    public static let chunkSize = 1 << 20

    /// Opens the directory at `root`, creating it (and its parts) if needed.
    /// - Throws: ``FileError`` if it cannot be created.
    public init(root: String) throws(FileError) {
        self.root = root
        for part in ["", "/sha256", "/partial", "/tmp"] {
            do {
                try FileManager.default.createDirectory(atPath: root + part, withIntermediateDirectories: true)
            } catch {
                throw FileError(.io, "cannot create the files directory (\(Self.reason(error)))")
            }
        }
    }

    /// The path of the file with hash `sha256` (whether or not it is there).
    public func path(of sha256: String) -> String {
        "\(root)/sha256/\(sha256.prefix(2))/\(sha256)"
    }

    /// The size of the file with hash `sha256`, or nil if the directory does not hold it.
    public func size(of sha256: String) -> Int64? {
        guard Attachment.isHash(sha256) else { return nil }
        var info = stat()
        guard stat(path(of: sha256), &info) == 0 else { return nil }
        return Int64(info.st_size)
    }

    /// Whether the directory holds the whole file with hash `sha256`, checked when it arrived.
    public func contains(_ sha256: String) -> Bool { size(of: sha256) != nil }

    /// The first `count` bytes of the file with hash `sha256` (fewer if it is shorter): what
    /// ``Attachment/contentMatches(mediaType:head:)`` reads.
    public func head(of sha256: String, count: Int = 64) throws -> [UInt8] {
        var out: [UInt8] = []
        try read(sha256, from: 0, upTo: Int64(count)) { out.append(contentsOf: $0) }
        return out
    }

    /// Reads the file with hash `sha256` from byte `offset`, at most `limit` bytes, a chunk at a time.
    /// - Throws: ``FileError`` (`.missing`) if the directory does not hold it, or what `body` throws.
    public func read(
        _ sha256: String, from offset: Int64 = 0, upTo limit: Int64 = .max, _ body: ([UInt8]) throws -> Void
    ) throws {
        guard Attachment.isHash(sha256) else { throw FileError(.missing, "no such file") }
        let fd = open(path(of: sha256), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(.missing, "the file is not here") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: Self.chunkSize)
        var position = offset
        var left = limit
        while left > 0 {
            let want = Int(min(Int64(Self.chunkSize), left))
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(position)) }
            if n < 0 { throw FileError(.io, "cannot read a stored file (\(String(cString: strerror(errno))))") }
            if n == 0 { break }
            try body(Array(buffer[0..<n]))
            position += Int64(n)
            left -= Int64(n)
        }
    }

    /// Copies the file at `source` into the directory, hashing it on the way: written under a
    /// temporary name, flushed, then renamed to its hash (a file already there is kept and the copy
    /// dropped). Returns its hash, size and first bytes.
    /// - Throws: ``FileError``: `.io` if `source` cannot be read or the copy written, `.tooLarge`
    ///   if it is larger than `maxSize`; nothing is left behind.
    public func importFile(at source: String, maxSize: Int64 = .max) throws(FileError) -> (
        sha256: String, size: Int64, head: [UInt8]
    ) {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else {
            throw FileError(.io, "cannot read the file (\(String(cString: strerror(errno))))")
        }
        defer { close(input) }
        let temporary = "\(root)/tmp/import-\(UUID().uuidString)"
        let output = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard output >= 0 else {
            throw FileError(.io, "cannot write in the files directory (\(String(cString: strerror(errno))))")
        }
        var hasher = SHA256()
        var size: Int64 = 0
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: Self.chunkSize)
        do throws(FileError) {
            while true {
                let n = buffer.withUnsafeMutableBytes { systemRead(input, $0.baseAddress, Self.chunkSize) }
                if n < 0 { throw FileError(.io, "cannot read the file (\(String(cString: strerror(errno))))") }
                if n == 0 { break }
                size += Int64(n)
                if size > maxSize { throw FileError(.tooLarge, "the file is larger than \(maxSize) bytes") }
                let chunk = buffer[0..<n]
                hasher.update(data: chunk)
                if head.count < 64 { head.append(contentsOf: chunk.prefix(64 - head.count)) }
                try Self.writeAll(output, chunk)
            }
            guard fsync(output) == 0 else { throw FileError(.io, "cannot flush a file to disk") }
            close(output)
        } catch {
            close(output)
            unlink(temporary)
            throw error
        }
        let sha256 = Self.hex(hasher.finalize())
        try place(temporary, as: sha256)
        return (sha256, size, head)
    }

    /// The length of the partial file `key` (0 if there is none): where its transfer resumes.
    public func partialSize(_ key: String) -> Int64 {
        var info = stat()
        guard Self.isKey(key), stat("\(root)/partial/\(key)", &info) == 0 else { return 0 }
        return Int64(info.st_size)
    }

    /// Appends `bytes` to the partial file `key` if it is `offset` bytes long now (a transfer
    /// resumes where it stopped; a chunk out of order or overlapping is refused, nothing written).
    /// Returns the new length. Appends to one key are taken one at a time (a lock on the file):
    /// two processes sharing the directory do not interleave.
    /// - Throws: ``FileError``: `.offsetMismatch` (with the length it has) for a chunk that does not
    ///   start where the file ends, `.tooLarge` for one that would go past `expectedSize`.
    @discardableResult
    public func append(_ bytes: some Collection<UInt8>, to key: String, at offset: Int64, expectedSize: Int64)
        throws(FileError) -> Int64
    {
        guard Self.isKey(key) else { throw FileError(.io, "a partial file's key must be a plain name") }
        let fd = open("\(root)/partial/\(key)", O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError(.io, "cannot write a partial file (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw FileError(.io, "cannot lock a partial file") }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw FileError(.io, "cannot read a partial file's length") }
        let length = Int64(info.st_size)
        guard length == offset else {
            throw FileError(.offsetMismatch, "the transfer holds \(length) bytes, not \(offset)", held: length)
        }
        guard offset + Int64(bytes.count) <= expectedSize else {
            throw FileError(.tooLarge, "the chunk goes past the file's size of \(expectedSize) bytes")
        }
        guard lseek(fd, off_t(offset), SEEK_SET) >= 0 else { throw FileError(.io, "cannot seek in a partial file") }
        do throws(FileError) {
            try Self.writeAll(fd, bytes)
        } catch {
            _ = ftruncate(fd, off_t(offset))  // a short write is taken back: the next chunk starts at `offset`
            throw error
        }
        return offset + Int64(bytes.count)
    }

    /// Opens the partial file `key` to append at `offset`, which must be its length now; the file
    /// stays locked against other appends until the writer is closed. For a chunk that arrives in
    /// pieces (a request body): written as it comes, never held whole.
    /// - Throws: ``FileError``: `.offsetMismatch` (with the length it has) if it is not `offset` long.
    public func openPartial(_ key: String, at offset: Int64) throws(FileError) -> PartialWriter {
        guard Self.isKey(key) else { throw FileError(.io, "a partial file's key must be a plain name") }
        let fd = open("\(root)/partial/\(key)", O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError(.io, "cannot write a partial file (\(String(cString: strerror(errno))))") }
        guard flock(fd, LOCK_EX) == 0 else {
            close(fd)
            throw FileError(.io, "cannot lock a partial file")
        }
        var info = stat()
        guard fstat(fd, &info) == 0, lseek(fd, off_t(offset), SEEK_SET) >= 0 else {
            close(fd)
            throw FileError(.io, "cannot read a partial file's length")
        }
        let length = Int64(info.st_size)
        guard length == offset else {
            close(fd)
            throw FileError(.offsetMismatch, "the transfer holds \(length) bytes, not \(offset)", held: length)
        }
        return PartialWriter(fd: fd, start: offset)
    }

    /// Moves the partial file `key` into place as `sha256` once it holds all `size` bytes and they
    /// hash to `sha256` (given the hash of the whole of it, when the caller kept one while it
    /// arrived; else it is read again). A partial file that does not match is deleted.
    /// - Throws: ``FileError``: `.incomplete` if it is shorter, `.hashMismatch` if its bytes are
    ///   not the file (it is deleted: the transfer starts again).
    public func complete(_ key: String, as sha256: String, size: Int64, hashed: SHA256Digest? = nil)
        throws(FileError)
    {
        let partial = "\(root)/partial/\(key)"
        let length = partialSize(key)
        guard length == size else {
            throw FileError(.incomplete, "the transfer holds \(length) of \(size) bytes", held: length)
        }
        let digest: SHA256Digest
        if let hashed { digest = hashed } else { digest = try hash(ofPartial: key) }
        guard Self.hex(digest) == sha256 else {
            unlink(partial)
            throw FileError(.hashMismatch, "the bytes received do not have the hash they were sent under")
        }
        let fd = open(partial, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
        try place(partial, as: sha256)
    }

    /// The SHA-256 of the partial file `key` as it is now (its length: ``partialSize(_:)``).
    public func hash(ofPartial key: String) throws(FileError) -> SHA256Digest {
        let fd = open("\(root)/partial/\(key)", O_RDONLY | O_CLOEXEC)
        var hasher = SHA256()
        guard fd >= 0 else { return hasher.finalize() }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: Self.chunkSize)
        while true {
            let n = buffer.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress, Self.chunkSize) }
            if n < 0 { throw FileError(.io, "cannot read a partial file") }
            if n == 0 { break }
            hasher.update(data: buffer[0..<n])
        }
        return hasher.finalize()
    }

    /// Deletes the partial file `key`, if there is one.
    public func removePartial(_ key: String) {
        guard Self.isKey(key) else { return }
        unlink("\(root)/partial/\(key)")
    }

    /// Deletes the file with hash `sha256`, if the directory holds it.
    public func remove(_ sha256: String) {
        guard Attachment.isHash(sha256) else { return }
        unlink(path(of: sha256))
    }

    /// Marks the file with hash `sha256` as referenced now (its modification time): a collection
    /// keeps a file referenced within its grace period (``stored()``).
    public func touch(_ sha256: String) {
        guard Attachment.isHash(sha256) else { return }
        _ = utimes(path(of: sha256), nil)
    }

    /// Every whole file the directory holds, with when it was last stored or referenced.
    public func stored() -> [(sha256: String, modified: Date)] {
        var out: [(sha256: String, modified: Date)] = []
        let base = root + "/sha256"
        for prefix in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: base + "/" + prefix)) ?? []
            where Attachment.isHash(name) {
                if let modified = Self.modified(base + "/" + prefix + "/" + name) { out.append((name, modified)) }
            }
        }
        return out
    }

    /// When the file with hash `sha256` was last stored or referenced (``touch(_:)``); nil if it is not here.
    public func modified(_ sha256: String) -> Date? {
        Attachment.isHash(sha256) ? Self.modified(path(of: sha256)) : nil
    }

    /// Every partial file (transfers in progress), with when it last grew.
    public func partials() -> [(key: String, modified: Date)] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root + "/partial")) ?? []).compactMap { key in
            Self.modified(root + "/partial/" + key).map { (key, $0) }
        }
    }

    private static func modified(_ path: String) -> Date? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Date(timeIntervalSince1970: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9)
    }

    /// Renames `temporary` (flushed) to the file of `sha256`, and flushes the directory entry.
    private func place(_ temporary: String, as sha256: String) throws(FileError) {
        let directory = "\(root)/sha256/\(sha256.prefix(2))"
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            unlink(temporary)
            throw FileError(.io, "cannot create a files directory (\(String(cString: strerror(errno))))")
        }
        guard rename(temporary, path(of: sha256)) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw FileError(.io, "cannot move a file into place (\(reason))")
        }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    /// Writes all of `bytes` to `fd`.
    static func writeAll(_ fd: Int32, _ bytes: some Collection<UInt8>) throws(FileError) {
        let ok = bytes.withContiguousStorageIfAvailable { buffer in
            var done = 0
            while done < buffer.count {
                let n = write(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                done += n
            }
            return true
        }
        if let ok {
            if !ok { throw FileError(.io, "cannot write a file (\(String(cString: strerror(errno))))") }
        } else {
            try writeAll(fd, Array(bytes))
        }
    }

    /// Whether `key` can name a partial file: letters, digits, `-`, `_` and `.`, not starting with a dot.
    static func isKey(_ key: String) -> Bool {
        guard let first = key.utf8.first, first != UInt8(ascii: "."), key.utf8.count <= 200 else { return false }
        return key.utf8.allSatisfy { b in
            (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b)
                || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".")
        }
    }

    /// A digest as lower-case hexadecimal.
    public static func hex(_ digest: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in digest {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func reason(_ error: any Error) -> String {
        (error as NSError).localizedFailureReason ?? "\((error as NSError).code)"
    }
}

/// A partial file open for appending (``FileDirectory/openPartial(_:at:)``), locked until closed.
public final class PartialWriter {
    private var fd: Int32
    /// The length the file had when opened: where this chunk starts.
    public let start: Int64
    /// How many bytes this writer has appended.
    public private(set) var written: Int64 = 0

    init(fd: Int32, start: Int64) {
        self.fd = fd
        self.start = start
    }

    /// Appends `bytes`.
    public func write(_ bytes: some Collection<UInt8>) throws(FileError) {
        try FileDirectory.writeAll(fd, bytes)
        written += Int64(bytes.count)
    }

    /// Takes back what this writer appended: the file is as long as when it was opened.
    public func rollBack() {
        _ = ftruncate(fd, off_t(start))
        written = 0
    }

    /// Unlocks and closes the file.
    public func close() {
        if fd >= 0 { _ = systemClose(fd) }
        fd = -1
    }

    deinit { close() }
}

/// Why a file could not be stored, read or moved. Never quotes a file's name or content.
public struct FileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong.
    public enum Code: String, Sendable {
        /// The directory does not hold the file.
        case missing
        /// Reading or writing failed (disk full, permissions…).
        case io
        /// A chunk does not start where the transfer stopped (``FileError/held`` says where).
        case offsetMismatch = "offset_mismatch"
        /// The transfer is not whole yet (``FileError/held`` says how much is).
        case incomplete
        /// The bytes do not hash to the hash they were sent under.
        case hashMismatch = "hash_mismatch"
        /// Larger than allowed.
        case tooLarge = "too_large"
    }

    /// What went wrong.
    public var code: Code
    /// A sentence for people.
    public var message: String
    /// For `.offsetMismatch` and `.incomplete`: how many bytes the transfer holds.
    public var held: Int64?

    /// An error of `code`, explained by `message`.
    public init(_ code: Code, _ message: String, held: Int64? = nil) {
        self.code = code
        self.message = message
        self.held = held
    }

    /// The message.
    public var description: String { message }
}

/// `read(2)` (the name is taken by ``FileDirectory/read(_:from:upTo:_:)`` inside the type).
private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
        Glibc.read(fd, buffer, count)
    #else
        Darwin.read(fd, buffer, count)
    #endif
}

/// `close(2)` (the name is taken by ``PartialWriter/close()`` inside the type).
private func systemClose(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
        Glibc.close(fd)
    #else
        Darwin.close(fd)
    #endif
}
