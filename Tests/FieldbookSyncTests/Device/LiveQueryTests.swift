import FieldbookCore
import FieldbookHTTP
import FieldbookServerTesting
import FieldbookStore
import FieldbookTesting
import Foundation
import Testing

@Suite("Device: live queries over sync", .tags(.device))
struct LiveQueryTests {
    @Test(
        "each pulled page that changes a query yields once; a page that does not yields nothing",
        arguments: Backend.all)
    func pages(_ backend: Backend) async throws {
        let team = try await Team(backend)
        try await withServer(storage: team.storage) { url in
            let (writer, watcher) = (team.devices[0], team.devices[1])
            var findings = watcher.observe(Query("finding").sorted(by: "title")).makeAsyncIterator()
            #expect(try await findings.next() == [])

            for title in ["甲", "乙", "丙"] { _ = try writer.insert("finding", ["title": .text(title)]) }
            _ = try await writer.sync(team.transport(0, url))
            // One change per page: three pages, three transactions, three values.
            var options = SyncOptions()
            options.pageSize = 1
            #expect(try await watcher.sync(team.transport(1, url), options: options).pulled == 3)
            for count in 1...3 { #expect(try await findings.next()?.count == count) }

            // A page of sites only yields nothing: the next value is the finding changed after it.
            _ = try writer.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home"])
            _ = try await writer.sync(team.transport(0, url))
            _ = try await watcher.sync(team.transport(1, url))
            let first = try #require(try writer.fetch(Query("finding").sorted(by: "title")).first)
            try writer.update("finding", id: first.id, ["responsible_person": "陈静"])
            _ = try await writer.sync(team.transport(0, url))
            _ = try await watcher.sync(team.transport(1, url))
            let next = try #require(try await findings.next())
            #expect(next.first { $0.id == first.id }?["responsible_person"] == "陈静")
        }
    }
}
