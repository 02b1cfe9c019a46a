import ArgumentParser
import FieldbookCore
import FieldbookSchemas
import FieldbookStore
import Foundation
import GRDBSQLite

/// `fieldbook-bench local`: the store's insert and update paths against raw SQLite.
struct LocalBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "local",
        abstract: "Insert N findings through the store, update one field of each; the same with raw SQLite.",
        discussion: """
            The store writes each record and its changelog entry in one transaction per batch.
            The baseline binds the same rows to a prepared INSERT (then UPDATE) on its own file,
            with the same table, pragmas and batches, and no changelog.
            """)

    @Option(help: "How many finding records.")
    var records = 1_000_000

    @Option(help: "Records per transaction, on both sides.")
    var batch = 10_000

    @Option(help: "The field the update phase sets (status: enum, max with an epoch; responsible_person: text, lww).")
    var updateField: UpdateField = .status

    enum UpdateField: String, ExpressibleByArgument {
        case status
        case responsiblePerson = "responsible_person"

        var newValue: String { self == .status ? "in_progress" : "赵敏" }
    }

    @Flag(help: "End with one JSON object on the last line.")
    var json = false

    @Option(help: "Directory for the database files (default: a new temporary directory).")
    var directory: String?

    func run() throws {
        let dir =
            directory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("fieldbook-bench-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: dir) } }

        let schema = try Schema(json: BundledSchemas.inspection)
        let storePath = dir + "/store.sqlite"
        let store = try Store(path: storePath, schema: schema)
        let round = try store.insert("inspection_round", ["title": "2021年巡察", "team": "区委第一巡察组", "unit": "区民政局"])

        // Store: inserts.
        var ids: [String] = []
        ids.reserveCapacity(records)
        let storeInsert = try measure {
            var n = 0
            while n < records {
                let end = min(records, n + batch)
                try store.write { tx in
                    for i in n..<end { ids.append(try tx.insert("finding", Row(i, round: round).values)) }
                }
                n = end
            }
        }
        // Store: one field of each.
        let storeUpdate = try measure {
            var n = 0
            while n < records {
                let end = min(records, n + batch)
                try store.write { tx in
                    for i in n..<end {
                        try tx.update("finding", id: ids[i], [updateField.rawValue: .text(updateField.newValue)])
                    }
                }
                n = end
            }
        }
        // Baseline: the same table (DDL copied from the store's file), rows, pragmas and batches.
        let baseline = try RawSQLite(path: dir + "/baseline.sqlite")
        for sql in try RawSQLite(path: storePath).strings(
            "SELECT sql FROM sqlite_master WHERE tbl_name IN ('inspection_round', 'finding') AND sql IS NOT NULL ORDER BY rowid"
        ) {
            try baseline.execute(sql)
        }
        try baseline.execute("INSERT INTO inspection_round (id, title, team, unit) VALUES ('\(round)', 'a', 'b', 'c')")
        let fields = schema.entity("finding")!.fields
        let insertSQL =
            "INSERT INTO finding (id, \(fields.map { "\"\($0.name)\"" }.joined(separator: ", "))) VALUES (?\(String(repeating: ", ?", count: fields.count)))"
        let baselineInsert = try measure {
            let statement = try baseline.prepare(insertSQL)
            defer { sqlite3_finalize(statement) }
            var n = 0
            while n < records {
                let end = min(records, n + batch)
                try baseline.execute("BEGIN")
                for i in n..<end {
                    let row = Row(i, round: round)
                    sqlite3_bind_text(statement, 1, ids[i], -1, transient)
                    for (column, field) in fields.enumerated() {
                        let index = Int32(column + 2)
                        switch row.values[field.name] ?? field.defaultValue
                            ?? (field.policy == .counter ? .integer(0) : .null)
                        {
                        case .text(let s): sqlite3_bind_text(statement, index, s, -1, transient)
                        case .integer(let v): sqlite3_bind_int64(statement, index, v)
                        case .boolean(let b): sqlite3_bind_int64(statement, index, b ? 1 : 0)
                        default: sqlite3_bind_null(statement, index)
                        }
                    }
                    try baseline.step(statement)
                }
                try baseline.execute("COMMIT")
                n = end
            }
        }
        let baselineUpdate = try measure {
            let statement = try baseline.prepare("UPDATE finding SET \(updateField.rawValue) = ? WHERE id = ?")
            defer { sqlite3_finalize(statement) }
            var n = 0
            while n < records {
                let end = min(records, n + batch)
                try baseline.execute("BEGIN")
                for i in n..<end {
                    sqlite3_bind_text(statement, 1, updateField.newValue, -1, transient)
                    sqlite3_bind_text(statement, 2, ids[i], -1, transient)
                    try baseline.step(statement)
                }
                try baseline.execute("COMMIT")
                n = end
            }
        }
        // Both files hold the same rows.
        let checkSQL = "SELECT count(*) FROM finding WHERE \(updateField.rawValue) = '\(updateField.newValue)'"
        let check = try RawSQLite(path: storePath).strings(checkSQL)
        guard check == [String(records)], try baseline.strings(checkSQL) == check
        else { throw ValidationError("the store and the baseline disagree on the rows written") }

        let insertRatio = storeInsert / baselineInsert
        let updateRatio = storeUpdate / baselineUpdate
        func rate(_ seconds: Double) -> String { String(format: "%9.0f rows/s", Double(records) / seconds) }
        print("local: \(records) finding records, \(batch) per transaction, updating \(updateField.rawValue)")
        print("  insert  store    \(rate(storeInsert))  (\(String(format: "%.2f", storeInsert)) s, with changelog)")
        print(
            "          baseline \(rate(baselineInsert))  (\(String(format: "%.2f", baselineInsert)) s, raw prepared statement)"
        )
        print("          ratio    \(String(format: "%.2f", insertRatio))")
        print("  update  store    \(rate(storeUpdate))  (\(String(format: "%.2f", storeUpdate)) s, with changelog)")
        print(
            "          baseline \(rate(baselineUpdate))  (\(String(format: "%.2f", baselineUpdate)) s, raw prepared statement)"
        )
        print("          ratio    \(String(format: "%.2f", updateRatio))")
        if json {
            func part(_ s: Double, _ b: Double) -> String {
                #"{"store_s":\#(String(format: "%.4f", s)),"baseline_s":\#(String(format: "%.4f", b)),"ratio":\#(String(format: "%.3f", s / b))}"#
            }
            print(
                #"{"scenario":"local","records":\#(records),"insert":\#(part(storeInsert, baselineInsert)),"update":\#(part(storeUpdate, baselineUpdate))}"#
            )
        }
    }
}

