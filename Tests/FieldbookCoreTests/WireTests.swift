import FieldbookCore
import FieldbookJSON
import FieldbookSchemas
import FieldbookSync
import FieldbookTesting
import Foundation
import Testing

/// The byte-level writers and the tape reader against the JSON tree forms they replace.
@Suite("Wire: messages written as bytes and read from a tape", .tags(.core))
struct WireTests {
    let schema = try! Schema(json: BundledSchemas.inspection)
    let device = "018f0000-0000-7000-8000-00000000000a"
    let other = "018f0000-0000-7000-8000-00000000000b"
    let record = "018f0000-0000-7000-8000-000000000001"

    /// Changes with every field change form, Chinese text and characters that must be escaped.
    func changes(origin: Bool) -> [Change] {
        func change(_ seq: Int64, _ entity: String, _ op: ChangeOperation, _ fields: [FieldChange]) -> Change {
            Change(
                sequence: seq, device: origin ? other : device, entity: entity, recordID: record, operation: op,
                timestamp: HybridTimestamp(millis: 1_700_000_000_000 + UInt64(seq), counter: 3), base: seq - 1,
                fields: fields, serverSequence: origin ? 100 + seq : nil, author: origin ? "王芳 \"组长\"\n" : nil)
        }
        return [
            change(
                1, "site", .insert,
                [
                    FieldChange(field: "name", kind: .set("新度镇敬老院\\「一」\u{1}")),
                    FieldChange(field: "kind", kind: .set("elderly_home")),
                    FieldChange(field: "beds_total", kind: .set(120), observedAt: "2021-09-02"),
                    FieldChange(field: "observed_on", kind: .set("2021-09-02")),
                    FieldChange(field: "tags", kind: .set(.set(["公建民营", "消防", "😀"]))),
                ]),
            change(
                2, "site", .update,
                [
                    FieldChange(field: "illegal_graves_found", kind: .add(-3)),
                    FieldChange(field: "tags", kind: .members(added: ["示范"], removed: ["消防"])),
                ]),
            change(
                3, "finding", .insert,
                [
                    FieldChange(field: "title", kind: .set("养老院“六有”标准未达标")),
                    FieldChange(field: "status", kind: .set("in_progress"), epoch: 2),
                    FieldChange(field: "long_term", kind: .set(true)),
                ]),
            change(4, "visit", .update, [FieldChange(field: "penalty_yuan", kind: .set(0.1))]),
            change(5, "finding", .delete, []),
        ]
    }

    func bytes(_ write: (inout [UInt8]) -> Void) -> [UInt8] {
        var out: [UInt8] = []
        write(&out)
        return out
    }

    @Test("a push request: the bytes are the tree's serialization and read back equal")
    func push() throws {
        let request = PushRequest(schema: SchemaVersion(schema), device: device, changes: changes(origin: false))
        let written = bytes { request.encode(to: &$0) }
        #expect(written == Array(request.json.serialized.utf8))
        #expect(try PushRequest(utf8: written, schema: schema) == request)
        #expect(try PushRequest(json: request.json, schema: schema) == request)
    }

    @Test("a pull response: the bytes are the tree's serialization and read back equal")
    func pull() throws {
        let response = PullResponse(changes: changes(origin: true), cursor: 105, more: true)
        let written = bytes { response.encode(to: &$0) }
        #expect(written == Array(response.json.serialized.utf8))
        #expect(try PullResponse(utf8: written, schema: schema) == response)
        let empty = PullResponse(changes: [], cursor: 7, more: false)
        #expect(bytes { empty.encode(to: &$0) } == Array(empty.json.serialized.utf8))
    }

