package import FieldbookCore
import FieldbookSync

/// A server store opened with a newer version of its schema: both stores take it only if it is a
/// safe evolution of the one they hold (``Schema/evolutionProblems(from:)``, the rules a device's
/// store follows), and refuse to start otherwise, changing nothing.
package enum SchemaUpgrade {
    /// Why `schema` cannot replace the stored schema (`storedJSON`, the text the store keeps), or nil.
    package static func refusal(storedJSON: String?, by schema: Schema) -> String? {
        guard let storedJSON else { return "the database's schema is missing" }
        let stored: Schema
        do {
            stored = try Schema(json: storedJSON)
        } catch {
            return "the database's schema does not load: \(error)"
        }
        let problems = schema.evolutionProblems(from: stored)
        guard !problems.isEmpty else { return nil }
        return "schema version \(schema.version) cannot replace version \(stored.version) that the database holds; "
            + "nothing was changed:\n  " + problems.joined(separator: "\n  ")
    }
}
