public import FieldbookCore
import FieldbookJSON
import FieldbookSQLite
import GRDB

extension Store {
    /// Reads and writes inside one SQLite transaction; see ``Store/write(_:)-245g8``.
    ///
    /// A transaction is lent to a closure and valid only while it runs: do not keep it.
    public struct Transaction {
        let store: Store
        let db: Database
        let statements: StatementCache

        func insertStatement(_ table: EntityTable) throws -> RawStatement {
            try statement(\.insert, table, table.insertSQL)
        }

        func upsertStatement(_ table: EntityTable) throws -> RawStatement {
            try statement(\.upsert, table, table.upsertSQL)
        }

        func existsStatement(_ table: EntityTable) throws -> RawStatement {
            try statement(\.exists, table, table.existsSQL)
        }

        /// A statement of `table`'s, prepared once per transaction and kept in `slots` at the table's number.
        private func statement(
            _ slots: ReferenceWritableKeyPath<StatementCache, [Statement?]>, _ table: EntityTable,
            _ sql: @autoclosure () -> String
        ) throws -> RawStatement {
            if let cached = statements[keyPath: slots][table.number] { return RawStatement(cached) }
            let statement = try db.cachedStatement(sql: sql())
            statements[keyPath: slots][table.number] = statement
            return RawStatement(statement)
        }

        /// A statement prepared once per transaction and kept in `slot` (GRDB's own cache hashes the SQL text on every use).
        func statement(_ slot: ReferenceWritableKeyPath<StatementCache, Statement?>, _ sql: @autoclosure () -> String)
            throws -> RawStatement
        {
            if let cached = statements[keyPath: slot] { return RawStatement(cached) }
            let statement = try db.cachedStatement(sql: sql())
            statements[keyPath: slot] = statement
            return RawStatement(statement)
        }

        func updateOneStatement(_ table: EntityTable, field: Int) throws -> RawStatement {
            if statements.updateOne[table.number].isEmpty {
                statements.updateOne[table.number] = Array(repeating: nil, count: table.entity.fields.count)
            }
            if let cached = statements.updateOne[table.number][field] { return RawStatement(cached) }
            let statement = try db.cachedStatement(sql: table.updateOneSQL[field])
            statements.updateOne[table.number][field] = statement
            return RawStatement(statement)
        }

        /// Inserts a record and returns its id (a new UUIDv7 unless `id` is given).
        ///
        /// Fields not given take their schema default (counters start at 0) or null.
        /// - Throws: ``StoreError`` naming the entity and field; nothing is written.
        @discardableResult
        public func insert(_ entity: String, _ values: [String: Value], id: String? = nil) throws -> String {
            let table = try writableTable(entity)
            let fields = table.entity.fields
            var row = [Value](repeating: .null, count: fields.count)
            var given = [Bool](repeating: false, count: fields.count)
            for (name, value) in values {
                let index = try writableFieldIndex(table, name)
                row[index] = try normalize(fields[index], value, entity: entity)
                given[index] = true
            }
            for (index, field) in fields.enumerated() where (!given[index] || row[index].isNull) && !field.retired {
                if let fallback = field.insertDefault {
                    row[index] = fallback
                } else if field.required {
                    throw StoreError(.required, entity: entity, field: field.name, "is required")
                }
            }
            for (index, _) in table.references { try checkReference(table, index, row[index]) }
            try checkAccess(
                table, .insert, nil,
                fields: row.indices.filter { !row[$0].isNull }.map { (fields[$0].name, row[$0]) })
            let recordID: String
            if let id {
                guard let canonical = UUIDText.canonical(id) else {
                    throw StoreError(.badFormat, entity: entity, field: "id", "must be a UUID")
                }
                recordID = canonical
            } else {
                recordID = store.newID()
            }
            try checkScope(
                table, .insert, recordID,
                fields: row.indices.filter { !row[$0].isNull }.map { (fields[$0].name, row[$0]) })

            let insert = try insertStatement(table)
            insert.bind(1, recordID)
            for (n, value) in row.enumerated() { insert.bind(Int32(n + 2), value) }
            do {
                try insert.run(db)
            } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY {
                throw StoreError(.duplicateID, entity: entity, "a record with this id exists already")
            }
            var changes: [FieldChange] = []
            changes.reserveCapacity(fields.count)
            for (n, value) in row.enumerated() where !value.isNull {
                var change = FieldChange(field: fields[n].name, kind: .set(value))
                if case .union = fields[n].policy, case .textSet(let members) = value {
                    change.kind = .members(added: members, removed: [])
                }
                table.annotate(&change, index: n, with: table.annotation[n].map { row[$0] })
                changes.append(change)
            }
            try log(entity, recordID, .insert) { FieldChange.encode(changes, to: &$0) }
            return recordID
        }

