import CFieldbookSQLite
package import FieldbookCore
package import GRDB
import GRDBSQLite

/// SQLite's process-wide settings, made once, before the first connection a store opens.
package enum SQLiteSettings {
    /// Turns off SQLite's allocation statistics, which count every allocation under one global
    /// mutex. Call before opening a connection; a call after one has opened changes nothing.
    package static func apply() { _ = applied }

    private static let applied: Void = { _ = fieldbook_sqlite_configure() }()
}

// The hot paths bind and step GRDB's cached statements through the C API: on the
// device, insert, update, the changelog and applying pulled changes; on the server,
// push and pull. GRDB's `execute(arguments:)` costs about 1.5× a raw step for small
// rows (docs/benchmarks.md), and more for wide ones.

private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

package struct RawStatement {
    package let handle: OpaquePointer
    package let statement: Statement

    package init(_ statement: Statement) {
        self.statement = statement
        handle = statement.sqliteStatement
        // Every caller binds every parameter, so old bindings need no clearing.
        sqlite3_reset(handle)
    }

    package func bind(_ index: Int32, _ text: String) {
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

    package func bind(_ index: Int32, _ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBufferPointer { buffer in
            _ = buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                sqlite3_bind_text(handle, index, $0, Int32(buffer.count), transient)
            }
        }
    }

    /// Binds bytes `range` of `buffer` as text without copying them: the buffer must stay
    /// valid and unchanged until the statement has run and ``clearBindings()`` is called.
    package func bindUnowned(_ index: Int32, _ buffer: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) {
        let start = UnsafeRawPointer(buffer.baseAddress! + range.lowerBound).assumingMemoryBound(to: CChar.self)
        sqlite3_bind_text(handle, index, start, Int32(range.count), nil)
    }

    /// Binds `text` in place, without copying it, while `body` runs (and steps the statement);
    /// clears the binding after.
    package func withText<T>(_ index: Int32, _ text: String, _ body: () throws -> T) rethrows -> T {
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
    package func withValue<T>(_ index: Int32, _ value: Value, _ body: () throws -> T) rethrows -> T {
        guard case .text(let text) = value else {
            bind(index, value)
            return try body()
        }
        return try withText(index, text, body)
    }

    /// Drops all bindings (unowned ones must not outlive their buffer).
    package func clearBindings() {
        sqlite3_clear_bindings(handle)
    }

    package func bind(_ index: Int32, _ value: Int64) {
        sqlite3_bind_int64(handle, index, value)
    }

    package func bindNull(_ index: Int32) {
        sqlite3_bind_null(handle, index)
    }

    /// A result column of the current row as an integer.
    package func int64(_ index: Int32) -> Int64 {
        sqlite3_column_int64(handle, index)
    }

    /// Whether a result column of the current row is null.
    package func isNull(_ index: Int32) -> Bool {
        sqlite3_column_type(handle, index) == SQLITE_NULL
    }

    /// A result column's text bytes, valid until the statement steps again or is reset (empty for null).
    package func utf8(_ index: Int32) -> UnsafeBufferPointer<UInt8> {
        // The text first, then its length (the order SQLite documents).
        guard let start = sqlite3_column_text(handle, index) else { return UnsafeBufferPointer(start: nil, count: 0) }
        return UnsafeBufferPointer(start: start, count: Int(sqlite3_column_bytes(handle, index)))
    }

    /// A result column of the current row as its text's bytes (empty for null).
    package func bytes(_ index: Int32) -> [UInt8] {
        Array(utf8(index))
    }

    /// The rowid of the last row inserted on the statement's connection.
    package var lastInsertedRowID: Int64 { sqlite3_last_insert_rowid(connection) }

    package func bind(_ index: Int32, _ value: Value) {
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
    package func run(_ db: Database) throws {
        let code = sqlite3_step(handle)
        defer { sqlite3_reset(handle) }
        guard code == SQLITE_DONE else { throw error(code, db) }
    }

    /// Steps once; true if a row is ready to read.
    package func step(_ db: Database) throws -> Bool {
        let code = sqlite3_step(handle)
        if code == SQLITE_ROW { return true }
        if code == SQLITE_DONE { return false }
        throw error(code, db)
    }

    package func reset() { sqlite3_reset(handle) }

    /// The statement's connection.
    package var connection: OpaquePointer { sqlite3_db_handle(handle) }

    /// Rows changed by the last statement run on the connection.
    package func changes(_ db: Database) -> Int32 {
        sqlite3_changes(connection)
    }

    package func error(_ code: Int32, _ db: Database) -> DatabaseError {
        let message = db.sqliteConnection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
        return DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql)
    }
}
