import ArgumentParser
import FieldbookCore
import FieldbookJSON
import FieldbookSchemas
import FieldbookStore
import Foundation

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make this device: a store in the device directory, and the server it syncs with.")

    @OptionGroup var device: DeviceOptions

    @Option(help: "The sync server, e.g. http://127.0.0.1:8080.")
    var server: String

    @Option(help: "The bearer token an administrator made with 'fieldbook-server token create'.")
    var token: String

    @Option(help: "A name for this device.")
    var name: String?

    @Option(help: "A schema file (default: the bundled inspection schema).", completion: .file(extensions: ["json"]))
    var schema: String?

    func run() async throws {
        try await fieldbook.run(device) {
            let url = try DeviceConfig.serverURL(server)
            let path = device.path
            if FileManager.default.fileExists(atPath: path + "/config.json") {
                throw CLIError(.usage, "\(path) is already a device; use another --store directory")
            }
            var schemaBytes = BundledSchemas.inspection
            if let schema {
                guard let data = FileManager.default.contents(atPath: schema) else {
                    throw CLIError(.notFound, "no schema file at \(schema)")
                }
                schemaBytes = Array(data)
            }
            let loaded = try Schema(json: schemaBytes)
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            if schema != nil { try Data(schemaBytes).write(to: URL(fileURLWithPath: path + "/schema.json")) }
            let store = try Store(path: path + "/device.sqlite", schema: loaded)
            try DeviceConfig(server: url, token: token, name: name).write(to: path)
            if device.json {
                printJSON(
                    .object([
                        ("device", .string(store.deviceID)), ("store", .string(path)),
                        ("server", .string(url.absoluteString)),
                        ("schema", .string(loaded.name)), ("schema_version", .int(Int64(loaded.version))),
                    ]))
            } else {
                print(
                    "Device \(store.deviceID) in \(path), schema \(loaded.name) version \(loaded.version), server \(url.absoluteString)"
                )
            }
        }
    }
}

struct Add: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add a record; prints its id.",
        discussion: "field=value is read by the field's type; field:=JSON gives JSON (sets, null, numbers as text).")

    @OptionGroup var device: DeviceOptions
    @Argument(help: "The entity, e.g. finding.") var entity: String
    @Argument(help: "field=value or field:=JSON, one per field.") var assignments: [String] = []

    func run() async throws {
        try await fieldbook.run(device) {
            let device = try self.device.open()
            let id = try device.store.insert(entity, try assignments.assignments(try device.entity(entity)))
            if self.device.json { printJSON(try device.store.record(entity, id: id)!.json) } else { print(id) }
        }
    }
}

