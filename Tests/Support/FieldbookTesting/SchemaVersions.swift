public import FieldbookCore
import FieldbookSchemas
import Foundation

/// The bundled schema's next version: `finding.description` renamed `details`, `finding.results`
/// retired, `finding.accepted_on` and `finding.source` (with a default) added, a status `waived`
/// between `completed` and `closed`, and an entity `acceptance` that follows its finding.
public func nextInspectionVersion() throws -> Schema {
    try Schema(json: nextInspectionVersionText())
}

/// ``nextInspectionVersion()``'s document, as a schema file holds it.
public func nextInspectionVersionText() throws -> String {
    var text = String(decoding: BundledSchemas.inspection, as: UTF8.self)
    let schema = try Schema(json: text)
    for (old, new) in [
        ("\"version\": \(schema.version),", "\"version\": \(schema.version + 1),"),
        (
            #""update": ["visit", "aspect", "category", "title", "description", "status", "results", "next_steps", "rectified_on", "long_term", "evidence"]"#,
            #""update": ["visit", "aspect", "category", "title", "details", "status", "results", "next_steps", "rectified_on", "long_term", "evidence", "accepted_on"]"#
        ),
        (
            #"{"name": "description", "label": "描述 Description", "type": "text", "maxLength": 8000, "policy": "manual"},"#,
            #"{"name": "details", "renamedFrom": "description", "label": "描述 Description", "type": "text", "maxLength": 8000, "policy": "manual"}, {"name": "accepted_on", "type": "date", "policy": "lww"}, {"name": "source", "type": "text", "default": "巡察", "policy": "lww"},"#
        ),
        (
            #"{"name": "results", "label": "现阶段成效 Results", "type": "text","#,
            #"{"name": "results", "retired": true, "label": "现阶段成效 Results", "type": "text","#
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
    ] {
        precondition(text.contains(old), "the bundled schema changed: \(old)")
        text = text.replacingOccurrences(of: old, with: new)
    }
    return text
}
