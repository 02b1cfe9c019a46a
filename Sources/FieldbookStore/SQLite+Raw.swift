import FieldbookCore
import GRDB
import GRDBSQLite

// The hot paths (insert, update, changelog) bind and step GRDB's cached
// statements through the C API: GRDB's `execute(arguments:)` costs about 1.5×
// a raw step for small rows (DESIGN.md, "Where the time goes").

private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

struct RawStatement {
    let handle: OpaquePointer
    let statement: Statement

    init(_ statement: Statement) {
        self.statement = statement
        handle = statement.sqliteStatement
        // Every caller binds every parameter, so old bindings need no clearing.
        sqlite3_reset(handle)
    }

    func bind(_ index: Int32, _ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            if let base = utf8.baseAddress {
                _ = base.withMemoryRebound(to: CChar.self, capacity: utf8.count) {
                    sqlite3_bind_text(handle, index, $0, Int32(utf8.count), transient)
                }
            } else {
                _ = sqlite3_bind_text(handle, index, "", 0, transient)
            }
        }
    }

    func bind(_ index: Int32, _ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBufferPointer { buffer in
            _ = buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                sqlite3_bind_text(handle, index, $0, Int32(buffer.count), transient)
            }
        }
    }

    /// Binds bytes `range` of `buffer` as text without copying them: the buffer must stay
    /// valid and unchanged until the statement has run and ``clearBindings()`` is called.
    func bindUnowned(_ index: Int32, _ buffer: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) {
        let start = UnsafeRawPointer(buffer.baseAddress! + range.lowerBound).assumingMemoryBound(to: CChar.self)
        sqlite3_bind_text(handle, index, start, Int32(range.count), nil)
    }

    /// Binds `text` in place, without copying it, while `body` runs (and steps the statement);
    /// clears the binding after.
    func withText<T>(_ index: Int32, _ text: String, _ body: () throws -> T) rethrows -> T {
        var text = text
        return try text.withUTF8 { utf8 in
            guard let base = utf8.baseAddress, utf8.count > 0 else {
                bind(index, "")
                return try body()
            }
            let start = UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self)
            sqlite3_bind_text(handle, index, start, Int32(utf8.count), nil)
            defer { sqlite3_bind_null(handle, index) }
            return try body()
        }
    }

    /// Binds `value` while `body` runs, text in place as ``withText(_:_:_:)`` does.
    func withValue<T>(_ index: Int32, _ value: Value, _ body: () throws -> T) rethrows -> T {
        guard case .text(let text) = value else {
            bind(index, value)
            return try body()
        }
        return try withText(index, text, body)
    }

    /// Drops all bindings (unowned ones must not outlive their buffer).
    func clearBindings() {
        sqlite3_clear_bindings(handle)
    }

    func bind(_ index: Int32, _ value: Int64) {
        sqlite3_bind_int64(handle, index, value)
    }

    func bind(_ index: Int32, _ value: Value) {
        switch value {
        case .null: sqlite3_bind_null(handle, index)
        case .text(let s): bind(index, s)
        case .integer(let i): sqlite3_bind_int64(handle, index, i)
        case .real(let d): sqlite3_bind_double(handle, index, d)
        case .boolean(let b): sqlite3_bind_int64(handle, index, b ? 1 : 0)
        case .textSet:
            var out: [UInt8] = []
            value.writeJSON(to: &out)
            bind(index, out[...])
        }
    }

    /// Runs a statement that returns no rows, and resets it.
    func run(_ db: Database) throws {
        let code = sqlite3_step(handle)
        defer { sqlite3_reset(handle) }
        guard code == SQLITE_DONE else { throw error(code, db) }
    }

    /// Steps once; true if a row is ready to read.
    func step(_ db: Database) throws -> Bool {
        let code = sqlite3_step(handle)
        if code == SQLITE_ROW { return true }
        if code == SQLITE_DONE { return false }
        throw error(code, db)
    }

    func reset() { sqlite3_reset(handle) }

    /// Reads a result column of the current row as a value of a field of `type`.
    func column(_ index: Int32, type: FieldType) -> Value {
        switch sqlite3_column_type(handle, index) {
        case SQLITE_NULL: return .null
        case SQLITE_INTEGER:
            let i = sqlite3_column_int64(handle, index)
            return type == .boolean ? .boolean(i != 0) : .integer(i)
        case SQLITE_FLOAT: return .real(sqlite3_column_double(handle, index))
        default:
            let count = Int(sqlite3_column_bytes(handle, index))
            guard let bytes = sqlite3_column_text(handle, index) else { return .null }
            let text = String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
            return Value(DatabaseValue(value: text)!, type: type)
        }
    }

    /// The statement's connection.
    var connection: OpaquePointer { sqlite3_db_handle(handle) }

    /// Rows changed by the last statement run on the connection.
    func changes(_ db: Database) -> Int32 {
        sqlite3_changes(connection)
    }

    func error(_ code: Int32, _ db: Database) -> DatabaseError {
        let message = db.sqliteConnection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
        return DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql)
    }
}
