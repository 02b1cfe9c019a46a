import FieldbookCore
import FieldbookSchemas
import Foundation

/// Three versions of the bundled inspection schema, numbered 1 to 3, for
/// `fieldbook-bench sync --device-schema-version K`: what a bureau's form might go through.
///
/// - Version 1: the bundled schema as it is (renumbered).
/// - Version 2: the finding's `responsible_person` renamed `person_in_charge`, a new field
///   `source` with a default (巡察), `results` retired.
/// - Version 3: a new optional date `accepted_on`, the status `waived`, a new entity `acceptance`.
///
/// A device of version 3 writing findings writes all three kinds of difference a page for version 1
/// translates: a renamed field (in every update), fields version 1 lacks (in every insert).
enum VersionFamily {
    /// The document of each version, oldest first.
    static func documents() -> [String] {
        let bundled = String(decoding: BundledSchemas.inspection, as: UTF8.self)
        let bundledVersion = (try? Schema(json: bundled).version) ?? 0
        let v1 = replacing(bundled, [("\"version\": \(bundledVersion),", "\"version\": 1,")])
        let v2 = replacing(
            v1,
            [
                ("\"version\": 1,", "\"version\": 2,"),
                (
                    #"{"name": "responsible_person", "label": "责任人 Person", "type": "text", "maxLength": 50, "policy": "lww"},"#
                        + "\n"
                        + #"        {"name": "results", "label": "现阶段成效 Results", "type": "text","#,
                    #"{"name": "person_in_charge", "renamedFrom": "responsible_person", "label": "责任人 Person", "type": "text", "maxLength": 50, "policy": "lww"},"#
                        + "\n"
                        + #"        {"name": "source", "label": "来源 Source", "type": "text", "default": "巡察", "policy": "lww"},"#
                        + "\n"
                        + #"        {"name": "results", "retired": true, "label": "现阶段成效 Results", "type": "text","#
                ),
            ])
        let v3 = replacing(
            v2,
            [
                ("\"version\": 2,", "\"version\": 3,"),
                (
                    #"{"name": "source", "label": "来源 Source","#,
                    #"{"name": "accepted_on", "label": "验收 Accepted on", "type": "date", "policy": "lww"},"#
                        + "\n"
                        + #"        {"name": "source", "label": "来源 Source","#
                ),
                (
                    #""values": ["not_started", "in_progress", "completed", "closed"],"#,
                    #""values": ["not_started", "in_progress", "completed", "closed", "waived"],"#
                ),
                (
                    #""order": ["not_started", "in_progress", "completed", "closed"], "epoch""#,
                    #""order": ["not_started", "in_progress", "completed", "waived", "closed"], "epoch""#
                ),
                (
                    "    }\n  ]\n}",
                    """
                        },
                        {"name": "acceptance", "label": "验收 Acceptance", "follows": ["finding"], "fields": [
                          {"name": "finding", "type": "reference", "entity": "finding", "required": true, "policy": "lww"},
                          {"name": "passed", "type": "boolean", "policy": "lww"}]}
                      ]
                    }
                    """
                ),
            ])
        return [v1, v2, v3]
    }

    private static func replacing(_ text: String, _ replacements: [(String, String)]) -> String {
        var text = text
        for (old, new) in replacements {
            precondition(text.contains(old), "the bundled schema changed; VersionFamily needs: \(old)")
            text = text.replacingOccurrences(of: old, with: new)
        }
        return text
    }
}
