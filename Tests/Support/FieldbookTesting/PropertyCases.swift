import Testing

/// Runs `scenario` for each seed, two at a time (each scenario opens a server store and several
/// device files), recording a scenario's error as an issue that names the seed and how to replay it.
public func runCases(
    _ seeds: [UInt64], label: String, replay variable: String,
    _ scenario: @escaping @Sendable (UInt64) async throws -> Void
) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        var seeds = seeds.makeIterator()
        func start(_ seed: UInt64?) {
            guard let seed else { return }
            group.addTask {
                do {
                    try await scenario(seed)
                } catch {
                    Issue.record("\(label) seed \(seed): \(error) (replay: \(variable)=\(seed))")
                }
            }
        }
        start(seeds.next())
        start(seeds.next())
        while try await group.next() != nil { start(seeds.next()) }
    }
}
