import ArgumentParser
import FieldbookCore
import FieldbookHTTP
import FieldbookJSON
import FieldbookStore
import FieldbookSync
import Foundation

struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Push this device's changes and pull everyone else's; the only command that needs the network.")

    @OptionGroup var device: DeviceOptions

    @Option(
        help: ArgumentHelp(
            "How long to keep trying to reach the server, in seconds, before giving up (exit 69).",
            discussion: "Each try also waits up to 5 s for a connection. Once connected, a slow link is not cut off.",
            valueName: "seconds"))
    var timeout = 10.0

    @Flag(
        help: ArgumentHelp(
            "Keep this device's schema version when the server publishes a newer one.",
            discussion: """
                By default a sync that learns of a newer version moves the device to it (its records and \
                changes not yet pushed, in one transaction) and syncs on. With --stay the device keeps its \
                version and syncs on in it: nothing is lost either way.
                """))
    var stay = false

    func validate() throws {
        guard timeout >= 0, timeout <= 86_400 else { throw ValidationError("--timeout takes seconds from 0 to 86400") }
    }

    func run() async throws {
        try await fieldbook.run(device) {
            var device = try self.device.open()
            var options = SyncOptions()
            options.retryWindow = .milliseconds(Int64(timeout * 1000))
            options.attempts = .max
            if let limit = device.config.downloadLimit { options.downloadFilesUpTo = limit }
            let pending = try device.store.pendingCount()
            if stdoutIsTerminal && !self.device.json {
                // A progress line on a terminal, none when piped.
                options.progress = { report in
                    let done = pending == 0 ? 20 : min(20, report.pushed * 20 / pending)
                    let bar = String(repeating: "█", count: done) + String(repeating: "░", count: 20 - done)
                    let line = "\rsyncing [\(bar)] pushed \(report.pushed)/\(pending), pulled \(report.pulled)"
                    FileHandle.standardError.write(Data(line.utf8))
                }
            }
            let before = Swift.Set(try device.store.conflicts().map(\.id))
            var report: SyncReport
            var upgradedFrom: Int?
            do {
                report = try await device.store.sync(device.transport, options: options)
                // A newer version learned just now is read once the store is opened again; then the
                // device moves to it (learned now or at an earlier sync), unless it stays, and syncs on.
                var again = false
                if report.newestSchema != nil, device.store.newestSchema == nil {
                    device = try self.device.open()
                    again = true
                }
                if !stay, let newest = device.store.newestSchema {
                    upgradedFrom = device.store.schema.version
                    device = try self.device.upgrade(device, to: newest)
                    again = true
                }
                if again {
                    let more = try await device.store.sync(device.transport, options: options)
                    report.pushed += more.pushed
                    report.pulled += more.pulled
                    report.cursor = more.cursor
                    report.newestSchema = more.newestSchema
                    report.filesUploaded += more.filesUploaded
                    report.filesDownloaded += more.filesDownloaded
                    report.filesWaiting = more.filesWaiting
                    report.fileBytesUploaded += more.fileBytesUploaded
                    report.fileBytesDownloaded += more.fileBytesDownloaded
                    report.filesMissing = more.filesMissing
                }
            } catch let error as SyncError where error.refusal == .schemaMismatch {
                // Say what differs, so the person knows which side to update.
                let theirs = try? await device.transport.schema()
                let lines = theirs.map { device.store.schema.differences(from: $0) } ?? []
                throw CLIError(
                    .refused,
                    "this device's schema differs from the server's (\(error.message)):\n  "
                        + (lines.isEmpty ? "the server did not send its schema" : lines.joined(separator: "\n  "))
                        + "\nmake the device again with the server's schema ('fieldbook init --schema FILE')")
            }
            if options.progress != nil { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            let conflicts = try device.store.conflicts()
            let new = conflicts.filter { !before.contains($0.id) }
            if self.device.json {
                printJSON(
                    .object([
                        ("pushed", .int(Int64(report.pushed))), ("pulled", .int(Int64(report.pulled))),
                        ("new_conflicts", .array(new.map { .string($0.id) })),
                        ("open_conflicts", .int(Int64(conflicts.count))), ("cursor", .int(report.cursor)),
                        ("schema_version", .int(Int64(device.store.schema.version))),
                        ("upgraded_from", upgradedFrom.map { .int(Int64($0)) } ?? .null),
                        ("newest_schema", report.newestSchema.map { .int(Int64($0)) } ?? .null),
                        ("files_uploaded", .int(Int64(report.filesUploaded))),
                        ("files_downloaded", .int(Int64(report.filesDownloaded))),
                        ("files_waiting", .int(Int64(report.filesWaiting))),
                        ("file_bytes_uploaded", .int(report.fileBytesUploaded)),
                        ("file_bytes_downloaded", .int(report.fileBytesDownloaded)),
                        ("files_missing", .array(report.filesMissing.map(JSON.string))),
                    ]))
            } else {
                if let upgradedFrom {
                    print("upgraded from schema version \(upgradedFrom) to \(device.store.schema.version)")
                } else if let newest = report.newestSchema {
                    print(
                        "schema version \(newest) is published; this device stays on version \(device.store.schema.version) ('fieldbook sync' without --stay upgrades)"
                    )
                }
                print(
                    "pushed \(report.pushed), pulled \(report.pulled), new conflicts \(new.count), open conflicts \(conflicts.count)"
                )
                if report.filesUploaded + report.filesDownloaded + report.filesWaiting > 0 {
                    print(
                        "files: uploaded \(report.filesUploaded) (\(byteCount(report.fileBytesUploaded))), downloaded \(report.filesDownloaded) (\(byteCount(report.fileBytesDownloaded)))"
                            + (report.filesWaiting > 0
                                ? ", \(report.filesWaiting) not here yet ('fieldbook attachment get HASH' fetches one)"
                                : ""))
                }
                if !new.isEmpty { print("see them with 'fieldbook conflicts'") }
            }
            if !report.filesMissing.isEmpty {
                let count = report.filesMissing.count
                throw CLIError(
                    .notFound,
                    "nothing was pushed: changes not yet synced refer to \(count) file\(count == 1 ? "" : "s") that this "
                        + "device no longer holds and the server does not ("
                        + report.filesMissing.map { String($0.prefix(12)) }.joined(separator: ", ")
                        + "); put each back from a copy with 'fieldbook attachment restore PATH' (the photo in the "
                        + "camera's folder, a backup), then sync again; the changes wait here until then")
            }
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pending changes, the last sync, open conflicts, the server.")

    @OptionGroup var device: DeviceOptions

    func run() async throws {
        try await fieldbook.run(device) {
            let device = try self.device.open()
            let pending = try device.store.pendingCount()
            let lastSync = try device.store.lastSync()
            let conflicts = try device.store.conflicts().count
            let rejected = try device.store.rejectedChanges()
            let correction = device.store.clockCorrection
            let scopes = try device.store.scopes()
            let filesNotHere = try device.store.pendingFilesNotHere()
            let toUpload = try device.store.filesToUpload()
            let limit = device.config.downloadLimit ?? SyncOptions().downloadFilesUpTo
            let wanted = try device.store.filesWanted()
            let toDownload = wanted.filter { $0.size <= limit }
            let onDemand = wanted.count - toDownload.count
            let (uploadBytes, downloadBytes) = (
                toUpload.reduce(0) { $0 + $1.size }, toDownload.reduce(0) { $0 + $1.size }
            )
            if self.device.json {
                printJSON(
                    .object([
                        ("device", .string(device.store.deviceID)),
                        ("name", device.config.name.map(JSON.string) ?? .null),
                        ("short_id", .string(shortDevice(device.store.deviceID))),
                        ("server", .string(device.config.server.absoluteString)), ("pending", .int(Int64(pending))),
                        ("last_sync", lastSync.map(JSON.string) ?? .null), ("open_conflicts", .int(Int64(conflicts))),
                        ("schema", .string(device.store.schema.name)),
                        ("schema_version", .int(Int64(device.store.schema.version))),
                        ("newest_schema", device.store.newestSchema.map { .int(Int64($0.version)) } ?? .null),
                        ("server_identity", try device.store.serverIdentity().map(JSON.string) ?? .null),
                        ("clock_ahead_ms", .int(-correction)),
                        ("role", device.store.role.map(JSON.string) ?? .null),
                        (
                            "scopes",
                            lastSync == nil ? .null : scopes.map { .array($0.map(JSON.string)) } ?? .string("all")
                        ),
                        ("rejected", .array(rejected.map(rejectedJSON))),
                        ("files_not_here", .array(filesNotHere.map(JSON.string))),
                        (
                            "files_to_upload",
                            .object([
                                ("count", .int(Int64(toUpload.count))), ("bytes", .int(uploadBytes)),
                            ])
                        ),
                        (
                            "files_to_download",
                            .object([
                                ("count", .int(Int64(toDownload.count))), ("bytes", .int(downloadBytes)),
                                ("on_demand", .int(Int64(onDemand))),
                            ])
                        ),
                    ]))
            } else {
                print(
                    "device         \(deviceLabel(device.store.deviceID, try device.deviceNames())) (id \(device.store.deviceID))"
                )
                print("server         \(device.config.server.absoluteString)")
                print("server id      \(try device.store.serverIdentity() ?? "none yet")")
                print(
                    "schema         \(device.store.schema.name) version \(device.store.schema.version)"
                        + (device.store.newestSchema.map {
                            " (version \($0.version) is published; 'fieldbook sync' upgrades)"
                        } ?? ""))
                print("pending        \(pending) change\(pending == 1 ? "" : "s")")
                print("last sync      \(lastSync ?? "never")")
                print("open conflicts \(conflicts)")
                print("role           \(device.store.role ?? "none known (learned at sync)")")
                print(
                    "scope          \(lastSync == nil ? "none known (learned at sync)" : scopes?.joined(separator: ", ") ?? "all")"
                )
                if !rejected.isEmpty {
                    print(
                        "rejected       \(rejected.count) change\(rejected.count == 1 ? "" : "s") the server refused "
                            + "(undone here); see 'fieldbook rejected'")
                    for change in rejected { print("  #\(change.sequence) \(change.entity): \(change.message)") }
                }
                var transfers: [String] = []
                if !toUpload.isEmpty { transfers.append("\(toUpload.count) to upload (\(byteCount(uploadBytes)))") }
                if !toDownload.isEmpty {
                    transfers.append("\(toDownload.count) to download (\(byteCount(downloadBytes)))")
                }
                var line = transfers.isEmpty ? "" : transfers.joined(separator: ", ") + " at the next sync"
                if onDemand > 0 {
                    line +=
                        (line.isEmpty ? "" : "; ")
                        + "\(onDemand) larger than the download limit ('fieldbook attachment get' downloads one)"
                }
                if !line.isEmpty { print("files          \(line)") }
                if !filesNotHere.isEmpty {
                    print(
                        "files          \(filesNotHere.count) file\(filesNotHere.count == 1 ? "" : "s") that changes not "
                            + "yet synced refer to \(filesNotHere.count == 1 ? "is" : "are") not on this device ("
                            + filesNotHere.map { String($0.prefix(12)) }.joined(separator: ", ")
                            + "); unless the server holds \(filesNotHere.count == 1 ? "it" : "them"), put "
                            + "\(filesNotHere.count == 1 ? "it" : "each") back with 'fieldbook attachment restore PATH'"
                    )
                }
                if correction < 0 {
                    print(
                        "clock          this device's clock is \(aboutDuration(-correction)) ahead of the server's; "
                            + "changes are stamped by the server's time")
                }
            }
        }
    }
}

struct Conflicts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open conflicts: concurrent edits a person must choose between.",
        subcommands: [ListConflicts.self, Show.self],
        defaultSubcommand: ListConflicts.self)

    struct ListConflicts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List open conflicts.")
        @OptionGroup var device: DeviceOptions

        func run() async throws {
            try await fieldbook.run(device) {
                let device = try self.device.open()
                let conflicts = try device.store.conflicts()
                if self.device.json {
                    printJSON(.array(try conflicts.map { try conflictJSON($0, device) }))
                    return
                }
                var table = TextTable(["冲突 ID", "记录 Record", "字段 Field", "本机 Mine", "对方 Theirs", "时间 When"])
                table.maxColumnWidth = 72  // the other sides, each with its author and device
                for conflict in conflicts {
                    let sides = Sides(conflict, device)
                    let authors = try Authors(conflict, device)
                    table.append([
                        conflict.id, try recordCaption(conflict, device), conflict.field ?? "(delete)",
                        sides.mine.map(sideText) ?? "",
                        sides.theirs.map { "\(sideText($0)) (\(authors.label($0)))" }.joined(separator: " / "),
                        conflict.sides.last.map {
                            CalendarText.timestamp(millisecondsSince1970: Int64($0.stamp.timestamp.millis))
                        } ?? "",
                    ])
                }
                print(table.render())
                print("\(conflicts.count) open conflict\(conflicts.count == 1 ? "" : "s")")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One conflict, side by side: base, mine, theirs.")
        @OptionGroup var device: DeviceOptions
        @Argument(help: "The conflict's id (or a unique prefix).") var id: String

        func run() async throws {
            try await fieldbook.run(device) {
                let device = try self.device.open()
                let conflict = try findConflict(id, device)
                if self.device.json {
                    printJSON(try conflictJSON(conflict, device))
                    return
                }
                let sides = Sides(conflict, device)
                let authors = try Authors(conflict, device)
                var table = TextTable(["", "", "值 Value", "谁 Who", "设备 Device", "时间 When"])
                table.maxColumnWidth = 60
                if conflict.field != nil {
                    table.append(["", "base", try device.store.base(of: conflict).description, "", "", ""])
                }
                for (n, side) in conflict.sides.enumerated() {
                    let label = side.stamp.device == device.store.deviceID ? "mine" : "theirs"
                    table.append([
                        "\(n + 1)", label, sideText(side), authors.name(side) ?? "",
                        deviceLabel(side.stamp.device, authors.devices),
                        CalendarText.timestamp(millisecondsSince1970: Int64(side.stamp.timestamp.millis)),
                    ])
                }
                let title = try recordTitle(conflict, device).map { " «\($0)»" } ?? ""
                print(
                    "\(conflict.entity) \(conflict.recordID)\(title), \(conflict.field.map { "field \($0)" } ?? "deleted on one side, changed on another")"
                )
                print(table.render())
                let mine = sides.mine == nil ? "" : "--mine | "
                if conflict.sides.contains(where: { $0.referrer != nil }) {
                    print(
                        "deleted, but other records still refer to it: keep it with 'fieldbook resolve \(conflict.id) --keep', "
                            + "or change or delete what refers to it, and its delete stands")
                } else {
                    print(
                        conflict.field == nil
                            ? "settle it with 'fieldbook resolve \(conflict.id) --keep | --delete' (or \(mine)--side N)"
                            : "settle it with 'fieldbook resolve \(conflict.id) \(mine)--side N | --value VALUE'")
                }
            }
        }
    }
}

struct Resolve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Settle a conflict with an ordinary change that supersedes every side.",
        discussion: """
            Any device may settle any conflict it has, whether or not it wrote a side. A field conflict \
            is settled with a side (--mine, --theirs, --side N as numbered in 'fieldbook conflicts show') \
            or a new --value; a delete conflict (ID ending in /-) by keeping or deleting the record \
            (--keep, --delete; --mine, --theirs and --side N choose a side's way).
            """)

    @OptionGroup var device: DeviceOptions
    @Argument(help: "The conflict's id (or a unique prefix).") var id: String
    @Flag(help: "Keep this device's side.") var mine = false
    @Flag(help: "Keep the other side (when the other sides agree).") var theirs = false
    @Option(help: "Keep side N, as numbered in 'fieldbook conflicts show'.") var side: Int?
    @Option(help: "Set this value instead (read by the field's type).") var value: String?
    @Flag(help: "Keep the record (a delete conflict).") var keep = false
    @Flag(help: "Delete the record (a delete conflict).") var delete = false

    func validate() throws {
        if [mine, theirs, side != nil, value != nil, keep, delete].filter({ $0 }).count != 1 {
            throw ValidationError("give exactly one of --mine, --theirs, --side N, --value VALUE, --keep, --delete")
        }
    }

    func run() async throws {
        try await fieldbook.run(device) {
            let device = try self.device.open()
            let conflict = try findConflict(id, device)
            let resolution =
                try conflict.field == nil ? recordResolution(conflict, device) : fieldResolution(conflict, device)
            try device.store.resolve(conflict, with: resolution)
            if self.device.json {
                printJSON(
                    .object([
                        ("resolved", .string(conflict.id)), ("pending", .int(Int64(try device.store.pendingCount()))),
                    ]))
            } else {
                print("resolved \(conflict.id); 'fieldbook sync' takes the resolution to everyone")
            }
        }
    }

    /// The value a field conflict is settled with.
    func fieldResolution(_ conflict: Conflict, _ device: Device) throws -> ConflictResolution {
        let sides = Sides(conflict, device)
        let ways = "--side N (see 'fieldbook conflicts show \(conflict.id)') or --value VALUE"
        if keep || delete {
            throw CLIError(.usage, "a field conflict is settled with \(ways), not by keeping or deleting the record")
        }
        if let value {
            let entity = try device.entity(conflict.entity)
            return .value(try FieldAssignment.value(value, field: entity.field(conflict.field!)!, entity: entity.name))
        }
        if mine {
            guard let side = sides.mine else {
                throw CLIError(.usage, "this device wrote no side of this conflict; choose one with \(ways)")
            }
            return .value(side.value)
        }
        if theirs {
            let values = Set(sides.theirs.map(\.value))
            guard values.count == 1 else {
                let authors = try Authors(conflict, device)
                let choices = conflict.sides.indices.filter { conflict.sides[$0].stamp.device != device.store.deviceID }
                    .map { "--side \($0 + 1) (\(authors.label(conflict.sides[$0])))" }
                throw CLIError(
                    .usage,
                    "\(sides.theirs.count) other sides differ; choose one: \(choices.joined(separator: ", ")), or give --value VALUE"
                )
            }
            return .value(values.first!)
        }
        return .value(try chosenSide(conflict).value)
    }

    /// Whether a delete conflict is settled by keeping or by deleting the record.
    func recordResolution(_ conflict: Conflict, _ device: Device) throws -> ConflictResolution {
        let sides = Sides(conflict, device)
        if keep { return .keep }
        if delete { return .delete }
        if value != nil { throw CLIError(.usage, "a delete conflict is settled with --keep or --delete, not a value") }
        if mine {
            guard let side = sides.mine else {
                throw CLIError(.usage, "this device wrote no side of this conflict; settle it with --keep or --delete")
            }
            return side.deletes ? .delete : .keep
        }
        if theirs {
            let ways = Set(sides.theirs.map(\.deletes))
            guard ways.count == 1 else {
                throw CLIError(
                    .usage, "the other sides both delete and change the record; settle it with --keep or --delete")
            }
            return ways.first! ? .delete : .keep
        }
        return try chosenSide(conflict).deletes ? .delete : .keep
    }

    func chosenSide(_ conflict: Conflict) throws -> Conflict.Side {
        guard let side, conflict.sides.indices.contains(side - 1) else {
            throw CLIError(
                .usage,
                "this conflict has sides 1 to \(conflict.sides.count); see 'fieldbook conflicts show \(conflict.id)'")
        }
        return conflict.sides[side - 1]
    }
}

