/// A file a record refers to: a photo, a scanned contract, a signed decision.
///
/// The record holds the reference, never the bytes: the file is content-addressed by its SHA-256,
/// so the same file attached twice, by one device or by several, is stored once. A reference is
/// written as one line of text, `SHA256 SIZE MEDIA-TYPE NAME`:
///
/// ```
/// 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 2621440 image/jpeg 消防通道.jpg
/// ```
///
/// and travels, is stored and merges as text (an `attachments` field is a set of such lines,
/// merged by `union` like any set). The name is a file name, never a path.
public struct Attachment: Hashable, Sendable, CustomStringConvertible {
    /// The file's SHA-256, 64 lower-case hexadecimal digits.
    public let sha256: String
    /// The file's size in bytes.
    public let size: Int64
    /// The file's media type, e.g. `image/jpeg` (lower case, no parameters).
    public let mediaType: String
    /// The file's name when it was attached, e.g. `消防通道.jpg`: a name, not a path.
    public let name: String

    /// The longest name, in UTF-8 bytes (what most file systems allow).
    public static let maxNameBytes = 255

    /// A reference from its parts, checked.
    /// - Throws: ``ValueProblem`` (`bad_format`) naming the part that is wrong, never its text.
    public init(sha256: String, size: Int64, mediaType: String, name: String) throws(ValueProblem) {
        guard Self.isHash(sha256) else {
            throw ValueProblem(kind: .badFormat, reason: "an attachment's hash must be 64 lower-case hex digits")
        }
        guard size >= 0 else { throw ValueProblem(kind: .badFormat, reason: "an attachment's size cannot be negative") }
        guard Self.isMediaType(mediaType) else {
            throw ValueProblem(
                kind: .badFormat,
                reason: "an attachment's media type must be written type/subtype in lower case, e.g. image/jpeg")
        }
        if let problem = Self.nameProblem(name) { throw ValueProblem(kind: .badFormat, reason: problem) }
        self.sha256 = sha256
        self.size = size
        self.mediaType = mediaType
        self.name = name
    }

    /// Reads a reference written `SHA256 SIZE MEDIA-TYPE NAME` (``text``).
    /// - Throws: ``ValueProblem`` (`bad_format`) if it is not one.
    public init(text: String) throws(ValueProblem) {
        let parts = text.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4 else {
            throw ValueProblem(
                kind: .badFormat, reason: "an attachment is written 'SHA256 SIZE MEDIA-TYPE NAME'")
        }
        let size = parts[1]
        guard let bytes = Int64(size), size.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
            size == "0" || size.first != "0"
        else {
            throw ValueProblem(kind: .badFormat, reason: "an attachment's size must be a whole number of bytes")
        }
        try self.init(sha256: String(parts[0]), size: bytes, mediaType: String(parts[2]), name: String(parts[3]))
    }

    /// The reference as the record stores it: `SHA256 SIZE MEDIA-TYPE NAME`.
    public var text: String { "\(sha256) \(size) \(mediaType) \(name)" }

    /// The name, size and media type, for people (never the hash's 64 digits).
    public var description: String { "\(name) (\(mediaType), \(size) bytes)" }

    /// Whether `text` is a SHA-256 written as 64 lower-case hexadecimal digits.
    public static func isHash(_ text: some StringProtocol) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// Whether `text` is a media type `type/subtype` of RFC 6838's restricted names, in lower case,
    /// without parameters.
    public static func isMediaType(_ text: String) -> Bool {
        let parts = text.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard parts.count == 2 else { return false }
        return parts.allSatisfy { part in
            guard (1...63).contains(part.count), let first = part.first,
                (0x61...0x7A).contains(first) || (0x30...0x39).contains(first)
            else { return false }
            return part.allSatisfy { b in
                (0x61...0x7A).contains(b) || (0x30...0x39).contains(b) || "!#$&-^_.+".utf8.contains(b)
            }
        }
    }

    /// Why `name` cannot be an attachment's name, or nil if it can: a file name of 1 to 255 UTF-8
    /// bytes, without `/`, `\`, control characters, or leading or trailing spaces, and not `.` or `..`.
    public static func nameProblem(_ name: String) -> String? {
        let bytes = name.utf8
        if bytes.isEmpty || bytes.count > maxNameBytes {
            return "an attachment's name must be 1 to \(maxNameBytes) bytes long"
        }
        if name == "." || name == ".." || bytes.contains(UInt8(ascii: "/")) || bytes.contains(UInt8(ascii: "\\")) {
            return "an attachment's name must be a file name, not a path"
        }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) {
            return "an attachment's name cannot contain control characters"
        }
        if bytes.first == UInt8(ascii: " ") || bytes.last == UInt8(ascii: " ") {
            return "an attachment's name cannot begin or end with a space"
        }
        return nil
    }

    /// The references of an `attachments` value, canonical: sorted, one per file (hash).
    static func normalizedSet(_ members: [String]) throws(ValueProblem) -> [String] {
        var texts: [String] = []
        texts.reserveCapacity(members.count)
        for member in members { texts.append(try Attachment(text: member).text) }
        var seen = Set<Substring>()
        return Value.normalizedSet(texts).filter { seen.insert($0.prefix(64)).inserted }
    }
}

