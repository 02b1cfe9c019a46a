import ArgumentParser

@main
struct Fieldbook: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fieldbook",
        abstract: "An inspector's device: log visits and findings offline, see their history.",
        subcommands: [Demo.self])
}
