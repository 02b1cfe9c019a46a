import ArgumentParser
import FieldbookStore

@main
struct FieldbookBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fieldbook-bench",
        abstract: "Fieldbook's benchmarks. Each prints a ratio against a baseline run in the same process.",
        subcommands: [LocalBenchmark.self, SyncBenchmark.self, LoadBenchmark.self, FilesBenchmark.self])
}

/// `store.write(body)` on the calling thread, from async code too: the timed loops write in place
/// (the async `write` would suspend the task and hop to the store's writer).
func blockingWrite<T>(_ store: Store, _ body: (Store.Transaction) throws -> T) throws -> T {
    try store.write(body)
}
