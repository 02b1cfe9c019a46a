public import FieldbookCore
import FieldbookSchemas

extension Schema {
    /// The inspection ledger (`Schemas/inspection.json`, bundled in the binary): sites, inspection
    /// rounds, visits, findings, rectification measures, progress notes and accountability actions —
    /// the schema the models of this module (``Site``, ``Finding``, …) are written for.
    ///
    /// ```swift
    /// let store = try Store(path: "inspector.sqlite", schema: .inspection)
    /// ```
    public static let inspection: Schema = {
        do {
            return try Schema(json: BundledSchemas.inspection)
        } catch {
            // The file is checked by the tests of every build; a failure here is a broken build.
            fatalError("the bundled inspection schema does not load: \(error)")
        }
    }()
}
