import FieldbookServerTesting
import FieldbookTesting
import Testing

/// The conformance checks of ``StorageConformance`` on every server store.
@Suite("Server: every store conforms", .tags(.server))
struct StorageConformanceTests {
    @Test("conformance", arguments: Backend.all, StorageConformance.all)
    func conforms(_ backend: Backend, _ check: StorageConformance) async throws {
        let dir = TemporaryDirectory()
        try await check.run(on: try await makeStorage(dir, backend), in: dir)
    }
}