struct SetFields: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "Change fields of a record.")

    @OptionGroup var device: DeviceOptions
    @Argument(help: "The entity.") var entity: String
    @Argument(help: "The record's id.") var id: String
    @Argument(help: "field=value or field:=JSON, one per field.") var assignments: [String]

    func run() async throws {
        try await fieldbook.run(device) {
            let device = try self.device.open()
            try device.store.update(entity, id: id, try assignments.assignments(try device.entity(entity)))
            let record = try device.store.record(entity, id: id)!
            if self.device.json { printJSON(record.json) } else { print(record.id) }
        }
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a record (its history stays).")

    @OptionGroup var device: DeviceOptions
    @Argument(help: "The entity.") var entity: String
    @Argument(help: "The record's id.") var id: String

    func run() async throws {
        try await fieldbook.run(device) {
            let device = try self.device.open()
            _ = try device.entity(entity)
            try device.store.delete(entity, id: id)
            if self.device.json { printJSON(.object([("deleted", .string(id))])) } else { print("deleted \(id)") }
        }
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one record.")

    @OptionGroup var device: DeviceOptions
    @Argument(help: "The entity.") var entity: String
    @Argument(help: "The record's id.") var id: String

    func run() async throws {
        try await fieldbook.run(device) {
            let device = try self.device.open()
            _ = try device.entity(entity)
            guard let record = try device.store.record(entity, id: id) else {
                throw CLIError(.notFound, "no \(entity) record with id \(id)")
            }
            if self.device.json {
                printJSON(record.json)
            } else {
                var table = TextTable(["字段 Field", "值 Value"])
                table.maxColumnWidth = 80
                table.append(["id", record.id])
                let held = Set(try device.store.files().filter(\.here).map(\.sha256))
                for (field, value) in zip(record.entity.fields, record.values) {
                    let shown =
                        field.type.isAttachment
                        ? value.attachments.map {
                            "\($0.name) (\(byteCount($0.size)), \($0.mediaType))\(held.contains($0.sha256) ? "" : " – not here yet")"
                        }
                        .joined(separator: "; ")
                        : value.description
                    table.append([field.label.map { "\(field.name) (\($0))" } ?? field.name, shown])
                }
                print(table.render())
            }
        }
    }
}

/// Which records `list` and `watch` show: `--where`, `--sort`, `--descending`, `--limit`.
struct ListOptions: ParsableArguments {
    @Argument(help: "The entity.") var entity: String

    @Option(
        name: .customLong("where"),
        help: ArgumentHelp("Only records whose field equals the value (repeatable).", valueName: "field=value"))
    var filters: [String] = []

    @Option(help: "Sort by this field.")
    var sort: String?

    @Flag(help: "Sort in descending order.")
    var descending = false

    @Option(help: "At most this many records.")
    var limit: Int?

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit takes a number of records, 1 or more") }
    }

    /// The query these options describe, on `device`'s schema.
    func query(_ device: Device) throws -> (Entity, Query) {
        let entity = try device.entity(self.entity)
        var query = Query(entity.name)
        for filter in filters {
            let assignment = try FieldAssignment.parse(filter, entity: entity)
            query = query.filter(assignment.field, .equal, assignment.value)
        }
        if let field = sort {
            guard field == "id" || entity.field(field) != nil else {
                throw CLIError(.usage, "\(entity.name) has no field '\(field)' to sort by")
            }
            query = query.sorted(by: field, descending: descending)
        }
        if let limit { query = query.limit(limit) }
        return (entity, query)
    }

    /// Prints `records` as a table (the first six fields) and a count, or as one JSON array.
    static func show(_ records: [Record], of entity: Entity, json: Bool) {
        if json {
            printJSON(.array(records.map(\.json)))
            return
        }
        let shown = entity.fields.prefix(6)
        var table = TextTable(["id"] + shown.map(\.name))
        for record in records {
            // The whole id: the first digits of a UUIDv7 are the time it was made, the same for
            // records made within a minute, and every command takes the whole id.
            table.append([record.id] + shown.map { record[$0.name].description })
        }
        print(table.render())
        print("\(records.count) record\(records.count == 1 ? "" : "s")")
    }
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List records of an entity.")

    @OptionGroup var device: DeviceOptions
    @OptionGroup var list: ListOptions

    func run() async throws {
        try await fieldbook.run(device) {
            let device = try self.device.open()
            let (entity, query) = try list.query(device)
            ListOptions.show(try device.store.fetch(query), of: entity, json: self.device.json)
        }
    }
}

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List records of an entity, and again whenever a change reaches them; syncs meanwhile.",
        discussion: """
            Prints the list (as 'list' does), then syncs every --every seconds and prints it again each time \
            a sync brings a change to the records shown. With no signal it says so once on stderr and keeps trying. \
            Edits made meanwhile by other fieldbook commands on this device show with the next change a sync \
            brings. Stops on Ctrl-C, or after --count lists. With --json, one JSON array per line.
            """)

    @OptionGroup var device: DeviceOptions
    @OptionGroup var list: ListOptions

    @Option(help: ArgumentHelp("Sync every this many seconds (0: do not sync).", valueName: "seconds"))
    var every = 30.0

    @Option(help: "Stop after printing the list this many times.")
    var count: Int?

    func validate() throws {
        guard every >= 0, every <= 86_400 else { throw ValidationError("--every takes seconds from 0 to 86400") }
        if let count, count < 1 { throw ValidationError("--count takes a number of lists, 1 or more") }
    }

    func run() async throws {
        try await fieldbook.run(device) {
            let device = try self.device.open()
            let (entity, query) = try list.query(device)
            let seconds = every == every.rounded() ? String(Int(every)) : String(every)
            let syncing = Task { [every] in
                guard every > 0 else { return }
                var options = SyncOptions()
                options.retryWindow = .zero
                var failing = false  // said once per outage, not at every try
                while !Task.isCancelled {
                    do {
                        _ = try await device.store.sync(device.transport, options: options)
                        if failing { FileHandle.standardError.write(Data("watch: synced again\n".utf8)) }
                        failing = false
                    } catch  where !Task.isCancelled && !failing {
                        failing = true
                        let reason = CLIError(error).message
                        FileHandle.standardError.write(
                            Data("watch: cannot sync (\(reason)); trying again every \(seconds) s\n".utf8))
                    } catch {}
                    try? await Task.sleep(for: .milliseconds(Int64(every * 1000)))
                }
            }
            defer { syncing.cancel() }
            var printed = 0
            for try await records in device.store.observe(query) {
                if printed > 0 && !self.device.json { print("") }
                ListOptions.show(records, of: entity, json: self.device.json)
                fflush(nil)  // each list as it comes, when piped too
                printed += 1
                if let count, printed >= count { break }
            }
        }
    }
}

struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Who changed a record, when, on which device, from what to what.")

    @OptionGroup var device: DeviceOptions
    @Argument(help: "The entity.") var entity: String
    @Argument(help: "The record's id.") var id: String

    func run() async throws {
        try await fieldbook.run(device) {
            let device = try self.device.open()
            _ = try device.entity(entity)
            let entries = try device.store.history(of: id)
            if entries.isEmpty, try device.store.record(entity, id: id) == nil {
                throw CLIError(.notFound, "no \(entity) record with id \(id)")
            }
            let me = device.store.deviceID
            let names = try device.deviceNames()
            // A renamed field shows under its name, with the names it had before (its history may
            // hold changes made under those).
            let earlier = try device.store.earlierNames(entity: entity)
            let formerly = { (field: String?) -> [String]? in field.flatMap { earlier[$0] } }
            if self.device.json {
                printJSON(
                    .array(
                        entries.map { e in
                            .object([
                                (
                                    "when",
                                    .string(CalendarText.timestamp(millisecondsSince1970: Int64(e.timestamp.millis)))
                                ),
                                (
                                    "who",
                                    e.author.map(JSON.string)
                                        ?? (e.device == me ? device.config.name.map(JSON.string) ?? .null : .null)
                                ),
                                ("device", .string(e.device)),
                                ("device_name", names[e.device].map(JSON.string) ?? .null),
                                ("operation", .string(e.operation.description)),
                                ("field", e.field.map(JSON.string) ?? .null),
                                ("formerly", formerly(e.field).map { .string($0[0]) } ?? .null),
                                ("earlier_names", formerly(e.field).map { .array($0.map(JSON.string)) } ?? .null),
                                ("old", e.old.json),
                                ("new", e.new.json),
                            ])
                        }))
                return
            }
            var table = TextTable(["时间 When", "谁 Who", "设备 Device", "字段 Field", "旧 Old", "新 New"])
            for e in entries {
                table.append([
                    CalendarText.timestamp(millisecondsSince1970: Int64(e.timestamp.millis)),
                    e.author ?? (e.device == me ? device.config.name ?? "this device" : ""),
                    deviceLabel(e.device, names),
                    e.field.map { field in
                        formerly(field).map { "\(field) (formerly \($0.joined(separator: ", ")))" } ?? field
                    }
                        ?? "(deleted)",
                    e.old.description, e.new.description,
                ])
            }
            print(table.render())
        }
    }
}
