import FieldbookCore
import FieldbookSchemas
import FieldbookServer
import FieldbookServerTesting
import FieldbookTesting

/// The bundled inspection schema, which the sync suites run on.
let schema = try! Schema(json: BundledSchemas.inspection)

/// ``FieldbookServerTesting/makeStorage(_:_:schema:)`` on the bundled schema.
func makeStorage(_ dir: TemporaryDirectory, _ backend: Backend) async throws -> any SyncStorage {
    try await makeStorage(dir, backend, schema: schema)
}

/// The references in `records` that name a record it does not hold, in the bundled schema.
func danglingReferences(_ records: [String: [String: [String: Value]]]) -> [String] {
    danglingReferences(records, in: schema)
}