    @Test("device names in a push and a pull page: bytes as the tree's, Chinese byte for byte; a bad name is refused")
    func deviceNames() throws {
        let push = PushRequest(
            schema: SchemaVersion(schema), device: device, changes: changes(origin: false), deviceName: "李明的手机")
        let pushed = bytes { push.encode(to: &$0) }
        #expect(pushed == Array(push.json.serialized.utf8))
        #expect(try PushRequest(utf8: pushed, schema: schema) == push)
        #expect(String(decoding: pushed, as: UTF8.self).contains(#""device_name":"李明的手机""#))
        let names = [device: "李明的手机", "018f0000-0000-7000-8000-0000000000bb": "办公室 🖥"]
        let page = PullResponse(changes: changes(origin: true), cursor: 105, more: true, deviceNames: names)
        let paged = bytes { page.encode(to: &$0) }
        #expect(paged == Array(page.json.serialized.utf8))
        #expect(try PullResponse(utf8: paged, schema: schema).deviceNames == names)
        // A server that sends none: an empty map, and no member.
        let none = PullResponse(changes: [], cursor: 7, more: false)
        #expect(!String(decoding: bytes { none.encode(to: &$0) }, as: UTF8.self).contains("devices"))
        for bad in [
            #""device_name":7"#, #""device_name":"\#(String(repeating: "名", count: 101))""#,
            #""device_name":"a\u0007b""#,
        ] {
            let text = push.json.serialized.replacingOccurrences(of: #""device_name":"李明的手机""#, with: bad)
            #expect(throws: WireError.self) { try PushRequest(utf8: Array(text.utf8), schema: schema) }
        }
        #expect(
            try PushRequest(
                utf8: Array(
                    push.json.serialized.replacingOccurrences(of: "李明的手机", with: String(repeating: "名", count: 100))
                        .utf8), schema: schema
            ).deviceName?.count == 100)
    }

