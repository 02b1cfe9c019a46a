import ArgumentParser
import FieldbookJSON
import FieldbookStore

/// `fieldbook rejected`: the changes the server rejected because this device's role may not make them.
struct Rejected: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Changes the server rejected: this device's role may not make them. They were undone here.",
        subcommands: [ListRejected.self, Discard.self],
        defaultSubcommand: ListRejected.self)

    struct ListRejected: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "List rejected changes not yet discarded, with why.")
        @OptionGroup var device: DeviceOptions

        func run() async throws {
            try await fieldbook.run(device) {
                let device = try self.device.open()
                let rejected = try device.store.rejectedChanges()
                if self.device.json {
                    printJSON(.array(rejected.map(rejectedJSON)))
                    return
                }
                var table = TextTable(["序号 Seq", "记录 Record", "规则 Rule", "原因 Why"])
                table.maxColumnWidth = 80
                for change in rejected {
                    table.append([
                        "\(change.sequence)", "\(change.entity) \(change.recordID)", change.rule, change.message,
                    ])
                }
                print(table.render())
                print(
                    "\(rejected.count) rejected change\(rejected.count == 1 ? "" : "s"); 'fieldbook rejected discard SEQ' once seen"
                )
            }
        }
    }

    struct Discard: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take a rejected change off the list (it was undone when it was rejected).")
        @OptionGroup var device: DeviceOptions
        @Argument(help: "The change's sequence number, as 'fieldbook rejected' lists it.") var sequence: Int64

        func run() async throws {
            try await fieldbook.run(device) {
                let device = try self.device.open()
                try device.store.discardRejected(sequence)
                if self.device.json {
                    printJSON(.object([("discarded", .int(sequence))]))
                } else {
                    print("discarded rejected change \(sequence)")
                }
            }
        }
    }
}

/// A rejected change as `--json` prints it.
func rejectedJSON(_ change: RejectedChange) -> JSON {
    .object([
        ("seq", .int(change.sequence)), ("entity", .string(change.entity)), ("id", .string(change.recordID)),
        ("rule", .string(change.rule)), ("role", .string(change.role)), ("message", .string(change.message)),
    ])
}
