public import FieldbookJSON

/// The value of one field of one record.
///
/// Values are few and plain on purpose: dates, timestamps, enum members and
/// references travel as ``text(_:)`` and the field's schema type says what the
/// text must look like. A set of text is kept sorted and without duplicates, so
/// two equal sets are equal values.
public enum Value: Hashable, Sendable {
    case null
    case text(String)
    case integer(Int64)
    case real(Double)
    case boolean(Bool)
    /// A set of text, sorted by UTF-8 bytes, without duplicates.
    case textSet([String])

    /// A set value from any sequence of strings: sorted by UTF-8 bytes, duplicates removed.
    public static func set(_ members: some Sequence<String>) -> Value {
        .textSet(Value.normalizedSet(members))
    }

    /// The members sorted by UTF-8 bytes, duplicates removed: the canonical form of a set's members.
    public static func normalizedSet(_ members: some Sequence<String>) -> [String] {
        let unique = Set(members)
        return unique.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// True for ``null``.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The text when this is ``text(_:)``.
    public var text: String? {
        if case .text(let s) = self { return s }
        return nil
    }

    /// The members when this is ``textSet(_:)``; empty otherwise.
    public var setMembers: [String] {
        if case .textSet(let members) = self { return members }
        return []
    }

    /// The integer when this is ``integer(_:)``.
    public var integer: Int64? {
        if case .integer(let i) = self { return i }
        return nil
    }

    /// A short name of the kind of value, for error messages (never the value itself).
    public var kindName: String {
        switch self {
        case .null: "null"
        case .text: "text"
        case .integer: "integer"
        case .real: "real"
        case .boolean: "boolean"
        case .textSet: "set of text"
        }
    }

    /// The value as JSON: sets are arrays, reals always carry a fraction or exponent.
    public var json: JSON {
        switch self {
        case .null: .null
        case .text(let s): .string(s)
        case .integer(let i): .int(i)
        case .real(let d): .double(d)
        case .boolean(let b): .bool(b)
        case .textSet(let members): .array(members.map(JSON.string))
        }
    }

    /// Appends the JSON form of this value to `out` without building a ``JSON`` tree.
    public func writeJSON(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])
        case .text(let s): JSON.writeString(s, to: &out)
        case .integer(let i): JSON.writeInt(i, to: &out)
        case .real(let d): JSON.writeDouble(d, to: &out)
        case .boolean(let b): JSON.writeBool(b, to: &out)
        case .textSet(let members):
            out.append(UInt8(ascii: "["))
            for (n, m) in members.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                JSON.writeString(m, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
    }
}

extension Value: CustomStringConvertible {
    /// A plain rendering for people: text as is, sets comma-separated, null as empty.
    public var description: String {
        switch self {
        case .null: ""
        case .text(let s): s
        case .integer(let i): String(i)
        case .real(let d): String(d)
        case .boolean(let b): b ? "true" : "false"
        case .textSet(let members): members.joined(separator: ", ")
        }
    }
}

extension Value: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByNilLiteral
{
    /// A string literal is a ``text(_:)`` value.
    public init(stringLiteral value: String) { self = .text(value) }
    /// An integer literal is an ``integer(_:)`` value.
    public init(integerLiteral value: Int64) { self = .integer(value) }
    /// A floating-point literal is a ``real(_:)`` value.
    public init(floatLiteral value: Double) { self = .real(value) }
    /// `true` and `false` are ``boolean(_:)`` values.
    public init(booleanLiteral value: Bool) { self = .boolean(value) }
    /// `nil` is ``null``.
    public init(nilLiteral: ()) { self = .null }
}
