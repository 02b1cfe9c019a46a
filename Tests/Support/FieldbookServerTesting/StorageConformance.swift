import FieldbookCore
public import FieldbookServer
import FieldbookStore
import FieldbookSync
public import FieldbookTesting
public import Testing

/// What every server store must do the same way, whatever database it keeps its data in: one
/// check each, run by the server suites on the embedded SQLite store and on PostgreSQL
/// (`StorageConformanceTests`), and by any store added later.
///
/// A check gets a new, empty store on the bundled inspection schema and a temporary directory for
/// the device stores it makes; it records what is wrong through `#expect`.
public struct StorageConformance: Sendable, CustomTestStringConvertible {
    /// What the check shows, as a sentence.
    public let name: String
    private let check: @Sendable (_ storage: any SyncStorage, _ dir: TemporaryDirectory) async throws -> Void

    public var testDescription: String { name }

    /// Runs the check on `storage`, a new and empty store; device stores go in `dir`.
    public func run(on storage: any SyncStorage, in dir: TemporaryDirectory) async throws {
        try await check(storage, dir)
    }

    /// Every check.
    public static let all: [StorageConformance] = [
        repeatedWithinRequest, reused, fieldOrderIsNotContent, gapAndOwner, pullPages, tokens, rejected, scopes,
    ]
}

/// A device with `count` changes of its own to one site, and an identity for it in `storage`.
private func device(_ storage: any SyncStorage, _ dir: TemporaryDirectory, count: Int) async throws -> (
    identity: Identity, device: Store, changes: [Change]
) {
    let identity = try #require(try await storage.authenticate(token: try await storage.createToken(name: "王芳")))
    let device = try Store(path: dir.path("device.sqlite"), schema: storage.schema)
    let site = try device.insert("site", ["name": "幸福院", "kind": "happiness_home"])
    for i in 1..<count { try device.update("site", id: site, ["town": .text("镇\(i)")]) }
    return (identity, device, try device.pendingChanges(limit: count))
}

private func request(_ device: Store, _ changes: [Change]) -> PushRequest {
    PushRequest(schema: SchemaVersion(device.schema), device: device.deviceID, changes: changes)
}

extension StorageConformance {
    static let repeatedWithinRequest = StorageConformance(
        name: "a change repeated inside one request gets one server sequence"
    ) { storage, dir in
        let (identity, device, changes) = try await device(storage, dir, count: 3)
        let response = try await storage.push(
            request(device, [changes[0], changes[1], changes[1], changes[2], changes[0]]), identity: identity)
        #expect(response.assigned.map(\.sequence) == [1, 2, 2, 3, 1])
        #expect(response.assigned[1].serverSequence == response.assigned[2].serverSequence)
        #expect(response.assigned[0].serverSequence == response.assigned[4].serverSequence)
        #expect(Set(response.assigned.map(\.serverSequence)).count == 3)
        #expect(try await storage.changeCount() == 3)

        // The whole push again, and again in part: the same numbers, nothing added.
        let again = try await storage.push(request(device, Array(changes[1...])), identity: identity)
        #expect(again.assigned == Array(response.assigned[2...3]))
        #expect(try await storage.changeCount() == 3)
    }

    static let reused = StorageConformance(
        name: "a sequence reused with other content, in the same request or a later one, applies nothing"
    ) { storage, dir in
        let (identity, device, changes) = try await device(storage, dir, count: 3)
        var other = changes[1]
        other.fields = [FieldChange(field: "town", kind: .set("别的镇"))]

        let inRequest = await #expect(throws: WireError.self) {
            _ = try await storage.push(request(device, [changes[0], changes[1], other]), identity: identity)
        }
        #expect(inRequest?.code == .sequenceReused)
        #expect(try await storage.changeCount() == 0)

