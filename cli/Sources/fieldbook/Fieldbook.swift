import ArgumentParser
import FieldbookCore
import Foundation

struct Fieldbook: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fieldbook",
        abstract: "An inspector's device: log visits and findings offline, sync, settle conflicts, see history.",
        discussion:
            "Every command works offline except sync. Options may come before the command: fieldbook --store DIR --json list site.",
        subcommands: [
            Init.self, Add.self, SetFields.self, Delete.self, Get.self, List.self, Watch.self, Sync.self, Status.self,
            Conflicts.self,
            Rejected.self, Resolve.self, History.self, Report.self, Export.self, FindingCommand.self, VisitCommand.self,
            ConfigCommand.self, Attach.self, Detach.self, AttachmentCommand.self,
            Demo.self,
        ])
}

@main
enum Main {
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let json = arguments.contains("--json")
        if let unknown = unknownCommand(arguments) {
            fail(
                "unknown command '\(unknown)'; the commands are: \(commandNames.joined(separator: ", ")) (see 'fieldbook --help')",
                exit: 64, json: json)
        }
        do {
            var command = try Fieldbook.parseAsRoot(negativeValuesJoined(leadingOptionsMoved(arguments[...])))
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            // The parser's own errors (an unknown option, a missing argument, a bad value) follow the
            // same contract as the commands' errors: one line, or one JSON document with --json.
            let code = Fieldbook.exitCode(for: error).rawValue
            if code != 0, !(error is ExitCode) {
                let lines = Fieldbook.fullMessage(for: error).split(separator: "\n").map {
                    $0.trimmingCharacters(in: .whitespaces)
                }
                let message = (lines.first ?? "usage error").replacingOccurrences(of: "Error: ", with: "")
                // The parser's last line names the command's help: "See 'fieldbook list --help' for more information."
                let help = lines.last { $0.hasPrefix("See '") }.flatMap { $0.split(separator: "'").dropFirst().first }
                fail(message + " (see '\(help ?? "fieldbook --help")')", exit: code == 1 ? 64 : code, json: json)
            }
            Fieldbook.exit(withError: error)
        }
    }

    /// The names of the commands, as typed.
    static var commandNames: [String] {
        Fieldbook.configuration.subcommands.map { $0._commandName }
    }

    /// The names of a command's subcommands (`conflicts show`, `attachment prune`), if it has any.
    static func subcommandNames(of command: String) -> [String] {
        for type in Fieldbook.configuration.subcommands where type._commandName == command {
            return type.configuration.subcommands.map { $0._commandName }
        }
        return []
    }

    /// The first word that is not a shared option, when it names no command.
    static func unknownCommand(_ arguments: [String]) -> String? {
        var rest = arguments[...]
        while let first = rest.first {
            if first == "--json" || first.hasPrefix("--store=") {
                rest = rest.dropFirst()
            } else if first == "--store" {
                rest = rest.dropFirst(2)
            } else {
                break
            }
        }
        guard let word = rest.first, !word.hasPrefix("-"), word != "help" else { return nil }
        return commandNames.contains(word) ? nil : word
    }

    /// `--limit -1` as `--limit=-1`: the parser would take `-1` for an option and say a value is missing.
    static func negativeValuesJoined(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument.hasPrefix("--"), !argument.contains("="), index + 1 < arguments.count,
                let next = arguments[index + 1].first, next == "-", Double(arguments[index + 1]) != nil
            {
                out.append(argument + "=" + arguments[index + 1])
                index += 2
            } else {
                out.append(argument)
                index += 1
            }
        }
        return out
    }

    static func fail(_ message: String, exit code: Int32, json: Bool) -> Never {
        printError(message, exit: code, json: json)
        Foundation.exit(code)
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
        if let sub = rest.first, subcommandNames(of: command).contains(sub) {
            head.append(sub)
            rest = rest.dropFirst()
        }
        return head + leading + rest
    }
}
