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

    @Test("with no signal: the list, and one line on stderr however many tries fail")
    func noSignal() throws {
        let world = try CLIWorld()
        let made = try world.fieldbook(
            "c", ["init", "--server", "http://127.0.0.1:1", "--token", try world.token("李明"), "--name", "李明"])
        #expect(made.status == 0, "\(made.stderr)")
        let watch = Process()
        watch.executableURL = try BuiltProducts.url("fieldbook")
        watch.arguments = ["--store", world.path("c"), "watch", "site", "--every", "0.1"]
        let (output, errors) = (Pipe(), Pipe())
        watch.standardOutput = output
        watch.standardError = errors
        try watch.run()
        Thread.sleep(forTimeInterval: 1.5)  // about fifteen tries
        watch.interrupt()
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let said = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        watch.waitUntilExit()
        #expect(printed.contains("0 records"))
        #expect(said.components(separatedBy: "watch: cannot sync").count == 2, "\(said)")
        #expect(said.contains("refused the connection"))
    }

    @Test("list and watch show whole ids: records made within a minute share their first digits")
    func wholeIDs() throws {
        let world = try CLIWorld()
        #expect(
            try world.fieldbook("a", ["init", "--server", world.url, "--token", try world.token("王芳")]).status == 0)
        var ids: [String] = []
        for title in ["消防通道堆放杂物", "呼叫装置缺失"] {
            ids.append(
                try world.fieldbook("a", ["add", "finding", "title=\(title)"]).stdout
                    .trimmingCharacters(in: .whitespacesAndNewlines))
        }
        for command in [["list", "finding"], ["watch", "finding", "--every", "0", "--count", "1"]] {
            let shown = try world.fieldbook("a", command)
            #expect(shown.status == 0)
            for id in ids { #expect(shown.stdout.contains(id), "\(command): \(shown.stdout)") }
        }
    }
}
