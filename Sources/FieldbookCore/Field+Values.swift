public import FieldbookJSON

/// Why a value does not fit a field. The description never quotes the value:
/// field values can name people.
public struct ValueProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of problem it is.
    public enum Kind: String, Sendable, Equatable {
        case wrongType = "wrong_type"
        case notAllowed = "not_allowed"
        case tooLong = "too_long"
        case badFormat = "bad_format"
        case required
    }

    /// What kind of problem it is: wrong type, a value not allowed, too long, bad format, or required.
    public var kind: Kind
    /// A sentence for people, without the value.
    public var reason: String

    /// The text people read: ``reason``.
    public var description: String { reason }
}

extension Field {
    /// Checks `value` against this field and returns its canonical form: a real
    /// field turns an integer into a real, a set is sorted without duplicates, a
    /// timestamp gets its milliseconds, a reference is lower-cased.
    public func normalize(_ value: Value) throws(ValueProblem) -> Value {
        if case .null = value {
            if required { throw ValueProblem(kind: .required, reason: "is required and cannot be null") }
            return .null
        }
        switch (type, value) {
        case (.text, .text(let s)):
            try checkLength(s)
            return value
        case (.integer, .integer):
            return value
        case (.real, .real(let d)):
            guard d.isFinite else { throw ValueProblem(kind: .badFormat, reason: "must be a finite number") }
            return value
        case (.real, .integer(let i)):
            return .real(Double(i))
        case (.boolean, .boolean):
            return value
        case (.date, .text(let s)):
            guard CalendarText.isValidDate(s) else {
                throw ValueProblem(kind: .badFormat, reason: "must be a date written YYYY-MM-DD, e.g. 2021-11-16")
            }
            return value
        case (.timestamp, .text(let s)):
            guard let canonical = CalendarText.canonicalTimestamp(s) else {
                throw ValueProblem(
                    kind: .badFormat,
                    reason: "must be a UTC timestamp written YYYY-MM-DDTHH:MM:SS[.sss]Z, e.g. 2021-11-16T09:30:00Z")
            }
            return .text(canonical)
        case (.enumeration(let values), .text(let s)):
            guard values.contains(s) else {
                throw ValueProblem(kind: .notAllowed, reason: "must be one of: \(values.joined(separator: ", "))")
            }
            return value
        case (.reference, .text(let s)):
            guard let id = UUIDText.canonical(s) else {
                throw ValueProblem(kind: .badFormat, reason: "must be a record id (a UUID)")
            }
            return .text(id)
        case (.textSet, .textSet(let members)):
            for m in members { try checkLength(m) }
            return .set(members)
        case (.attachment, .text(let s)):
            return .text(try Attachment(text: s).text)
        case (.attachments, .textSet(let members)):
            return .textSet(try Attachment.normalizedSet(members))
        default:
            throw ValueProblem(kind: .wrongType, reason: "expects \(type.expectation), got \(value.kindName)")
        }
    }

    private func checkLength(_ s: String) throws(ValueProblem) {
        // PostgreSQL text cannot hold NUL, and C APIs stop at it: refuse it everywhere.
        if s.utf8.contains(0) {
            throw ValueProblem(kind: .badFormat, reason: "cannot contain the NUL character")
        }
        // Count characters only when the UTF-8 length could exceed the limit.
        if let maxLength, s.utf8.count > maxLength, s.count > maxLength {
            throw ValueProblem(kind: .tooLong, reason: "is longer than \(maxLength) characters")
        }
    }
}

extension FieldType {
    /// What a value of this type looks like, for error messages.
    public var expectation: String {
        switch self {
        case .text: "text"
        case .integer: "an integer"
        case .real: "a number"
        case .boolean: "true or false"
        case .date: "a date (YYYY-MM-DD)"
        case .timestamp: "a timestamp (YYYY-MM-DDTHH:MM:SSZ)"
        case .enumeration(let values): "one of: \(values.joined(separator: ", "))"
        case .reference(let entity): "the id of a \(entity) record"
        case .textSet: "a set of text"
        case .attachment: "a file (SHA256 SIZE MEDIA-TYPE NAME)"
        case .attachments: "a set of files (each SHA256 SIZE MEDIA-TYPE NAME)"
        }
    }
}

extension Value {
    /// Reads a JSON value as a value of a field of `type`: numbers become
    /// integers or reals as the type says, an array of strings becomes a set.
    /// The result is not yet checked against the field; see ``Field/normalize(_:)``.
    public init(json: JSON, for type: FieldType) throws(ValueProblem) {
        switch json {
        case .null: self = .null
        case .bool(let b): self = .boolean(b)
        case .int(let i): self = type == .real ? .real(Double(i)) : .integer(i)
        case .double(let d):
            if type == .integer, d.rounded() == d, let i = Int64(exactly: d) {
                self = .integer(i)
            } else {
                self = .real(d)
            }
        case .string(let s): self = .text(s)
        case .array(let items):
            var members: [String] = []
            for item in items {
                guard case .string(let s) = item else {
                    throw ValueProblem(kind: .wrongType, reason: "a set holds text only")
                }
                members.append(s)
            }
            self = .set(members)
        case .object:
            throw ValueProblem(kind: .wrongType, reason: "expects \(type.expectation), got an object")
        }
    }
}