        /// Sets the given fields of a record; the others keep their values.
        ///
        /// Setting a `counter` field records the difference from its current value.
        /// - Throws: ``StoreError``: unknown field, invalid value, missing reference,
        ///   an `append` field (set only at insert), or no such record. Nothing is written.
        public func update(_ entity: String, id: String, _ values: [String: Value]) throws {
            let table = try writableTable(entity)
            let recordID = try canonicalID(id, entity: entity)
            if table.entity.appendOnly {
                throw StoreError(.immutable, entity: entity, "records are append-only: add a new one instead")
            }
            if values.count == 1, let (name, value) = values.first {
                try updateOne(table, recordID, name, value)
                return
            }
            let updates = try checkedUpdates(table, values)
            try checkAccess(
                table, .update, recordID,
                fields: updates.map { (table.entity.fields[$0.index].name, $0.value) })
            try checkScope(
                table, .update, recordID,
                fields: updates.map { (table.entity.fields[$0.index].name, $0.value) })
            guard !updates.isEmpty else {
                guard try exists(table, recordID) else { throw notFound(entity) }
                return
            }
            let fields = table.entity.fields
            let (wanted, wantedIndex, wantsOld, wantsNew) = Self.captured(table, for: updates)
            let sql =
                "UPDATE \(quoted(entity)) SET \(updates.map { "\(quoted(fields[$0.index].name)) = ?" }.joined(separator: ", ")) WHERE id = ?"
            let update = RawStatement(try db.cachedStatement(sql: sql))
            for (n, u) in updates.enumerated() { update.bind(Int32(n + 1), u.value) }
            update.bind(Int32(updates.count + 1), recordID)
            let capture = store.capture
            if wanted.isEmpty {
                try update.run(db)
            } else {
                // Old values only when a counter or set needs them: reading one decodes the old record.
                let request = PreUpdateCapture.Request(columns: wanted, old: wantsOld, new: wantsNew)
                try capture.capture(request, on: update.connection) { try update.run(db) }
            }
            guard update.changes(db) == 1 else { throw notFound(entity) }
            /// A field's value before the write (captured fields only).
            func before(_ index: Int) -> Value? {
                wantedIndex.firstIndex(of: index).map { capture.old[$0] }
            }
            /// A field's value after the write.
            func after(_ index: Int) -> Value? {
                if let u = updates.first(where: { $0.index == index }) { return u.value }
                return wantedIndex.firstIndex(of: index).map { capture.new[$0] }
            }

            var changes: [FieldChange] = []
            changes.reserveCapacity(updates.count)
            for u in updates {
                changes.append(
                    table.change(
                        index: u.index, to: u.value, old: before(u.index),
                        annotation: table.annotation[u.index].flatMap(after)))
            }
            try log(entity, recordID, .update) { FieldChange.encode(changes, to: &$0) }
            // A reference changed: a deleted record held by the old one may be released.
            if updates.contains(where: { u in table.holding.contains { $0.field == u.index } }) { try releaseHeld() }
        }

        /// The fields `values` sets, checked (updatable, valid, references resolved) and in schema order.
        private func checkedUpdates(_ table: EntityTable, _ values: [String: Value]) throws -> [(
            index: Int, value: Value
        )] {
            let fields = table.entity.fields
            var updates: [(index: Int, value: Value)] = []
            updates.reserveCapacity(values.count)
            for (name, value) in values {
                let index = try updatableFieldIndex(table, name)
                updates.append((index, try normalize(fields[index], value, entity: table.entity.name)))
            }
            updates.sort { $0.index < $1.index }
            for u in updates { try checkReference(table, u.index, u.value) }
            return updates
        }