/// The values of the i-th benchmark finding: realistic Chinese text of realistic length.
struct Row {
    let values: [String: Value]

    static let aspects = [
        "policy_implementation", "misconduct_near_people", "party_organisation", "earlier_rectification",
    ]
    static let people = ["张伟", "王芳", "李娜", "刘洋", "陈静"]

    init(_ i: Int, round: String) {
        values = [
            "round": .text(round),
            "aspect": .text(Row.aspects[i % 4]),
            "category": "养老服务",
            "title": .text("第\(i)号问题：公建民营养老机构消防设施不完善"),
            "description": .text("现场督查发现该院部分护理床位未配备呼叫装置，消防通道堆放杂物，编号\(i)。"),
            "deadline": .text("2022-\(String(format: "%02d", i % 12 + 1))-28"),
            "responsible_unit": "区民政局养老服务科",
            "responsible_person": .text(Row.people[i % 5]),
        ]
    }
}

func measure(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// The baseline: SQLite through its C API, with the store's pragmas.
final class RawSQLite {
    var db: OpaquePointer?

    init(path: String) throws {
        guard sqlite3_open(path, &db) == SQLITE_OK else { throw ValidationError("cannot open \(path)") }
        try execute("PRAGMA journal_mode = WAL")
        try execute("PRAGMA synchronous = NORMAL")
        try execute("PRAGMA cache_size = -65536")
    }

    deinit { sqlite3_close(db) }

    func execute(_ sql: String) throws {
        guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else {
            throw ValidationError("SQLite: \(String(cString: sqlite3_errmsg(db)))")
        }
    }

    func prepare(_ sql: String) throws -> OpaquePointer? {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK else {
            throw ValidationError("SQLite: \(String(cString: sqlite3_errmsg(db)))")
        }
        return statement
    }

    func step(_ statement: OpaquePointer?) throws {
        defer { sqlite3_reset(statement) }
        guard sqlite3_step(statement) == SQLITE_DONE else {
            throw ValidationError("SQLite: \(String(cString: sqlite3_errmsg(db)))")
        }
    }

    func strings(_ sql: String) throws -> [String] {
        let statement = try prepare(sql)
        defer { sqlite3_finalize(statement) }
        var result: [String] = []
        while sqlite3_step(statement) == SQLITE_ROW {
            result.append(String(cString: sqlite3_column_text(statement, 0)))
        }
        return result
    }
}
