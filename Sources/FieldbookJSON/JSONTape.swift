/// A parsed JSON text as a flat list of tokens over its bytes (a "tape").
///
/// Parsing checks the whole text as strictly as ``JSON/init(parsing:)`` does
/// (that initializer is built on this one), but allocates no string, array or
/// dictionary per value: a token records where its text lies in ``bytes``,
/// and strings are made only when a reader asks for one. Sync messages and
/// stored merge states are read this way, so that reading a page of 10,000
/// changes costs two arrays rather than hundreds of thousands of small objects.
///
/// Token 0 is the document's value. A container's members follow it in order
/// (for an object, a key token then its value, for each member), and its
/// ``Token/next`` is the index just past its last descendant, so a reader can
/// skip a value it does not need in one step.
package struct JSONTape {
    package enum Kind: UInt8 {
        case null, bool, int, double, string, array, object
    }

    package struct Token {
        package var kind: Kind
        /// For a string: it holds backslash escapes, so its bytes are not its text.
        package var escaped: Bool
        /// For a string: its first byte after the opening quote. For others: the offset of the value.
        package var start: UInt32
        /// For a string: the length of its raw content. For a container: its number of elements or members.
        package var length: UInt32
        /// The index of the token after this value and everything in it.
        package var next: UInt32
        /// An integer's value, a double's bit pattern, a boolean's 0 or 1.
        package var payload: Int64
    }

    package let bytes: [UInt8]
    package private(set) var tokens: [Token] = []

    /// The reason a parse stopped at its value budget (see ``init(parsing:maxValues:)``).
    package static let tooManyValues = "more values than allowed"

    /// Parses a complete JSON text (see ``JSON/init(parsing:)`` for what is refused).
    /// - Parameter maxValues: a text of more values (every number, string, array, object, key) is refused,
    ///   as soon as the parse reaches the first value too many, with the reason ``tooManyValues``.
    ///   A token costs 24 bytes, so this bounds the tape's memory whatever the text.
    package init(parsing bytes: [UInt8], maxValues: Int = .max) throws(JSONParseError) {
        self.bytes = bytes
        guard bytes.count < Int(UInt32.max) else {
            throw JSONParseError(offset: 0, reason: "documents of 4 GiB or more are not read")
        }
        var parsed: [Token] = []
        parsed.reserveCapacity(min(max(16, bytes.count / 8), maxValues))
        try bytes.withUnsafeBufferPointer { (buffer) throws(JSONParseError) in
            var parser = TapeParser(bytes: buffer, tokens: parsed, maxValues: maxValues)
            parsed = []
            try parser.parseDocument()
            parsed = parser.tokens
        }
        tokens = parsed
    }

    @inlinable
    package subscript(index: Int) -> Token { tokens[index] }

    @inlinable
    package func kind(_ index: Int) -> Kind { tokens[index].kind }

    /// The index just past the value at `index`.
    @inlinable
    package func next(_ index: Int) -> Int { Int(tokens[index].next) }

    /// The integer at `index`, if the value there is one.
    @inlinable
    package func int(_ index: Int) -> Int64? {
        let token = tokens[index]
        return token.kind == .int ? token.payload : nil
    }

    /// The boolean at `index`, if the value there is one.
    @inlinable
    package func bool(_ index: Int) -> Bool? {
        let token = tokens[index]
        return token.kind == .bool ? token.payload != 0 : nil
    }

    /// The double at `index`, if the value there is a number with a fraction or exponent.
    @inlinable
    package func double(_ index: Int) -> Double? {
        let token = tokens[index]
        return token.kind == .double ? Double(bitPattern: UInt64(bitPattern: token.payload)) : nil
    }

    /// The text of the string at `index`, if the value there is one.
    package func string(_ index: Int) -> String? {
        let token = tokens[index]
        guard token.kind == .string else { return nil }
        if !token.escaped {
            return bytes.withUnsafeBufferPointer { buffer in
                String(
                    decoding: UnsafeBufferPointer(rebasing: buffer[Int(token.start)..<Int(token.start + token.length)]),
                    as: UTF8.self)
            }
        }
        // Checked when the tape was made.
        return
            (try? bytes.withUnsafeBufferPointer { (buffer) throws(JSONParseError) in
                try TapeParser.unescape(buffer, from: Int(token.start), to: Int(token.start + token.length))
            }).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether the value at `index` is a string whose text is `text`.
    package func stringEquals(_ index: Int, _ text: StaticString) -> Bool {
        let token = tokens[index]
        guard token.kind == .string else { return false }
        if token.escaped { return string(index) == text.description }
        guard Int(token.length) == text.utf8CodeUnitCount else { return false }
        return text.withUTF8Buffer { key in
            bytes.withUnsafeBufferPointer { buffer in
                key.elementsEqual(buffer[Int(token.start)..<Int(token.start + token.length)])
            }
        }
    }

    /// Whether the value at `index` is a string whose text is `text`.
    package func stringEquals(_ index: Int, _ text: String) -> Bool {
        let token = tokens[index]
        guard token.kind == .string else { return false }
        if token.escaped { return string(index) == text }
        var text = text
        return text.withUTF8 { key in
            key.count == Int(token.length)
                && bytes.withUnsafeBufferPointer { buffer in
                    key.elementsEqual(buffer[Int(token.start)..<Int(token.start + token.length)])
                }
        }
    }

    /// Whether the value at `index` is a string whose text is the UTF-8 `text`.
    package func stringEquals(_ index: Int, utf8 text: [UInt8]) -> Bool {
        let token = tokens[index]
        guard token.kind == .string else { return false }
        if token.escaped { return string(index).map { Array($0.utf8) == text } ?? false }
        guard Int(token.length) == text.count else { return false }
        return bytes.withUnsafeBufferPointer { buffer in
            text.elementsEqual(buffer[Int(token.start)..<Int(token.start + token.length)])
        }
    }

    /// The raw bytes of the value at `index` as they appear in the text (for a string: without its quotes).
    package func rawBytes(_ index: Int) -> ArraySlice<UInt8> {
        let token = tokens[index]
        return bytes[Int(token.start)..<Int(token.start + token.length)]
    }

    /// The index of the value of member `key` of the object at `index`, or nil
    /// (also when the value there is not an object).
    package func member(_ index: Int, _ key: StaticString) -> Int? {
        guard tokens[index].kind == .object else { return nil }
        var i = index + 1
        for _ in 0..<tokens[index].length {
            if stringEquals(i, key) { return i + 1 }
            i = Int(tokens[i + 1].next)
        }
        return nil
    }

    /// ``member(_:_:)``, looking first at the key at `hint`: members read in the order a peer
    /// writes them cost one comparison each. Start with `hint` at `index + 1` (the first key); on
    /// return it is the key after the member found.
    package func member(_ index: Int, _ key: StaticString, hint: inout Int) -> Int? {
        // `hint` is the object's first key or follows a member of it: a key of it, or its end.
        if hint > index, hint < Int(tokens[index].next), stringEquals(hint, key) {
            let value = hint + 1
            hint = Int(tokens[value].next)
            return value
        }
        guard let value = member(index, key) else { return nil }
        hint = Int(tokens[value].next)
        return value
    }

    /// The indices of the elements of the array at `index` (empty if it is not an array).
    @inlinable
    package func elements(_ index: Int) -> Children {
        Children(
            tape: self, first: index + 1, count: tokens[index].kind == .array ? Int(tokens[index].length) : 0, stride: 0
        )
    }

    /// The indices of the keys of the object at `index` (its value is at key + 1); empty if it is not an object.
    @inlinable
    package func keys(_ index: Int) -> Children {
        Children(
            tape: self, first: index + 1, count: tokens[index].kind == .object ? Int(tokens[index].length) : 0,
            stride: 1)
    }

    /// The elements of an array or the keys of an object, in order.
    package struct Children: Sequence, IteratorProtocol {
        package let tape: JSONTape
        package var position: Int
        package var remaining: Int
        /// 0 for array elements; 1 for object keys (skip the key to its value to find the next key).
        package let stride: Int

        @inlinable
        package init(tape: JSONTape, first: Int, count: Int, stride: Int) {
            self.tape = tape
            self.position = first
            self.remaining = count
            self.stride = stride
        }

        package var count: Int { remaining }

        @inlinable
        package mutating func next() -> Int? {
            guard remaining > 0 else { return nil }
            remaining -= 1
            let current = position
            position = Int(tape.tokens[current + stride].next)
            return current
        }
    }

    /// The value at `index` as a ``JSON`` tree.
    package func json(_ index: Int) -> JSON {
        let token = tokens[index]
        switch token.kind {
        case .null: return .null
        case .bool: return .bool(token.payload != 0)
        case .int: return .int(token.payload)
        case .double: return .double(Double(bitPattern: UInt64(bitPattern: token.payload)))
        case .string: return .string(string(index)!)
        case .array:
            var items: [JSON] = []
            items.reserveCapacity(Int(token.length))
            for i in elements(index) { items.append(json(i)) }
            return .array(items)
        case .object:
            var pairs: [(key: String, value: JSON)] = []
            pairs.reserveCapacity(Int(token.length))
            for k in keys(index) { pairs.append((string(k)!, json(k + 1))) }
            return .object(pairs)
        }
    }
}

/// Makes a tape from bytes: a recursive-descent parser that writes tokens instead of values.
private struct TapeParser {
    let bytes: UnsafeBufferPointer<UInt8>
    var tokens: [JSONTape.Token]
    let maxValues: Int
    var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>, tokens: [JSONTape.Token], maxValues: Int) {
        self.bytes = bytes
        self.tokens = tokens
        self.maxValues = maxValues
    }

    func fail(_ reason: String) -> JSONParseError { JSONParseError(offset: index, reason: reason) }

    mutating func parseDocument() throws(JSONParseError) {
        skipWhitespace()
        try parseValue(depth: 0)
        skipWhitespace()
        guard index == bytes.count else { throw fail("unexpected data after the document") }
    }

    @inline(__always)
    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    @inline(__always)
    mutating func append(_ kind: JSONTape.Kind, start: Int, length: Int = 0, payload: Int64 = 0, escaped: Bool = false)
    {
        tokens.append(
            JSONTape.Token(
                kind: kind, escaped: escaped, start: UInt32(truncatingIfNeeded: start),
                length: UInt32(truncatingIfNeeded: length),
                next: UInt32(truncatingIfNeeded: tokens.count + 1), payload: payload))
    }

    mutating func parseValue(depth: Int) throws(JSONParseError) {
        guard depth < JSON.maximumDepth else { throw fail("nesting deeper than \(JSON.maximumDepth)") }
        guard tokens.count < maxValues else { throw fail(JSONTape.tooManyValues) }  // keys are counted with their value
        guard index < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"): try parseObject(depth: depth)
        case UInt8(ascii: "["): try parseArray(depth: depth)
        case UInt8(ascii: "\""): try parseString()
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            append(.bool, start: index - 4, payload: 1)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            append(.bool, start: index - 5, payload: 0)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            append(.null, start: index - 4)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try parseNumber()
        default: throw fail("unexpected character")
        }
    }

    mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw fail("unexpected end of input") }
        let matches = literal.withUTF8Buffer { buffer in buffer.elementsEqual(bytes[index..<index + count]) }
        guard matches else { throw fail("invalid literal") }
        index += count
    }

    mutating func parseObject(depth: Int) throws(JSONParseError) {
        let object = tokens.count
        append(.object, start: index)
        index += 1
        var count = 0
        // Keys seen, once the object is too large to compare each new key with the earlier ones.
        var seen: Set<String>?
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let keyStart = index
            let key = tokens.count
            try parseString()
            if try isDuplicate(key, firstKey: object + 1, count: count, seen: &seen) {
                index = keyStart
                throw fail("duplicate key")
            }
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            index += 1
            skipWhitespace()
            try parseValue(depth: depth + 1)
            count += 1
            skipWhitespace()
            guard index < bytes.count else { throw fail("unexpected end of input") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            if bytes[index] == UInt8(ascii: "}") {
                index += 1
                tokens[object].length = UInt32(count)
                tokens[object].next = UInt32(tokens.count)
                return
            }
            throw fail("expected ',' or '}'")
        }
    }

    /// Whether the key at token `key` equals one of the `count` keys before it in its object.
    mutating func isDuplicate(_ key: Int, firstKey: Int, count: Int, seen: inout Set<String>?) throws(JSONParseError)
        -> Bool
    {
        if count >= 16 {
            if seen == nil {
                var keys = Set<String>()
                var k = firstKey
                for _ in 0..<count {
                    keys.insert(try text(k))
                    k = Int(tokens[k + 1].next)
                }
                seen = keys
            }
            return !seen!.insert(try text(key)).inserted
        }
        let new = tokens[key]
        var k = firstKey
        for _ in 0..<count {
            let old = tokens[k]
            if old.escaped || new.escaped {
                if try text(k) == text(key) { return true }
            } else if old.length == new.length
                && bytes[Int(old.start)..<Int(old.start + old.length)].elementsEqual(
                    bytes[Int(new.start)..<Int(new.start + new.length)])
            {
                return true
            }
            k = Int(tokens[k + 1].next)
        }
        return false
    }

    /// The text of the string token `k`.
    func text(_ k: Int) throws(JSONParseError) -> String {
        let token = tokens[k]
        if token.escaped {
            return String(
                decoding: try Self.unescape(bytes, from: Int(token.start), to: Int(token.start + token.length)),
                as: UTF8.self)
        }
        return String(
            decoding: UnsafeBufferPointer(rebasing: bytes[Int(token.start)..<Int(token.start + token.length)]),
            as: UTF8.self)
    }

    mutating func parseArray(depth: Int) throws(JSONParseError) {
        let array = tokens.count
        append(.array, start: index)
        index += 1
        var count = 0
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            try parseValue(depth: depth + 1)
            count += 1
            skipWhitespace()
            guard index < bytes.count else { throw fail("unexpected end of input") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            if bytes[index] == UInt8(ascii: "]") {
                index += 1
                tokens[array].length = UInt32(count)
                tokens[array].next = UInt32(tokens.count)
                return
            }
            throw fail("expected ',' or ']'")
        }
    }

    mutating func parseString() throws(JSONParseError) {
        index += 1  // opening quote
        let start = index
        var escaped = false
        var ascii = true
        while index < bytes.count {
            let c = bytes[index]
            if c == UInt8(ascii: "\"") { break }
            if c < 0x20 { throw fail("control character in string") }
            if c == UInt8(ascii: "\\") {
                escaped = true
                index += 2  // the escape's first character; \u digits are checked below
                continue
            }
            if c >= 0x80 { ascii = false }
            index += 1
        }
        guard index < bytes.count else { throw fail("unterminated string") }
        let end = index
        if escaped {
            // Checks escapes and surrogates, and the UTF-8 of the text between them.
            do {
                _ = try Self.unescape(bytes, from: start, to: end)
            } catch {
                throw JSONParseError(offset: start + error.offset, reason: error.reason)
            }
        } else if !ascii, !Self.isValidUTF8(bytes, from: start, to: end) {
            throw JSONParseError(offset: start, reason: "invalid UTF-8 in string")
        }
        index += 1  // closing quote
        append(.string, start: start, length: end - start, escaped: escaped)
    }

    /// The bytes of a string's text with escapes resolved, checked. Errors carry the offset from `start`.
    static func unescape(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) throws(JSONParseError)
        -> [UInt8]
    {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(end - start)
        var index = start
        func fail(_ reason: String) -> JSONParseError { JSONParseError(offset: index - start, reason: reason) }
        func hex4() throws(JSONParseError) -> UInt32 {
            guard index + 4 <= end else { throw fail("invalid \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[index]
                let digit: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
                default: throw fail("invalid \\u escape")
                }
                value = value << 4 | digit
                index += 1
            }
            return value
        }
        while index < end {
            let c = bytes[index]
            if c != UInt8(ascii: "\\") {
                buffer.append(c)
                index += 1
                continue
            }
            index += 1
            guard index < end else { throw fail("invalid escape") }
            let e = bytes[index]
            index += 1
            switch e {
            case UInt8(ascii: "\""): buffer.append(0x22)
            case UInt8(ascii: "\\"): buffer.append(0x5C)
            case UInt8(ascii: "/"): buffer.append(0x2F)
            case UInt8(ascii: "b"): buffer.append(0x08)
            case UInt8(ascii: "f"): buffer.append(0x0C)
            case UInt8(ascii: "n"): buffer.append(0x0A)
            case UInt8(ascii: "r"): buffer.append(0x0D)
            case UInt8(ascii: "t"): buffer.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    guard index + 2 <= end, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                    else { throw fail("unpaired surrogate") }
                    index += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw fail("unpaired surrogate")
                }
                guard let unicode = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
                UTF8.encode(unicode) { buffer.append($0) }
            default:
                throw fail("invalid escape")
            }
        }
        guard buffer.withUnsafeBufferPointer({ isValidUTF8($0, from: 0, to: $0.count) }) else {
            throw JSONParseError(offset: 0, reason: "invalid UTF-8 in string")
        }
        return buffer
    }

    /// Whether `bytes[from..<to]` is well-formed UTF-8 (no overlong forms, surrogates or values past U+10FFFF).
    static func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>, from: Int, to end: Int) -> Bool {
        var i = from
        while i < end {
            let b0 = bytes[i]
            if b0 < 0x80 {
                i += 1
                continue
            }
            func continuation(_ at: Int) -> Bool { at < end && bytes[at] & 0xC0 == 0x80 }
            switch b0 {
            case 0xC2...0xDF:
                guard continuation(i + 1) else { return false }
                i += 2
            case 0xE0...0xEF:
                guard i + 2 < end, continuation(i + 1), continuation(i + 2) else { return false }
                let b1 = bytes[i + 1]
                if b0 == 0xE0 && b1 < 0xA0 { return false }  // overlong
                if b0 == 0xED && b1 >= 0xA0 { return false }  // surrogate
                i += 3
            case 0xF0...0xF4:
                guard i + 3 < end, continuation(i + 1), continuation(i + 2), continuation(i + 3) else { return false }
                let b1 = bytes[i + 1]
                if b0 == 0xF0 && b1 < 0x90 { return false }  // overlong
                if b0 == 0xF4 && b1 >= 0x90 { return false }  // past U+10FFFF
                i += 4
            default:
                return false
            }
        }
        return true
    }

    mutating func parseNumber() throws(JSONParseError) {
        let start = index
        var isInteger = true
        var negative = false
        if bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        guard index < bytes.count else { throw fail("unexpected end of input") }
        // The magnitude, while it fits; integers beyond Int64 are refused.
        var magnitude: UInt64 = 0
        var overflow = false
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else if (UInt8(ascii: "1")...UInt8(ascii: "9")).contains(bytes[index]) {
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(UInt64(bytes[index] - UInt8(ascii: "0")))
                overflow = overflow || o1 || o2
                magnitude = sum
                index += 1
            }
        } else {
            throw fail("invalid number")
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            let digits = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            guard index > digits else { throw fail("invalid number") }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            let digits = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            guard index > digits else { throw fail("invalid number") }
        }
        if isInteger {
            let limit: UInt64 = negative ? UInt64(Int64.max) + 1 : UInt64(Int64.max)
            guard !overflow, magnitude <= limit else {
                index = start
                throw fail("integer out of range")
            }
            let value = negative ? Int64(truncatingIfNeeded: 0 &- magnitude) : Int64(magnitude)
            append(.int, start: start, length: index - start, payload: value)
            return
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else {
            index = start
            throw fail("number out of range")
        }
        append(.double, start: start, length: index - start, payload: Int64(bitPattern: value.bitPattern))
    }
}
