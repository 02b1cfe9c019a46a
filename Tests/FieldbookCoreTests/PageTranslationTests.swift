import FieldbookCore
import FieldbookJSON
import FieldbookSchemas
import FieldbookSync
import FieldbookTesting
import Foundation
import Testing

/// A page translated on its text (what a server does for a device of an earlier version) against
/// the same page decoded and translated: the device must read the same page either way.
@Suite("Wire: pages translated on their text", .tags(.core))
struct PageTranslationTests {
    let older = try! Schema(json: BundledSchemas.inspection)
    let newer = try! nextInspectionVersion()

    /// A random change of the newer version: an entity the older version lacks at times, renamed,
    /// retired and new fields, text that must be escaped, values only the newer version defines.
    func change(_ n: Int64, using rng: inout SeededGenerator) -> Change {
        let texts: [Value] = ["消防通道堵塞", "say \"hi\"\n\\back", "😀 tab\t", "", "a,b}{]["]
        let entity = ["finding", "finding", "finding", "acceptance", "site"].randomElement(using: &rng)!
        let id = "018f0000-0000-7000-8000-\(String(format: "%012d", Int.random(in: 0..<50, using: &rng)))"
        var candidates: [FieldChange]
        switch entity {
        case "finding":
            candidates = [
                FieldChange(field: "title", kind: .set(texts.randomElement(using: &rng)!)),
                FieldChange(field: "details", kind: .set(texts.randomElement(using: &rng)!)),
                FieldChange(field: "results", kind: .set(texts.randomElement(using: &rng)!)),
                FieldChange(field: "source", kind: .set("巡察")),
                FieldChange(field: "accepted_on", kind: .set("2022-06-30")),
                FieldChange(
                    field: "status", kind: .set(["completed", "waived", "closed"].randomElement(using: &rng)!),
                    epoch: Int64.random(in: 0...2, using: &rng)),
                FieldChange(field: "reopen_count", kind: .add(1)),
                FieldChange(field: "long_term", kind: .set(.boolean(Bool.random(using: &rng)))),
            ]
        case "acceptance":
            candidates = [
                FieldChange(field: "finding", kind: .set(.text(id))),
                FieldChange(field: "passed", kind: .set(.boolean(Bool.random(using: &rng)))),
            ]
        default:
            candidates = [
                FieldChange(field: "name", kind: .set(texts.randomElement(using: &rng)!)),
                FieldChange(field: "tags", kind: .members(added: ["消防"], removed: ["示范"])),
            ]
        }
        let operation = [ChangeOperation.insert, .update, .update, .delete].randomElement(using: &rng)!
        var fields =
            operation == .delete
            ? [] : Array(candidates.shuffled(using: &rng).prefix(Int.random(in: 0...candidates.count, using: &rng)))
        if operation == .insert {
            // What an insert must carry.
            let required: [String: [FieldChange]] = [
                "finding": [
                    FieldChange(field: "title", kind: .set("消防通道堵塞")),
                    FieldChange(field: "status", kind: .set("not_started"), epoch: 0),
                ],
                "site": [
                    FieldChange(field: "name", kind: .set("城关敬老院")),
                    FieldChange(field: "kind", kind: .set("elderly_home")),
                ],
                "acceptance": [FieldChange(field: "finding", kind: .set(.text(id)))],
            ]
            for field in required[entity] ?? [] where !fields.contains(where: { $0.field == field.field }) {
                fields.append(field)
            }
        }
        return Change(
            sequence: n, device: "018f0000-0000-7000-8000-00000000000a", entity: entity, recordID: id,
            operation: operation, timestamp: HybridTimestamp(millis: 1_700_000_000_000 + UInt64(n), counter: 0),
            base: n - 1, fields: fields, serverSequence: 100 + n,
            author: Bool.random(using: &rng) ? "王芳 \"组长\"" : nil)
    }

    @Test("random pages: the text translated reads as the page decoded and translated")
    func randomPages() throws {
        let translation = SchemaTranslation([older, newer])
        let onText = EncodedPageTranslation(translation)
        let reading = older.widened(by: newer) { translation.newerName(entity: $0, field: $1) }
        for seed in 1...UInt64(TestTier.cases(full: 2_000, fast: 200)) {
            var rng = SeededGenerator(seed: seed)
            let changes = (1...Int64.random(in: 1...30, using: &rng)).map { change($0, using: &rng) }
            let page = PullResponse(
                changes: changes, cursor: 100 + Int64(changes.count), more: Bool.random(using: &rng),
                server: "018f0000-0000-7000-8000-0000000000ff",
                deviceNames: ["018f0000-0000-7000-8000-00000000000a": "张伟的手机"])
            var bytes: [UInt8] = []
            page.encode(to: &bytes)
            // The newer version reads the page it was written in.
            #expect(try PullResponse(utf8: bytes, schema: newer) == page)

            var expected = page
            expected.translate(translation)
            let translated = try #require(onText.translate(bytes), "seed \(seed): the page was not translated")
            var actual = try PullResponse(utf8: translated, schema: reading)
            #expect(actual.newestSchema == nil)
            actual.newestSchema = newer.version
            #expect(actual == expected, "seed \(seed)")
            let droppedEntity = changes.contains { $0.entity == "acceptance" }
            #expect(droppedEntity == (actual.changes.count < changes.count), "seed \(seed)")
        }
    }

    @Test("a page it does not read on the text is left to be decoded, not mistranslated")
    func declined() throws {
        let onText = EncodedPageTranslation(SchemaTranslation([older, newer]))
        for text in [
            #"{"protocol":1,"changes":[],"cursor":0,"more":false,"entered":[]}"#,
            #"{"protocol":1,"changes":[],"cursor":0,"more":false,"left":[]}"#,
            #"{"protocol":1,"changes":[{"entity":"fin\u0064ing","fields":{}}],"cursor":0,"more":false}"#,
            #"{"protocol":1,"changes":[{"entity":"finding","fields":{"nonexistent":{"set":1}}}],"cursor":0,"more":false}"#,
            #"{"protocol":1,"changes":[{"entity":"unknown","fields":{}}],"cursor":0,"more":false}"#,
            #"{"protocol":1,"changes":[{"entity":"finding","fields":{"title":"#,
            #"{"protocol":1,"changes":[],"cursor":0,"more":false} trailing"#,
            "",
        ] {
            #expect(onText.translate(Array(text.utf8)) == nil, "\(text)")
        }
        // An empty page passes as it is.
        let empty = #"{"protocol":1,"changes":[],"cursor":7,"more":false}"#
        #expect(onText.translate(Array(empty.utf8)) == Array(empty.utf8))
    }
}
