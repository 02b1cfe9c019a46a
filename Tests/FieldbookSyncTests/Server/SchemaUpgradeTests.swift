import FieldbookCore
import FieldbookSchemas
import FieldbookServer
import FieldbookServerTesting
import FieldbookTesting
import Foundation
import Testing

/// The bundled schema as its next version, with `edit` applied to its text.
private func nextVersion(_ edit: (String) -> String) throws -> Schema {
    let text = String(decoding: BundledSchemas.inspection, as: UTF8.self)
    let next = edit(
        text.replacingOccurrences(of: "\"version\": \(schema.version),", with: "\"version\": \(schema.version + 1),"))
    return try Schema(json: next)
}

@Suite("A server store opened with a newer schema version", .tags(.server))
struct SchemaUpgradeTests {
    @Test(
        "a safe evolution is taken; an unsafe one is refused, listing why, and changes nothing", arguments: Backend.all)
    func upgrade(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        _ = try await makeStorage(dir, backend)
        let field = #"{"name": "started_on", "label": "开始 Started", "type": "date", "policy": "lww"},"#
        #expect(String(decoding: BundledSchemas.inspection, as: UTF8.self).contains(field))

        // Dropping a field would lose its values on the server and on every device.
        let dropped = try nextVersion { $0.replacingOccurrences(of: field, with: "") }
        let refusal = await #expect(throws: (any Error).self) { try await makeStorage(dir, backend, schema: dropped) }
        #expect("\(refusal!)".contains("inspection_round.started_on: removing a field would lose its values"))
        #expect("\(refusal!)".contains("cannot follow version \(schema.version)"))

        // Nothing was changed: the store still opens with its version, and takes a safe next one.
        _ = try await makeStorage(dir, backend)
        let added = try nextVersion {
            $0.replacingOccurrences(
                of: field,
                with: field + #"{"name": "briefed_on", "type": "date", "policy": "lww"},"#)
        }
        let upgraded = try await makeStorage(dir, backend, schema: added)
        #expect(upgraded.schema.version == schema.version + 1)
        // Opened again with the version before, which it holds, the store runs its newest.
        #expect(try await makeStorage(dir, backend).schema.version == schema.version + 1)
        #expect(try await upgraded.schemaVersions().map(\.schema.version) == [schema.version, schema.version + 1])
        // A file that says it is that earlier version but differs is refused.
        let altered = try Schema(
            json: String(decoding: BundledSchemas.inspection, as: UTF8.self).replacingOccurrences(
                of: field, with: field + #"{"name": "x", "type": "date", "policy": "lww"},"#))
        await #expect(throws: (any Error).self) { try await makeStorage(dir, backend, schema: altered) }
    }
}
