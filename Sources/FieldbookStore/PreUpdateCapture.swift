import CFieldbookSQLite
import FieldbookCore
import FieldbookJSON
import GRDBSQLite

/// Captures chosen columns of the row an UPDATE changes, before and after, through
/// SQLite's pre-update hook: counters and sets need their old value to log a
/// delta, observed and epoch-ordered fields the new value of another column.
/// Reading them this way costs no second lookup of the row.
///
/// Only the values asked for are read: SQLite reads an old value by copying and
/// decoding the whole old record, a new value from the statement's registers,
/// so an update that needs only new values never pays for the old record.
///
/// The hook is installed only while a capture runs, so other writes (inserts, the
/// changelog) do not call it. One per store, used only on the writer connection while
/// a ``Store/Transaction`` runs an update (writes are serialized), hence `@unchecked Sendable`.
final class PreUpdateCapture: @unchecked Sendable {
    /// What to read from the next updated row.
    struct Request: Sendable {
        /// Table columns to capture (0 is the id), with the type of each.
        let columns: [(column: Int32, type: FieldType)]
        /// Read the values before the write (else ``old`` holds nulls).
        let old: Bool
        /// Read the values after the write (else ``new`` holds nulls).
        let new: Bool
    }

    private var request: Request?
    private(set) var old: [Value] = []
    private(set) var new: [Value] = []

    /// Captures what `request` asks for from the next row `connection` updates while `body` runs.
    func capture<T>(_ request: Request, on connection: OpaquePointer, _ body: () throws -> T) rethrows -> T {
        self.request = request
        old.removeAll(keepingCapacity: true)
        new.removeAll(keepingCapacity: true)
        _ = sqlite3_preupdate_hook(connection, preUpdateCallback, Unmanaged.passUnretained(self).toOpaque())
        defer {
            _ = sqlite3_preupdate_hook(connection, nil, nil)
            self.request = nil
        }
        return try body()
    }

    fileprivate func record(_ db: OpaquePointer?, op: Int32) {
        // The first UPDATE while a request is set.
        guard op == SQLITE_UPDATE, let request else { return }
        self.request = nil
        for (column, type) in request.columns {
            var value: OpaquePointer?
            old.append(
                request.old && sqlite3_preupdate_old(db, column, &value) == SQLITE_OK
                    ? Value(sqliteValue: value, type: type) : .null)
            new.append(
                request.new && sqlite3_preupdate_new(db, column, &value) == SQLITE_OK
                    ? Value(sqliteValue: value, type: type) : .null)
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
            if case .boolean = type { self = .boolean(i != 0) } else { self = .integer(i) }
        case SQLITE_FLOAT: self = .real(sqlite3_value_double(value))
        default:
            let count = Int(sqlite3_value_bytes(value))
            guard let bytes = sqlite3_value_text(value) else {
                self = .null
                return
            }
            let text = String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
            if type.isSet, let json = try? JSON(parsing: text), let set = try? Value(json: json, for: type) {
                self = set
            } else {
                self = .text(text)
            }
        }
    }
}
