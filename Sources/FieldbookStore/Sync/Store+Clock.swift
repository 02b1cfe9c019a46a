import FieldbookCore
import FieldbookSQLite
import FieldbookSync
import GRDB
import Synchronization

extension Store {
    /// Sets this device's clock by the server's: what ``push(_:options:progress:)`` does when the
    /// server refuses changes stamped too far ahead of its clock (`clock_ahead`).
    ///
    /// In one transaction: the device keeps, in its meta table, how far its wall clock is ahead of
    /// `serverTime` (``clockCorrection``; it never sets its clock forward on the server's word),
    /// and gives new timestamps from the corrected clock to the pending changes from the first one
    /// stamped beyond what the server accepts (`serverTime + maxAhead`) on, in sequence order,
    /// above every timestamp it keeps and every one it has pulled. The changes before that one
    /// keep theirs: the server may hold them already (a push whose answer was lost), and a change
    /// it holds must come again unchanged. A record whose merge state already holds a re-stamped
    /// change is merged again with the new timestamps, so this device shows what every peer shows.
    ///
    /// A change keeps its sequence number and base, so what it saw does not change
    /// (`ChangeStamp/saw(_:)` reads those, not timestamps): a change may be stamped lower than
    /// one it saw, and still replaces it.
    /// - Returns: how many changes were re-stamped.
    @discardableResult
    public func correctClock(serverTime: Int64, maxAhead: Int64) async throws -> Int {
        let wall = configuration.wallClock()
        let offset = min(serverTime - Int64(wall), 0)
        let now = UInt64(max(Int64(wall) + offset, 0))
        let limit = Self.acceptedLimit(serverTime: serverTime, maxAhead: maxAhead)
        let device = deviceID
        return try await write { tx in
            try tx.flushLog()
            let first = try tx.firstPending(stampedBeyond: limit)
            var clock = try tx.clock(pastChangesBefore: first)
            let stamps = try tx.restampChanges(from: first, clock: &clock, now: now)
            try tx.remergeRestamped(from: first, stamps: stamps, device: device)
            try self.keepCorrection(tx.db, offset: offset, wall: wall, clock: clock)
            return stamps.count
        }
    }

    /// The highest raw timestamp the server accepts: `serverTime + maxAhead`, any counter (`Int64.max` out of range).
    private static func acceptedLimit(serverTime: Int64, maxAhead: Int64) -> Int64 {
        let accepted = serverTime.addingReportingOverflow(max(maxAhead, 0))
        return accepted.overflow || accepted.partialValue >= Int64.max >> 16
            ? Int64.max
            : Int64(bitPattern: HybridTimestamp(millis: UInt64(accepted.partialValue), counter: .max).rawValue)
    }

    /// Keeps the correction in the meta table and, once the transaction commits, in the writer's state with `clock`.
    private func keepCorrection(_ db: Database, offset: Int64, wall: UInt64, clock: HybridLogicalClock) throws {
        try db.execute(
            sql:
                "INSERT OR REPLACE INTO _fieldbook_meta (key, value) VALUES ('clock_offset', ?), ('clock_offset_at', ?)",
            arguments: [offset, Int64(wall)])
        // Local writes stamped after this commit use the corrected clock; none can run before
        // this does (it runs on the writer, right after the commit; a rollback changes nothing).
        db.afterNextTransaction { _ in
            self.state.withLock {
                $0.correction = (offset, wall)
                $0.clock = clock
            }
        }
    }
}

extension Store.Transaction {
    /// The sequence number of the first pending change stamped beyond `limit`; `Int64.max` if none is.
    fileprivate func firstPending(stampedBeyond limit: Int64) throws -> Int64 {
        let acknowledged = try acknowledged()
        return try Int64.fetchOne(
            db, sql: "SELECT min(seq) FROM _changelog WHERE seq > ? AND hlc > ?", arguments: [acknowledged, limit])
            ?? Int64.max
    }

    /// A clock past every timestamp of the changes before `first` and every one pulled.
    fileprivate func clock(pastChangesBefore first: Int64) throws -> HybridLogicalClock {
        let kept =
            try Int64.fetchOne(db, sql: "SELECT max(hlc) FROM _changelog WHERE seq < ?", arguments: [first]) ?? 0
        let pulled = try Int64.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'clock'") ?? 0
        return HybridLogicalClock(last: HybridTimestamp(rawValue: UInt64(max(kept, pulled, 0))))
    }

    /// Gives the changes from `first` on new timestamps from `clock`, in sequence order; returns them by sequence.
    fileprivate func restampChanges(from first: Int64, clock: inout HybridLogicalClock, now: UInt64) throws
        -> [Int64: HybridTimestamp]
    {
        var stamps: [Int64: HybridTimestamp] = [:]
        let update = RawStatement(try db.cachedStatement(sql: "UPDATE _changelog SET hlc = ? WHERE seq = ?"))
        for sequence in try Int64.fetchAll(
            db, sql: "SELECT seq FROM _changelog WHERE seq >= ? ORDER BY seq", arguments: [first])
        {
            let stamp = clock.now(wallMillis: now)
            stamps[sequence] = stamp
            update.bind(1, Int64(bitPattern: stamp.rawValue))
            update.bind(2, sequence)
            try update.run(db)
        }
        return stamps
    }

    /// Merges again, with the new timestamps, the records whose stored merge state holds re-stamped changes.
    fileprivate func remergeRestamped(from first: Int64, stamps: [Int64: HybridTimestamp], device: String) throws {
        let folded = try Row.fetchAll(
            db,
            sql: """
                SELECT DISTINCT c.entity, c.record FROM _changelog c
                JOIN _record_state s ON s.entity = c.entity AND s.record = c.record
                WHERE c.seq >= ? AND c.seq <= s.folded
                """, arguments: [first])
        var encoded: [UInt8] = []
        for row in folded {
            let table = try store.entityTable(row[0])
            let record: String = row[1]
            guard
                let text = try String.fetchOne(
                    db, sql: "SELECT state FROM _record_state WHERE entity = ? AND record = ?",
                    arguments: [table.entity.name, record])
            else { continue }
            var state = try RecordState(encoded: Array(text.utf8), entity: table.entity)
            state.restamp(device: device, entity: table.entity) { stamps[$0] }
            encoded.removeAll(keepingCapacity: true)
            state.encode(to: &encoded)
            try db.execute(
                sql: "UPDATE _record_state SET state = ? WHERE entity = ? AND record = ?",
                arguments: [String(decoding: encoded, as: UTF8.self), table.entity.name, record])
            // The row from the whole merge: the stored state and the local changes made since.
            try writeRow(table, record, try mergeState(table, record).state)
        }
    }
}
