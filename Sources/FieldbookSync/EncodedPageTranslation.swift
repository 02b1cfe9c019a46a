import FieldbookCore

/// What ``PullResponse/translate(_:)`` does to a page of the newer version of a
/// ``SchemaTranslation`` for a device of the older one, done on the page's encoded text: the
/// changes of entities the older version lacks left out, the fields it lacks left out of the
/// others, renamed fields under their older names; every other byte copied as it is. A server
/// translates a page this way without decoding its changes and encoding them again
/// (docs/protocol.md, "Schema versions").
///
/// It reads the text a server writes (``PullResponse/encode(to:)`` or ``PullResponse/encodeStart(to:)``
/// and the members appended after it); a page it does not read that way — with records entering
/// or leaving a scope, or names written with escapes — it leaves to be decoded and translated.
public struct EncodedPageTranslation: Sendable {
    /// An entity of the newer version, as its name is written, and its fields with the names the
    /// older version gives them (nil: the older version lacks the field).
    struct EntityNames: Sendable {
        let name: [UInt8]
        /// False when the older version lacks the entity: its changes are left out.
        let kept: Bool
        let fields: [(newer: [UInt8], older: [UInt8]?)]
    }

    let entities: [EntityNames]

    /// The translation of pages from `translation.newer` to `translation.older`.
    public init(_ translation: SchemaTranslation) {
        entities = translation.newer.entities.map { entity in
            let kept = translation.older.entity(entity.name) != nil
            return EntityNames(
                name: Array(entity.name.utf8), kept: kept,
                fields: entity.fields.map { field in
                    (
                        Array(field.name.utf8),
                        kept
                            ? translation.olderName(entity: entity.name, field: field.name).map { Array($0.utf8) } : nil
                    )
                })
        }
    }

    /// `page`, a pull response's text in the newer version, in the older one; nil when the page
    /// holds what this does not translate on the text (records entering or leaving a scope, names
    /// written with escapes, an entity or field the newer version lacks, or text that is not a
    /// pull response): decode it and use ``PullResponse/translate(_:)``.
    public func translate(_ page: [UInt8]) -> [UInt8]? {
        page.withUnsafeBufferPointer { bytes in
            var reader = Reader(bytes: bytes)
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            return translate(&reader, to: &out) ? out : nil
        }
    }

    private func translate(_ reader: inout Reader, to out: inout [UInt8]) -> Bool {
        guard reader.take(UInt8(ascii: "{")) else { return false }
        out.append(UInt8(ascii: "{"))
        var first = true
        var members: [Reader.Member] = []
        repeat {
            guard let key = reader.key() else { return false }
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(contentsOf: reader.bytes[key.lowerBound - 1...key.upperBound])
            out.append(UInt8(ascii: ":"))
            if reader.equals(key, "changes") {
                guard translateChanges(&reader, members: &members, to: &out) else { return false }
            } else {
                // A page with records entering or leaving its scope is decoded: those hold changes too.
                guard !reader.equals(key, "entered"), !reader.equals(key, "left"),
                    let value = reader.value()
                else { return false }
                out.append(contentsOf: reader.bytes[value])
            }
        } while reader.take(UInt8(ascii: ","))
        guard reader.take(UInt8(ascii: "}")) else { return false }
        out.append(UInt8(ascii: "}"))
        reader.skipSpace()
        return reader.position == reader.bytes.count
    }

