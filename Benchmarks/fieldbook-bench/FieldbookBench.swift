import ArgumentParser

@main
struct FieldbookBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fieldbook-bench",
        abstract: "Fieldbook's benchmarks. Each prints a ratio against a baseline run in the same process.",
        subcommands: [LocalBenchmark.self, SyncBenchmark.self, LoadBenchmark.self])
}
