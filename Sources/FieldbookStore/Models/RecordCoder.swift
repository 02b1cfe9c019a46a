import FieldbookCore
import Foundation

// A flat Codable bridge between typed models and field values: a model is a
// keyed container of primitives; nested Codable types (enums, CalendarDate)
// must encode to one primitive, and sets to a list of strings.

enum RecordEncoder {
    static func encode(_ model: some Encodable) throws -> [String: Value] {
        let encoder = KeyedCapture()
        try model.encode(to: encoder)
        return encoder.values
    }
}

enum RecordDecoder {
    static func decode<M: Decodable>(_ type: M.Type, from record: Record) throws -> M {
        var values: [String: Value] = ["id": .text(record.id)]
        for (field, value) in zip(record.entity.fields, record.values) { values[field.name] = value }
        return try M(from: KeyedSource(values: values))
    }
}

private func unsupported(_ path: [any CodingKey]) -> EncodingError {
    EncodingError.invalidValue(
        (), .init(codingPath: path, debugDescription: "typed models hold only flat fields of primitive types"))
}

/// Encodes one property to a `Value`.
private func capture(_ value: some Encodable, path: [any CodingKey]) throws -> Value {
    if let date = value as? Date {
        return .text(
            CalendarText.timestamp(millisecondsSince1970: Int64((date.timeIntervalSince1970 * 1000).rounded())))
    }
    let single = SingleCapture(codingPath: path)
    try value.encode(to: single)
    if let members = single.members { return .set(members) }
    return single.value ?? .null
}

private final class KeyedCapture: Encoder {
    var values: [String: Value] = [:]
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] = [:]

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(Container(owner: self))
    }
    func unkeyedContainer() -> any UnkeyedEncodingContainer { fatalError("a typed model is a keyed container") }
    func singleValueContainer() -> any SingleValueEncodingContainer { fatalError("a typed model is a keyed container") }

    struct Container<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let owner: KeyedCapture
        var codingPath: [any CodingKey] { [] }
        mutating func encodeNil(forKey key: Key) throws { owner.values[key.stringValue] = .null }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            owner.values[key.stringValue] = try capture(value, path: [key])
        }
        mutating func nestedContainer<N: CodingKey>(keyedBy: N.Type, forKey key: Key) -> KeyedEncodingContainer<N> {
            fatalError("typed models hold only flat fields")
        }
        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            fatalError("typed models hold only flat fields")
        }
        mutating func superEncoder() -> any Encoder { owner }
        mutating func superEncoder(forKey key: Key) -> any Encoder { owner }
    }
}

private final class SingleCapture: Encoder, SingleValueEncodingContainer, UnkeyedEncodingContainer {
    var value: Value?
    var members: [String]?
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] = [:]
    var count: Int { members?.count ?? 0 }

    init(codingPath: [any CodingKey]) { self.codingPath = codingPath }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        fatalError("typed models hold only flat fields")
    }
    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        members = []
        return self
    }
    func singleValueContainer() -> any SingleValueEncodingContainer { self }

    func encodeNil() throws { value = .null }
    func encode(_ v: Bool) throws { value = .boolean(v) }
    func encode(_ v: String) throws {
        if members != nil { members!.append(v) } else { value = .text(v) }
    }
    func encode(_ v: Double) throws { value = .real(v) }
    func encode(_ v: Int) throws { value = .integer(Int64(v)) }
    func encode(_ v: Int64) throws { value = .integer(v) }
    func encode<T: Encodable>(_ v: T) throws {
        if let s = v as? String { return try encode(s) }
        if let i = v as? Int { return try encode(i) }
        if let i = v as? Int64 { return try encode(i) }
        if let d = v as? Double { return try encode(d) }
        if let b = v as? Bool { return try encode(b) }
        try v.encode(to: self)
    }
    func nestedContainer<N: CodingKey>(keyedBy: N.Type) -> KeyedEncodingContainer<N> { fatalError("flat fields only") }
    func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer { fatalError("flat fields only") }
    func superEncoder() -> any Encoder { self }
}