    /// The `changes` array, each change translated or left out.
    private func translateChanges(_ reader: inout Reader, members: inout [Reader.Member], to out: inout [UInt8]) -> Bool
    {
        guard reader.take(UInt8(ascii: "[")) else { return false }
        out.append(UInt8(ascii: "["))
        if reader.take(UInt8(ascii: "]")) {
            out.append(UInt8(ascii: "]"))
            return true
        }
        var written = 0
        repeat {
            // The change's members first, to find its entity wherever it is.
            members.removeAll(keepingCapacity: true)
            guard reader.take(UInt8(ascii: "{")) else { return false }
            if !reader.take(UInt8(ascii: "}")) {
                repeat {
                    guard let key = reader.key(), let value = reader.value() else { return false }
                    members.append(Reader.Member(key: key, value: value))
                } while reader.take(UInt8(ascii: ","))
                guard reader.take(UInt8(ascii: "}")) else { return false }
            }
            guard let entityMember = members.first(where: { reader.equals($0.key, "entity") }),
                let entityName = reader.plainString(entityMember.value),
                let entity = entities.first(where: { reader.bytes[entityName].elementsEqual($0.name) })
            else { return false }
            guard entity.kept else { continue }
            if written > 0 { out.append(UInt8(ascii: ",")) }
            written += 1
            out.append(UInt8(ascii: "{"))
            for (n, member) in members.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: reader.bytes[member.key.lowerBound - 1...member.key.upperBound])
                out.append(UInt8(ascii: ":"))
                if reader.equals(member.key, "fields") {
                    guard translateFields(reader.bytes[member.value], of: entity, to: &out) else { return false }
                } else {
                    out.append(contentsOf: reader.bytes[member.value])
                }
            }
            out.append(UInt8(ascii: "}"))
        } while reader.take(UInt8(ascii: ","))
        guard reader.take(UInt8(ascii: "]")) else { return false }
        out.append(UInt8(ascii: "]"))
        return true
    }

    /// A change's `fields` object: the fields the older version lacks left out, the others under
    /// its names.
    private func translateFields(
        _ text: Slice<UnsafeBufferPointer<UInt8>>, of entity: EntityNames, to out: inout [UInt8]
    )
        -> Bool
    {
        var reader = Reader(bytes: UnsafeBufferPointer(rebasing: text))
        guard reader.take(UInt8(ascii: "{")) else { return false }
        out.append(UInt8(ascii: "{"))
        if reader.take(UInt8(ascii: "}")) {
            out.append(UInt8(ascii: "}"))
            return true
        }
        var written = 0
        repeat {
            guard let key = reader.key(), let value = reader.value(),
                let field = entity.fields.first(where: { reader.bytes[key].elementsEqual($0.newer) })
            else { return false }
            guard let older = field.older else { continue }
            if written > 0 { out.append(UInt8(ascii: ",")) }
            written += 1
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: older)
            out.append(contentsOf: #"":"#.utf8)
            out.append(contentsOf: reader.bytes[value])
        } while reader.take(UInt8(ascii: ","))
        guard reader.take(UInt8(ascii: "}")) else { return false }
        out.append(UInt8(ascii: "}"))
        return true
    }
}

/// Reads JSON text a token at a time without decoding values: where each key and value lies.
private struct Reader {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0

    /// A member of an object: its key's bytes (between the quotes) and its value's.
    struct Member {
        let key: Range<Int>
        let value: Range<Int>
    }

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    mutating func skipSpace() {
        while position < bytes.count,
            bytes[position] == 0x20 || bytes[position] == 0x0A || bytes[position] == 0x0D
                || bytes[position] == 0x09
        {
            position += 1
        }
    }

    /// Takes `byte` (after any space) if it comes next.
    mutating func take(_ byte: UInt8) -> Bool {
        skipSpace()
        guard position < bytes.count, bytes[position] == byte else { return false }
        position += 1
        return true
    }

    /// A member's key and its colon: the key's bytes, nil if it is not a string without escapes.
    mutating func key() -> Range<Int>? {
        skipSpace()
        guard let string = value(), let inner = plainString(string), take(UInt8(ascii: ":")) else { return nil }
        return inner
    }

    /// The bytes between a string's quotes, if `range` is a string without escapes.
    func plainString(_ range: Range<Int>) -> Range<Int>? {
        guard range.count >= 2, bytes[range.lowerBound] == UInt8(ascii: "\""),
            !bytes[range.lowerBound + 1..<range.upperBound - 1].contains(UInt8(ascii: "\\"))
        else { return nil }
        return range.lowerBound + 1..<range.upperBound - 1
    }

    /// Whether the bytes at `range` are `text`.
    func equals(_ range: Range<Int>, _ text: StaticString) -> Bool {
        text.withUTF8Buffer { bytes[range].elementsEqual($0) }
    }

    /// Skips one value (after any space): where it lies, nil if the text ends inside it.
    mutating func value() -> Range<Int>? {
        skipSpace()
        let start = position
        var depth = 0
        while position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: "\""):
                position += 1
                while position < bytes.count, bytes[position] != UInt8(ascii: "\"") {
                    position += bytes[position] == UInt8(ascii: "\\") ? 2 : 1
                }
                guard position < bytes.count else { return nil }
                position += 1
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                position += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                guard depth > 0 else { return position > start ? start..<position : nil }
                depth -= 1
                position += 1
            case UInt8(ascii: ","), 0x20, 0x0A, 0x0D, 0x09:
                if depth == 0 { return position > start ? start..<position : nil }
                position += 1
            default:
                position += 1
            }
            if depth == 0, position > start,
                bytes[position - 1] == UInt8(ascii: "\"")
                    || bytes[position - 1] == UInt8(ascii: "}") || bytes[position - 1] == UInt8(ascii: "]")
            {
                return start..<position
            }
        }
        return depth == 0 && position > start ? start..<position : nil
    }
}
