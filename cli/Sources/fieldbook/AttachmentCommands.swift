import ArgumentParser
import FieldbookCore
import FieldbookJSON
import FieldbookStore
import FieldbookSync
import Foundation

struct Attach: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attach files (photos, scans) to a record's evidence field; works offline.",
        discussion: """
            Each file is copied into the device's files (checked, stored once however often it is \
            attached) before the record refers to it. The next sync uploads it before the change, \
            resuming where a cut connection left off.
            """)

    @OptionGroup var device: DeviceOptions
    @Argument(help: "The entity, e.g. finding.") var entity: String
    @Argument(help: "The record's id.") var id: String
    @Argument(help: "The field that holds files, e.g. evidence.") var field: String
    @Argument(help: "The files.", completion: .file()) var files: [String]

    @Option(help: "The media type of the files (default: from each name's extension, e.g. image/jpeg).")
    var type: String?

    func run() async throws {
        try await fieldbook.run(device) {
            let device = try self.device.open()
            _ = try device.entity(entity)
            if let type, !Attachment.isMediaType(type) {
                throw CLIError(.usage, "--type takes a media type written type/subtype, e.g. image/jpeg")
            }
            for file in files where !FileManager.default.isReadableFile(atPath: file) {
                throw CLIError(.notFound, "cannot read the file \(file)")
            }
            let attachments: [Attachment]
            if let type {
                // The type given applies to each file: imported one by one, then attached together.
                let imported = try files.map { try device.store.importFile(at: $0, mediaType: type) }
                attachments = try device.store.attach(entity, id: id, field: field, attachments: imported)
            } else {
                attachments = try device.store.attach(entity, id: id, field: field, files: files)
            }
            if self.device.json {
                printJSON(.array(attachments.map(\.json)))
            } else {
                var table = TextTable(["文件 File", "大小 Size", "类型 Type", "SHA-256"])
                for a in attachments {
                    table.append([a.name, byteCount(a.size), a.mediaType, String(a.sha256.prefix(12))])
                }
                print(table.render())
                print("attached \(attachments.count) file\(attachments.count == 1 ? "" : "s") to \(entity).\(field)")
            }
        }
    }
}

struct Detach: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take a file off a record's field (the server deletes it once no record refers to it).")

    @OptionGroup var device: DeviceOptions
    @Argument(help: "The entity, e.g. finding.") var entity: String
    @Argument(help: "The record's id.") var id: String
    @Argument(help: "The field that holds files, e.g. evidence.") var field: String
    @Argument(help: "The file's SHA-256, or its first 8 or more hex digits.") var file: String

    func run() async throws {
        try await fieldbook.run(device) {
            let device = try self.device.open()
            _ = try device.entity(entity)
            let stored = try AttachmentCommand.find(file, in: device.store)
            try device.store.detach(entity, id: id, field: field, sha256: stored.sha256)
            if self.device.json {
                printJSON(.object([("detached", .string(stored.sha256))]))
            } else {
                print("took \(stored.name) off \(entity).\(field)")
            }
        }
    }
}

