import FieldbookCore
import FieldbookServer
import FieldbookServerTesting
import FieldbookStore
import FieldbookSync
import FieldbookTesting
import Foundation
import GRDB
import Logging
import PostgresNIO
import Testing

/// Which files a scoped token may read, as each store keeps it: the records whose changes referred
/// to each file, and the files each token uploaded itself.
@Suite("Files: the records that refer to each file, for scoped tokens", .tags(.server))
struct FileReadersTests {
    @Test(
        "a store made before it kept file references finds them when opened; history and uploads count",
        arguments: Backend.all)
    func referencesOfAnEarlierStore(_ backend: Backend) async throws {
        let dir = TemporaryDirectory()
        let desk = try Store(path: dir.path("desk.sqlite"), schema: schema)
        var photos: [FieldbookCore.Attachment] = []
        var findings: [String] = []
        for (n, town) in ["新度镇", "城关镇"].enumerated() {
            let path = dir.path("\(n).jpg")
            try Data([0xFF, 0xD8, 0xFF, 0xE0, UInt8(n)] + Array(repeating: UInt8(n), count: 1000)).write(
                to: URL(fileURLWithPath: path))
            let site = try desk.insert(
                "site", ["name": .text("\(town)敬老院"), "kind": "elderly_home", "town": .text(town)])
            let finding = try desk.insert("finding", ["title": "消防通道堵塞", "site": .text(site)])
            photos += try desk.attach("finding", id: finding, field: "evidence", files: [path])
            findings.append(finding)
        }
        // The first town's photo is replaced: the finding's history still refers to it.
        let replaced = photos[0]
        let path = dir.path("new.jpg")
        try Data([0xFF, 0xD8, 0xFF, 0xE0] + Array(repeating: 9, count: 500)).write(to: URL(fileURLWithPath: path))
        photos[0] = try desk.attach("finding", id: findings[0], field: "evidence", files: [path])[0]
        try desk.detach("finding", id: findings[0], field: "evidence", sha256: replaced.sha256)
        let (mine, theirs) = (photos[0], photos[1])

        var inspector: Identity
        do {
            let storage = try await makeStorage(dir, backend)
            let office = try #require(
                try await storage.authenticate(token: try await storage.createToken(name: "王芳", role: "office")))
            inspector = try #require(
                try await storage.authenticate(
                    token: try await storage.createToken(name: "李明", role: "inspector", scopes: ["town=新度镇"])))
            _ = try await storage.push(
                PushRequest(
                    schema: SchemaVersion(schema), device: desk.deviceID, changes: try desk.pendingChanges(limit: 100)),
                identity: office)
            try await storage.noteUploaded(theirs.sha256, token: inspector.tokenID, generation: 0)
            for file in [mine, replaced, theirs] {
                #expect(try await storage.mayRead(file: file.sha256, identity: inspector))
            }
            // Uploaded under another scope generation: not the token's any more.
            inspector.scopeGeneration = 1
            #expect(try await !storage.mayRead(file: theirs.sha256, identity: inspector))
            #expect(try await storage.mayRead(file: theirs.sha256, identity: office))
        }
        // The store as it was before it kept file references.
        switch backend {
        case .sqlite:
            try await DatabaseQueue(path: dir.path("server.sqlite")).write { db in
                try db.execute(sql: "DROP TABLE file_refs; DROP TABLE file_uploads")
            }
        case .postgres:
            for table in ["file_refs", "file_uploads"] {
                try await postgresClient().query(
                    PostgresQuery(unsafeSQL: "DROP TABLE \"\(dir.namespace)\".\(table)"), logger: Logger(label: "test"))
            }
        }
        let storage = try await makeStorage(dir, backend)
        #expect(try await storage.mayRead(file: mine.sha256, identity: inspector))
        #expect(try await storage.mayRead(file: replaced.sha256, identity: inspector))
        #expect(try await !storage.mayRead(file: theirs.sha256, identity: inspector))
        inspector.scopes = ["town=城关镇"]
        #expect(try await storage.mayRead(file: theirs.sha256, identity: inspector))
        #expect(try await !storage.mayRead(file: mine.sha256, identity: inspector))
    }
}
