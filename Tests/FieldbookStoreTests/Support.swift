import FieldbookCore
import FieldbookJSON
import FieldbookSchemas
import FieldbookStore
import FieldbookTesting
import Foundation
import Testing

let inspectionSchema = try! Schema(json: BundledSchemas.inspection)

/// A store on a fresh file with the inspection schema.
func makeStore(_ dir: TemporaryDirectory, name: String = "device.sqlite", configuration: Store.Configuration = .init())
    throws -> Store
{
    try Store(path: dir.path(name), schema: inspectionSchema, configuration: configuration)
}

/// Runs `body`, expecting a ``StoreError`` with `code`; returns it.
@discardableResult
func expectStoreError(_ code: StoreError.Code, _ body: () throws -> Void) -> StoreError? {
    do {
        try body()
    } catch let error as StoreError {
        if error.code != code { Issue.record("expected \(code), got \(error.code): \(error)") }
        return error
    } catch {
        Issue.record("expected StoreError \(code), got \(error)")
        return nil
    }
    Issue.record("expected StoreError \(code), nothing was thrown")
    return nil
}

/// The whole content of a store's tables and changelog, for before/after comparisons.
func contents(_ store: Store) throws -> [String] {
    var lines: [String] = []
    for entity in store.schema.entities {
        for record in try store.fetch(Query(entity.name)) { lines.append("\(entity.name) \(record.json.serialized)") }
    }
    for change in try store.pendingChanges(limit: 1_000_000) {
        lines.append("change \(change.sequence) \(change.recordID) \(change.operation) \(change.fields.count)")
    }
    return lines
}