/// `fieldbook attachment`: the files this device holds or waits for; get one out, open one.
struct AttachmentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attachment",
        abstract:
            "List the files records refer to, copy one out, open one (downloading it if needed), or free space.",
        subcommands: [ListFiles.self, GetFile.self, OpenFile.self, PruneFiles.self, RestoreFiles.self],
        defaultSubcommand: ListFiles.self)

    struct ListFiles: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "The files of one record (ENTITY ID), or every file this device holds or waits for.")

        @OptionGroup var device: DeviceOptions
        @Argument(help: "The entity.") var entity: String?
        @Argument(help: "The record's id.") var id: String?

        func run() async throws {
            try await fieldbook.run(device) {
                let device = try self.device.open()
                let stored = Dictionary(uniqueKeysWithValues: try device.store.files().map { ($0.sha256, $0) })
                var rows: [(attachment: Attachment, field: String?, file: StoredFile?)] = []
                if let entity {
                    guard let id else { throw CLIError(.usage, "give the record's id after the entity") }
                    let schemaEntity = try device.entity(entity)
                    guard let record = try device.store.record(entity, id: id) else {
                        throw CLIError(.notFound, "no \(entity) record with id \(id)")
                    }
                    for field in schemaEntity.fields where field.type.isAttachment {
                        for a in record[field.name].attachments { rows.append((a, field.name, stored[a.sha256])) }
                    }
                } else {
                    for file in stored.values.sorted(by: { $0.name < $1.name }) {
                        guard
                            let a = try? Attachment(
                                sha256: file.sha256, size: file.size, mediaType: file.mediaType, name: file.name)
                        else { continue }
                        rows.append((a, nil, file))
                    }
                }
                if self.device.json {
                    printJSON(
                        .array(
                            rows.map { row in
                                var members = row.attachment.jsonMembers
                                if let field = row.field { members.append(("field", .string(field))) }
                                members.append(("here", .bool(row.file?.here ?? false)))
                                members.append(("uploaded", .bool(row.file?.uploaded ?? false)))
                                return .object(members)
                            }))
                    return
                }
                var table = TextTable(["文件 File", "大小 Size", "类型 Type", "SHA-256", "状态 State"])
                for row in rows {
                    table.append([
                        row.attachment.name, byteCount(row.attachment.size), row.attachment.mediaType,
                        String(row.attachment.sha256.prefix(12)), state(row.file),
                    ])
                }
                print(table.render())
                print("\(rows.count) file\(rows.count == 1 ? "" : "s")")
            }
        }

        func state(_ file: StoredFile?) -> String {
            guard let file else { return "not here" }
            if !file.here { return "not here yet" }
            return file.uploaded ? "here, on the server" : "here, not uploaded yet"
        }
    }

    struct GetFile: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "get",
            abstract: "Copy a file out of the device (downloading it first if it has not arrived).")

        @OptionGroup var device: DeviceOptions
        @Argument(help: "The file's SHA-256, or its first 8 or more hex digits.") var file: String
        @Option(name: .shortAndLong, help: "Where to write it (default: its name, in the current directory).")
        var output: String?

        func run() async throws {
            try await fieldbook.run(device) {
                let device = try self.device.open()
                let stored = try AttachmentCommand.find(file, in: device.store)
                let received = try await AttachmentCommand.fetch(stored, device)
                let path = output ?? stored.name
                guard !FileManager.default.fileExists(atPath: path) else {
                    throw CLIError(.usage, "\(path) exists already; give another with --output")
                }
                guard FileManager.default.createFile(atPath: path, contents: nil),
                    let handle = FileHandle(forWritingAtPath: path)
                else { throw CLIError(.usage, "cannot write \(path)") }
                defer { try? handle.close() }
                try device.store.readFile(stored.sha256) { try handle.write(contentsOf: $0) }
                try handle.synchronize()
                if self.device.json {
                    printJSON(
                        .object([
                            ("sha256", .string(stored.sha256)), ("path", .string(path)), ("received", .int(received)),
                        ]))
                } else {
                    print(path)
                }
            }
        }
    }

    struct OpenFile: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "open",
            abstract: "Open a file with the system's viewer (downloading it first); prints where it is.")

        @OptionGroup var device: DeviceOptions
        @Argument(help: "The file's SHA-256, or its first 8 or more hex digits.") var file: String

        func run() async throws {
            try await fieldbook.run(device) {
                let device = try self.device.open()
                let stored = try AttachmentCommand.find(file, in: device.store)
                try await AttachmentCommand.fetch(stored, device)
                guard let path = try device.store.filePath(stored.sha256) else {
                    throw CLIError(.notFound, "the file has not arrived")
                }
                if self.device.json {
                    printJSON(.object([("sha256", .string(stored.sha256)), ("path", .string(path))]))
                } else {
                    print(path)
                }
                // A viewer only for a person at a terminal; scripts get the path.
                if stdoutIsTerminal,
                    let opener = ["/usr/bin/xdg-open", "/usr/bin/open"].first(where: {
                        FileManager.default.isExecutableFile(atPath: $0)
                    })
                {
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: opener)
                    process.arguments = [path]
                    try? process.run()
                }
            }
        }
    }

    struct PruneFiles: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "prune",
            abstract: "Delete the files nothing on this device refers to any more, to free space.",
            discussion: """
                Files detached or replaced, of records that left this device's scope, or imported by an \
                attach that failed: none that a record, a change not yet synced or an open conflict refers \
                to, and none written in the last hour (--older-than). The server keeps its copies: a file \
                a record refers to again is downloaded again.
                """)

        @OptionGroup var device: DeviceOptions
        @Flag(help: "List what would be deleted; delete nothing.") var dryRun = false
        @Option(help: "Keep files written in the last HOURS hours (default 1; 0 keeps none).")
        var olderThan: Double = 1

        func run() async throws {
            try await fieldbook.run(device) {
                guard olderThan >= 0, olderThan.isFinite else {
                    throw CLIError(.usage, "--older-than takes a number of hours, 0 or more")
                }
                let device = try self.device.open()
                let pruned = try device.store.pruneFiles(
                    olderThan: .milliseconds(Int64(olderThan * 3_600_000)), dryRun: dryRun)
                let bytes = pruned.reduce(0) { $0 + $1.size }
                if self.device.json {
                    printJSON(
                        .object([
                            (
                                dryRun ? "would_delete" : "deleted",
                                .array(
                                    pruned.map {
                                        .object([("sha256", .string($0.sha256)), ("size", .int($0.size))])
                                    })
                            ),
                            ("bytes", .int(bytes)),
                        ]))
                } else {
                    if !pruned.isEmpty {
                        var table = TextTable(["SHA-256", "大小 Size"])
                        for file in pruned { table.append([String(file.sha256.prefix(12)), byteCount(file.size)]) }
                        print(table.render())
                    }
                    let files = "\(pruned.count) file\(pruned.count == 1 ? "" : "s")"
                    print(
                        dryRun
                            ? "would delete \(files) (\(byteCount(bytes)))" : "deleted \(files) (\(byteCount(bytes)))")
                }
            }
        }
    }

    struct RestoreFiles: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "restore",
            abstract: "Put back files this device's records or changes refer to, from copies (e.g. the camera's).",
            discussion: """
                For a file deleted from the device's files, or a store copied without them: a sync that \
                cannot push because of it names the file; each copy is checked against the hash its \
                records know it by.
                """)

        @OptionGroup var device: DeviceOptions
        @Argument(help: "The copies.", completion: .file()) var files: [String]

        func run() async throws {
            try await fieldbook.run(device) {
                let device = try self.device.open()
                for file in files where !FileManager.default.isReadableFile(atPath: file) {
                    throw CLIError(.notFound, "cannot read the file \(file)")
                }
                let restored = try files.map { try device.store.restoreFile(at: $0) }
                if self.device.json {
                    printJSON(
                        .array(restored.map { .object([("sha256", .string($0.sha256)), ("size", .int($0.size))]) }))
                } else {
                    for file in restored { print("restored \(file.name) (\(String(file.sha256.prefix(12))))") }
                }
            }
        }
    }

    /// The one file whose hash is or starts with `text` (8 hex digits at least).
    static func find(_ text: String, in store: Store) throws -> StoredFile {
        let prefix = text.lowercased()
        guard prefix.count >= 8, prefix.count <= 64,
            Attachment.isHash(prefix + String(repeating: "0", count: 64 - prefix.count))
        else { throw CLIError(.usage, "name a file by its SHA-256 or its first 8 or more hex digits") }
        let matches = try store.files().filter { $0.sha256.hasPrefix(prefix) }
        guard let first = matches.first else { throw CLIError(.notFound, "no file with hash \(prefix)") }
        guard matches.count == 1 else {
            throw CLIError(.usage, "several files' hashes start with \(prefix); give more digits")
        }
        return first
    }

    /// Downloads `file` if this device does not hold it yet (resuming a download cut off before);
    /// returns how many bytes it received.
    @discardableResult
    static func fetch(_ file: StoredFile, _ device: Device) async throws -> Int64 {
        guard try !device.store.holdsFile(file.sha256) else { return 0 }
        do {
            return try await device.store.downloadFile(file.sha256, device.transport)
        } catch let error as SyncError where error.kind == .network {
            throw CLIError(
                .network,
                "the file has not arrived and the server cannot be reached (\(error.message)); try again with signal")
        }
    }
}

extension Attachment {
    /// `sha256`, `size`, `media_type`, `name`.
    var jsonMembers: [(String, JSON)] {
        [
            ("sha256", .string(sha256)), ("size", .int(size)), ("media_type", .string(mediaType)),
            ("name", .string(name)),
        ]
    }

    /// The reference as a JSON object.
    var json: JSON { .object(jsonMembers) }
}

/// A size for people: bytes, KiB, MiB or GiB.
func byteCount(_ bytes: Int64) -> String {
    if bytes < 1024 { return "\(bytes) B" }
    let units = ["KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes) / 1024
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    let shown = value < 10 ? String((value * 10).rounded() / 10) : String(Int(value.rounded()))
    return "\(shown) \(units[unit])"
}
