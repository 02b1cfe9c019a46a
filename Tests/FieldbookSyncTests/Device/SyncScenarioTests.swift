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

/// Three inspectors' devices against one live server over loopback HTTP.
struct Team {
    let dir = TemporaryDirectory()
    let backend: Backend
    let storage: any SyncStorage
    let devices: [Store]
    let tokens: [String]

    init(_ backend: Backend) async throws {
        self.backend = backend
        storage = try await makeStorage(dir, backend)
        var devices: [Store] = []
        var tokens: [String] = []
        for name in ["王芳", "李明", "张伟"] {
            devices.append(try Store(path: dir.path("\(name).sqlite"), schema: schema))
            tokens.append(try await storage.createToken(name: name))
        }
        self.devices = devices
        self.tokens = tokens
    }

    func transport(_ n: Int, _ url: URL) -> HTTPTransport { HTTPTransport(server: url, token: tokens[n]) }

    /// Every device syncs twice in turn, so each has pulled what the others pushed.
    func syncAll(_ url: URL) async throws {
        for _ in 0..<2 {
            for n in devices.indices { _ = try await devices[n].sync(transport(n, url)) }
        }
    }

    func expectConverged() async throws {
        let server = try await snapshot(storage)
        for device in devices { #expect(try snapshot(device) == server) }
        let serverConflicts = try await storage.conflicts().map(\.id).sorted()
        for device in devices { #expect(try device.conflicts().map(\.id).sorted() == serverConflicts) }
    }
}

@Suite("Sync: three devices, one live server", .tags(.device))
struct SyncScenarioTests {
    /// A finding made on device 0 and synced everywhere; returns its id.
    func sharedFinding(_ team: Team, _ url: URL) async throws -> String {
        let id = try team.devices[0].insert(
            "finding", ["title": "敬老院消防通道堵塞", "deadline": "2022-03-31", "responsible_person": "陈静"])
        try await team.syncAll(url)
        return id
    }

    @Test("different fields edited offline on three devices: all kept", arguments: Backend.all)
    func differentFields(backend: Backend) async throws {
        let team = try await Team(backend)
        try await withServer(storage: team.storage) { url in
            let id = try await sharedFinding(team, url)
            try team.devices[0].update("finding", id: id, ["status": "in_progress"])
            try team.devices[1].update("finding", id: id, ["responsible_person": "王芳"])
            try team.devices[2].update("finding", id: id, ["results": "已清理通道"])
            try await team.syncAll(url)
            let record = try #require(try team.devices[2].record("finding", id: id))
            #expect(record["status"] == "in_progress")
            #expect(record["responsible_person"] == "王芳")
            #expect(record["results"] == "已清理通道")
            // The history on device 0 is the audit trail of all three: who, which device, what.
            let history = try team.devices[0].history(of: id)
            let person = try #require(history.first { $0.field == "responsible_person" && $0.new == "王芳" })
            #expect(person.author == "李明")
            #expect(person.device == team.devices[1].deviceID)
            #expect(person.old == "陈静")
            #expect(history.contains { $0.field == "results" && $0.author == "张伟" })
            #expect(history.contains { $0.field == "status" && $0.device == team.devices[0].deviceID })
            try await team.expectConverged()
        }
    }

    @Test(
        "text JSON must escape — quotes, backslashes, control characters — arrives byte for byte, the author's name too",
        arguments: Backend.all)
    func escapedText(backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let storage = try await makeStorage(dir, backend)
        let author = "王\"芳\\组长\t(第一组)\u{1}"
        let title = "消防通道\"堵塞\"\\C:\\path\n第二行\t制表\r\u{1F}👩🏽‍⚕️"
        let writer = try Store(path: dir.path("writer.sqlite"), schema: schema)
        let reader = try Store(path: dir.path("reader.sqlite"), schema: schema)
        let writerToken = try await storage.createToken(name: author)
        let readerToken = try await storage.createToken(name: "李明")
        try await withServer(storage: storage) { url in
            let id = try writer.insert("finding", ["title": .text(title), "responsible_person": .text(author)])
            _ = try await writer.sync(HTTPTransport(server: url, token: writerToken))
            _ = try await reader.sync(HTTPTransport(server: url, token: readerToken))
            let record = try #require(try reader.record("finding", id: id))
            #expect(Array(record["title"].text!.utf8) == Array(title.utf8))
            #expect(Array(record["responsible_person"].text!.utf8) == Array(author.utf8))
            let history = try reader.history(of: id)
            #expect(!history.isEmpty)
            #expect(history.allSatisfy { $0.author.map { Array($0.utf8) } == Array(author.utf8) })
        }
    }

    @Test("the same lww field: the later timestamp wins everywhere", arguments: Backend.all)
    func lww(backend: Backend) async throws {
        let team = try await Team(backend)
        try await withServer(storage: team.storage) { url in
            let id = try await sharedFinding(team, url)
            try team.devices[2].update("finding", id: id, ["responsible_person": "张伟"])
            try await Task.sleep(for: .milliseconds(5))
            try team.devices[1].update("finding", id: id, ["responsible_person": "李明"])  // later
            // The later write syncs first: sync order must not matter.
            _ = try await team.devices[1].sync(team.transport(1, url))
            _ = try await team.devices[2].sync(team.transport(2, url))
            try await team.syncAll(url)
            for device in team.devices { #expect(try device.record("finding", id: id)?["responsible_person"] == "李明") }
            try await team.expectConverged()
        }
    }

    @Test(
        "the same manual field: a conflict on every device; resolving it on one converges all", arguments: Backend.all)
    func manual(backend: Backend) async throws {
        let team = try await Team(backend)
        try await withServer(storage: team.storage) { url in
            let id = try await sharedFinding(team, url)
            try team.devices[0].update("finding", id: id, ["deadline": "2022-06-30"])
            try team.devices[1].update("finding", id: id, ["deadline": "2022-09-30"])
            try await team.syncAll(url)
            for device in team.devices {
                let conflicts = try device.conflicts()
                #expect(conflicts.count == 1)
                #expect(conflicts.first?.field == "deadline")
                #expect(Set(conflicts.first?.sides.map(\.value) ?? []) == ["2022-06-30", "2022-09-30"])
            }
            #expect(try await team.storage.conflicts().count == 1)
            try await team.expectConverged()

            // The office (device 2) settles it.
            try team.devices[2].update("finding", id: id, ["deadline": "2022-07-31"])
            #expect(try team.devices[2].conflicts().isEmpty)
            try await team.syncAll(url)
            for device in team.devices {
                #expect(try device.conflicts().isEmpty)
                #expect(try device.record("finding", id: id)?["deadline"] == "2022-07-31")
            }
            #expect(try await team.storage.conflicts().isEmpty)
            try await team.expectConverged()
        }
    }

    @Test(
        "an observed field: the later visit date wins, whatever the sync order", arguments: Backend.all, [false, true])
    func observed(backend: Backend, laterSyncsFirst: Bool) async throws {
        let team = try await Team(backend)
        try await withServer(storage: team.storage) { url in
            let site = try team.devices[0].insert("site", ["name": "新度镇敬老院", "kind": "elderly_home"])
            try await team.syncAll(url)
            try team.devices[0].update("site", id: site, ["beds_total": 120, "observed_on": "2021-09-02"])
            try team.devices[1].update("site", id: site, ["beds_total": 110, "observed_on": "2021-08-16"])
            let order = laterSyncsFirst ? [0, 1] : [1, 0]
            for n in order { _ = try await team.devices[n].sync(team.transport(n, url)) }
            try await team.syncAll(url)
            for device in team.devices {
                #expect(try device.record("site", id: site)?["beds_total"] == 120)
                #expect(try device.record("site", id: site)?["observed_on"] == "2021-09-02")
            }
            try await team.expectConverged()
        }
    }

    @Test("progress notes added on every device are all kept; counters add up", arguments: Backend.all)
    func appendAndCounter(backend: Backend) async throws {
        let team = try await Team(backend)
        try await withServer(storage: team.storage) { url in
            let id = try await sharedFinding(team, url)
            let site = try team.devices[0].insert("site", ["name": "城厢区公墓", "kind": "cemetery"])
            try await team.syncAll(url)
            for (n, device) in team.devices.enumerated() {
                try device.insert("progress_note", ["finding": .text(id), "text": .text("第\(n + 1)组现场督促")])
                try await device.write { try $0.increment("site", id: site, "illegal_graves_found", by: Int64(n + 2)) }
            }
            try await team.syncAll(url)
            for device in team.devices {
                #expect(try device.fetch(Query("progress_note")).count == 3)
                #expect(try device.record("site", id: site)?["illegal_graves_found"] == 9)
            }
            try await team.expectConverged()
        }
    }

    @Test(
        "delete against an edit: a conflict, not a silent loss; settled by keeping or deleting", arguments: Backend.all)
    func deleteAgainstEdit(backend: Backend) async throws {
        let team = try await Team(backend)
        try await withServer(storage: team.storage) { url in
            let measure = try team.devices[0].insert(
                "measure", ["finding": .text(try await sharedFinding(team, url)), "description": "建立消防台账"])
            try await team.syncAll(url)
            try team.devices[0].delete("measure", id: measure)
            try team.devices[1].update("measure", id: measure, ["responsible_person": "李明"])
            try await team.syncAll(url)
            for device in team.devices {
                #expect(try device.record("measure", id: measure)?["responsible_person"] == "李明")
                let conflicts = try device.conflicts()
                #expect(conflicts.count == 1 && conflicts.first?.field == nil)
            }
            try await team.expectConverged()
            // Device 0, which deleted it, keeps it after all.
            try await team.devices[0].write { try $0.keep("measure", id: measure) }
            try await team.syncAll(url)
            for device in team.devices {
                #expect(try device.conflicts().isEmpty)
                #expect(try device.record("measure", id: measure) != nil)
            }
            try await team.expectConverged()
        }
    }

    @Test("a push retried after its answer was lost changes nothing twice", arguments: Backend.all)
    func retriedPush(backend: Backend) async throws {
        let team = try await Team(backend)
        try await withServer(storage: team.storage) { url in
            let transport = team.transport(0, url)
            let id = try team.devices[0].insert("site", ["name": "黄石镇幸福院", "kind": "happiness_home"])
            try await team.devices[0].write { try $0.increment("site", id: id, "illegal_graves_found", by: 5) }
            let changes = try team.devices[0].pendingChanges()
            let request = PushRequest(schema: SchemaVersion(schema), device: team.devices[0].deviceID, changes: changes)
            let first = try await transport.push(request)  // its answer "lost": not acknowledged
            let second = try await transport.push(request)
            #expect(first == second)
            _ = try await team.devices[0].sync(transport)
            #expect(try await team.storage.records("site").first?.values["illegal_graves_found"] == 5)
            // The same sequence number with other content is refused, and nothing changes.
            var forged = changes[1]
            forged.fields = [FieldChange(field: "illegal_graves_found", kind: .add(500))]
            await #expect(throws: SyncError.self) {
                _ = try await transport.push(
                    PushRequest(schema: SchemaVersion(schema), device: team.devices[0].deviceID, changes: [forged]))
            }
            #expect(try await team.storage.records("site").first?.values["illegal_graves_found"] == 5)
        }
    }

    @Test("the server restarts between a push and a pull; the devices converge", arguments: Backend.all)
    func serverRestart(backend: Backend) async throws {
        let team = try await Team(backend)
        let id = try await withServer(storage: team.storage) { url in
            let id = try await sharedFinding(team, url)
            try team.devices[0].update("finding", id: id, ["status": "completed"])
            _ = try await team.devices[0].sync(team.transport(0, url))
            return id
        }
        // A new server process on the same file.
        let reopened = try await makeStorage(team.dir, team.backend)
        try await withServer(storage: reopened) { url in
            _ = try await team.devices[1].sync(team.transport(1, url))
            #expect(try team.devices[1].record("finding", id: id)?["status"] == "completed")
        }
    }
}
