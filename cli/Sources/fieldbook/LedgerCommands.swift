import ArgumentParser
import FieldbookCore
import FieldbookInspection
import FieldbookJSON
import FieldbookStore
import FieldbookSync
import Foundation

/// The tallies a bureau publishes (docs/domain.md, "Publication"), computed from the ledger.
struct LedgerReport {
    var day: String
    var findings: [Record]
    var byStatus: [(String, Int)]
    var byCategory: [(String, Int)]
    var overdue: [Record]
    var measures: Int
    var measuresByStatus: [(String, Int)]
    var accountabilityByKind: [(String, Int)]
    var penalties: Double
    var recovered: Double

    /// The ledger as of `day` (YYYY-MM-DD): a finding is overdue once its deadline has passed
    /// while it is not completed and not a long-term measure.
    init(_ store: Store, day: String) throws {
        self.day = day
        findings = try store.fetch(Query("finding"))
        let measures = try store.fetch(Query("measure"))
        let actions = try store.fetch(Query("accountability_action"))
        let visits = try store.fetch(Query("visit"))
        func tally(_ records: [Record], _ field: String, order: [String] = []) -> [(String, Int)] {
            var counts: [String: Int] = [:]
            for record in records {
                counts[record[field].description.isEmpty ? "—" : record[field].description, default: 0] += 1
            }
            let rest = counts.filter { !order.contains($0.key) }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            return order.map { ($0, counts[$0] ?? 0) } + rest
        }
        let statuses = ["not_started", "in_progress", "completed"]
        byStatus = tally(findings, "status", order: statuses)
        byCategory = tally(findings, "category")
        overdue = findings.filter { f in
            guard case .text(let deadline) = f["deadline"] else { return false }
            return deadline < day && f["status"] != "completed" && f["long_term"] != .boolean(true)
        }.sorted { $0["deadline"].description < $1["deadline"].description }
        self.measures = measures.count
        measuresByStatus = tally(measures, "status", order: statuses)
        accountabilityByKind = tally(actions, "kind", order: ["admonishment", "criticism", "reminder"])
        func sum(_ field: String) -> Double {
            visits.compactMap { if case .real(let d) = $0[field] { d } else { nil } }.reduce(0, +)
        }
        penalties = sum("penalty_yuan")
        recovered = sum("recovered_yuan")
    }

    static func today() -> String {
        String(CalendarText.timestamp(millisecondsSince1970: Int64(Date().timeIntervalSince1970 * 1000)).prefix(10))
    }

    var json: JSON {
        func object(_ pairs: [(String, Int)]) -> JSON { .object(pairs.map { ($0.0, .int(Int64($0.1))) }) }
        return .object([
            ("as_of", .string(day)), ("findings", .int(Int64(findings.count))),
            ("findings_by_status", object(byStatus)), ("findings_by_category", object(byCategory)),
            (
                "overdue",
                .array(
                    overdue.map {
                        .object([
                            ("id", .string($0.id)), ("title", $0["title"].json), ("deadline", $0["deadline"].json),
                            ("status", $0["status"].json),
                        ])
                    })
            ),
            ("measures", .int(Int64(measures))), ("measures_by_status", object(measuresByStatus)),
            ("accountability_by_kind", object(accountabilityByKind)), ("penalties_yuan", .double(penalties)),
            ("recovered_yuan", .double(recovered)),
        ])
    }