        /// What the pre-update hook must read for `updates`: counters and sets log what changed,
        /// which needs their old values; observed and epoch-ordered fields carry another field's
        /// value after the write. Both come from the hook, without a second lookup of the row.
        private static func captured(_ table: EntityTable, for updates: [(index: Int, value: Value)]) -> (
            wanted: [(column: Int32, type: FieldType)], wantedIndex: [Int], wantsOld: Bool, wantsNew: Bool
        ) {
            let fields = table.entity.fields
            var wanted: [(column: Int32, type: FieldType)] = []
            var wantedIndex: [Int] = []
            var wantsOld = false
            var wantsNew = false
            for u in updates {
                let field = fields[u.index]
                if field.isCounter || field.isUnion {
                    wanted.append((Int32(u.index + 1), field.type))
                    wantedIndex.append(u.index)
                    wantsOld = true
                }
                if let source = table.annotation[u.index], !updates.contains(where: { $0.index == source }) {
                    if !wantedIndex.contains(source) {
                        wanted.append((Int32(source + 1), fields[source].type))
                        wantedIndex.append(source)
                    }
                    wantsNew = true
                }
            }
            return (wanted, wantedIndex, wantsOld, wantsNew)
        }

        /// The common update, of one field: the same checks, hook reads and changelog entry
        /// as ``update(_:id:_:)`` makes for several, with the statement and the hook's request
        /// prepared per field and the change encoded without building arrays.
        private func updateOne(_ table: EntityTable, _ recordID: String, _ name: String, _ value: Value) throws {
            let index = try updatableFieldIndex(table, name)
            let value = try normalize(table.entity.fields[index], value, entity: table.entity.name)
            try checkReference(table, index, value)
            try checkAccess(table, .update, recordID, fields: [(name, value)])
            try checkScope(table, .update, recordID, fields: [(name, value)])
            let update = try updateOneStatement(table, field: index)
            let capture = store.capture
            let plan = table.captureForOne[index]
            try update.withValue(1, value) {
                try update.withText(2, recordID) {
                    switch plan {
                    case nil: try update.run(db)
                    case .oldValue(let request)?, .annotation(let request)?:
                        try capture.capture(request, on: update.connection) { try update.run(db) }
                    }
                }
            }
            guard update.changes(db) == 1 else { throw notFound(table.entity.name) }
            var old: Value?
            var annotation: Value?
            switch plan {
            case nil: break
            case .oldValue?: old = capture.old.first
            case .annotation?: annotation = capture.new.first
            }
            if table.annotation[index] == index { annotation = value }
            let change = table.change(index: index, to: value, old: old, annotation: annotation)
            try log(table.entity.name, recordID, .update) { out in
                // What FieldChange.encode writes for [change].
                out.append(UInt8(ascii: "{"))
                out.append(contentsOf: table.jsonKey[index])
                change.writeJSON(to: &out)
                out.append(UInt8(ascii: "}"))
            }
            if table.holding.contains(where: { $0.field == index }) { try releaseHeld() }
        }

        /// Adds `amount` to a `counter` field.
        public func increment(_ entity: String, id: String, _ field: String, by amount: Int64 = 1) throws {
            let table = try writableTable(entity)
            let index = try writableFieldIndex(table, field)
            guard table.entity.fields[index].isCounter else {
                throw StoreError(.wrongType, entity: entity, field: field, "is not a counter")
            }
            let recordID = try canonicalID(id, entity: entity)
            try checkAccess(table, .update, recordID, fields: [(field, nil)])
            try checkScope(table, .update, recordID, fields: [])
            try db.execute(
                sql: "UPDATE \(quoted(entity)) SET \(quoted(field)) = coalesce(\(quoted(field)), 0) + ? WHERE id = ?",
                arguments: [amount, recordID])
            guard db.changesCount == 1 else { throw notFound(entity) }
            let changes = [FieldChange(field: field, kind: .add(amount))]
            try log(entity, recordID, .update) { FieldChange.encode(changes, to: &$0) }
        }