/// This device's side of a conflict and the others'.
struct Sides {
    var mine: Conflict.Side?
    var theirs: [Conflict.Side]

    init(_ conflict: Conflict, _ device: Device) {
        mine = conflict.sides.last { $0.stamp.device == device.store.deviceID }
        theirs = conflict.sides.filter { $0.stamp.device != device.store.deviceID }
    }
}

/// Who wrote each side of a conflict: the author the server stamped on its change (the name its
/// token was made for); this device's own changes, before the server stamps them, by this device's name.
struct Authors {
    private var byChange: [String: String] = [:]
    private let me: String
    private let myName: String
    /// Devices' names by id.
    let devices: [String: String]

    init(_ conflict: Conflict, _ device: Device) throws {
        me = device.store.deviceID
        myName = device.config.name ?? "this device"
        devices = try device.deviceNames()
        for entry in try device.store.history(of: conflict.recordID) {
            if let author = entry.author { byChange["\(entry.device)/\(entry.sequence)"] = author }
        }
    }

    func name(_ side: Conflict.Side) -> String? {
        byChange["\(side.stamp.device)/\(side.stamp.sequence)"] ?? (side.stamp.device == me ? myName : nil)
    }

    /// The author, the device's name and a short device id: two people, or one person's two devices, look different.
    func label(_ side: Conflict.Side) -> String {
        [name(side), deviceLabel(side.stamp.device, devices)].compactMap { $0 }.joined(separator: ", ")
    }
}