extension Value {
    /// Reads the JSON value at `index` of `tape` as ``init(json:for:)`` reads a tree.
    package init(_ tape: JSONTape, _ index: Int, for type: FieldType) throws(ValueProblem) {
        switch tape.kind(index) {
        case .null: self = .null
        case .bool: self = .boolean(tape.bool(index)!)
        case .int:
            let i = tape.int(index)!
            self = type == .real ? .real(Double(i)) : .integer(i)
        case .double:
            let d = tape.double(index)!
            if type == .integer, d.rounded() == d, let i = Int64(exactly: d) {
                self = .integer(i)
            } else {
                self = .real(d)
            }
        case .string: self = .text(tape.string(index)!)
        case .array:
            var members: [String] = []
            members.reserveCapacity(Int(tape[index].length))
            for item in tape.elements(index) {
                guard let s = tape.string(item) else {
                    throw ValueProblem(kind: .wrongType, reason: "a set holds text only")
                }
                members.append(s)
            }
            self = .set(members)
        case .object:
            throw ValueProblem(kind: .wrongType, reason: "expects \(type.expectation), got an object")
        }
    }
}

/// Checks and canonical forms for dates and timestamps written as text.
public enum CalendarText {
    static func digits(_ bytes: ArraySlice<UInt8>) -> Int? {
        var value = 0
        for b in bytes {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) else { return nil }
            value = value * 10 + Int(b - UInt8(ascii: "0"))
        }
        return value
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    static func isValidDate(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard bytes.count == 10 else { return false }
        let s = bytes.startIndex
        guard bytes[s + 4] == UInt8(ascii: "-"), bytes[s + 7] == UInt8(ascii: "-"),
            let y = digits(bytes[s..<s + 4]), let m = digits(bytes[s + 5..<s + 7]),
            let d = digits(bytes[s + 8..<s + 10]),
            y >= 1, (1...12).contains(m), d >= 1, d <= daysIn(month: m, year: y)
        else { return false }
        return true
    }

    /// Whether `text` is a valid calendar date written `YYYY-MM-DD`.
    public static func isValidDate(_ text: String) -> Bool {
        isValidDate(Array(text.utf8)[...])
    }

    /// What a person needs to hear when `text` is not a valid date: that the day does not exist
    /// (`2022-02-30`: written right, but February has no 30th), or how a date is written.
    public static func dateExpectation(for text: String) -> String {
        let b = Array(text.utf8)
        let shaped =
            b.count == 10 && b[4] == UInt8(ascii: "-") && b[7] == UInt8(ascii: "-")
            && digits(b[0..<4]) != nil && digits(b[5..<7]) != nil && digits(b[8..<10]) != nil
        return shaped
            ? "a day that exists on the calendar (that month has no such day, or there is no such month)"
            : "a date written YYYY-MM-DD, e.g. 2022-06-30"
    }

    /// `YYYY-MM-DDTHH:MM:SS[.s…]Z` as `YYYY-MM-DDTHH:MM:SS.sssZ`, or nil if it is not one.
    /// Fractions beyond milliseconds must be zero: nothing is silently rounded away.
    public static func canonicalTimestamp(_ text: String) -> String? {
        let b = Array(text.utf8)
        guard b.count >= 20, b.last == UInt8(ascii: "Z"), isValidDate(b[0..<10]), b[10] == UInt8(ascii: "T"),
            b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"),
            let h = digits(b[11..<13]), let mi = digits(b[14..<16]), let sec = digits(b[17..<19]),
            h < 24, mi < 60, sec < 60
        else { return nil }
        var millis = [UInt8](repeating: UInt8(ascii: "0"), count: 3)
        if b.count > 20 {
            guard b[19] == UInt8(ascii: "."), b.count > 21 else { return nil }
            let fraction = b[20..<(b.count - 1)]
            guard digits(fraction) != nil else { return nil }
            for (n, digit) in fraction.enumerated() {
                if n < 3 {
                    millis[n] = digit
                } else if digit != UInt8(ascii: "0") {
                    return nil
                }
            }
        } else if b.count != 20 {
            return nil
        }
        return String(decoding: b[0..<19] + [UInt8(ascii: ".")] + millis + [UInt8(ascii: "Z")], as: UTF8.self)
    }

    /// Milliseconds since 1970-01-01T00:00:00Z written as a canonical timestamp.
    public static func timestamp(millisecondsSince1970 ms: Int64) -> String {
        let days = ms >= 0 ? ms / 86_400_000 : (ms - 86_399_999) / 86_400_000
        let msOfDay = ms - days * 86_400_000
        let (y, m, d) = civilFromDays(days)
        func pad(_ v: Int64, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(msOfDay / 3_600_000, 2)):"
            + "\(pad(msOfDay / 60_000 % 60, 2)):\(pad(msOfDay / 1000 % 60, 2)).\(pad(msOfDay % 1000, 3))Z"
    }

    /// Milliseconds since 1970 of a timestamp written in any form ``canonicalTimestamp(_:)`` accepts.
    public static func millisecondsSince1970(_ text: String) -> Int64? {
        guard let canonical = canonicalTimestamp(text) else { return nil }
        let b = Array(canonical.utf8)
        guard let y = digits(b[0..<4]), let m = digits(b[5..<7]), let d = digits(b[8..<10]), let h = digits(b[11..<13]),
            let mi = digits(b[14..<16]), let s = digits(b[17..<19]), let ms = digits(b[20..<23])
        else { return nil }
        let days = daysFromCivil(Int64(y), Int64(m), Int64(d))
        return days * 86_400_000 + Int64(h) * 3_600_000 + Int64(mi) * 60_000 + Int64(s) * 1000 + Int64(ms)
    }

    /// Howard Hinnant's civil-to-days algorithm.
    static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// Howard Hinnant's days-to-civil algorithm.
    static func civilFromDays(_ z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
