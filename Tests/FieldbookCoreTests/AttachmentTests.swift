import FieldbookCore
import FieldbookJSON
import FieldbookTesting
import Foundation
import Testing

@Suite("Core: attachment references", .tags(.core))
struct AttachmentTests {
    static let hash = String(repeating: "ab", count: 32)

    @Test("a reference round-trips through its text, Chinese names and spaces included")
    func roundTrip() throws {
        for name in ["消防通道.jpg", "整改 报告 final.pdf", "a", String(repeating: "照", count: 85)] {
            let attachment = try Attachment(sha256: Self.hash, size: 2_621_440, mediaType: "image/jpeg", name: name)
            #expect(try Attachment(text: attachment.text) == attachment)
            #expect(attachment.text == "\(Self.hash) 2621440 image/jpeg \(name)")
        }
    }

    @Test(
        "hostile or broken references are refused, and the message never quotes them",
        arguments: [
            "\(String(repeating: "ab", count: 32)) 10 image/jpeg ../../etc/passwd",
            "\(String(repeating: "ab", count: 32)) 10 image/jpeg ..",
            "\(String(repeating: "ab", count: 32)) 10 image/jpeg a\\b.jpg",
            "\(String(repeating: "ab", count: 32)) 10 image/jpeg a\u{0}b",
            "\(String(repeating: "ab", count: 32)) 10 image/jpeg line\nbreak",
            "\(String(repeating: "ab", count: 32)) 10 image/jpeg  leading-space",
            "\(String(repeating: "ab", count: 32)) 10 image/jpeg \(String(repeating: "x", count: 256))",
            "\(String(repeating: "AB", count: 32)) 10 image/jpeg a.jpg",
            "\(String(repeating: "ab", count: 31)) 10 image/jpeg a.jpg",
            "\(String(repeating: "ab", count: 32)) -1 image/jpeg a.jpg",
            "\(String(repeating: "ab", count: 32)) 010 image/jpeg a.jpg",
            "\(String(repeating: "ab", count: 32)) 99999999999999999999 image/jpeg a.jpg",
            "\(String(repeating: "ab", count: 32)) 10 Image/JPEG a.jpg",
            "\(String(repeating: "ab", count: 32)) 10 image/jpeg;charset=x a.jpg",
            "\(String(repeating: "ab", count: 32)) 10 image a.jpg",
            "\(String(repeating: "ab", count: 32)) 10 image/jpeg",
            "",
        ])
    func refused(_ text: String) throws {
        let error = #expect(throws: ValueProblem.self) { try Attachment(text: text) }
        #expect(error?.kind == .badFormat)
        if let name = text.split(separator: " ", maxSplits: 3).dropFirst(3).first, name.count > 3 {
            #expect(!(error?.reason.contains(name) ?? true))
        }
    }