        _ = try await storage.push(request(device, Array(changes[0...1])), identity: identity)
        let before = try await snapshot(storage)
        let later = await #expect(throws: WireError.self) {
            _ = try await storage.push(request(device, [other, changes[2]]), identity: identity)
        }
        #expect(later?.code == .sequenceReused)
        #expect(try await storage.changeCount() == 2)
        #expect(try await snapshot(storage) == before)
    }

    static let fieldOrderIsNotContent = StorageConformance(
        name: "a change sent again with its fields in another order is the same change"
    ) { storage, dir in
        let (identity, device, changes) = try await device(storage, dir, count: 2)
        #expect(changes[0].fields.count > 1)
        var reordered = changes[0]
        reordered.fields.reverse()
        // In one request, and in a later one (a client whose encoder orders keys differently each run).
        let first = try await storage.push(request(device, [changes[0], reordered]), identity: identity)
        #expect(first.assigned[0] == first.assigned[1])
        let again = try await storage.push(request(device, [reordered, changes[1]]), identity: identity)
        #expect(
            again.assigned.map(\.serverSequence) == [
                first.assigned[0].serverSequence, again.assigned[1].serverSequence,
            ])
        #expect(try await storage.changeCount() == 2)

        // Other content is still other content.
        var other = reordered
        other.fields[0].kind = .set("别的")
        let refused = await #expect(throws: WireError.self) {
            _ = try await storage.push(request(device, [other]), identity: identity)
        }
        #expect(refused?.code == .sequenceReused)
    }

    static let gapAndOwner = StorageConformance(
        name: "a gap, or a device id of another token, applies nothing"
    ) { storage, dir in
        let (identity, device, changes) = try await device(storage, dir, count: 3)
        let gap = await #expect(throws: WireError.self) {
            _ = try await storage.push(request(device, [changes[0], changes[2]]), identity: identity)
        }
        #expect(gap?.code == .sequenceGap)
        #expect(try await storage.changeCount() == 0)

        _ = try await storage.push(request(device, [changes[0]]), identity: identity)
        let other = try #require(try await storage.authenticate(token: try await storage.createToken(name: "李明")))
        let forbidden = await #expect(throws: WireError.self) {
            _ = try await storage.push(request(device, [changes[1]]), identity: other)
        }
        #expect(forbidden?.code == .forbidden)
        #expect(try await storage.changeCount() == 1)

        // The owner goes on where it left off.
        let response = try await storage.push(request(device, Array(changes[1...])), identity: identity)
        #expect(response.assigned.map(\.sequence) == [2, 3])
        #expect(try await storage.records("site").first?.values["town"] == .text("镇2"))
    }

    static let pullPages = StorageConformance(
        name:
            "pull pages hold the changes after the cursor in server order, at most the limit, and say whether more follow"
    ) { storage, dir in
        let (identity, device, changes) = try await device(storage, dir, count: 5)
        let pushed = try await storage.push(request(device, changes), identity: identity)
        let numbers = pushed.assigned.map(\.serverSequence)
        #expect(numbers == numbers.sorted() && Set(numbers).count == 5)

        var cursor: Int64 = 0
        var pulled: [Change] = []
        var pages = 0
        while true {
            let page = try await storage.pull(
                PullRequest(schema: SchemaVersion(storage.schema), device: device.deviceID, cursor: cursor, limit: 2),
                identity: identity)
            pages += 1
            #expect(page.changes.count <= 2)
            #expect(page.changes.allSatisfy { ($0.serverSequence ?? 0) > cursor })
            pulled += page.changes
            cursor = page.cursor
            if !page.more { break }
            #expect(pages < 10, "a pull that never ends")
            if pages >= 10 { break }
        }
        #expect(pages == 3)
        #expect(pulled.map(\.serverSequence) == numbers.map { Optional($0) })
        #expect(pulled.map(\.sequence) == changes.map(\.sequence))
        #expect(pulled.allSatisfy { $0.device == device.deviceID && $0.author == "王芳" })

        // At the head: an empty page that keeps the cursor.
        let atHead = try await storage.pull(
            PullRequest(schema: SchemaVersion(storage.schema), device: device.deviceID, cursor: cursor, limit: 2),
            identity: identity)
        #expect(atHead.changes.isEmpty && atHead.cursor == cursor && !atHead.more)
    }

    static let tokens = StorageConformance(
        name: "a token authenticates as its name until its name's tokens are revoked; a listing shows no secret"
    ) { storage, _ in
        let first = try await storage.createToken(name: "李明")
        let second = try await storage.createToken(name: "李明")
        let other = try await storage.createToken(name: "张伟")
        #expect(first != second)
        #expect(try await storage.authenticate(token: first)?.name == "李明")
        #expect(try await storage.authenticate(token: second)?.name == "李明")
        #expect(try await storage.authenticate(token: first + "x") == nil)
        #expect(try await storage.authenticate(token: "") == nil)

        #expect(try await storage.revokeTokens(name: "李明") == 2)
        #expect(try await storage.authenticate(token: first) == nil)
        #expect(try await storage.authenticate(token: second) == nil)
        #expect(try await storage.authenticate(token: other)?.name == "张伟")
        #expect(try await storage.revokeTokens(name: "无此人") == 0)

        let listed = try await storage.tokens()
        #expect(listed.map(\.name).sorted() == ["张伟", "李明", "李明"])
        #expect(listed.filter(\.revoked).map(\.name) == ["李明", "李明"])
        #expect("\(listed)".contains(first) == false)
    }

    static let rejected = StorageConformance(
        name:
            "a change the token's role may not make is kept, answered as rejected (again when pushed again), never merged nor pulled"
    ) { storage, dir in
        let inspector = try #require(
            try await storage.authenticate(token: try await storage.createToken(name: "李明", role: "inspector")))
        #expect(inspector.role == "inspector")
        #expect(try await storage.tokens().first?.role == "inspector")
        let device = try Store(path: dir.path("device.sqlite"), schema: storage.schema)
        let site = try device.insert("site", ["name": "幸福院", "kind": "happiness_home"])
        let finding = try device.insert("finding", ["site": .text(site), "title": "消防通道堵塞"])
        let action = try device.insert(
            "accountability_action", ["finding": .text(finding), "person": "张三", "kind": "reminder"])  // 3
        try device.update("accountability_action", id: action, ["kind": "criticism"])  // 4
        try device.update("site", id: site, ["village": "前村"])  // 5: allowed
        let other = try device.insert("finding", ["site": .text(site), "title": "台账不全"])
        try device.delete("finding", id: other)  // 7: only the office deletes findings
        let changes = try device.pendingChanges(limit: 10)
        #expect(changes.count == 7)

        let answer = try await storage.push(request(device, changes), identity: inspector)
        #expect(answer.assigned.map(\.sequence) == [1, 2, 3, 4, 5, 6, 7])
        #expect(answer.rejected.map(\.sequence) == [3, 4, 7])
        #expect(
            answer.rejected.map(\.rule) == [
                "accountability_action.access", "accountability_action.access", "finding.delete",
            ])
        #expect(answer.rejected.allSatisfy { $0.role == "inspector" && !$0.message.contains("张三") })
        #expect(try await storage.changeCount() == 7)
        // The finding stands; no accountability action exists; the allowed change after the refused one was merged.
        let records = try await snapshot(storage)
        #expect(records["finding"]?[finding]?["title"] == .text("消防通道堵塞"))
        #expect(records["finding"]?[other]?["title"] == .text("台账不全"))
        #expect(records["accountability_action"]?.isEmpty != false)
        #expect(records["site"]?[site]?["village"] == .text("前村"))
        #expect(try await storage.states("accountability_action").isEmpty)

        // The same push again: the same answer, nothing added.
        #expect(try await storage.push(request(device, changes), identity: inspector) == answer)
        #expect(try await storage.changeCount() == 7)

        // Nobody pulls a rejected change, not even the office.
        let office = try #require(
            try await storage.authenticate(token: try await storage.createToken(name: "王芳", role: "office")))
        let page = try await storage.pull(
            PullRequest(schema: SchemaVersion(storage.schema), device: device.deviceID, cursor: 0, limit: 100),
            identity: office)
        #expect(page.changes.map(\.sequence) == [1, 2, 5, 6])
        #expect(page.cursor == answer.assigned[5].serverSequence)

        // A finding the inspector may not add (closed at once), what refers to it in the same push and
        // in a later one: rejected, and the rest still merged; the device is never blocked.
        let closed = try device.insert("finding", ["site": .text(site), "title": "已销号", "status": "closed"])  // 8
        _ = try device.insert("measure", ["finding": .text(closed), "description": "约谈"])  // 9
        try device.update("finding", id: closed, ["results": "已完成"])  // 10
        let first = try await storage.push(
            request(device, Array(try device.pendingChanges(limit: 20).suffix(3))), identity: inspector)
        #expect(first.rejected.map(\.sequence) == [8, 9, 10])
        #expect(first.rejected.map(\.rule) == ["finding.status", "measure.finding", "finding.exists"])
        _ = try device.insert("progress_note", ["finding": .text(closed), "text": "复查"])  // 11
        try device.update("site", id: site, ["village": "后村"])  // 12
        let later = try await storage.push(
            request(device, Array(try device.pendingChanges(limit: 20).suffix(2))), identity: inspector)
        #expect(later.rejected.map(\.rule) == ["progress_note.finding"])
        #expect(try await snapshot(storage)["site"]?[site]?["village"] == .text("后村"))
        #expect(try await snapshot(storage)["measure"]?.isEmpty != false)

        // A role the schema does not declare is refused when the token is made.
        await #expect(throws: TokenError.self) { _ = try await storage.createToken(name: "赵六", role: "boss") }
    }
}