extension Value {
    /// The attachment this value refers to, if it is the text of one (an `attachment` field's value).
    public var attachment: Attachment? {
        guard case .text(let text) = self else { return nil }
        return try? Attachment(text: text)
    }

    /// The attachments this value refers to: one for an `attachment` field's value, each member of
    /// an `attachments` field's set; none for anything else.
    public var attachments: [Attachment] {
        switch self {
        case .text: attachment.map { [$0] } ?? []
        case .textSet(let members): members.compactMap { try? Attachment(text: $0) }
        default: []
        }
    }
}

extension Attachment {
    /// The media type a file name's extension stands for (`application/octet-stream` when unknown).
    public static func mediaType(forFileName name: String) -> String {
        let ext = name.split(separator: ".").count > 1 ? String(name.split(separator: ".").last!).lowercased() : ""
        return knownTypes[ext] ?? "application/octet-stream"
    }

    private static let knownTypes: [String: String] = [
        "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp",
        "heic": "image/heic", "heif": "image/heif", "tif": "image/tiff", "tiff": "image/tiff",
        "pdf": "application/pdf", "mp4": "video/mp4", "mov": "video/quicktime", "m4a": "audio/mp4",
        "mp3": "audio/mpeg", "txt": "text/plain", "csv": "text/csv", "zip": "application/zip",
        "doc": "application/msword", "xls": "application/vnd.ms-excel",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ]

    /// Whether a file's first bytes (`head`, up to 64) fit `mediaType`: a type whose files begin
    /// with a known signature (JPEG, PNG, GIF, WebP, TIFF, HEIC/HEIF, MP4, QuickTime, PDF, ZIP and
    /// the Office formats built on it) must begin with it; for any other type nothing is known,
    /// and every content fits. So a file that says it is a photo and is not is refused.
    public static func contentMatches(mediaType: String, head: [UInt8]) -> Bool {
        func starts(_ prefix: [UInt8], at offset: Int = 0) -> Bool {
            head.count >= offset + prefix.count && Array(head[offset..<offset + prefix.count]) == prefix
        }
        let ascii = { (s: String) in Array(s.utf8) }
        switch mediaType {
        case "image/jpeg": return starts([0xFF, 0xD8, 0xFF])
        case "image/png": return starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        case "image/gif": return starts(ascii("GIF87a")) || starts(ascii("GIF89a"))
        case "image/webp": return starts(ascii("RIFF")) && starts(ascii("WEBP"), at: 8)
        case "image/tiff": return starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A])
        case "image/heic", "image/heif", "video/mp4", "video/quicktime", "audio/mp4":
            return starts(ascii("ftyp"), at: 4)
        case "application/pdf": return starts(ascii("%PDF-"))
        case "application/zip", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":
            return starts([0x50, 0x4B, 0x03, 0x04]) || starts([0x50, 0x4B, 0x05, 0x06])
        default: return true
        }
    }
}

extension Change {
    /// The files this change refers to: the values it sets and the members it adds in the
    /// entity's `attachment` and `attachments` fields (what a server must hold before it takes it).
    public func attachments(in entity: Entity) -> [Attachment] {
        Self.attachments(of: fields, in: entity)
    }

    /// The files `fields` (the field changes of one change of `entity`) refer to; see
    /// ``attachments(in:)``.
    package static func attachments(of fields: [FieldChange], in entity: Entity) -> [Attachment] {
        guard entity.refersToFiles else { return [] }
        var out: [Attachment] = []
        for change in fields {
            guard let field = entity.field(change.field), field.type.isAttachment else { continue }
            switch change.kind {
            case .set(let value): out += value.attachments
            case .members(let added, _): out += added.compactMap { try? Attachment(text: $0) }
            case .add: break
            }
        }
        return out
    }
}

extension Attachment: Codable {
    /// Reads a reference written as its ``text``.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(text: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.reason))
        }
    }

    /// Writes the reference as its ``text``.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}
