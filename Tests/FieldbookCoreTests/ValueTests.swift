import FieldbookCore
import FieldbookJSON
import FieldbookTesting
import Testing

@Suite("Values and fields", .tags(.core))
struct ValueTests {
    let schema: Schema = try! Schema(
        json: #"""
            {"schema": "t", "version": 1, "entities": [{"name": "e", "fields": [
              {"name": "title", "type": "text", "required": true, "maxLength": 5, "policy": "lww"},
              {"name": "n", "type": "integer", "policy": "counter"},
              {"name": "r", "type": "real", "policy": "lww"},
              {"name": "d", "type": "date", "policy": "max"},
              {"name": "ts", "type": "timestamp", "policy": "lww"},
              {"name": "k", "type": "enum", "values": ["a", "b"], "policy": "manual"},
              {"name": "ref", "type": "reference", "entity": "e", "policy": "lww"},
              {"name": "tags", "type": "set", "maxLength": 3, "policy": "union"}
            ]}]}
            """#)

    func field(_ name: String) -> Field { schema.entity("e")!.field(name)! }

    func problem(_ name: String, _ value: Value) -> ValueProblem.Kind? {
        do {
            _ = try field(name).normalize(value)
            return nil
        } catch {
            return error.kind
        }
    }

    @Test("maxLength counts characters, so five Chinese characters fit in five")
    func maxLengthCountsCharacters() throws {
        #expect(try field("title").normalize("整改措施表") == "整改措施表")
        #expect(problem("title", "整改措施表格") == .tooLong)
        #expect(problem("title", "abcdef") == .tooLong)
        #expect(problem("tags", .set(["abcd"])) == .tooLong)
    }

    @Test("each kind of problem")
    func problems() {
        #expect(problem("title", .null) == .required)
        #expect(problem("title", .integer(1)) == .wrongType)
        #expect(problem("n", .text("1")) == .wrongType)
        #expect(problem("d", "2021-02-29") == .badFormat)
        #expect(problem("d", "2021-2-1") == .badFormat)
        #expect(problem("ts", "2021-11-16 09:30:00") == .badFormat)
        #expect(problem("ts", "2021-11-16T09:30:00.0001Z") == .badFormat)
        #expect(problem("k", "c") == .notAllowed)
        #expect(problem("ref", "not-a-uuid") == .badFormat)
        #expect(problem("r", .real(.nan)) == .badFormat)
        #expect(problem("d", "2024-02-29") == nil)
        #expect(problem("n", .null) == nil)
    }

    @Test("normal forms: reals, sets, timestamps, ids")
    func normalForms() throws {
        #expect(try field("r").normalize(.integer(3)) == .real(3))
        #expect(try field("tags").normalize(.textSet(["b", "a", "b"])) == .textSet(["a", "b"]))
        #expect(try field("ts").normalize("2021-11-16T09:30:00Z") == "2021-11-16T09:30:00.000Z")
        #expect(try field("ts").normalize("2021-11-16T09:30:00.5Z") == "2021-11-16T09:30:00.500Z")
        #expect(
            try field("ref").normalize("0190B4B6-1C2D-7ABC-8DEF-0123456789AB") == "0190b4b6-1c2d-7abc-8def-0123456789ab"
        )
    }

    @Test(
        "timestamps from milliseconds",
        arguments: [
            (Int64(0), "1970-01-01T00:00:00.000Z"),
            (Int64(1_637_055_000_123), "2021-11-16T09:30:00.123Z"),
            (Int64(951_782_400_000), "2000-02-29T00:00:00.000Z"),
            (Int64(-1), "1969-12-31T23:59:59.999Z"),
        ])
    func timestampText(ms: Int64, text: String) {
        #expect(CalendarText.timestamp(millisecondsSince1970: ms) == text)
    }
}

@Suite("JSON", .tags(.core))
struct JSONTests {
    @Test("round-trips Chinese text, escapes and exact integers byte for byte")
    func roundTrip() throws {
        let text =
            #"{"名称":"新度镇社会工作服务站","n":9007199254740993,"r":0.1,"e":"a\"b\\c\n\u0001","l":[true,false,null],"o":{}}"#
        let json = try JSON(parsing: text)
        #expect(json["n"] == .int(9_007_199_254_740_993))
        #expect(json["名称"] == .string("新度镇社会工作服务站"))
        #expect(json.serialized == text)
    }

    @Test("surrogate pairs decode to one character")
    func surrogates() throws {
        #expect(try JSON(parsing: #""\ud83d\ude00""#) == .string("😀"))
        #expect(throws: JSONParseError.self) { try JSON(parsing: #""\ud83d""#) }
    }

    @Test(
        "refuses what is not strict JSON",
        arguments: [
            "", "{", "[1,]", "{\"a\":1,\"a\":2}", "01", "1.", "-", "tru", "\"\u{01}\"", "[1] x", "{'a':1}",
            "99999999999999999999", "1e999", "\"\\x\"",
        ])
    func refuses(text: String) {
        #expect(throws: JSONParseError.self) { try JSON(parsing: text) }
    }

    @Test("refuses invalid UTF-8 and deep nesting")
    func hostile() {
        #expect(throws: JSONParseError.self) { try JSON(parsing: [0x22, 0xFF, 0xFE, 0x22]) }
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: JSONParseError.self) { try JSON(parsing: deep) }
    }

    @Test(
        "strings of every kind of character, at every offset: text reads back, a raw control character, quote or bad byte is refused"
    )
    func stringBytes() throws {
        // Random text of ASCII, Chinese, emoji, escapes and control characters, after 0–7 bytes of
        // padding (a parser that reads several bytes at a time must find each one wherever it lies).
        let pieces: [[UInt8]] = [
            "a", "Z", "0", " ", "~", "\u{7F}", "é", "巡察", "👩🏽‍⚕️", "\"", "\\", "\n", "\u{01}", "\u{1F}",
        ].map { Array($0.utf8) }
        var generator = SystemRandomNumberGenerator()
        for round in 0..<3000 {
            var text: [UInt8] = []
            for _ in 0..<Int.random(in: 0...40, using: &generator) { text += pieces.randomElement(using: &generator)! }
            let padding = [UInt8](repeating: UInt8(ascii: " "), count: round % 8)
            let string = String(decoding: text, as: UTF8.self)
            var escaped: [UInt8] = []
            JSON.string(string).write(to: &escaped)
            #expect(try JSON(parsing: padding + escaped) == .string(string), "\(escaped)")

            // The same text with one byte put raw into it: a control character, a quote (it ends the
            // string early), or a byte that is not UTF-8.
            let bad: [UInt8] = [0x00, 0x01, 0x0A, 0x1F, 0x22, 0xFF, 0xC0, 0x80]
            let at = Int.random(in: 0...text.count, using: &generator)
            var raw = escaped
            raw.insert(bad.randomElement(using: &generator)!, at: 1 + plainPrefix(escaped, upTo: at))
            #expect(throws: JSONParseError.self, "\(raw)") { try JSON(parsing: padding + raw) }
        }
    }

    /// The length of the longest prefix of a JSON string's content (after its opening quote),
    /// at most `limit` bytes, that does not cut an escape or a character in two.
    func plainPrefix(_ escaped: [UInt8], upTo limit: Int) -> Int {
        var n = 0
        var i = 1
        while i < escaped.count - 1 {
            let c = escaped[i]
            let size =
                c == UInt8(ascii: "\\")
                ? (escaped[i + 1] == UInt8(ascii: "u") ? 6 : 2) : c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4
            if n + size > limit { break }
            n += size
            i += size
        }
        return n
    }

    @Test("reals keep a fraction so they read back as reals")
    func reals() throws {
        #expect(JSON.double(3).serialized == "3.0")
        #expect(try JSON(parsing: "3.0") == .double(3))
        #expect(try JSON(parsing: "3") == .int(3))
    }
}