        /// Deletes a record. The changelog keeps its history. Records that follow it (a reference
        /// field with `onDelete: cascade`, such as progress notes on a finding) go with it.
        /// - Throws: ``StoreError``: no such record, an append-only entity, or a record
        ///   other records still reference through a field with `onDelete: conflict` (the error
        ///   names which field references it).
        public func delete(_ entity: String, id: String) throws {
            let table = try writableTable(entity)
            let recordID = try canonicalID(id, entity: entity)
            if table.entity.appendOnly {
                throw StoreError(.immutable, entity: entity, "records are append-only and cannot be deleted")
            }
            guard try exists(table, recordID) else { throw notFound(entity) }
            try checkAccess(table, .delete, recordID, fields: [])
            try checkScope(table, .delete, recordID, fields: [])
            for other in store.schema.entities {
                for field in other.fields where field.type == .reference(entity) && field.onDelete == .conflict {
                    let referenced =
                        try Bool.fetchOne(
                            db,
                            sql: "SELECT EXISTS (SELECT 1 FROM \(quoted(other.name)) WHERE \(quoted(field.name)) = ?)",
                            arguments: [recordID]) ?? false
                    if referenced {
                        throw StoreError(
                            .referenced, entity: entity,
                            "the record is still referenced by \(other.name).\(field.name); delete or change those first"
                        )
                    }
                }
            }
            try db.execute(sql: "DELETE FROM \(quoted(entity)) WHERE id = ?", arguments: [recordID])
            try log(entity, recordID, .delete) { FieldChange.encode([], to: &$0) }
            if table.isFollowed { try hideFollowers(table, recordID) }
            if !table.holding.isEmpty { try releaseHeld() }
        }

        /// The record with this id, or nil.
        public func record(_ entity: String, id: String) throws -> Record? {
            let table = try store.entityTable(entity)
            guard let recordID = UUIDText.canonical(id) else { return nil }
            let row = try Row.fetchOne(
                db, sql: "SELECT \(table.selectColumns) FROM \(quoted(entity)) WHERE id = ?", arguments: [recordID])
            return row.map { table.record($0) }
        }