    @Test(
        "the server identity in requests, answers and the server_changed refusal: bytes as the tree's, read back equal")
    func serverIdentity() throws {
        let server = "7d1f0000-0000-4000-8000-0000000000ff"
        let push = PushRequest(
            schema: SchemaVersion(schema), device: device, changes: changes(origin: false), server: server)
        let pushed = bytes { push.encode(to: &$0) }
        #expect(pushed == Array(push.json.serialized.utf8))
        #expect(try PushRequest(utf8: pushed, schema: schema) == push)
        let answer = PushResponse(assigned: [.init(sequence: 1, serverSequence: 9)], server: server)
        let answered = bytes { answer.encode(to: &$0) }
        #expect(answered == Array(answer.json.serialized.utf8))
        #expect(try PushResponse(utf8: answered) == answer)
        let page = PullResponse(changes: changes(origin: true), cursor: 105, more: true, server: server)
        let paged = bytes { page.encode(to: &$0) }
        #expect(paged == Array(page.json.serialized.utf8))
        #expect(try PullResponse(utf8: paged, schema: schema) == page)
        let pull = PullRequest(schema: SchemaVersion(schema), device: device, cursor: 3, limit: 10, server: server)
        #expect(try PullRequest(json: pull.json, schema: schema) == pull)
        // Upper case reads as the canonical lower case; anything but a UUID is refused.
        var upper = pull.json.serialized
        upper = upper.replacingOccurrences(of: server, with: server.uppercased())
        #expect(try PullRequest(utf8: Array(upper.utf8), schema: schema).server == server)
        for bad in [#""server":7"#, #""server":"x""#, #""server":null"#] {
            let text = pull.json.serialized.replacingOccurrences(of: #""server":"\#(server)""#, with: bad)
            #expect(throws: WireError(.badMessage, "'server' must be a server identity, a UUID")) {
                try PullRequest(utf8: Array(text.utf8), schema: schema)
            }
        }
        let refusal = WireError(.serverChanged, "restored", serverChanged: .init(identity: server, acknowledged: 17))
        #expect(WireError(json: try JSON(parsing: refusal.json.serialized)) == refusal)
        #expect(
            WireError(json: try JSON(parsing: WireError(.sequenceGap, "gap").json.serialized))?.serverChanged == nil)
    }

    @Test("a pull page whose changes alternate between devices and authors reads each one's own")
    func pullNames() throws {
        // Runs of one device and author, then another, then back; an author missing; a device in upper case.
        let origins: [(device: String, author: String?)] = [
            (other, "王芳"), (other, "王芳"), (device, "李娜"), (device, "王芳"), (other, nil), (other, "李娜"),
            (other.uppercased(), "李娜"), (device, "李娜"),
        ]
        let changes = origins.enumerated().map { n, origin in
            Change(
                sequence: Int64(n + 1), device: origin.device, entity: "site", recordID: record, operation: .update,
                timestamp: HybridTimestamp(millis: 1_700_000_000_000, counter: UInt16(n)), base: 0,
                fields: [FieldChange(field: "town", kind: .set(.text("镇\(n)")))], serverSequence: Int64(n + 1),
                author: origin.author)
        }
        let read = try PullResponse(
            utf8: bytes { PullResponse(changes: changes, cursor: 8, more: false).encode(to: &$0) }, schema: schema)
        #expect(read.changes.map(\.device) == origins.map { $0.device.lowercased() })
        #expect(read.changes.map(\.author) == origins.map(\.author))
    }

    @Test("a change spliced from its stored fields text is the change written whole")
    func splice() throws {
        for change in changes(origin: true) {
            let stored = bytes { FieldChange.encode(change.fields, to: &$0) }
            let spliced = bytes { out in
                Change.encodeWire(
                    to: &out, sequence: change.sequence, entity: .string(change.entity),
                    recordID: .string(change.recordID),
                    operation: change.operation, hlc: Int64(bitPattern: change.timestamp.rawValue), base: change.base,
                    fields: { $0.append(contentsOf: stored) },
                    origin: (.string(change.device), change.serverSequence, change.author.map(WireText.string)))
            }
            #expect(spliced == Array(change.wireJSON(withOrigin: true).serialized.utf8))
            // The same from UTF-8 bytes, as read from a database row.
            let texts = [change.entity, change.recordID, change.device, change.author ?? ""].map { Array($0.utf8) }
            let fromBytes = bytes { out in
                texts[0].withUnsafeBufferPointer { entity in
                    texts[1].withUnsafeBufferPointer { record in
                        texts[2].withUnsafeBufferPointer { device in
                            texts[3].withUnsafeBufferPointer { author in
                                Change.encodeWire(
                                    to: &out, sequence: change.sequence, entity: .utf8(entity), recordID: .utf8(record),
                                    operation: change.operation, hlc: Int64(bitPattern: change.timestamp.rawValue),
                                    base: change.base, fields: { $0.append(contentsOf: stored) },
                                    origin: (
                                        .utf8(device), change.serverSequence, change.author == nil ? nil : .utf8(author)
                                    ))
                            }
                        }
                    }
                }
            }
            #expect(fromBytes == spliced)
            let entity = schema.entity(change.entity)!
            #expect(try FieldChange.decode(utf8: stored, entity: entity) == change.fields)
        }
    }

    @Test("push and pull requests and a push response read back equal")
    func small() throws {
        let pull = PullRequest(schema: SchemaVersion(schema), device: device, cursor: 41, limit: 1000)
        #expect(bytes { pull.encode(to: &$0) } == Array(pull.json.serialized.utf8))
        #expect(try PullRequest(utf8: bytes { pull.encode(to: &$0) }, schema: schema) == pull)
        let answer = PushResponse(assigned: [
            .init(sequence: 1, serverSequence: 9), .init(sequence: 2, serverSequence: 12),
        ])
        #expect(bytes { answer.encode(to: &$0) } == Array(answer.json.serialized.utf8))
        #expect(try PushResponse(utf8: bytes { answer.encode(to: &$0) }) == answer)
    }

    @Test("a reader accepts any valid JSON: whitespace, member order, escapes")
    func anyValidJSON() throws {
        let text = """
            { "changes" : [ { "fields" : { "town" : "城关镇", "kind" : "cemetery", "n\\u0061me" : "\\u65b0\\u5ea6\\u9547" },
              "base" : 0 , "hlc" : 1 , "op" : "insert" , "id" : "018F0000-0000-7000-8000-000000000001",
              "entity" : "s\\u0069te" , "seq" : 1 } ] ,
              "device" : "018f0000-0000-7000-8000-00000000000a", "schema": {"version": \(schema.version), "name": "inspection"},
              "protocol" : 1 }
            """
        let request = try PushRequest(utf8: Array(text.utf8), schema: schema)
        #expect(request.changes.count == 1)
        #expect(request.changes[0].entity == "site")
        #expect(request.changes[0].recordID == record)
        // Read from members in the reverse of the order peers write them.
        #expect(request.changes[0].sequence == 1)
        #expect(request.changes[0].timestamp.rawValue == 1)
        #expect(request.changes[0].base == 0)
        #expect(request.changes[0].operation == .insert)
        #expect(
            request.changes[0].fields == [
                FieldChange(field: "town", kind: .set("城关镇")), FieldChange(field: "kind", kind: .set("cemetery")),
                FieldChange(field: "name", kind: .set("新度镇")),
            ])
    }

    @Test(
        "a field name that is a prefix, an extension or a near miss of a field's is unknown",
        arguments: ["nam", "names", "nbme", "Name", ""])
    func nearMissField(name: String) {
        let text = """
            {"protocol":1,"schema":{"name":"inspection","version":\(schema.version)},"device":"018f0000-0000-7000-8000-00000000000a",
             "changes":[{"seq":1,"entity":"site","id":"018f0000-0000-7000-8000-000000000001","op":"update","hlc":1,"base":0,
             "fields":{"kind":"cemetery","\(name)":"x"}}]}
            """
        do {
            _ = try PushRequest(utf8: Array(text.utf8), schema: schema)
            Issue.record("'\(name)' was taken for a field")
        } catch {
            #expect(error.code == .unknownField)
        }
    }

    @Test(
        "refusals keep their codes",
        arguments: [
            (#"{"protocol":1,"#, "malformed_json"),
            (#"{"protocol":2,"changes":[]}"#, "protocol_mismatch"),
            (
                #"{"protocol":1,"schema":{"name":"inspection","version":CURRENT},"device":"x","changes":[]}"#,
                "bad_message"
            ),
            (
                #"{"protocol":1,"schema":{"name":"inspection","version":NEXT},"device":"x","changes":[]}"#,
                "schema_ahead"
            ),
            (
                #"{"protocol":1,"schema":{"name":"inspection","version":PREVIOUS},"device":"x","changes":[]}"#,
                "schema_mismatch"
            ),
        ])
    func refusals(text: String, code: String) {
        // The bundled schema's version and the next, whatever they are.
        let text = text.replacing("CURRENT", with: "\(schema.version)").replacing("NEXT", with: "\(schema.version + 1)")
            .replacing("PREVIOUS", with: "\(schema.version - 1)")
        #expect(throws: WireError.self) { try PushRequest(utf8: Array(text.utf8), schema: schema) }
        do {
            _ = try PushRequest(utf8: Array(text.utf8), schema: schema)
        } catch {
            #expect(error.code.rawValue == code)
        }
    }
}

@Suite("Merge state: stored form", .tags(.core))
struct StoredStateTests {
    @Test("the stored form is the documented JSON, and text in that form reads back")
    func golden() throws {
        var s = Scenario()
        let insert = s.accept(
            s.change(
                deviceC, 1, t: 1, .insert, entity: "site",
                [set("name", "新度镇敬老院"), set("tags", .set(["消防", "公建民营"]))]))
        let state = s.state([insert], entity: "site")
        let stamp = #"["018f0000-0000-7000-8000-00000000000c",1,65536,0,1]"#
        let expected =
            #"{"stamps":["# + stamp + #"],"values":{},"#
            + #""reg":{"name":[[0,"新度镇敬老院",null,null]]},"mem":{"tags":{"公建民营":[[0,true]],"消防":[[0,true]]}},"#
            + #""applied":[0],"writes":[0],"deletes":[]}"#
        #expect(String(decoding: state.encoded, as: UTF8.self) == expected)
        #expect(try RecordState(encoded: Array(expected.utf8), entity: s.site) == state)
        #expect(try RecordState(json: JSON(parsing: expected), entity: s.site) == state)

        // The first form, each stamp written where it is used, as stores written before hold it.
        let first =
            #"{"values":{"name":"新度镇敬老院","tags":["公建民营","消防"]},"reg":{"name":[["#
            + stamp + #","新度镇敬老院",null,null]]},"mem":{"tags":{"公建民营":[["# + stamp + #",true]],"消防":[["# + stamp
            + #",true]]}},"applied":["# + stamp + #"],"writes":["# + stamp + #"],"deletes":[]}"#
        #expect(try RecordState(encoded: Array(first.utf8), entity: s.site) == state)

        // The second form: every field's value in "values" too.
        let second =
            #"{"stamps":["# + stamp + #"],"values":{"name":"新度镇敬老院","tags":["公建民营","消防"]},"#
            + #""reg":{"name":[[0,"新度镇敬老院",null,null]]},"mem":{"tags":{"公建民营":[[0,true]],"消防":[[0,true]]}},"#
            + #""applied":[0],"writes":[0],"deletes":[]}"#
        #expect(try RecordState(encoded: Array(second.utf8), entity: s.site) == state)
    }

    @Test("a counter's value is stored; a register's and a set's follow from their writes")
    func derivedValues() throws {
        var s = Scenario()
        let insert = s.accept(
            s.change(deviceC, 1, t: 1, .insert, entity: "site", [set("name", "公墓"), set("illegal_graves_found", 2)]))
        let a = s.accept(
            s.change(deviceA, 1, t: 2, base: 1, .update, entity: "site", [set("name", "甲"), set("tags", .set(["甲"]))]))
        let b = s.accept(
            s.change(deviceB, 1, t: 3, base: 1, .update, entity: "site", [set("name", "乙"), set("tags", .set(["乙"]))]))
        let state = s.state([insert, a, b], entity: "site")
        let stored = try JSON(parsing: state.encoded)
        #expect(stored["values"] == .object([("illegal_graves_found", .int(2))]))
        let read = try RecordState(encoded: state.encoded, entity: s.site)
        #expect(read == state)
        #expect(read.values["name"] == "乙")
        #expect(read.values["tags"] == .set(["甲", "乙"]))
    }

    @Test("a stamp index outside the table is refused")
    func badIndex() {
        let text = #"{"stamps":[],"values":{},"reg":{},"mem":{},"applied":[0],"writes":[],"deletes":[]}"#
        #expect(throws: RecordStateFormatError.self) {
            try RecordState(encoded: Array(text.utf8), entity: Scenario().site)
        }
    }

    @Test("a state with every part reads back equal and writes the same bytes")
    func everyPart() throws {
        var s = Scenario()
        let insert = s.accept(
            s.change(deviceC, 1, t: 1, .insert, [set("title", "敬老院消防通道堵塞"), set("status", "not_started", epoch: 0)]))
        let a = s.accept(
            s.change(deviceA, 1, t: 20, base: 1, [set("description", "甲"), set("status", "completed", epoch: 1)]))
        let b = s.change(deviceB, 1, t: 10, base: 1, [set("description", "乙 \"引号\"\n")])
        let d = s.change(deviceB, 2, t: 11, base: 1, .delete)
        let state = s.state([insert, a, b, d])
        let back = try RecordState(encoded: state.encoded, entity: s.finding)
        #expect(back == state)
        #expect(back.encoded == state.encoded)
        #expect(try state.encoded == Array(JSON(parsing: state.encoded).serialized.utf8))
    }
}
