import FieldbookJSON
import FieldbookTesting
import Foundation
import Testing

/// Before going out of signal, or onto mobile data: what the next sync will move.
@Suite("fieldbook status: the files the next sync uploads and downloads", .tags(.endToEnd))
struct FileStatusTests {
    @Test("photos waiting to go up, and to come down within the download limit or on demand")
    func filesWaiting() throws {
        let world = try CLIWorld()
        for (device, name) in [("li", "李明"), ("office", "王芳")] {
            #expect(
                try world.fieldbook(device, ["init", "--server", world.url, "--token", world.token(name)]).status == 0)
        }
        let small = world.dir.appendingPathComponent("呼叫器.jpg").path
        let large = world.dir.appendingPathComponent("消防通道.jpg").path
        try Data([0xFF, 0xD8, 0xFF, 0xE0] + Array(repeating: 1, count: 6_000)).write(to: URL(fileURLWithPath: small))
        try Data([0xFF, 0xD8, 0xFF, 0xE0] + Array(repeating: 2, count: 3_000_000)).write(
            to: URL(fileURLWithPath: large))
        let finding = try #require(try world.json("li", ["add", "finding", "title=消防通道堵塞"])["id"]?.string)
        #expect(try world.fieldbook("li", ["attach", "finding", finding, "evidence", small, large]).status == 0)

        // Offline: two photos to upload, their bytes counted.
        let before = try world.json("li", ["status"])
        #expect(before["files_to_upload"]?["count"]?.int == 2)
        #expect(before["files_to_upload"]?["bytes"]?.int == 3_006_008)
        #expect(
            try world.fieldbook("li", ["status"]).stdout.contains(
                "files          2 to upload (2.9 MiB) at the next sync"))
        #expect(try world.fieldbook("li", ["sync"]).status == 0)
        #expect(try world.json("li", ["status"])["files_to_upload"]?["count"]?.int == 0)
        #expect(!(try world.fieldbook("li", ["status"]).stdout.contains("files ")))

        // The office downloads up to 1 MiB a file: the large photo waits, on demand.
        #expect(try world.fieldbook("office", ["config", "set", "download-limit", "1MiB"]).status == 0)
        #expect(try world.fieldbook("office", ["sync"]).status == 0)
        let office = try world.json("office", ["status"])
        #expect(office["files_to_download"]?["count"]?.int == 0)
        #expect(office["files_to_download"]?["on_demand"]?.int == 1)
        #expect(
            try world.fieldbook("office", ["status"]).stdout.contains(
                "1 larger than the download limit ('fieldbook attachment get' downloads one)"))
        // With a higher limit, the next sync will fetch it.
        #expect(try world.fieldbook("office", ["config", "set", "download-limit", "32MiB"]).status == 0)
        let raised = try world.json("office", ["status"])
        #expect(raised["files_to_download"]?["count"]?.int == 1)
        #expect(raised["files_to_download"]?["bytes"]?.int == 3_000_004)
        #expect(raised["files_to_download"]?["on_demand"]?.int == 0)
        #expect(try world.json("office", ["sync"])["files_downloaded"]?.int == 1)
        #expect(try world.json("office", ["status"])["files_to_download"]?["count"]?.int == 0)
    }

    @Test("the photo of a record deleted before the photo arrived is no longer counted as waiting, before any sync")
    func deletedBeforeItArrived() throws {
        let world = try CLIWorld()
        for (device, name) in [("li", "李明"), ("office", "王芳")] {
            #expect(
                try world.fieldbook(device, ["init", "--server", world.url, "--token", world.token(name)]).status == 0)
        }
        let photo = world.dir.appendingPathComponent("消防通道.jpg").path
        try Data([0xFF, 0xD8, 0xFF, 0xE0] + Array(repeating: 3, count: 200_000)).write(to: URL(fileURLWithPath: photo))
        let finding = try #require(try world.json("li", ["add", "finding", "title=消防通道堵塞"])["id"]?.string)
        #expect(try world.fieldbook("li", ["attach", "finding", finding, "evidence", photo]).status == 0)
        #expect(try world.fieldbook("li", ["sync"]).status == 0)
        #expect(try world.fieldbook("office", ["config", "set", "download-limit", "0"]).status == 0)
        #expect(try world.fieldbook("office", ["sync"]).status == 0)
        #expect(try world.json("office", ["status"])["files_to_download"]?["on_demand"]?.int == 1)
        #expect(try world.fieldbook("office", ["delete", "finding", finding]).status == 0)
        #expect(try world.json("office", ["status"])["files_to_download"]?["on_demand"]?.int == 0)
        #expect(!(try world.fieldbook("office", ["status"]).stdout.contains("download limit")))
    }
}