        /// The records a query selects, in its order (then by id).
        public func fetch(_ query: Query) throws -> [Record] {
            let table = try store.entityTable(query.entity)
            var clauses: [String] = []
            var arguments: [DatabaseValue] = []
            for filter in query.filters {
                let field = filter.field == "id" ? nil : table.entity.fields[try fieldIndex(table, filter.field)]
                let column = quoted(filter.field)
                if filter.value.isNull {
                    switch filter.op {
                    case .equal: clauses.append("\(column) IS NULL")
                    case .notEqual: clauses.append("\(column) IS NOT NULL")
                    default:
                        throw StoreError(
                            .wrongType, entity: query.entity, field: filter.field, "only = and != compare with null")
                    }
                    continue
                }
                if filter.op == .contains {
                    guard case .text(let member) = filter.value else {
                        throw StoreError(.wrongType, entity: query.entity, field: filter.field, "'contains' takes text")
                    }
                    switch field?.type {
                    case .textSet?, .attachments?:
                        clauses.append("EXISTS (SELECT 1 FROM json_each(\(column)) WHERE value = ?)")
                    case .text:
                        clauses.append("instr(\(column), ?) > 0")
                    default:
                        throw StoreError(
                            .wrongType, entity: query.entity, field: filter.field,
                            "'contains' is for text and set fields")
                    }
                    arguments.append(member.databaseValue)
                    continue
                }
                let value: Value
                do {
                    if let field {
                        value = try field.normalizeForComparison(filter.value)
                    } else {
                        value = .text(filter.value.text.flatMap(UUIDText.canonical) ?? filter.value.description)
                    }
                } catch {
                    throw StoreError(error, entity: query.entity, field: filter.field)
                }
                clauses.append(
                    filter.op == .notEqual
                        ? "(\(column) != ? OR \(column) IS NULL)" : "\(column) \(filter.op.rawValue) ?")
                arguments.append(value.databaseValue)
            }
            var sql = "SELECT \(table.selectColumns) FROM \(quoted(query.entity))"
            if !clauses.isEmpty { sql += " WHERE " + clauses.joined(separator: " AND ") }
            var order: [String] = []
            for key in query.sort {
                if key.field != "id" { _ = try fieldIndex(table, key.field) }
                order.append("\(quoted(key.field)) \(key.descending ? "DESC" : "ASC")")
            }
            order.append("id ASC")
            sql += " ORDER BY " + order.joined(separator: ", ")
            if let limit = query.limitCount {
                sql += " LIMIT ? OFFSET ?"
                arguments.append(max(0, limit).databaseValue)
                arguments.append(max(0, query.offsetCount).databaseValue)
            }
            return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)).map { table.record($0) }
        }

        // MARK: - Helpers

        /// The entity's table; a run of writes to one entity skips the dictionary lookup.
        func entityTable(_ name: String) throws -> EntityTable {
            if let last = statements.lastTable, last.entity.name == name { return last }
            let table = try store.entityTable(name)
            statements.lastTable = table
            return table
        }

        func fieldIndex(_ table: EntityTable, _ name: String) throws -> Int {
            guard let index = table.entity.fieldIndex(name) else {
                throw StoreError(
                    .unknownField, entity: table.entity.name, field: name,
                    "no such field (fields: \(table.entity.fields.map(\.name).joined(separator: ", ")))")
            }
            return index
        }

        /// `value` checked against `field` and in its canonical form (a local write). A file it
        /// refers to must be in this store (``Store/importFile(at:name:mediaType:)``) or known to be
        /// on the server (pulled): a reference to a file no one can upload would stop every push.
        func normalize(_ field: Field, _ value: Value, entity: String) throws -> Value {
            let normalized: Value
            do {
                normalized = try field.normalize(value)
            } catch {
                throw StoreError(error, entity: entity, field: field.name)
            }
            if field.type.isAttachment {
                for attachment in normalized.attachments {
                    let known = try Bool.fetchOne(
                        db, sql: "SELECT here OR uploaded FROM _files WHERE sha256 = ? AND size = ?",
                        arguments: [attachment.sha256, attachment.size])
                    guard known == true else {
                        throw StoreError(
                            .file, entity: entity, field: field.name,
                            "refers to a file this store does not hold; attach the file itself (Store.attach, fieldbook attach)"
                        )
                    }
                }
            }
            return normalized
        }

        func canonicalID(_ id: String, entity: String) throws -> String {
            guard let canonical = UUIDText.canonical(id) else {
                throw StoreError(.badFormat, entity: entity, field: "id", "must be a UUID")
            }
            return canonical
        }

        func notFound(_ entity: String) -> StoreError {
            StoreError(.notFound, entity: entity, "no record with this id")
        }

        func exists(_ table: EntityTable, _ id: String) throws -> Bool {
            let statement = try existsStatement(table)
            statement.bind(1, id)
            defer { statement.reset() }
            return try statement.step(db)
        }

        /// The index of a field an update may set.
        /// The entity's table for a write: a retired entity's records are read only.
        func writableTable(_ name: String) throws -> EntityTable {
            let table = try entityTable(name)
            if table.entity.retired {
                throw StoreError(
                    .immutable, entity: name,
                    "is retired in schema version \(store.schema.version): its records are kept and shown, but no longer written"
                )
            }
            return table
        }

        /// A field's position for a write: a retired field's values are read only.
        func writableFieldIndex(_ table: EntityTable, _ name: String) throws -> Int {
            let index = try fieldIndex(table, name)
            if table.entity.fields[index].retired {
                throw StoreError(
                    .immutable, entity: table.entity.name, field: name,
                    "is retired in schema version \(store.schema.version): its values are kept and shown, but no longer written"
                )
            }
            return index
        }

        func updatableFieldIndex(_ table: EntityTable, _ name: String) throws -> Int {
            let index = try writableFieldIndex(table, name)
            if case .append = table.entity.fields[index].policy {
                throw StoreError(
                    .immutable, entity: table.entity.name, field: name,
                    "is set when the record is added and never changed")
            }
            return index
        }

        /// Checks that a reference field's value names a record that exists.
        func checkReference(_ table: EntityTable, _ index: Int, _ value: Value) throws {
            guard let target = table.referenceTarget[index], case .text(let id) = value else { return }
            if !(try exists(try store.entityTable(target), id)) {
                throw StoreError(
                    .missingReference, entity: table.entity.name, field: table.entity.fields[index].name,
                    "refers to a \(target) record that does not exist")
            }
        }

        static let logBatch = 32

        static func changelogSQL(rows: Int) -> String {
            "INSERT INTO _changelog (entity, record, op, hlc, base, fields, record_key) VALUES "
                + Array(repeating: "(?, ?, ?, ?, ?, ?, ?)", count: rows).joined(separator: ", ")
        }

        /// Queues one changelog entry, its fields written by `encodeFields`; ``flushLog()`` writes
        /// queued entries in this transaction, many rows per statement. ``Store/write(_:)-245g8``
        /// flushes before it commits.
        func log(
            _ entity: String, _ recordID: String, _ op: ChangeOperation, encodeFields: (inout [UInt8]) -> Void
        ) throws {
            let (timestamp, base) = store.stamp()
            // All queued entries write their text into one shared buffer, bound without copying.
            let text = Self.appendEntry(entity, recordID, to: &statements.buffer, encodeFields)
            statements.logQueue.append(
                QueuedChange(
                    entity: text.entity, record: text.record, fields: text.fields, op: Int64(op.rawValue),
                    hlc: Int64(bitPattern: timestamp.rawValue), base: base, recordKey: recordKey(recordID)))
            if statements.logQueue.count == Self.logBatch { try flushLog() }
        }

        /// Appends an entry's entity, record id and fields to `buffer`; returns where each is.
        private static func appendEntry(
            _ entity: String, _ recordID: String, to buffer: inout [UInt8], _ encodeFields: (inout [UInt8]) -> Void
        ) -> (entity: Range<Int>, record: Range<Int>, fields: Range<Int>) {
            let entityStart = buffer.count
            buffer.append(contentsOf: entity.utf8)
            let recordStart = buffer.count
            buffer.append(contentsOf: recordID.utf8)
            let fieldsStart = buffer.count
            encodeFields(&buffer)
            return (entityStart..<recordStart, recordStart..<fieldsStart, fieldsStart..<buffer.count)
        }

        func flushLog() throws {
            // A flush that failed leaves data changes without their entries: the transaction
            // must not commit, even if the caller caught the error and went on.
            if let failure = statements.logFailure { throw failure }
            do {
                try writeQueuedChanges()
            } catch {
                statements.logFailure = error
                throw error
            }
        }

        private func writeQueuedChanges() throws {
            let queue = statements.logQueue
            guard !queue.isEmpty else { return }
            defer {
                statements.logQueue.removeAll(keepingCapacity: true)
                statements.buffer.removeAll(keepingCapacity: true)
            }
            let insert: RawStatement
            if queue.count == Self.logBatch {
                if statements.changelog == nil {
                    statements.changelog = try db.cachedStatement(sql: Self.changelogSQL(rows: Self.logBatch))
                }
                insert = RawStatement(statements.changelog!)
            } else {
                insert = RawStatement(try db.cachedStatement(sql: Self.changelogSQL(rows: queue.count)))
            }
            try statements.buffer.withUnsafeBufferPointer { buffer in
                // The text bindings point into the buffer: valid only inside this closure.
                defer { insert.clearBindings() }
                for (n, entry) in queue.enumerated() {
                    let p = Int32(n * 7)
                    insert.bindUnowned(p + 1, buffer, entry.entity)
                    insert.bindUnowned(p + 2, buffer, entry.record)
                    insert.bind(p + 3, entry.op)
                    insert.bind(p + 4, entry.hlc)
                    insert.bind(p + 5, entry.base)
                    insert.bindUnowned(p + 6, buffer, entry.fields)
                    insert.bind(p + 7, entry.recordKey)
                }
                try insert.run(db)
            }
        }
    }
}

