import FieldbookCore
import FieldbookHTTP
import FieldbookInspection
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import Testing

// The code blocks of the DocC article "Getting started"
// (Sources/FieldbookStore/FieldbookStore.docc/GettingStarted.md), in order, each between the
// markers of one function: they compile with the tests, run below against a live server, and the
// first test fails if the article's copy differs from them.

private func openStore(path: String) throws -> Store {
    // sample begin
    let store = try Store(path: path, schema: .inspection)
    // sample end
    return store
}

private func writeAndRead(_ store: Store) async throws -> (site: String, finding: String, open: [Record]) {
    // sample begin
    let site = try store.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home", "town": "新度镇"])
    let finding = try await store.write { tx in
        let finding = try tx.insert(
            "finding", ["title": "消防通道堆放杂物", "site": .text(site), "deadline": "2022-06-30"])
        try tx.insert("progress_note", ["finding": .text(finding), "text": "已通知运营方限期清理"])
        return finding
    }
    let open = try store.fetch(Query("finding").filter("status", .notEqual, "completed").sorted(by: "deadline"))
    // sample end
    return (site, finding, open)
}

private func watch(_ store: Store, site: String) async throws {
    // sample begin
    for try await findings in store.observe(Query("finding").filter("site", .equal, .text(site))) {
        print(findings.count, "findings at this site")
        if !findings.isEmpty { break }
    }
    // sample end
}

private func sync(_ store: Store, server: URL, token: String) async throws -> SyncReport {
    // sample begin
    let report = try await store.sync(HTTPTransport(server: server, token: token))
    print("pushed \(report.pushed), pulled \(report.pulled), \(report.openConflicts) open conflicts")
    // sample end
    return report
}

private func settle(_ store: Store) throws {
    // sample begin
    for conflict in try store.conflicts() where conflict.field == "deadline" {
        let values = conflict.sides.map(\.value)
        print(conflict.entity, conflict.recordID, "deadline:", values)
        try store.resolve(conflict, with: .value("2022-12-31"))
    }
    // sample end
}

@Suite("The DocC article \"Getting started\"", .tags(.device))
struct GettingStartedTests {
    @Test("its code blocks are the samples compiled here, in order")
    func matches() throws {
        let samples = try CodeSamples.samples(inSource: #filePath)
        let blocks = try CodeSamples.blocks(
            inMarkdown: repositoryRoot().appendingPathComponent(
                "Sources/FieldbookStore/FieldbookStore.docc/GettingStarted.md"
            ).path)
        #expect(blocks.count == 5)
        #expect(blocks == samples)
    }

    @Test("they work: two devices write, sync, meet a conflict, and one settles it for both", arguments: Backend.all)
    func runs(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let (officeToken, inspectorToken) = (
            try await storage.createToken(name: "王芳"), try await storage.createToken(name: "李明")
        )
        try await withServer(storage: storage) { url in
            let office = try openStore(path: dir.path("office.sqlite"))
            let inspector = try openStore(path: dir.path("inspector.sqlite"))
            let (site, finding, open) = try await writeAndRead(office)
            #expect(open.map(\.id) == [finding])
            try await watch(office, site: site)
            #expect(try await sync(office, server: url, token: officeToken).pushed == 3)
            #expect(try await sync(inspector, server: url, token: inspectorToken).pulled == 3)

            // The deadline moved on both devices before either synced: a conflict on both.
            try office.update("finding", id: finding, ["deadline": "2022-09-30"])
            try inspector.update("finding", id: finding, ["deadline": "2022-08-31"])
            _ = try await sync(office, server: url, token: officeToken)
            _ = try await sync(inspector, server: url, token: inspectorToken)
            #expect(try await sync(office, server: url, token: officeToken).openConflicts == 1)

            try settle(office)
            _ = try await sync(office, server: url, token: officeToken)
            #expect(try await sync(inspector, server: url, token: inspectorToken).openConflicts == 0)
            for device in [office, inspector] {
                #expect(try device.record("finding", id: finding)?["deadline"] == "2022-12-31")
            }
        }
    }
}