extension StorageConformance {
    public static let scopes = StorageConformance(
        name:
            "a scoped token pulls only its scope, writes only inside it, and follows records that move in and out"
    ) { storage, dir in
        var secrets: [String: String] = [:]
        func token(_ name: String, _ role: String, _ scopes: [String]?) async throws -> Identity {
            secrets[name] = try await storage.createToken(name: name, role: role, scopes: scopes)
            return try #require(try await storage.authenticate(token: secrets[name]!))
        }
        let office = try await token("王芳", "office", nil)
        let north = try await token("李明", "office", ["town=甲镇"])  // a town office: its role lets it move sites
        let south = try await token("张伟", "inspector", ["town=乙镇"])
        #expect(north.scopes == ["town=甲镇"] && office.scopes == nil)
        #expect(try await storage.tokens().map(\.scopes) == [nil, ["town=甲镇"], ["town=乙镇"]])
        await #expect(throws: TokenError.self) {
            _ = try await storage.createToken(name: "x", role: "inspector", scopes: ["county=某县"])
        }

        // The office writes two towns' sites, findings and measures, and a round every token sees.
        let desk = try Store(path: dir.path("office.sqlite"), schema: storage.schema)
        let round = try desk.insert("inspection_round", ["title": "第一轮", "team": "第一巡察组", "unit": "民政局"])
        let siteA = try desk.insert("site", ["name": "甲院", "kind": "happiness_home", "town": "甲镇"])
        let siteB = try desk.insert("site", ["name": "乙院", "kind": "cemetery", "town": "乙镇"])
        let findingA = try desk.insert("finding", ["site": .text(siteA), "round": .text(round), "title": "台账不全"])
        let findingB = try desk.insert("finding", ["site": .text(siteB), "title": "散埋乱葬"])
        let measureA = try desk.insert("measure", ["finding": .text(findingA), "description": "补齐台账"])
        _ = try await storage.push(request(desk, try desk.pendingChanges(limit: 100)), identity: office)

