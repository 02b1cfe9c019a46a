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
        abstract: "Show or change this device's server address, token or name.",
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
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Change the server address, the token or the device's name.",
            discussion: """
                The device keeps its identity, its cursor and its pending changes: 'config set server URL' \
                moves it to the server's new address. If the address turns out to hold another store, the \
                next sync says so (the server's identity differs) and the device starts again with it, \
                losing nothing.
                """)

        enum Key: String, ExpressibleByArgument, CaseIterable {
            case server, token, name
        }

        @OptionGroup var device: DeviceOptions
        @Argument(help: "server, token or name.") var key: Key
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
                }
                try config.write(to: path)
                let device = try self.device.open()
                ConfigCommand.print(config, deviceID: device.store.deviceID, json: self.device.json)
            }
        }
    }

    static func print(_ config: DeviceConfig, deviceID: String, json: Bool) {
        if json {
            printJSON(
                .object([
                    ("server", .string(config.server.absoluteString)), ("name", config.name.map(JSON.string) ?? .null),
                    ("device", .string(deviceID)), ("token", .string("set")),
                ]))
        } else {
            Swift.print("server  \(config.server.absoluteString)")
            Swift.print("name    \(config.name ?? "-")")
            Swift.print("device  \(deviceID)")
            Swift.print("token   set (not shown)")
        }
    }
}
