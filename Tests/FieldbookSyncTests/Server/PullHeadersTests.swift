import FieldbookCore
import FieldbookHTTP
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import Testing

@Suite("Server: a pull's answer announces where its page ends, ahead of its body", .tags(.server))
struct PullHeadersTests {
    @Test(
        "every page's headers name its cursor, whether more follow and its scope generation, as its body does",
        arguments: Backend.all)
    func announced(backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let office = try await storage.createToken(name: "王芳", role: "office")
        let north = try await storage.createToken(name: "李明", role: "inspector", scopes: ["town=甲镇"])
        let everything = try await storage.createToken(name: "赵敏", role: "auditor", scopes: ["town=乙镇"])
        #expect(try await storage.rescope(name: "赵敏", scopes: nil) == 1)  // pages name generation 1
        let desk = try Store(path: dir.path("office.sqlite"), schema: schema)
        for n in 0..<5 {
            let site = try desk.insert(
                "site", ["name": .text("院\(n)"), "kind": "happiness_home", "town": n % 2 == 0 ? "甲镇" : "乙镇"])
            _ = try desk.insert("finding", ["site": .text(site), "title": .text("问题\(n)")])
        }
        try await withServer(storage: storage) { url in
            _ = try await desk.sync(HTTPTransport(server: url, token: office))
            for (token, generation) in [(office, nil), (north, 0), (everything, 1)] as [(String, Int64?)] {
                let transport = HTTPTransport(server: url, token: token)
                var cursor: Int64 = 0
                var pages = 0
                var changes = 0
                while true {
                    var request = PullRequest(
                        schema: SchemaVersion(schema), device: UUID().uuidString.lowercased(), cursor: cursor,
                        limit: 3)
                    request.scopeGeneration = generation
                    let arriving = try await transport.pullArriving(request, schema: schema)
                    let page = try arriving.page()
                    let announced = try #require(arriving.announced)
                    #expect(announced.cursor == page.cursor)
                    #expect(announced.more == page.more)
                    #expect(announced.scopeGeneration == page.scopeGeneration)
                    #expect(page.scopeGeneration == generation)
                    pages += 1
                    changes += page.changes.count
                    cursor = page.cursor
                    if !page.more { break }
                }
                #expect(pages >= 2)
                #expect(changes == (token == north ? 6 : 10))  // 甲镇: three sites and their findings
            }
        }
    }
}