/// A device for people: its name (given at `fieldbook init --name`) and short id, or the short id alone.
func deviceLabel(_ id: String, _ names: [String: String]) -> String {
    names[id].map { "\($0) \(shortDevice(id))" } ?? shortDevice(id)
}

/// A device id shortened for people: the last 8 hex digits, which are random in a UUIDv7 (its first
/// digits are the time it was made, the same for devices made within a minute).
func shortDevice(_ id: String) -> String {
    String(id.filter(\.isHexDigit).suffix(8))
}

/// What people call the conflict's record: the value of its entity's first required text field
/// (a finding's title, a site's name, a measure's description), as the record shows it now; nil if
/// the entity has none or the record is not shown (deleted).
func recordTitle(_ conflict: Conflict, _ device: Device) throws -> String? {
    let fields = device.store.schema.entity(conflict.entity)?.fields ?? []
    guard let field = fields.first(where: { $0.required && $0.type == .text }),
        case .text(let title)? = try device.store.record(conflict.entity, id: conflict.recordID)?[field.name]
    else { return nil }
    return title
}

/// The conflict list's record column: the entity and the record's title, cut to fit.
func recordCaption(_ conflict: Conflict, _ device: Device) throws -> String {
    try recordTitle(conflict, device).map { "\(conflict.entity) \(truncate($0, to: 24))" } ?? conflict.entity
}

