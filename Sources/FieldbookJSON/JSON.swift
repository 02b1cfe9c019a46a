/// A JSON document, parsed strictly and written deterministically.
///
/// Fieldbook parses its own JSON rather than going through Foundation so that
/// integers stay exact (`Int64`, not `Double`), object keys keep their order,
/// duplicate keys are refused, and the same value always serializes to the same
/// bytes — which is what makes exports comparable byte for byte.
public enum JSON: Hashable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    /// Keys in document order. Duplicate keys are refused by the parser.
    case object([(key: String, value: JSON)])

    /// Equal when the same case with equal contents (an `int` never equals a `double`);
    /// objects compare their keys and values in order.
    public static func == (lhs: JSON, rhs: JSON) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b
        case (.double(let a), .double(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    /// Hashes the case's contents; an object's keys and values in order.
    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let b): hasher.combine(b)
        case .int(let i): hasher.combine(i)
        case .double(let d): hasher.combine(d)
        case .string(let s): hasher.combine(s)
        case .array(let a): hasher.combine(a)
        case .object(let o):
            hasher.combine(o.count)
            for (k, v) in o {
                hasher.combine(k)
                hasher.combine(v)
            }
        }
    }

    /// The value for `key` when this is an object.
    public subscript(key: String) -> JSON? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.first(where: { $0.key == key })?.value
    }

    /// A short name of the JSON type, for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .int, .double: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

// MARK: - Parsing

/// Why a JSON text could not be parsed. The description names the byte offset, never the content.
public struct JSONParseError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Byte offset in the input where parsing failed.
    public var offset: Int
    /// What was wrong, without quoting the input.
    public var reason: String

    /// The text people read: the byte offset and the reason.
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

extension JSON {
    /// Limits that keep a hostile document from exhausting the stack.
    public static let maximumDepth = 64

    /// Parses a complete JSON text (RFC 8259). Invalid UTF-8, trailing bytes,
    /// duplicate keys and nesting deeper than ``maximumDepth`` are errors.
    public init(parsing bytes: some Collection<UInt8>) throws(JSONParseError) {
        let tape = try JSONTape(parsing: Array(bytes))
        self = tape.json(0)
    }

    /// Parses a complete JSON text given as a string.
    public init(parsing text: String) throws(JSONParseError) {
        try self.init(parsing: Array(text.utf8))
    }
}

// MARK: - Writing

extension JSON {
    /// The compact serialization: no whitespace, keys in stored order, strings
    /// escaped minimally (non-ASCII text is written as UTF-8, not `\u` escapes).
    public var serialized: String {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        write(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the compact serialization to `out`.
    public func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])
        case .bool(let b): JSON.writeBool(b, to: &out)
        case .int(let i): JSON.writeInt(i, to: &out)
        case .double(let d): JSON.writeDouble(d, to: &out)
        case .string(let s): JSON.writeString(s, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (n, item) in items.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                item.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let pairs):
            out.append(UInt8(ascii: "{"))
            for (n, pair) in pairs.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                JSON.writeString(pair.key, to: &out)
                out.append(UInt8(ascii: ":"))
                pair.value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    package static func writeBool(_ b: Bool, to out: inout [UInt8]) {
        if b {
            out.append(contentsOf: [0x74, 0x72, 0x75, 0x65])
        } else {
            out.append(contentsOf: [0x66, 0x61, 0x6C, 0x73, 0x65])
        }
    }

    package static func writeInt(_ value: Int64, to out: inout [UInt8]) {
        // Digits written backwards into a buffer on the stack, then appended in one copy.
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 {
                start -= 1
                buffer[start] = UInt8(ascii: "-")
            }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[start...]))
        }
    }

    /// Appends a literal's UTF-8 bytes in one copy.
    @inlinable
    package static func writeLiteral(_ literal: StaticString, to out: inout [UInt8]) {
        literal.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    /// Doubles use Swift's shortest round-tripping form; integral values keep a
    /// `.0` so a reader can tell a real from an integer.
    package static func writeDouble(_ value: Double, to out: inout [UInt8]) {
        precondition(value.isFinite, "JSON cannot carry NaN or infinity")
        var text = value.description
        if !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) { text += ".0" }
        out.append(contentsOf: text.utf8)
    }

    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    package static func writeString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        if s.utf8.withContiguousStorageIfAvailable({ writeEscaped($0, to: &out) }) == nil {
            Array(s.utf8).withUnsafeBufferPointer { writeEscaped($0, to: &out) }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Writes UTF-8 text (a column of a database row, say) as a JSON string.
    package static func writeString(utf8: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        writeEscaped(utf8, to: &out)
        out.append(UInt8(ascii: "\""))
    }

    private static func writeEscaped(_ utf8: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        // Most text needs no escape: one scan, one copy.
        var clean = true
        for c in utf8 where c < 0x20 || c == 0x22 || c == 0x5C {
            clean = false
            break
        }
        if clean {
            out.append(contentsOf: utf8)
            return
        }
        var runStart = utf8.startIndex
        var i = utf8.startIndex
        while i != utf8.endIndex {
            let c = utf8[i]
            let escape: UInt8
            switch c {
            case 0x22: escape = 0x22
            case 0x5C: escape = 0x5C
            case 0x0A: escape = UInt8(ascii: "n")
            case 0x0D: escape = UInt8(ascii: "r")
            case 0x09: escape = UInt8(ascii: "t")
            case 0x00..<0x20: escape = UInt8(ascii: "u")
            default:
                i = utf8.index(after: i)
                continue
            }
            out.append(contentsOf: utf8[runStart..<i])
            out.append(0x5C)
            out.append(escape)
            if escape == UInt8(ascii: "u") {
                out.append(contentsOf: [0x30, 0x30, hexDigits[Int(c >> 4)], hexDigits[Int(c & 0xF)]])
            }
            i = utf8.index(after: i)
            runStart = i
        }
        out.append(contentsOf: utf8[runStart..<utf8.endIndex])
    }
}
