import CFieldbookSQLite
import FieldbookCore
import GRDBSQLite

/// Captures chosen columns of the row an UPDATE changes, before and after, through
/// SQLite's pre-update hook: counters and sets need their old value to log a
/// delta, observed and epoch-ordered fields the new value of another column.
/// Reading them this way costs no second lookup of the row.
///
/// One per store, used only on the writer connection while a ``Store/Transaction``
/// runs an update (writes are serialized), hence `@unchecked Sendable`.
final class PreUpdateCapture: @unchecked Sendable {
    /// Table columns to capture (0 is the id), with the type of each.
    private var columns: [(column: Int32, type: FieldType)] = []
    private var active = false
    private(set) var old: [Value] = []
    private(set) var new: [Value] = []
    private(set) var captured = false

    /// Installs the hook on a connection.
    func install(on connection: OpaquePointer) {
        _ = sqlite3_preupdate_hook(connection, preUpdateCallback, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Captures `columns` of the next row the connection updates while `body` runs.
    func capture<T>(_ columns: [(column: Int32, type: FieldType)], _ body: () throws -> T) rethrows -> T {
        self.columns = columns
        captured = false
        active = true
        defer { active = false }
        return try body()
    }

    fileprivate func record(_ db: OpaquePointer?, op: Int32) {
        guard active, !captured, op == SQLITE_UPDATE else { return }
        captured = true
        old.removeAll(keepingCapacity: true)
        new.removeAll(keepingCapacity: true)
        for (column, type) in columns {
            var value: OpaquePointer?
            old.append(sqlite3_preupdate_old(db, column, &value) == SQLITE_OK ? Value(sqliteValue: value, type: type) : .null)
            new.append(sqlite3_preupdate_new(db, column, &value) == SQLITE_OK ? Value(sqliteValue: value, type: type) : .null)
        }
    }
}

private func preUpdateCallback(
    _ context: UnsafeMutableRawPointer?, _ db: OpaquePointer?, _ op: Int32, _ databaseName: UnsafePointer<CChar>?,
    _ tableName: UnsafePointer<CChar>?, _ oldRowID: Int64, _ newRowID: Int64
) {
    guard let context else { return }
    Unmanaged<PreUpdateCapture>.fromOpaque(context).takeUnretainedValue().record(db, op: op)
}

extension Value {
    /// A value read from an `sqlite3_value` for a field of `type`.
    init(sqliteValue value: OpaquePointer?, type: FieldType) {
        switch sqlite3_value_type(value) {
        case SQLITE_NULL: self = .null
        case SQLITE_INTEGER:
            let i = sqlite3_value_int64(value)
            self = type == .boolean ? .boolean(i != 0) : .integer(i)
        case SQLITE_FLOAT: self = .real(sqlite3_value_double(value))
        default:
            let count = Int(sqlite3_value_bytes(value))
            guard let bytes = sqlite3_value_text(value) else {
                self = .null
                return
            }
            let text = String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
            if type == .textSet, let json = try? JSON(parsing: text), let set = try? Value(json: json, for: type) {
                self = set
            } else {
                self = .text(text)
            }
        }
    }
}