func sideText(_ side: Conflict.Side) -> String {
    if let referrer = side.referrer { return "(\(referrer.entity) \(shortDevice(referrer.record)) refers to it)" }
    return side.deletes ? "(deleted)" : side.value.description
}

func findConflict(_ id: String, _ device: Device) throws -> Conflict {
    let matches = try device.store.conflicts().filter { $0.id == id || $0.id.hasPrefix(id) }
    guard matches.count == 1 else {
        throw CLIError(
            .notFound,
            matches.isEmpty
                ? "no open conflict \(id); see 'fieldbook conflicts'"
                : "'\(id)' matches \(matches.count) conflicts; give more of the id")
    }
    return matches[0]
}

func conflictJSON(_ conflict: Conflict, _ device: Device) throws -> JSON {
    let authors = try Authors(conflict, device)
    return .object([
        ("id", .string(conflict.id)), ("entity", .string(conflict.entity)), ("record", .string(conflict.recordID)),
        ("record_title", try recordTitle(conflict, device).map(JSON.string) ?? .null),
        ("field", conflict.field.map(JSON.string) ?? .null),
        ("base", conflict.field == nil ? .null : try device.store.base(of: conflict).json),
        (
            "sides",
            .array(
                conflict.sides.map { side in
                    .object([
                        ("device", .string(side.stamp.device)),
                        ("author", authors.name(side).map(JSON.string) ?? .null),
                        ("device_name", authors.devices[side.stamp.device].map(JSON.string) ?? .null),
                        ("mine", .bool(side.stamp.device == device.store.deviceID)),
                        ("value", side.value.json), ("delete", .bool(side.deletes)),
                        (
                            "referrer",
                            side.referrer.map {
                                .object([("entity", .string($0.entity)), ("record", .string($0.record))])
                            } ?? .null
                        ),
                        (
                            "when",
                            .string(CalendarText.timestamp(millisecondsSince1970: Int64(side.stamp.timestamp.millis)))
                        ),
                    ])
                })
        ),
    ])
}

/// `2 days`, `5 hours`, `3 minutes`, `40 seconds`: roughly how long `milliseconds` is, in its largest whole unit.
func aboutDuration(_ milliseconds: Int64) -> String {
    for (size, unit) in [(86_400_000 as Int64, "day"), (3_600_000, "hour"), (60_000, "minute"), (1000, "second")]
    where milliseconds >= size {
        let count = milliseconds / size
        return "\(count) \(unit)\(count == 1 ? "" : "s")"
    }
    return "\(max(milliseconds, 0)) ms"
}