/// A changelog entry waiting for ``Store/Transaction/flushLog()``. Its text is in the
/// transaction's shared buffer, at these ranges of UTF-8 bytes.
struct QueuedChange {
    let entity: Range<Int>
    let record: Range<Int>
    let fields: Range<Int>
    let op: Int64
    let hlc: Int64
    let base: Int64
    let recordKey: Int64
}

extension EntityTable {
    func record(_ row: Row) -> Record {
        var values: [Value] = []
        values.reserveCapacity(entity.fields.count)
        for (n, field) in entity.fields.enumerated() {
            values.append(Value(row[n + 1] as DatabaseValue, type: field.type))
        }
        return Record(entity: entity, id: row[0], values: values)
    }
}

/// The first 16 hex digits of a record id as an integer: a compact index key for history lookups.
func recordKey(_ id: String) -> Int64 {
    var id = id
    return id.withUTF8 { utf8 in
        var key: UInt64 = 0
        var n = 0
        for c in utf8 where c != UInt8(ascii: "-") {
            let digit = c &- UInt8(ascii: "0") < 10 ? c &- UInt8(ascii: "0") : c &- UInt8(ascii: "a") &+ 10
            key = key << 4 | UInt64(digit & 0xF)
            n += 1
            if n == 16 { break }
        }
        return Int64(bitPattern: key)
    }
}

extension Field {
    var isCounter: Bool {
        if case .counter = policy { return true }
        return false
    }

    var isUnion: Bool {
        if case .union = policy { return true }
        return false
    }

    /// Like ``normalize(_:)``, but a filter may compare a text field with longer text.
    func normalizeForComparison(_ value: Value) throws(ValueProblem) -> Value {
        switch (type, value) {
        case (.text, .text): return value
        case (.reference, .text(let s)): return .text(UUIDText.canonical(s) ?? s)
        default: return try normalize(value)
        }
    }
}