    func render() -> String {
        func line(_ pairs: [(String, Int)]) -> String { pairs.map { "\($0.0) \($0.1)" }.joined(separator: ", ") }
        var out = ["整改台账 Rectification ledger, as of \(day)", "", "Findings: \(findings.count) (\(line(byStatus)))"]
        var categories = TextTable(["类别 Category", "问题 Findings"])
        for (category, count) in byCategory { categories.append([category, String(count)]) }
        out += [categories.render(indent: 2), "", "Overdue (deadline passed, not completed): \(overdue.count)"]
        if !overdue.isEmpty {
            var table = TextTable(["问题 Finding", "整改期限 Deadline", "状态 Status", "责任人 Person"])
            for f in overdue {
                table.append([
                    f["title"].description, f["deadline"].description, f["status"].description,
                    f["responsible_person"].description,
                ])
            }
            out.append(table.render(indent: 2))
        }
        out += [
            "", "Measures: \(measures) (\(line(measuresByStatus)))", "Accountability: \(line(accountabilityByKind))",
            String(format: "Penalties: %.2f yuan; recovered: %.2f yuan", penalties, recovered),
        ]
        return out.joined(separator: "\n")
    }
}

/// `fieldbook report`: the ledger's tallies as a bureau publishes them.
struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "The ledger as published: findings by status and category, overdue findings, measures, accountability, money."
    )

    @OptionGroup var device: DeviceOptions

    @Option(help: "The day deadlines are checked against, YYYY-MM-DD (default: today).")
    var today: String?

    func run() async throws {
        try await fieldbook.run(device) {
            let device = try self.device.open()
            let day = today ?? LedgerReport.today()
            guard CalendarText.isValidDate(day) else {
                throw CLIError(
                    .validation, "--today \(day) is not right: give \(CalendarText.dateExpectation(for: day))")
            }
            let report = try LedgerReport(device.store, day: day)
            if self.device.json { printJSON(report.json) } else { print(report.render()) }
        }
    }
}

