import ArgumentParser

struct Fieldbook: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fieldbook",
        abstract: "An inspector's device: log visits and findings offline, sync, settle conflicts, see history.",
        discussion: "Every command works offline except sync. Options may come before the command: fieldbook --store DIR --json list site.",
        subcommands: [
            Init.self, Add.self, SetFields.self, Delete.self, Get.self, List.self, Sync.self, Status.self, Conflicts.self,
            Resolve.self, History.self, Report.self, Export.self, FindingCommand.self, VisitCommand.self, ConfigCommand.self,
            Demo.self,
        ])
}

@main
enum Main {
    static func main() async {
        await Fieldbook.main(Array(leadingOptionsMoved(CommandLine.arguments.dropFirst())))
    }

    /// `fieldbook --store DIR --json list site` means `fieldbook list site --store DIR --json`:
    /// the shared options may come before the command.
    static func leadingOptionsMoved(_ arguments: ArraySlice<String>) -> [String] {
        var leading: [String] = []
        var rest = arguments
        while let first = rest.first {
            if first == "--json" {
                leading.append(first)
                rest = rest.dropFirst()
            } else if first == "--store", rest.count >= 2 {
                leading += rest.prefix(2)
                rest = rest.dropFirst(2)
            } else if first.hasPrefix("--store=") {
                leading.append(first)
                rest = rest.dropFirst()
            } else {
                break
            }
        }
        guard !leading.isEmpty, let command = rest.first else { return Array(arguments) }
        // After the command's own name (and a subcommand such as `conflicts show`), before its arguments.
        var head = [command]
        rest = rest.dropFirst()
        let nested = ["conflicts": ["list", "show"], "finding": ["add", "close", "note"], "visit": ["log"], "config": ["show", "set"]]
        if let subcommands = nested[command], let sub = rest.first, subcommands.contains(sub) {
            head.append(sub)
            rest = rest.dropFirst()
        }
        return head + leading + rest
    }
}
