import FieldbookCore
import FieldbookStore
import FieldbookTesting
import Testing

@Suite("Store: live queries", .tags(.store))
struct ObservationTests {
    @Test("a query yields its results, then again once per transaction that changes them, and not for others")
    func localWrites() async throws {
        let dir = TemporaryDirectory()
        let store = try makeStore(dir)
        var findings = store.observe(Query("finding").sorted(by: "title")).makeAsyncIterator()
        #expect(try await findings.next() == [])

        // Two inserts in one transaction: one value, with both.
        try await store.write { tx in
            _ = try tx.insert("finding", ["title": "1 消防通道堵塞"])
            _ = try tx.insert("finding", ["title": "2 呼叫装置缺失"])
        }
        let both = try #require(try await findings.next())
        #expect(both.map { $0["title"] } == ["1 消防通道堵塞", "2 呼叫装置缺失"])

        // A transaction on another entity yields nothing: the next value is the update after it.
        _ = try store.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home"])
        try store.update("finding", id: both[0].id, ["title": "1 消防通道已清理"])
        let updated = try #require(try await findings.next())
        #expect(updated.map { $0["title"] } == ["1 消防通道已清理", "2 呼叫装置缺失"])
    }

    @Test("one record: now, after a change, nil after its delete")
    func oneRecord() async throws {
        let dir = TemporaryDirectory()
        let store = try makeStore(dir)
        let id = try store.insert("site", ["name": "公墓", "kind": "cemetery"])
        var site = store.observe("site", id: id).makeAsyncIterator()
        #expect(try await site.next()??["name"] == "公墓")
        try store.update("site", id: id, ["name": "城厢区公墓"])
        #expect(try await site.next()??["name"] == "城厢区公墓")
        try store.delete("site", id: id)
        #expect(try await site.next() == .some(nil))
    }
}