private struct KeyedSource: Decoder {
    let values: [String: Value]
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] = [:]

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(Container(values: values))
    }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer { throw mismatch([]) }
    func singleValueContainer() throws -> any SingleValueDecodingContainer { throw mismatch([]) }

    struct Container<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let values: [String: Value]
        var codingPath: [any CodingKey] { [] }
        var allKeys: [Key] { values.keys.compactMap { Key(stringValue: $0) } }
        func contains(_ key: Key) -> Bool { values[key.stringValue] != nil }
        func decodeNil(forKey key: Key) throws -> Bool { values[key.stringValue]?.isNull ?? true }
        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            let value = values[key.stringValue] ?? .null
            if T.self == Date.self {
                guard case .text(let text) = value, let date = parseTimestamp(text) else { throw mismatch([key]) }
                return date as! T
            }
            return try T(from: SingleSource(value: value, codingPath: [key]))
        }
        func nestedContainer<N: CodingKey>(keyedBy: N.Type, forKey key: Key) throws -> KeyedDecodingContainer<N> {
            throw mismatch([key])
        }
        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { throw mismatch([key]) }
        func superDecoder() throws -> any Decoder { KeyedSource(values: values) }
        func superDecoder(forKey key: Key) throws -> any Decoder { KeyedSource(values: values) }
    }
}

private func mismatch(_ path: [any CodingKey]) -> DecodingError {
    DecodingError.typeMismatch(
        Any.self, .init(codingPath: path, debugDescription: "the stored value does not fit the model's property"))
}

/// `YYYY-MM-DDTHH:MM:SS.sssZ` to a `Date`.
private func parseTimestamp(_ text: String) -> Date? {
    CalendarText.millisecondsSince1970(text).map { Date(timeIntervalSince1970: Double($0) / 1000) }
}

private struct SingleSource: Decoder, SingleValueDecodingContainer {
    let value: Value
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        throw mismatch(codingPath)
    }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .textSet(let members) = value else { throw mismatch(codingPath) }
        return Members(members: members, codingPath: codingPath)
    }
    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    func decodeNil() -> Bool { value.isNull }
    func decode(_ type: Bool.Type) throws -> Bool {
        guard case .boolean(let b) = value else { throw mismatch(codingPath) }
        return b
    }
    func decode(_ type: String.Type) throws -> String {
        guard case .text(let s) = value else { throw mismatch(codingPath) }
        return s
    }
    func decode(_ type: Double.Type) throws -> Double {
        switch value {
        case .real(let d): return d
        case .integer(let i): return Double(i)
        default: throw mismatch(codingPath)
        }
    }
    func decode(_ type: Int.Type) throws -> Int {
        guard case .integer(let i) = value, let n = Int(exactly: i) else { throw mismatch(codingPath) }
        return n
    }
    func decode(_ type: Int64.Type) throws -> Int64 {
        guard case .integer(let i) = value else { throw mismatch(codingPath) }
        return i
    }
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == String.self { return try decode(String.self) as! T }
        if T.self == Int.self { return try decode(Int.self) as! T }
        if T.self == Int64.self { return try decode(Int64.self) as! T }
        if T.self == Double.self { return try decode(Double.self) as! T }
        if T.self == Bool.self { return try decode(Bool.self) as! T }
        return try T(from: self)
    }

    struct Members: UnkeyedDecodingContainer {
        let members: [String]
        let codingPath: [any CodingKey]
        var currentIndex = 0
        var count: Int? { members.count }
        var isAtEnd: Bool { currentIndex >= members.count }
        mutating func decodeNil() throws -> Bool { false }
        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
            defer { currentIndex += 1 }
            return try T(from: SingleSource(value: .text(members[currentIndex]), codingPath: codingPath))
        }
        mutating func nestedContainer<N: CodingKey>(keyedBy: N.Type) throws -> KeyedDecodingContainer<N> {
            throw mismatch(codingPath)
        }
        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { throw mismatch(codingPath) }
        mutating func superDecoder() throws -> any Decoder { SingleSource(value: .null, codingPath: codingPath) }
    }
}
