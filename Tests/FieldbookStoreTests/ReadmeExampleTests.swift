import FieldbookCore
import FieldbookInspection
import FieldbookStore
import FieldbookTesting
import Foundation
import Testing

// The README's "Using the store" example, as written: between the markers, it compiles with the
// tests, and the test below fails if the README's copy differs from it.
private func readmeExample() throws {
    // sample begin
    let store = try Store(path: "inspector.sqlite", schema: .inspection)
    let site = try store.insert("site", ["name": "新度镇敬老院", "kind": "elderly_home"])
    try store.update("site", id: site, ["beds_total": 120, "observed_on": "2021-09-02"])
    for entry in try store.history(of: site) {
        print(entry.timestamp, entry.field ?? "deleted", entry.old, "→", entry.new)
    }
    // sample end
}

@Suite("The README's library example", .tags(.store))
struct ReadmeExampleTests {
    @Test("is the code compiled here, with the imports of this file")
    func matches() throws {
        let source = try String(contentsOfFile: #filePath, encoding: .utf8)
        let compiled = try #require(try CodeSamples.samples(inSource: #filePath).first)
        let block = try #require(
            try CodeSamples.blocks(inMarkdown: repositoryRoot().appendingPathComponent("README.md").path).first)
        let imports = block.split(separator: "\n").filter { $0.hasPrefix("import ") }
        #expect(imports == ["import FieldbookCore", "import FieldbookInspection", "import FieldbookStore"])
        for line in imports { #expect(source.contains(line + "\n")) }
        let code = block.split(separator: "\n", omittingEmptySubsequences: false).drop { !$0.hasPrefix("let ") }
            .joined(separator: "\n")
        #expect(code == compiled)
    }
}