    @Test("an attachments field keeps one reference per file, sorted; an attachment field takes one")
    func fieldValues() throws {
        let schema = try Schema(
            json: #"""
                {"schema": "t", "version": 1, "entities": [{"name": "e", "fields": [
                  {"name": "one", "type": "attachment", "policy": "lww"},
                  {"name": "many", "type": "attachments", "policy": "union"}]}]}
                """#)
        let entity = try #require(schema.entity("e"))
        let other = String(repeating: "01", count: 32)
        let a = "\(Self.hash) 3 image/png b.png"
        let sameFile = "\(Self.hash) 3 image/png 另一个名字.png"
        let b = "\(other) 5 application/pdf 报告.pdf"
        let many = try entity.field("many")!.normalize(.set([a, b, sameFile]))
        #expect(many.setMembers.count == 2 && many.setMembers.first!.hasPrefix(other))
        #expect(many.attachments.map(\.sha256) == [other, Self.hash])
        #expect(try entity.field("one")!.normalize(.text(b)) == .text(b))
        #expect(throws: ValueProblem.self) { try entity.field("one")!.normalize(.text("photo.jpg")) }
        #expect(throws: ValueProblem.self) { try entity.field("many")!.normalize(.set(["photo.jpg"])) }
        // A union on attachments merges like a set; max and counter do not fit.
        let refused = try? Schema(
            json:
                #"{"schema": "t", "version": 1, "entities": [{"name": "e", "fields": [{"name": "x", "type": "attachments", "policy": "counter"}]}]}"#
        )
        #expect(refused == nil)
    }

    @Test("a media type that lies about its content is caught for the types with signatures")
    func contentSniffing() {
        let jpeg: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE1, 0, 0]
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0]
        let pdf = Array("%PDF-1.7\n".utf8)
        #expect(Attachment.contentMatches(mediaType: "image/jpeg", head: jpeg))
        #expect(!Attachment.contentMatches(mediaType: "image/jpeg", head: png))
        #expect(!Attachment.contentMatches(mediaType: "image/png", head: pdf))
        #expect(Attachment.contentMatches(mediaType: "application/pdf", head: pdf))
        #expect(!Attachment.contentMatches(mediaType: "application/pdf", head: Array("MZ\u{90}".utf8)))
        #expect(Attachment.contentMatches(mediaType: "text/plain", head: jpeg))
        #expect(Attachment.mediaType(forFileName: "消防通道.JPG") == "image/jpeg")
        #expect(Attachment.mediaType(forFileName: "README") == "application/octet-stream")
    }
}

@Suite("Core: evidence requirements", .tags(.core))
struct RequirementTests {
    static let schemaText = #"""
        {"schema": "t", "version": 1,
         "roles": [{"name": "office"}, {"name": "inspector"}],
         "entities": [{"name": "finding",
           "requires": [{"files": "evidence", "when": {"status": ["completed"]}, "roles": ["inspector"]},
                        {"files": "evidence", "when": {"status": ["closed"]}, "atLeast": 2}],
           "fields": [
             {"name": "status", "type": "enum", "values": ["open", "completed", "closed"], "policy": "lww"},
             {"name": "evidence", "type": "attachments", "policy": "union"}]}]}
        """#

    @Test(
        "a value that needs evidence is refused without it, for the roles it binds; a write that keeps the value is no step"
    )
    func refusal() throws {
        let schema = try Schema(json: Self.schemaText)
        let finding = try #require(schema.entity("finding"))
        let one = Value.set(["\(String(repeating: "ab", count: 32)) 3 image/jpeg a.jpg"])
        let two = Value.set(one.setMembers + ["\(String(repeating: "cd", count: 32)) 4 image/jpeg b.jpg"])
        func check(_ op: ChangeOperation, _ role: String?, before: [String: Value], after: [String: Value]) -> String? {
            finding.requirementRefusal(
                op, role: role, changed: Set(after.keys), before: { before[$0] },
                after: { after[$0] ?? before[$0] })?.rule
        }
        #expect(check(.insert, "inspector", before: [:], after: ["status": "completed"]) == "finding.requires")
        #expect(check(.insert, "inspector", before: [:], after: ["status": "completed", "evidence": one]) == nil)
        #expect(check(.insert, "office", before: [:], after: ["status": "completed"]) == nil)
        #expect(check(.insert, nil, before: [:], after: ["status": "completed"]) == nil)
        #expect(
            check(.update, "inspector", before: ["status": "open", "evidence": one], after: ["status": "completed"])
                == nil)
        #expect(check(.update, "inspector", before: ["status": "completed"], after: ["status": "completed"]) == nil)
        #expect(
            check(.update, "office", before: ["status": "completed", "evidence": one], after: ["status": "closed"])
                == "finding.requires")
        #expect(
            check(.update, "office", before: ["status": "completed", "evidence": two], after: ["status": "closed"])
                == nil)
        #expect(check(.update, nil, before: ["status": "open"], after: ["status": "closed", "evidence": two]) == nil)
        let message =
            finding.requirementRefusal(
                .insert, role: "inspector", changed: ["status"], before: { _ in nil },
                after: { $0 == "status" ? "completed" : nil })?.message ?? ""
        #expect(message.contains("finding.evidence") && message.contains("fieldbook attach"))
    }

    @Test("requirements are written back in the file format and read again the same; mistakes are reported")
    func loading() throws {
        let schema = try Schema(json: Self.schemaText)
        #expect(try Schema(json: Array(schema.json.serialized.utf8)) == schema)
        func issues(_ requires: String) -> [String] {
            let text = Self.schemaText.replacingOccurrences(
                of: #"[{"files": "evidence", "when": {"status": ["completed"]}, "roles": ["inspector"]},"#,
                with: "[\(requires),")
            do {
                _ = try Schema(json: text)
                return []
            } catch let error as SchemaError {
                return error.issues.map(\.description)
            } catch { return ["\(error)"] }
        }
        #expect(
            issues(#"{"files": "status", "when": {"status": ["completed"]}}"#).contains { $0.contains("attachment") })
        #expect(issues(#"{"files": "evidence", "when": {"evidence": ["x"]}}"#).contains { $0.contains("enum field") })
        #expect(issues(#"{"files": "evidence", "when": {"status": ["done"]}}"#).contains { $0.contains("'done'") })
        #expect(
            issues(#"{"files": "evidence", "when": {"status": ["closed"]}, "roles": ["boss"]}"#).contains {
                $0.contains("'boss'")
            })
        #expect(
            issues(#"{"files": "evidence", "when": {"status": ["closed"]}, "atLeast": 0}"#).contains {
                $0.contains("atLeast")
            })
    }
}