        func pullAll(_ identity: Identity, after cursor: Int64 = 0, limit: Int = 2) async throws -> [PullResponse] {
            var pages: [PullResponse] = []
            var cursor = cursor
            while true {
                var pull = PullRequest(
                    schema: SchemaVersion(storage.schema), device: "d-\(identity.name)", cursor: cursor, limit: limit)
                pull.scopeGeneration = identity.scopeGeneration
                var page = try await storage.pull(pull, identity: identity)
                // The page the HTTP interface writes straight from the rows says the same (but for
                // the role, which the interface adds).
                let body = try await storage.pullResponseBody(pull, identity: identity)
                let written = try PullResponse(utf8: body.bytes, schema: storage.schema)
                page.role = nil
                #expect(written == page)
                #expect(body.cursor == page.cursor && body.more == page.more)
                #expect(body.scopeGeneration == page.scopeGeneration)
                pages.append(page)
                #expect(page.cursor >= cursor)
                cursor = page.cursor
                if !page.more { return pages }
            }
        }
        func records(_ pages: [PullResponse]) -> Set<String> {
            Set(pages.flatMap { $0.changes.map(\.recordID) + $0.entered.flatMap { $0.changes.map(\.recordID) } })
        }
        let northPages = try await pullAll(north)
        #expect(records(northPages) == [round, siteA, findingA, measureA])
        #expect(records(try await pullAll(south)) == [round, siteB, findingB])
        #expect(records(try await pullAll(office)).count == 6)
        #expect(northPages.allSatisfy { $0.scopes == ["town=甲镇"] })
        let northCursor = northPages.last!.cursor
        #expect(northCursor == (try await storage.standing(device: "").head))

