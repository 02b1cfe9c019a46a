import FieldbookCore
import FieldbookSync
import GRDB

extension Store {
    /// This device's name, for people on other devices: sent with every push, so that their
    /// conflicts and histories can say which device wrote a change. Nil if it has none.
    public func deviceName() throws -> String? {
        try read { try $0.deviceName() }
    }

    /// Names this device (at most `PushRequest/maxDeviceName` characters, no control
    /// characters; nil for none). The next push takes the name to the server.
    /// - Throws: ``StoreError`` `too_long` or `bad_format` for a name that does not fit.
    public func setDeviceName(_ name: String?) throws {
        if let name {
            if name.count > PushRequest.maxDeviceName {
                throw StoreError(.tooLong, "a device name is at most \(PushRequest.maxDeviceName) characters")
            }
            if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                throw StoreError(.badFormat, "a device name has no control characters")
            }
        }
        try write { tx in
            try tx.db.execute(
                sql: name == nil
                    ? "DELETE FROM _fieldbook_meta WHERE key = 'device_name'"
                    : "INSERT OR REPLACE INTO _fieldbook_meta (key, value) VALUES ('device_name', ?)",
                arguments: name.map { [$0] } ?? [])
        }
    }

    /// The names other devices gave themselves, by device id, as the server passed them on with
    /// their changes; a device that gave none is missing.
    public func deviceNames() throws -> [String: String] {
        try read { tx in
            var names: [String: String] = [:]
            for row in try Row.fetchAll(tx.db, sql: "SELECT device, name FROM _devices") { names[row[0]] = row[1] }
            return names
        }
    }
}

extension Store.Transaction {
    func deviceName() throws -> String? {
        try String.fetchOne(db.cachedStatement(sql: "SELECT value FROM _fieldbook_meta WHERE key = 'device_name'"))
    }
}
