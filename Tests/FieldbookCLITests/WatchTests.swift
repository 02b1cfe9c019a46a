import FieldbookJSON
import FieldbookTesting
import Foundation
import Testing

@Suite("fieldbook watch: the list again when sync brings a change", .tags(.endToEnd))
struct WatchTests {
    @Test("a finding added on another device appears in the office's watch after its next sync")
    func followsSync() throws {
        let world = try CLIWorld()
        for (device, name) in [("a", "李明"), ("office", "王芳")] {
            let made = try world.fieldbook(
                device, ["init", "--server", world.url, "--token", try world.token(name), "--name", name])
            #expect(made.status == 0, "\(made.stderr)")
        }
        let watch = Process()
        watch.executableURL = try BuiltProducts.url("fieldbook")
        watch.arguments = [
            "--store", world.path("office"), "watch", "finding", "--every", "0.3", "--count", "2", "--json",
        ]
        let output = Pipe()
        watch.standardOutput = output
        try watch.run()
        let killer = DispatchWorkItem { if watch.isRunning { watch.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 60, execute: killer)

        #expect(try world.fieldbook("a", ["add", "finding", "title=长者食堂未公示菜单"]).status == 0)
        #expect(try world.fieldbook("a", ["sync"]).status == 0)
        let printed = output.fileHandleForReading.readDataToEndOfFile()
        watch.waitUntilExit()
        killer.cancel()
        #expect(watch.terminationReason == .exit && watch.terminationStatus == 0)

        let lists = try String(decoding: printed, as: UTF8.self).split(separator: "\n").map {
            try JSON(parsing: String($0))
        }
        #expect(lists.count == 2)
        #expect(lists.first?.array.isEmpty == true)
        #expect(lists.last?.array.first?["title"]?.string == "长者食堂未公示菜单")
    }
}
