import ArgumentParser
import FieldbookCore
import FieldbookJSON
import FieldbookStore
import FieldbookSync
import Foundation

/// `fieldbook config`: what `init` wrote, and how to change it without making the device again.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Show or change this device's server address, token, name or download limit.",
        subcommands: [Show.self, SetValue.self],
        defaultSubcommand: Show.self)

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The server, the device's name and id (never the token).")

        @OptionGroup var device: DeviceOptions

        func run() async throws {
            try await fieldbook.run(device) {
                let device = try self.device.open()
                ConfigCommand.print(device.config, deviceID: device.store.deviceID, json: self.device.json)
            }
        }
    }

    struct SetValue: AsyncParsableCommand {
        /// A size written `20MiB`, `512KiB`, `1GiB`, a number of bytes, or `all`.
        static func bytes(_ text: String) throws -> Int64 {
            if text == "all" { return .max }
            for (suffix, scale) in [("KiB", Int64(1) << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("B", 1), ("", 1)]
            where text.hasSuffix(suffix) {
                if let n = Int64(text.dropLast(suffix.count)), n >= 0, n <= Int64.max / scale { return n * scale }
            }
            throw CLIError(.usage, "download-limit takes a size such as 20MiB, 512KiB, 0 or all")
        }

        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Change the server address, the token, the device's name or the download limit.",
            discussion: """
                The device keeps its identity, its cursor and its pending changes: 'config set server URL' \
                moves it to the server's new address. If the address turns out to hold another store, the \
                next sync says so (the server's identity differs) and the device starts again with it, \
                losing nothing.
                """)

        enum Key: String, ExpressibleByArgument, CaseIterable {
            case server, token, name
            case downloadLimit = "download-limit"
        }

        @OptionGroup var device: DeviceOptions
        @Argument(
            help: ArgumentHelp(
                "server, token, name or download-limit.",
                discussion:
                    "download-limit: the largest file a sync downloads (e.g. 20MiB, 0, all); larger ones on demand."))
        var key: Key
        @Argument(help: "The new value.") var value: String

        func run() async throws {
            try await fieldbook.run(device) {
                let path = device.path
                var config = try DeviceConfig.read(from: path)
                switch key {
                case .server: config.server = try DeviceConfig.serverURL(value)
                case .token:
                    guard !value.isEmpty else { throw CLIError(.usage, "the token is empty") }
                    config.token = value
                case .name:
                    if value.count > PushRequest.maxDeviceName
                        || value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
                    {
                        throw CLIError(
                            .usage,
                            "a device name is at most \(PushRequest.maxDeviceName) characters, without control characters"
                        )
                    }
                    config.name = value.isEmpty ? nil : value
                case .downloadLimit:
                    config.downloadLimit = try Self.bytes(value)
                }
                try config.write(to: path)
                let device = try self.device.open()
                ConfigCommand.print(config, deviceID: device.store.deviceID, json: self.device.json)
            }
        }
    }

    static func print(_ config: DeviceConfig, deviceID: String, json: Bool) {
        let limit = config.downloadLimit ?? SyncOptions().downloadFilesUpTo
        if json {
            printJSON(
                .object([
                    ("server", .string(config.server.absoluteString)), ("name", config.name.map(JSON.string) ?? .null),
                    ("device", .string(deviceID)), ("token", .string("set")), ("download_limit", .int(limit)),
                ]))
        } else {
            Swift.print("server  \(config.server.absoluteString)")
            Swift.print("name    \(config.name ?? "-")")
            Swift.print("device  \(deviceID)")
            Swift.print("token   set (not shown)")
            Swift.print(
                "download-limit  \(limit == .max ? "all" : byteCount(limit)) (larger files: 'fieldbook attachment get')"
            )
        }
    }
}