/// `fieldbook export`: records as CSV (opens in a spreadsheet, Chinese included) or JSON.
struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Export records as CSV or JSON.")

    enum Format: String, ExpressibleByArgument, CaseIterable { case csv, json }

    @OptionGroup var device: DeviceOptions
    @Argument(help: "One entity (default: every entity; CSV needs one).") var entity: String?
    @Option(help: "csv or json.") var format: Format = .csv

    func run() async throws {
        try await fieldbook.run(device) {
            let device = try self.device.open()
            let entities = try entity.map { [try device.entity($0)] } ?? device.store.schema.entities
            if format == .json || self.device.json {
                let pairs = try entities.map { entity in
                    (entity.name, JSON.array(try device.store.fetch(Query(entity.name)).map(\.json)))
                }
                printJSON(entity == nil ? .object(pairs) : pairs[0].1)
                return
            }
            guard entities.count == 1 else {
                throw CLIError(.usage, "CSV holds one entity: name it, e.g. 'fieldbook export finding'")
            }
            let fields = entities[0].fields
            // A byte-order mark makes spreadsheets read the file as UTF-8.
            var out = "\u{FEFF}" + (["id"] + fields.map(\.name)).map(csvField).joined(separator: ",") + "\r\n"
            for record in try device.store.fetch(Query(entities[0].name)) {
                out +=
                    ([record.id]
                    + record.values.map { value in
                        if case .textSet(let members) = value { return members.joined(separator: ", ") }
                        return value.description
                    }).map(csvField).joined(separator: ",") + "\r\n"
            }
            FileHandle.standardOutput.write(Data(out.utf8))
        }
    }
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break; quotes doubled.
/// A field a spreadsheet would run as a formula is prefixed with an apostrophe.
func csvField(_ text: String) -> String {
    var text = text
    if let first = text.first, "=+-@".contains(first), Double(text) == nil { text = "'" + text }
    guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

/// Shorthand for people: the same code path as `add` and `set` underneath.
struct FindingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finding", abstract: "Findings: add one, close one, add a progress note.",
        subcommands: [AddFinding.self, CloseFinding.self, NoteFinding.self])

    struct AddFinding: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add", abstract: "Record a problem found.")
        @OptionGroup var device: DeviceOptions
        @Option(help: "What the problem is.") var title: String
        @Option(help: "The site's id.") var site: String?
        @Option(help: "The rectification deadline, YYYY-MM-DD.") var deadline: String?
        @Option(help: "The responsible person.") var person: String?
        @Option(help: "The category, e.g. 安全管理.") var category: String?

        func run() async throws {
            try await fieldbook.run(device) {
                let device = try self.device.open()
                var arguments = ["title=\(title)"]
                if let site { arguments.append("site=\(site)") }
                if let deadline { arguments.append("deadline=\(deadline)") }
                if let person { arguments.append("responsible_person=\(person)") }
                if let category { arguments.append("category=\(category)") }
                let id = try device.store.insert("finding", try arguments.assignments(try device.entity("finding")))
                if self.device.json { printJSON(try device.store.record("finding", id: id)!.json) } else { print(id) }
            }
        }
    }

    struct CloseFinding: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "close", abstract: "Mark a finding rectified (completed). Refused while it has open conflicts."
        )
        @OptionGroup var device: DeviceOptions
        @Argument(help: "The finding's id.") var id: String
        @Option(help: "The day it was rectified, YYYY-MM-DD (default: today).") var on: String?

        func run() async throws {
            try await fieldbook.run(device) {
                let device = try self.device.open()
                guard let finding = try device.store.record("finding", id: id) else {
                    throw CLIError(.notFound, "no finding with id \(id)")
                }
                let open = try device.store.conflicts().filter { $0.recordID == finding.id }
                if !open.isEmpty {
                    throw CLIError(
                        .conflict,
                        "the finding has \(open.count) open conflict\(open.count == 1 ? "" : "s") (\(open.map { $0.field ?? "delete" }.joined(separator: ", "))); settle them first with 'fieldbook resolve'"
                    )
                }
                let day = on ?? LedgerReport.today()
                try device.store.update(
                    "finding", id: finding.id,
                    try ["status=completed", "rectified_on=\(day)"].assignments(try device.entity("finding")))
                if self.device.json {
                    printJSON(try device.store.record("finding", id: finding.id)!.json)
                } else {
                    print("closed \(finding.id)")
                }
            }
        }
    }

    struct NoteFinding: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "note", abstract: "Add a progress note to a finding (notes never conflict).")
        @OptionGroup var device: DeviceOptions
        @Argument(help: "The finding's id.") var id: String
        @Argument(help: "The note.") var text: String

        func run() async throws {
            try await fieldbook.run(device) {
                let device = try self.device.open()
                var values: [String: Value] = [
                    "finding": .text(id), "text": .text(text),
                    "written_at": .text(
                        CalendarText.timestamp(millisecondsSince1970: Int64(Date().timeIntervalSince1970 * 1000))),
                ]
                if let name = device.config.name { values["author"] = .text(name) }
                let note = try device.store.insert("progress_note", values)
                if self.device.json {
                    printJSON(try device.store.record("progress_note", id: note)!.json)
                } else {
                    print(note)
                }
            }
        }
    }
}

/// `fieldbook visit log`: a site visit, in one line.
struct VisitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "visit", abstract: "Site visits.", subcommands: [Log.self])

    struct Log: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Log a site visit.")
        @OptionGroup var device: DeviceOptions
        @Argument(help: "The site's id.") var site: String
        @Option(help: "The day of the visit, YYYY-MM-DD (default: today).") var date: String?
        @Option(help: "Who went, comma-separated.") var inspectors: String?
        @Option(help: "What was found.") var summary: String?
        @Option(help: "How many problems were found.") var problems: Int?

        func run() async throws {
            try await fieldbook.run(device) {
                let device = try self.device.open()
                let day = date ?? LedgerReport.today()
                var arguments = ["site=\(site)", "visited_on=\(day)"]
                if let inspectors { arguments.append("inspectors=\(inspectors)") }
                if let summary { arguments.append("summary=\(summary)") }
                if let problems { arguments.append("problems_found=\(problems)") }
                let id = try device.store.insert("visit", try arguments.assignments(try device.entity("visit")))
                if self.device.json { printJSON(try device.store.record("visit", id: id)!.json) } else { print(id) }
            }
        }
    }
}