        // Outside its scope an inspector writes nothing: a finding on the other town's site, a guessed
        // id of the other town's finding, its own site moved away; inside it, it writes as its role allows.
        let field = try Store(path: dir.path("north.sqlite"), schema: storage.schema)
        _ = try await field.pull(StorageTransport(storage: storage, identity: north))
        #expect(try field.fetch(Query("site")).map(\.id) == [siteA])
        let own = try field.insert("finding", ["site": .text(siteA), "title": "消防通道堵塞"])  // 1
        // The device refuses to move its site out of its scope itself, as the server would.
        let refused = #expect(throws: StoreError.self) { try field.update("site", id: siteA, ["town": "乙镇"]) }
        #expect(refused?.code == .forbidden && refused?.message.contains("site.scope") == true)
        #expect(refused?.message.contains("乙镇") == false)
        var guessed = try field.pendingChanges(limit: 10)
        #expect(guessed.count == 1)
        // Made by hand (the device itself refuses them, or holds no record of the other town to refer to).
        var move = guessed[0]
        move.sequence = 2
        move.entity = "site"
        move.recordID = siteA
        move.operation = .update
        move.fields = [FieldChange(field: "town", kind: .set("乙镇"))]
        guessed.append(move)
        var stray = guessed[0]
        stray.sequence = 3
        stray.recordID = "018f0000-0000-7000-8000-0000000000aa"
        stray.fields = [
            FieldChange(field: "site", kind: .set(.text(siteB))), FieldChange(field: "title", kind: .set("越界")),
        ]
        var intoB = guessed[0]
        intoB.sequence = 4
        intoB.recordID = findingB
        intoB.operation = .update
        intoB.fields = [FieldChange(field: "title", kind: .set("改"))]
        guessed += [stray, intoB]
        let answer = try await storage.push(request(field, guessed), identity: north)
        #expect(answer.rejected.map(\.sequence) == [2, 3, 4])
        #expect(answer.rejected.map(\.rule) == ["site.scope", "finding.scope", "finding.scope"])
        #expect(answer.rejected.allSatisfy { !$0.message.contains("乙镇") && !$0.message.contains("甲镇") })
        var all = try await snapshot(storage)
        #expect(all["finding"]?[findingB]?["title"] == .text("散埋乱葬"))
        #expect(all["site"]?[siteA]?["town"] == .text("甲镇"))
        #expect(all["finding"]?[own] != nil)

        // The office moves the site to the other town: it leaves the north's scope with everything
        // that follows it, and enters the south's whole, history and all.
        let southCursor = try await storage.standing(device: "").head
        try desk.update("site", id: siteA, ["town": "乙镇"])
        _ = try await storage.push(
            request(desk, Array(try desk.pendingChanges(limit: 100).suffix(1))), identity: office)
        let northAfter = try await pullAll(north, after: northCursor, limit: 100)
        #expect(Set(northAfter.flatMap(\.left).map(\.id)) == [siteA, findingA, measureA, own])
        #expect(records(northAfter).isEmpty)
        let southAfter = try await pullAll(south, after: southCursor, limit: 100)
        let entered = southAfter.flatMap(\.entered)
        #expect(Set(entered.map(\.record.id)) == [siteA, findingA, measureA, own])
        #expect(entered.first { $0.record.id == siteA }?.changes.count == 2)
        #expect(southAfter.flatMap(\.left).isEmpty)
        all = try await snapshot(storage)
        #expect(all["site"]?[siteA]?["town"] == .text("乙镇"))

        // Rescoped: a device's next pull past cursor 0 is refused; it starts again and holds the new
        // scope's records, its own change that the server took among them.
        _ = try await field.sync(StorageTransport(storage: storage, identity: north))
        #expect(try field.fetch(Query("site")).isEmpty)
        #expect(try await storage.rescope(name: "李明", scopes: ["town=乙镇"]) == 1)
        let rescoped = try #require(try await storage.authenticate(token: secrets["李明"]!))
        #expect(rescoped.scopes == ["town=乙镇"] && rescoped.scopeGeneration == north.scopeGeneration + 1)
        #expect(try await storage.tokens().first { $0.name == "李明" }?.scopes == ["town=乙镇"])
        var stale = PullRequest(
            schema: SchemaVersion(storage.schema), device: field.deviceID, cursor: northCursor, limit: 10)
        stale.scopeGeneration = north.scopeGeneration
        #expect(throws: WireError.self) { try rescoped.checkScope(of: stale) }
        _ = try await field.sync(StorageTransport(storage: storage, identity: rescoped))
        #expect(Set(try field.fetch(Query("site")).map(\.id)) == [siteA, siteB])
        #expect(Set(try field.fetch(Query("finding")).map(\.id)) == [findingA, findingB, own])
        #expect(try field.scopes() == ["town=乙镇"])
    }
}

/// A transport straight to a store, as one token: for checks that sync a device without HTTP.
struct StorageTransport: SyncTransport {
    let storage: any SyncStorage
    let identity: Identity

    func push(_ request: PushRequest) async throws -> PushResponse {
        do { return try await storage.push(request, identity: identity) } catch let error as WireError {
            throw SyncError(refusal: error)
        }
    }

    func pull(_ request: PullRequest, schema: Schema) async throws -> PullResponse {
        do {
            try identity.checkScope(of: request)
            return try await storage.pull(request, identity: identity)
        } catch let error as WireError {
            throw SyncError(refusal: error)
        }
    }
}
