public import FieldbookCore
import FieldbookJSON
import FieldbookSQLite
public import FieldbookSync
import Foundation
import GRDB
import Synchronization

extension Store {
    /// Pushes every pending change, then pulls and applies every change the server has
    /// that this device has not seen, page by page.
    ///
    /// Each pushed batch is acknowledged, and each pulled page applied together with the
    /// cursor, in one transaction: a sync cut off anywhere resumes at the next call and
    /// loses and repeats nothing. Network and server failures are retried with backoff.
    /// A server restored since the last sync is started again with (``push(_:options:progress:)``,
    /// ``pull(_:options:progress:)``), and what it lacks is pushed before this returns. A push
    /// refused with `unknown_reference` (a restored server lacks a record another device made) is
    /// tried again once after the pull, and its refusal thrown if it is refused again.
    public func sync(_ transport: any SyncTransport, options: SyncOptions = SyncOptions()) async throws -> SyncReport {
        var report = SyncReport()
        let server = try await read { try $0.serverIdentity() }
        // A push refused for a reference to a record the server lacks (after a restore, only the
        // device that made the record may still hold it) is tried again after the pull, once.
        var pushAgain = false
        do {
            if try await uploadFiles(transport, options: options, into: &report) {
                report.pushed = try await push(transport, options: options) {
                    report.pushed = $0
                    options.progress?(report)
                }
            }
        } catch let error as SyncError where error.refusal == .unknownReference {
            pushAgain = true
        } catch let error as SyncError where error.refusal == .missingFiles {
            // The server lacks files it was known to hold (it was restored, say): sent again, once.
            try await forgetUploads((error.underlying as? WireError)?.files ?? [])
            if try await uploadFiles(transport, options: options, into: &report) {
                report.pushed = try await push(transport, options: options) {
                    report.pushed = $0
                    options.progress?(report)
                }
            }
        }
        let pulled = try await pull(transport, options: options) { pulled, cursor in
            report.pulled = pulled
            report.cursor = cursor
            options.progress?(report)
        }
        report.pulled = pulled.applied
        report.cursor = pulled.cursor
        // A server met anew by the pull (restored: the device started again with it) lacks changes
        // that were not pending when the push ran.
        if try await read({ try $0.serverIdentity() }) != server { pushAgain = true }
        if pushAgain, try await uploadFiles(transport, options: options, into: &report) {
            let before = report.pushed
            report.pushed += try await push(transport, options: options) {
                report.pushed = before + $0
                options.progress?(report)
            }
        }
        let now = CalendarText.timestamp(millisecondsSince1970: Int64(configuration.wallClock()))
        try await write { tx in
            try tx.db.execute(sql: "UPDATE _fieldbook_meta SET value = ? WHERE key = 'last_sync'", arguments: [now])
        }
        (report.filesDownloaded, report.filesWaiting, report.fileBytesDownloaded) = try await downloadFiles(
            transport, options: options, missing: report.filesMissing)
        report.openConflicts = try conflicts().count
        report.newestSchema = try newestSchemaVersion()
        return report
    }

    /// Pushes every pending change, batch by batch; returns how many the server acknowledged.
    ///
    /// Three batches are on the wire at a time: each is read from the changelog ahead and sent
    /// before the answers to the ones before it are awaited, and the next as soon as an answer
    /// comes, before this device records it; so the server has a batch at hand whenever it
    /// finishes one. The server takes a device's changes in sequence order only: a batch that
    /// reaches it before one ahead of it waits there for that one, and is refused
    /// (`sequence_gap`), nothing of it applied, only if that one is not there (it went to another
    /// server process, say). A refused batch is sent again once the ones ahead of it are
    /// answered; the rest of the push then goes one batch at a time.
    ///
    /// A server restored or replaced since the last sync refuses the push (`server_changed`): this
    /// device then starts again with it (`startAgain(with:)`) and pushes every change it lacks.
    /// A push the server refuses because changes are stamped too far ahead of its clock
    /// (`clock_ahead`: this device's clock is fast) is not given up either: the device learns the
    /// server's time, re-stamps its pending changes (``correctClock(serverTime:maxAhead:)``) and
    /// pushes again. Each is done once a push.
    public func push(
        _ transport: any SyncTransport, options: SyncOptions = SyncOptions(), progress: (Int) -> Void = { _ in }
    ) async throws -> Int {
        var pushed = 0
        var startedAgain = false
        var corrected = false
        while true {
            let before = pushed
            do {
                return before
                    + (try await pushBatches(transport, options: options) {
                        pushed = before + $0
                        progress(before + $0)
                    })
            } catch let error as SyncError where error.serverChanged != nil && !startedAgain {
                startedAgain = true
                try await startAgain(with: error.serverChanged!)
            } catch let error as SyncError where error.refusal == .clockAhead && !corrected {
                guard let serverTime = error.serverTime else { throw error }
                corrected = true
                try await correctClock(serverTime: serverTime, maxAhead: error.maxAhead ?? 0)
            }
        }
    }

    /// Pushes every pending change in batches (see ``push(_:options:progress:)``); returns how many were acknowledged.
    private func pushBatches(
        _ transport: any SyncTransport, options: SyncOptions, progress: (Int) -> Void
    ) async throws -> Int {
        var pipeline = PushPipeline(
            upcoming: Task {
                try await read { tx in try tx.encodedPush(after: tx.acknowledged(), limit: options.pushBatch) }
            })
        var pushed = 0
        do {
            try await sendBatches(&pipeline, transport, options: options)
            while !pipeline.inFlight.isEmpty {
                let earlier = pipeline.inFlight.removeFirst()
                let response = try await answer(to: earlier, transport, options: options)
                try Self.checkAnswer(response, to: earlier.batch)
                // The next batch goes first: the server works on it while this device records the answer.
                try await sendBatches(&pipeline, transport, options: options)
                try await acknowledge(response)
                pushed += earlier.batch.sequences.count
                progress(pushed)
            }
        } catch {
            await Self.stopBatches(pipeline)
            throw error
        }
        return pushed
    }

    /// Sends batches until three are unanswered (one, once the server has refused one that
    /// overtook a batch ahead of it) or none is left.
    private func sendBatches(_ pipeline: inout PushPipeline, _ transport: any SyncTransport, options: SyncOptions)
        async throws
    {
        while pipeline.inFlight.count < pipeline.window, let reading = pipeline.upcoming {
            let batch = try await reading.value
            pipeline.upcoming = nil
            guard let last = batch.sequences.last else { return }
            // Once the server holds a change, a power cut must not lose it: this device would
            // give its sequence number to another change, which the server would refuse for
            // ever (`sequence_reused`).
            if configuration.durableBeforePush, last > pipeline.durable { pipeline.durable = try await flushAsync() }
            let overtaken = pipeline.overtaken
            let answer = Task {
                do {
                    return try await retrying(options) { try await transport.push(encoded: batch) }
                } catch let error as SyncError where error.refusal == .sequenceGap {
                    overtaken.happened.store(true, ordering: .relaxed)
                    throw error
                }
            }
            pipeline.inFlight.append(SentPush(batch: batch, overtaking: !pipeline.inFlight.isEmpty, answer: answer))
            pipeline.upcoming = Task { try await read { try $0.encodedPush(after: last, limit: options.pushBatch) } }
        }
    }

    /// The server's answer to a batch sent; a batch refused because it overtook one ahead of it is sent again.
    private func answer(to sent: SentPush, _ transport: any SyncTransport, options: SyncOptions) async throws
        -> PushResponse
    {
        do {
            return try await sent.answer.value
        } catch let error as SyncError where error.refusal == .sequenceGap && sent.overtaking {
            // The batches ahead of it have been answered since.
            return try await retrying(options) { try await transport.push(encoded: sent.batch) }
        }
    }

    /// Throws `bad_response` unless `response` assigns one server sequence number to each change of `batch`, in order.
    private static func checkAnswer(_ response: PushResponse, to batch: EncodedPush) throws {
        // An answer that does not match the batch would mark changes as received that the
        // server never took: they would never be pushed again.
        guard response.assigned.map(\.sequence) == batch.sequences,
            response.assigned.allSatisfy({ $0.serverSequence >= 1 })
        else {
            throw SyncError(
                .badResponse, "the push answer does not assign one server sequence number to each change pushed"
            )
        }
    }

    /// Cancels the batches still unanswered and waits for them and for the batch being read.
    private static func stopBatches(_ pipeline: PushPipeline) async {
        // Pushes are idempotent: one still on the wire would do no harm, but none is left running.
        for sent in pipeline.inFlight {
            sent.answer.cancel()
            _ = try? await sent.answer.value
        }
        _ = try? await pipeline.upcoming?.value
    }

    /// Pulls and applies every change after this device's cursor, page by page; returns how
    /// many changes from other devices it applied and the cursor reached.
    ///
    /// The next page is requested (and decoded) while the current one is applied; each page is
    /// still applied in order, together with its cursor.
    ///
    /// A server restored or replaced since the last sync refuses the pull (`server_changed`): this
    /// device then starts again with it (`startAgain(with:)`) and pulls from the start.
    public func pull(
        _ transport: any SyncTransport, options: SyncOptions = SyncOptions(),
        progress: (_ applied: Int, _ cursor: Int64) -> Void = { _, _ in }
    ) async throws -> (applied: Int, cursor: Int64) {
        try await catchUp(transport, options: options)
        do {
            return try await pullNew(transport, options: options, progress: progress)
        } catch let error as SyncError where error.serverChanged != nil {
            try await startAgain(with: error.serverChanged!)
            return try await pullNew(transport, options: options, progress: progress)
        } catch let error as SyncError where error.refusal == .scopeChanged {
            try await startAgainForScope()
            return try await pullNew(transport, options: options, progress: progress)
        }
    }

    private func pullNew(
        _ transport: any SyncTransport, options: SyncOptions,
        progress: (_ applied: Int, _ cursor: Int64) -> Void
    ) async throws -> (applied: Int, cursor: Int64) {
        let schema = self.schema
        let device = deviceID
        // The newest version fetched, even by this store object (which reads its enum values once
        // opened again).
        let knownSchema = try newestSchemaVersion() ?? schema.version
        let (start, server, known) = try await read {
            (try $0.cursor(), try $0.serverIdentity(), try $0.scopeGeneration())
        }
        @Sendable func fetch(after cursor: Int64, generation: Int64?, limit: Int) async throws -> ArrivingPage {
            var request = PullRequest(
                schema: SchemaVersion(schema), device: device, cursor: cursor, limit: limit, server: server)
            request.scopeGeneration = generation
            request.knownSchema = knownSchema
            return try await retrying(options) { try await transport.pullArriving(request, schema: schema) }
        }
        @Sendable func fetch(_ after: (cursor: Int64, generation: Int64?)?, limit: Int) async throws -> ArrivingPage? {
            guard let after else { return nil }
            return try await fetch(after: after.cursor, generation: after.generation, limit: limit)
        }
        func applyIfAny(_ page: ReceivedPage?) async throws -> Int {
            guard let page else { return 0 }
            return try await apply(page)
        }
        let unread = knownSchema > (newestSchema?.version ?? schema.version)
        @Sendable func receive(_ arriving: ArrivingPage, after cursor: Int64) throws -> ReceivedPage {
            let page: PullResponse
            do {
                page = try arriving.page()
            } catch let error as SyncError where unread && error.kind == .badResponse {
                throw SyncError(
                    .badResponse,
                    "\(error.message); this device fetched schema version \(knownSchema) and reads its values once the store is opened again"
                )
            }
            guard page.cursor >= cursor else {
                throw SyncError(.badResponse, "the server moved the cursor back from \(cursor) to \(page.cursor)")
            }
            if let announced = arriving.announced,
                announced.cursor != page.cursor || announced.more != page.more
                    || announced.scopeGeneration != page.scopeGeneration
            {
                throw SyncError(
                    .badResponse, "the answer's headers announce another cursor or scope than its page holds")
            }
            try Store.check(page, after: cursor)
            return ReceivedPage(page, device: device, after: cursor)
        }
        // Pages in three steps at once: the server answers page n + 1 (asked for as soon as page n's
        // answer says where n ends), this device reads page n and applies page n - 1; each page is
        // applied in order, with its cursor. The first page is small (a sixteenth of the page size,
        // 250 at least), so that applying starts early; pages double up to the page size.
        let full = max(options.pageSize, 1)
        var limit = max(min(full, 250), full / 16)
        var cursor = start
        var generation = known
        var arriving = try await fetch(after: start, generation: generation, limit: limit)
        var pending: ReceivedPage?
        var applied = 0
        while true {
            limit = min(full, limit * 2)
            let ahead = arriving.announced.flatMap { $0.more ? ($0.cursor, $0.scopeGeneration ?? generation) : nil }
            let (nextLimit, unapplied) = (limit, pending)
            async let prefetched = fetch(ahead, limit: nextLimit)
            async let applying = applyIfAny(unapplied)
            let received = try receive(arriving, after: cursor)
            generation = received.page.scopeGeneration ?? generation
            cursor = received.page.cursor
            // Not announced: asked for now that this page is read.
            let unannounced = ahead == nil && received.page.more ? (cursor, generation) : nil
            async let asked = fetch(unannounced, limit: nextLimit)
            applied += try await applying
            if let unapplied { progress(applied, unapplied.page.cursor) }
            let announcedNext = try await prefetched
            let askedNext = try await asked
            let next = announcedNext ?? askedNext
            guard received.page.more, let next else {
                applied += try await apply(received)
                progress(applied, cursor)
                if let newest = received.page.newestSchema, newest > knownSchema {
                    try await learnSchema(newest, transport, options: options)
                }
                return (applied, cursor)
            }
            arriving = next
            pending = received
        }
    }

    /// After an upgrade: asks the server for what the earlier version left out of the changes this
    /// device pulled in it (``CatchUpRequest``), and writes the records they touch again. Each answer
    /// is applied with where it stopped, in one transaction: cut off, it goes on from there.
    func catchUp(_ transport: any SyncTransport, options: SyncOptions) async throws {
        while let plan = try await read({ tx in
            try String.fetchOne(tx.db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'catch_up'")
        }).flatMap({ try? JSON(parsing: $0) }) {
            guard case .int(let from)? = plan["from"], case .int(let after)? = plan["after"],
                case .int(let until)? = plan["until"]
            else {
                try await write { try $0.db.execute(sql: "DELETE FROM _fieldbook_meta WHERE key = 'catch_up'") }
                return
            }
            let request = CatchUpRequest(
                schema: SchemaVersion(schema), device: deviceID, from: Int(from), after: after, until: until)
            let schema = self.schema
            let answer = try await retrying(options) { try await transport.catchUp(request, schema: schema) }
            guard answer.after > after || answer.done, answer.after <= until else {
                throw SyncError(.badResponse, "the catch-up answer does not move on from \(after)")
            }
            var previous = after
            for change in answer.changes {
                guard let serverSequence = change.serverSequence, serverSequence > previous, serverSequence <= until
                else { throw SyncError(.badResponse, "the catch-up answer's changes are out of order or range") }
                previous = serverSequence
            }
            try await write { tx in
                try tx.applyCatchUp(answer.changes)
                if answer.done {
                    try tx.db.execute(sql: "DELETE FROM _fieldbook_meta WHERE key = 'catch_up'")
                } else {
                    let next = JSON.object([
                        ("from", .int(from)), ("after", .int(answer.after)), ("until", .int(until)),
                    ])
                    try tx.db.execute(
                        sql: "UPDATE _fieldbook_meta SET value = ? WHERE key = 'catch_up'", arguments: [next.serialized]
                    )
                }
            }
        }
    }

    /// Fetches version `version` of the schema, which the server announced, and every version
    /// between this store's and it not fetched before, and keeps them (``newestSchema`` once the
    /// store is opened again): the device may upgrade to it — through each version between, so a
    /// field renamed twice is followed — and reads its enum values meanwhile.
    private func learnSchema(_ version: Int, _ transport: any SyncTransport, options: SyncOptions) async throws {
        let schema = self.schema
        let kept = try await read { tx in
            Set(try Self.fetchedVersions(tx.db, name: schema.name, after: schema.version).map(\.version))
        }
        var fetched: [Schema] = []
        for wanted in (schema.version + 1)...version where !kept.contains(wanted) {
            let fetching = try await retrying(options) { try await transport.schema(version: wanted) }
            guard fetching.name == schema.name, fetching.version == wanted else {
                throw SyncError(
                    .badResponse,
                    "the server sent schema '\(fetching.name)' version \(fetching.version) for version \(wanted)")
            }
            fetched.append(fetching)
        }
        try await write { [fetched] tx in
            for schema in fetched {
                try tx.db.execute(
                    sql: "INSERT OR REPLACE INTO _fieldbook_meta (key, value) VALUES (?, ?)",
                    arguments: ["schema_version_\(schema.version)", schema.json.serialized])
            }
            try tx.db.execute(
                sql: """
                    INSERT OR REPLACE INTO _fieldbook_meta (key, value)
                    SELECT 'newest_schema', value FROM _fieldbook_meta WHERE key = ?
                    UNION ALL SELECT 'newest_schema_version', ?
                    """, arguments: ["schema_version_\(version)", version])
        }
    }

    /// The newest version of the schema this device has fetched, if newer than its own (its number
    /// kept beside it: read at every pull, without the document).
    func newestSchemaVersion() throws -> Int? {
        try read { tx in
            try Int.fetchOne(tx.db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'newest_schema_version'")
        }.flatMap { $0 > schema.version ? $0 : nil }
    }

    /// Refuses a page that breaks the protocol in a way that would lose or skip changes, or loop:
    /// changes must come in ascending server order after the cursor, the page's cursor must be
    /// its last change's (or the request's, for an empty page), and a page that says more follow
    /// must make progress.
    ///
    /// A scoped token's page (one that names its ``PullResponse/scopes``) may move the cursor past
    /// its last change, over changes outside the scope; each entered record's history must be in
    /// ascending server order up to the cursor.
    static func check(_ page: PullResponse, after cursor: Int64) throws {
        var previous = cursor
        for change in page.changes {
            guard let serverSequence = change.serverSequence, serverSequence > previous else {
                throw SyncError(
                    .badResponse, "the pulled changes are not in ascending server order after cursor \(cursor)")
            }
            previous = serverSequence
        }
        for entered in page.entered {
            var last: Int64 = 0
            for change in entered.changes {
                guard let serverSequence = change.serverSequence, serverSequence > last,
                    serverSequence <= page.cursor
                else {
                    throw SyncError(
                        .badResponse, "an entered record's history is not in ascending server order up to the cursor")
                }
                last = serverSequence
            }
        }
        let scoped = page.scopes != nil
        guard page.cursor == previous || (scoped && page.cursor > previous) else {
            throw SyncError(
                .badResponse,
                "the page's cursor \(page.cursor) is not the server sequence number of its last change (\(previous))")
        }
        guard !page.more || page.cursor > cursor else {
            throw SyncError(.badResponse, "the server says more changes follow but sent none")
        }
    }

    func retrying<T: Sendable>(_ options: SyncOptions, _ body: () async throws -> T) async throws -> T {
        var delay = options.initialBackoff
        var attempt = 1
        let start = ContinuousClock.now
        while true {
            do {
                return try await body()
            } catch let error as SyncError where error.isRetryable && attempt < options.attempts {
                guard ContinuousClock.now + delay - start <= options.retryWindow else { throw error }
                try await Task.sleep(for: delay)
                delay *= 2
                attempt += 1
            }
        }
    }

    /// Records the server's sequence numbers for pushed changes; they are no longer pending.
    func acknowledge(_ response: PushResponse) async throws {
        try await write { tx in
            try tx.noteServerIdentity(response.server)
            // A run of changes numbered one after another on both sides (a whole batch, as a rule)
            // is noted by one statement, not one per change.
            let note = RawStatement(
                try tx.db.cachedStatement(sql: "UPDATE _changelog SET sseq = seq + ? WHERE seq BETWEEN ? AND ?"))
            let assigned = response.assigned
            var start = 0
            while start < assigned.count {
                var end = start + 1
                while end < assigned.count, assigned[end].sequence == assigned[end - 1].sequence + 1,
                    assigned[end].serverSequence == assigned[end - 1].serverSequence + 1
                {
                    end += 1
                }
                note.bind(1, assigned[start].serverSequence - assigned[start].sequence)
                note.bind(2, assigned[start].sequence)
                note.bind(3, assigned[end - 1].sequence)
                try note.run(tx.db)
                start = end
            }
            if response.newestSchema != nil, let first = response.assigned.map(\.sequence).min() {
                // The server translated these changes from this device's version (docs/protocol.md,
                // "Schema versions"): from here on, an upgrade gives inserts the defaults it gave.
                try tx.db.execute(
                    sql: "INSERT OR IGNORE INTO _fieldbook_meta (key, value) VALUES ('translated_from', ?)",
                    arguments: [first])
            }
            if let last = response.assigned.map(\.sequence).max() {
                try tx.db.execute(
                    sql: "UPDATE _fieldbook_meta SET value = max(value, ?) WHERE key = 'acked'", arguments: [last])
            }
            if !response.rejected.isEmpty { try tx.reject(response.rejected) }
        }
    }

    /// Applies one pulled page and stores its cursor, in one transaction. Returns how many
    /// changes from other devices it applied (changes seen before are skipped).
    func apply(_ received: ReceivedPage) async throws -> Int {
        let page = received.page
        // A change stamped absurdly far ahead is merged as on every peer, but this device's clock
        // stops at its corrected wall clock plus the bound: one bad clock does not move the fleet's.
        let wall = configuration.wallClock()
        let bound = UInt64(min(max(configuration.clockBound.components.seconds, 0), 1 << 40)) * 1000
        let ceiling = state.withLock { $0.corrected(wall) } &+ bound
        let latest = min(
            page.changes.map(\.timestamp).max() ?? .zero,
            HybridTimestamp(millis: min(ceiling, UInt64(Int64.max) >> 16), counter: 0))
        return try await write { tx in
            try tx.noteServerIdentity(page.server)
            if page.role != self.role { try tx.noteRole(page.role) }
            try tx.noteScope(page)
            // A scoped token's first page: the records this device wrote may be outside its scope
            // (it may have been rescoped since they were taken); each comes back with the pull if not.
            if received.after == 0 && page.scopes != nil { try tx.hideOwnRecords() }
            let returned = try tx.noteReturned(received)
            let applied = try tx.receive(received)
            for (table, record) in returned { try tx.rebuild(table, record) }
            try tx.applyMoves(page)
            try tx.db.cachedStatement(sql: "UPDATE _fieldbook_meta SET value = ? WHERE key = 'cursor'")
                .execute(arguments: [page.cursor])
            try tx.db.cachedStatement(sql: "UPDATE _fieldbook_meta SET value = max(value, ?) WHERE key = 'clock'")
                .execute(arguments: [Int64(bitPattern: latest.rawValue)])
            // Local writes stamped after this commit saw the page; none can run before this does
            // (it runs on the writer, right after the commit).
            tx.db.afterNextTransaction { _ in
                self.state.withLock {
                    $0.base = max($0.base, page.cursor)
                    $0.clock.receive(latest)
                }
            }
            return applied
        }
    }

    /// Starts again with a server that was restored from a backup or replaced (it refused a request
    /// with `server_changed`): its numbers now name other changes, so every number this device
    /// holds in the old numbering is dropped, in one transaction (docs/protocol.md, "Server identity").
    ///
    /// The changes the server holds (1 to `changed.acknowledged`) keep their bases: they were written
    /// and numbered before the backup was taken, in the numbering the server still has. The rest
    /// will be pushed again, and their bases become 0: they claim to have seen no other device's
    /// change, which may make conflicts but never lets one overwrite a change it did not see. The
    /// changes received from other devices, the merge states and the conflicts are dropped; the
    /// records show this device's own changes until the pull from cursor 0 brings the rest again.
    /// - Throws: ``SyncError`` (`.badResponse`) if the server holds more of this device's changes
    ///   than it has made: it cannot start again with that server (nothing is changed).
    func startAgain(with changed: WireError.ServerChanged) async throws {
        try await write { tx in
            try tx.flushLog()
            let made = try Int64.fetchOne(tx.db, sql: "SELECT coalesce(max(seq), 0) FROM _changelog") ?? 0
            guard changed.acknowledged >= 0, changed.acknowledged <= made else {
                throw SyncError(
                    .badResponse,
                    "the server says it holds \(changed.acknowledged) of this device's changes; this device has made \(made)"
                )
            }
            try tx.db.execute(
                sql: """
                    UPDATE _changelog SET sseq = NULL WHERE sseq IS NOT NULL;
                    UPDATE _changelog SET base = 0 WHERE seq > ? AND base != 0;
                    DELETE FROM _received;
                    DELETE FROM _record_state;
                    DELETE FROM _conflicts;
                    UPDATE _fieldbook_meta SET value = 0 WHERE key = 'cursor';
                    UPDATE _fieldbook_meta SET value = ? WHERE key = 'acked';
                    INSERT INTO _fieldbook_meta (key, value) VALUES ('server', ?)
                        ON CONFLICT (key) DO UPDATE SET value = excluded.value;
                    """, arguments: [changed.acknowledged, changed.acknowledged, changed.identity])
            // Each record as this device's own changes make it.
            for table in self.tables.values {
                try tx.db.execute(sql: "DELETE FROM \(quoted(table.entity.name))")
            }
            for row in try Row.fetchAll(
                tx.db, sql: "SELECT DISTINCT entity, record FROM _changelog ORDER BY entity, record")
            {
                guard let table = self.tables[row[0] as String] else { continue }
                let record: String = row[1]
                try tx.writeRow(table, record, try tx.mergeState(table, record).state)
            }
            // Local writes from now on saw nothing of the new numbering yet.
            tx.db.afterNextTransaction { _ in self.state.withLock { $0.base = 0 } }
        }
        // A change pushed with its new base must not come back with its old one after a power cut.
        if configuration.durableBeforePush { _ = try await flushAsync() }
    }

    /// The identity of the server this device last synced with, or nil if it has not synced
    /// with one that sends its identity.
    public func serverIdentity() throws -> String? {
        try read { try $0.serverIdentity() }
    }

    /// The open conflicts, oldest first.
    public func conflicts() throws -> [Conflict] {
        try read { try $0.openConflicts() }
    }
}

extension Store.Transaction {
    /// The open conflicts, oldest first. The `_conflicts` rows not marked settled are candidates:
    /// a local change (a person's resolution) settles a conflict before the pull that marks its
    /// row, so each candidate record's merge state says what is still open.
    func openConflicts() throws -> [Conflict] {
        let rows = try Row.fetchAll(
            db, sql: "SELECT DISTINCT entity, record FROM _conflicts WHERE resolved_at IS NULL ORDER BY opened_at, id")
        var result: [Conflict] = []
        for row in rows {
            let table = try entityTable(row[0])
            let record: String = row[1]
            // A record hidden with the record it follows has no conflicts anyone could settle.
            if try isHidden(table.entity.name, record) { continue }
            result += try mergeState(table, record).state.conflicts(entity: table.entity, recordID: record)
        }
        return result + (try heldConflicts())
    }
}

extension Store.Transaction {
    /// Up to `limit` changes after `sequence` as a push body, the stored field text spliced in
    /// (it is what `FieldChange/encode(_:to:)` wrote when the change was made).
    func encodedPush(after sequence: Int64, limit: Int) throws -> EncodedPush {
        try flushLog()
        let rows = RawStatement(
            try db.cachedStatement(
                sql:
                    "SELECT seq, entity, record, op, hlc, base, fields FROM _changelog WHERE seq > ? ORDER BY seq LIMIT ?"
            ))
        defer { rows.reset() }
        rows.bind(1, sequence)
        rows.bind(2, Int64(limit))
        var body: [UInt8] = []
        body.reserveCapacity(256 * min(limit, 10_000) + 256)
        var sequences: [Int64] = []
        PushRequest.encodeStart(
            schema: SchemaVersion(store.schema), device: store.deviceID, server: try serverIdentity(),
            deviceName: try deviceName(),
            to: &body)
        while try rows.step(db) {
            if !sequences.isEmpty { body.append(UInt8(ascii: ",")) }
            let sequence = rows.int64(0)
            // Text columns are written from SQLite's buffers, valid until the next step.
            Change.encodeWire(
                to: &body, sequence: sequence, entity: .utf8(rows.utf8(1)), recordID: .utf8(rows.utf8(2)),
                operation: ChangeOperation(rawValue: Int(rows.int64(3))) ?? .update, hlc: rows.int64(4),
                base: rows.int64(5),
                fields: { out in
                    let fields = rows.utf8(6)
                    if fields.isEmpty { out.append(contentsOf: "{}".utf8) } else { out.append(contentsOf: fields) }
                }, origin: nil)
            sequences.append(sequence)
        }
        PushRequest.encodeEnd(to: &body)
        return EncodedPush(body: body, sequences: sequences, schema: store.schema)
    }

    func cursor() throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'cursor'") ?? 0
    }

    func serverIdentity() throws -> String? {
        try String.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'server'")
    }

    /// Takes the identity an answer names: the device's first, or the one it already has. An
    /// answer in another numbering than the request's would mix two numberings in this store.
    func noteServerIdentity(_ server: String?) throws {
        guard let server else { return }  // a server that sends none
        switch try serverIdentity() {
        case server: return
        case nil:
            try db.execute(
                sql:
                    "INSERT INTO _fieldbook_meta (key, value) VALUES ('server', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                arguments: [server])
        case .some:
            throw SyncError(.badResponse, "the server answered with another identity than the request named")
        }
    }

    /// Applies a pulled page's changes (in server order); returns how many were new changes from other devices.
    ///
    /// This device's own changes only get their server sequence number noted (the push answer
    /// may have been lost). The others are grouped by record: each record's merge state is read,
    /// merged with its changes in order, and written back once. Each change is kept in
    /// `_received`, linked to the change received before it to the same record (the first to
    /// the one the record's state names), so a record's history is found without an index.
    func receive(_ received: ReceivedPage) throws -> Int {
        // The statements run once per change or per record: bound and stepped through the C API;
        // each change read in place, not copied (and its strings retained) first.
        try noteDeviceNames(received.page.deviceNames)
        try noteOwnServerSequences(received)
        let adopted = try adoptStoredOwnChanges(received)
        var states: [(state: RecordState, folded: Int64, received: Int64?)] = []
        states.reserveCapacity(received.groups.count)
        for group in received.groups {
            states.append(try mergeState(entityTable(group.ref.entity), group.ref.id))
        }
        let new = try recordReceived(received, previous: &states)
        try noteWantedFiles(received, new: new)
        let merged = try merge(received, into: &states, new: new)
        for (table, id) in adopted { try rebuild(table, id) }
        return merged
    }

    /// After an upgrade, this device's changes made before it come back in pulls as the server
    /// stored them, which may differ from this device's copy by a schema version's defaults (an
    /// insert sent before a version was published, and again after: the server kept the first).
    /// The server's copy stands: this device takes it and writes the record again. Returns the
    /// records to write.
    private func adoptStoredOwnChanges(_ received: ReceivedPage) throws -> [(table: EntityTable, id: String)] {
        guard store.adoptThrough > 0 else { return [] }
        var adopted: [(table: EntityTable, id: String)] = []
        var text: [UInt8] = []
        for (position, change) in received.page.changes.enumerated()
        where received.group[position] == nil && change.sequence <= store.adoptThrough {
            guard
                let mine = try String.fetchOne(
                    db, sql: "SELECT fields FROM _changelog WHERE seq = ? AND entity = ? AND record = ?",
                    arguments: [change.sequence, change.entity, change.recordID])
            else { continue }
            let table = try entityTable(change.entity)
            let held = try FieldChange.decode(utf8: Array(mine.utf8), entity: table.entity)
            guard Set(held) != Set(change.fields) else { continue }
            text.removeAll(keepingCapacity: true)
            FieldChange.encode(change.fields, to: &text)
            try db.execute(
                sql: "UPDATE _changelog SET fields = ? WHERE seq = ?",
                arguments: [String(decoding: text, as: UTF8.self), change.sequence])
            adopted.append((table, change.recordID))
        }
        return adopted
    }

    /// Notes the files new changes from other devices refer to that this device does not hold: it
    /// wants them (``Store/filesWanted()``), and the server holds them (it takes no change before
    /// its files).
    private func noteWantedFiles(_ received: ReceivedPage, new: [Bool]) throws {
        try noteWantedFiles(received.page.changes.indices.lazy.filter { new[$0] }.map { received.page.changes[$0] })
    }

    /// Notes the files `changes` (pulled from the server) refer to: ``noteWantedFiles(_:new:)``.
    func noteWantedFiles(_ changes: some Sequence<Change>) throws {
        for change in changes {
            for attachment in change.attachments(in: try entityTable(change.entity).entity) {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO _files (sha256, size, media_type, name, here, uploaded) VALUES (?, ?, ?, ?, 0, 1)
                        ON CONFLICT (sha256) DO UPDATE SET uploaded = 1
                        """
                ).execute(arguments: [attachment.sha256, attachment.size, attachment.mediaType, attachment.name])
            }
        }
    }

    /// Keeps the names other devices gave themselves, as the server passed them on.
    private func noteDeviceNames(_ names: [String: String]) throws {
        for (device, name) in names {
            try db.cachedStatement(
                sql:
                    "INSERT INTO _devices (device, name) VALUES (?, ?) ON CONFLICT (device) DO UPDATE SET name = excluded.name"
            )
            .execute(arguments: [device, name])
        }
    }

    /// Gives this device's own changes in the page their server numbers (the push answer may
    /// have been lost): what the merge states read next give their stamps.
    private func noteOwnServerSequences(_ received: ReceivedPage) throws {
        let changes = received.page.changes
        let noteOwn = RawStatement(
            try db.cachedStatement(sql: "UPDATE _changelog SET sseq = ? WHERE seq = ? AND sseq IS NULL"))
        try changes.withUnsafeBufferPointer { changes in
            for position in changes.indices {
                guard let serverSequence = changes[position].serverSequence else {
                    throw SyncError(.badResponse, "a pulled change has no server sequence number")
                }
                guard received.group[position] == nil else { continue }
                noteOwn.bind(1, serverSequence)
                noteOwn.bind(2, changes[position].sequence)
                try noteOwn.run(db)
            }
        }
    }

    /// Records the page's changes from other devices in `_received` (the history), each once.
    /// - Returns: for each change, whether it is new here (not seen in an earlier page).
    private func recordReceived(
        _ received: ReceivedPage, previous states: inout [(state: RecordState, folded: Int64, received: Int64?)]
    ) throws -> [Bool] {
        let changes = received.page.changes
        let insert = RawStatement(
            try db.cachedStatement(
                sql: """
                    INSERT OR IGNORE INTO _received (sseq, device, seq, author, entity, record, prev, op, hlc, base, fields)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """))
        var new = [Bool](repeating: false, count: changes.count)
        try changes.withUnsafeBufferPointer { changes in
            for position in changes.indices {
                guard let group = received.group[position] else { continue }
                let serverSequence = changes[position].serverSequence!  // checked above
                insert.bind(1, serverSequence)
                insert.bind(2, changes[position].device)
                insert.bind(3, changes[position].sequence)
                if let author = changes[position].author { insert.bind(4, author) } else { insert.bindNull(4) }
                insert.bind(5, changes[position].entity)
                insert.bind(6, changes[position].recordID)
                if let previous = states[group].received { insert.bind(7, previous) } else { insert.bindNull(7) }
                insert.bind(8, Int64(changes[position].operation.rawValue))
                insert.bind(9, Int64(bitPattern: changes[position].timestamp.rawValue))
                insert.bind(10, changes[position].base)
                insert.bind(11, received.fields(position))
                try insert.run(db)
                new[position] = insert.changes(db) == 1  // or seen before
                if new[position] { states[group].received = serverSequence }
            }
        }
        return new
    }

    /// Merges the new changes into each record's state, writes the rows and states, and keeps
    /// the conflict rows in step. Returns how many changes were applied.
    private func merge(
        _ received: ReceivedPage, into states: inout [(state: RecordState, folded: Int64, received: Int64?)],
        new: [Bool]
    ) throws -> Int {
        let changes = received.page.changes
        var withOpenConflicts: Set<RecordRef>?
        let saveState = RawStatement(
            try db.cachedStatement(
                sql: """
                    INSERT INTO _record_state (entity, record, state, folded, received) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (entity, record) DO UPDATE SET
                        state = excluded.state, folded = excluded.folded, received = excluded.received
                    """))
        var encoded: [UInt8] = []
        var applied = 0
        for (group, (ref, positions)) in received.groups.enumerated() {
            let fresh = positions.filter { new[$0] }
            guard let lastPosition = fresh.last else { continue }
            if withOpenConflicts == nil {
                withOpenConflicts = try Set(
                    Row.fetchCursor(
                        db.cachedStatement(
                            sql: "SELECT DISTINCT entity, record FROM _conflicts WHERE resolved_at IS NULL")
                    ).map { RecordRef(entity: $0[0], id: $0[1]) })
            }
            let table = try entityTable(ref.entity)
            var state = RecordState()
            swap(&state, &states[group].state)  // the only reference: merged in place, not copied
            for position in fresh { state.apply(changes[position], entity: table.entity) }
            applied += fresh.count
            try writeRow(table, ref.id, state)
            encoded.removeAll(keepingCapacity: true)
            state.encode(to: &encoded)
            saveState.bind(1, ref.entity)
            saveState.bind(2, ref.id)
            saveState.bind(3, encoded[...])
            saveState.bind(4, states[group].folded)
            saveState.bind(5, states[group].received!)
            try saveState.run(db)
            let conflicts = state.conflicts(entity: table.entity, recordID: ref.id)
            if !conflicts.isEmpty || withOpenConflicts!.contains(ref) {
                try ConflictRows.update(
                    db, table: "_conflicts", entity: table.entity.name, record: ref.id, current: conflicts,
                    at: changes[lastPosition].serverSequence!)
            }
        }
        return applied
    }

    struct RecordRef: Hashable, Sendable {
        var entity: String
        var id: String
    }

    /// A record's merge state: the stored one, with the local changes made since folded in; and
    /// the server sequence number of the last change received to the record, if any.
    func mergeState(_ table: EntityTable, _ record: String) throws -> (
        state: RecordState, folded: Int64, received: Int64?
    ) {
        var state = RecordState()
        var folded: Int64 = 0
        var received: Int64?
        let select = try statement(
            \.selectState, "SELECT state, folded, received FROM _record_state WHERE entity = ? AND record = ?")
        select.bind(1, table.entity.name)
        select.bind(2, record)
        if try select.step(db) {
            state = try RecordState(encoded: select.bytes(0), entity: table.entity)
            folded = select.int64(1)
            received = select.isNull(2) ? nil : select.int64(2)
        }
        select.reset()
        // Most records have no local change since their state was stored: look before reading.
        let key = recordKey(record)
        let newer = try statement(
            \.newerLocal, "SELECT 1 FROM _changelog WHERE record_key = ? AND record = ? AND seq > ? LIMIT 1")
        try flushLog()
        newer.bind(1, key)
        newer.bind(2, record)
        newer.bind(3, folded)
        let hasNewer = try newer.step(db)
        newer.reset()
        if hasNewer {
            let local = try changes(
                sql: "WHERE record_key = ? AND record = ? AND seq > ? AND rejected = 0 ORDER BY seq",
                arguments: [key, record, folded])
            for change in local {
                state.apply(change, entity: table.entity)
                folded = change.sequence
            }
        }
        let unknown = state.unassignedSequences(device: store.deviceID)
        if !unknown.isEmpty {
            var known: [Int64: Int64] = [:]
            for sequence in unknown {
                if let s = try Int64.fetchOne(
                    db.cachedStatement(sql: "SELECT sseq FROM _changelog WHERE seq = ?"), arguments: [sequence])
                {
                    known[sequence] = s
                }
            }
            state.assignServerSequences(device: store.deviceID) { known[$0] }
        }
        return (state, folded, received)
    }

    /// Keeps a record that a delete elsewhere contests: an update with no fields, made
    /// knowing of the delete, settles the conflict in favour of the record.
    public func keep(_ entity: String, id: String) throws {
        let table = try entityTable(entity)
        let recordID = try canonicalID(id, entity: entity)
        guard try exists(table, recordID) else { throw notFound(entity) }
        try checkAccess(table, .update, recordID, fields: [])
        try checkScope(table, .update, recordID, fields: [])
        try log(entity, recordID, .update) { FieldChange.encode([], to: &$0) }
        if table.isHoldable {
            try db.execute(sql: "DELETE FROM _held WHERE entity = ? AND record = ?", arguments: [entity, recordID])
        }
    }
}

extension Store {
    /// Makes every change made here so far durable: on disk, so that a power cut cannot lose it.
    ///
    /// Writes commit with SQLite's `synchronous = NORMAL`: a crash of the app loses nothing
    /// committed, but a power cut (or a crash of the operating system) can roll back the last
    /// commits, those made since SQLite last fsynced its write-ahead log. Call this where losing
    /// them would hurt, an inspection finished say; it costs one fsync, a few milliseconds.
    /// ``push(_:options:progress:)`` calls it before the first batch it sends, and again before a batch holding changes made since.
    public func flush() throws {
        _ = try StoreError.database { try pool.writeWithoutTransaction(Self.flush) }
    }

    /// ``flush()`` for async code: the task waits suspended, not holding a thread of the concurrency
    /// pool. Returns the last sequence number made durable.
    func flushAsync() async throws -> Int64 {
        try await StoreError.databaseAsync { try await pool.writeWithoutTransaction(Self.flush) }
    }

    @Sendable private static func flush(_ db: Database) throws -> Int64 {
        // One commit with FULL fsyncs the log, and with it every commit before. fullfsync:
        // on Apple platforms a plain fsync leaves the data in the drive's cache.
        try db.execute(sql: "PRAGMA synchronous = FULL; PRAGMA fullfsync = ON")
        defer { try? db.execute(sql: "PRAGMA synchronous = NORMAL; PRAGMA fullfsync = OFF") }
        try db.inTransaction {
            // A commit that writes nothing syncs nothing: this one writes, unless an earlier
            // flush already made every change there is durable.
            try db.execute(
                sql: """
                    INSERT INTO _fieldbook_meta (key, value) SELECT 'durable', coalesce(max(seq), 0) FROM _changelog WHERE true
                    ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)
                    """)
            return .commit
        }
        return try Int64.fetchOne(db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'durable'") ?? 0
    }

    /// When the last sync finished (`YYYY-MM-DDTHH:MM:SS.sssZ`), or nil if none has.
    public func lastSync() throws -> String? {
        try read { try String.fetchOne($0.db, sql: "SELECT value FROM _fieldbook_meta WHERE key = 'last_sync'") }
    }

    /// The value both sides of a field conflict started from: the field as written by the
    /// latest change that every side had seen (null if none had: both wrote it first).
    public func base(of conflict: Conflict) throws -> Value {
        guard let field = conflict.field else { return .null }
        return try read { tx in
            let changes =
                try tx.changes(
                    sql: "WHERE record_key = ? AND record = ? ORDER BY seq",
                    arguments: [recordKey(conflict.recordID), conflict.recordID])
                + tx.receivedChanges(record: conflict.recordID)
            var base: (stamp: ChangeStamp, value: Value)?
            for change in changes {
                let stamp = change.stamp
                guard conflict.sides.allSatisfy({ $0.stamp.saw(stamp) && $0.stamp != stamp }),
                    let written = change.fields.first(where: { $0.field == field }), case .set(let value) = written.kind
                else { continue }
                if base.map({ $0.stamp.precedes(stamp) }) ?? true { base = (stamp, value) }
            }
            return base?.value ?? .null
        }
    }
}

/// A pulled page with what applying it needs worked out beforehand, while the page before it is
/// applied: each change's fields as `_received` stores them, and the changes of other devices
/// grouped by record.
struct ReceivedPage: Sendable {
    let page: PullResponse
    /// The cursor the page was asked for after.
    let after: Int64
    /// For each change, its record's place in `groups`; nil for this device's own changes.
    let group: [Int?]
    /// For each record changed by another device, the positions of its changes, records in the order first touched.
    let groups: [(ref: Store.Transaction.RecordRef, changes: [Int])]
    /// Every change's field text (`FieldChange/encode(_:to:)`), one after another, and where each ends.
    private let fieldText: [UInt8]
    private let fieldEnds: [Int]

    init(_ page: PullResponse, device: String, after: Int64) {
        self.page = page
        self.after = after
        var groupOf: [Store.Transaction.RecordRef: Int] = [:]
        var groups: [(ref: Store.Transaction.RecordRef, changes: [Int])] = []
        var fieldText: [UInt8] = []
        fieldText.reserveCapacity(128 * page.changes.count)
        var fieldEnds: [Int] = []
        fieldEnds.reserveCapacity(page.changes.count)
        var group: [Int?] = []
        group.reserveCapacity(page.changes.count)
        for position in page.changes.indices {
            let change = page.changes[position]
            if change.device == device {
                group.append(nil)
            } else {
                FieldChange.encode(change.fields, to: &fieldText)
                let ref = Store.Transaction.RecordRef(entity: change.entity, id: change.recordID)
                if let known = groupOf[ref] {
                    groups[known].changes.append(position)
                    group.append(known)
                } else {
                    groupOf[ref] = groups.count
                    group.append(groups.count)
                    groups.append((ref, [position]))
                }
            }
            fieldEnds.append(fieldText.count)
        }
        self.group = group
        self.groups = groups
        self.fieldText = fieldText
        self.fieldEnds = fieldEnds
    }

    /// The field text of the change at `position`.
    func fields(_ position: Int) -> ArraySlice<UInt8> {
        fieldText[(position == 0 ? 0 : fieldEnds[position - 1])..<fieldEnds[position]]
    }
}

/// A batch of a push on the wire, and its answer to come.
private struct SentPush {
    var batch: EncodedPush
    /// Whether it was sent while a batch ahead of it was unanswered.
    var overtaking: Bool
    var answer: Task<PushResponse, any Error>
}

/// The batches of one push: the next one being read, those on the wire (oldest first), and how
/// far the changelog is on disk.
private struct PushPipeline {
    /// Whether the server has refused a batch that overtook one ahead of it (`sequence_gap`).
    final class Overtaken: Sendable {
        let happened = Atomic(false)
    }

    /// Changes up to this sequence number are on disk.
    var durable: Int64 = 0
    /// The batches sent and not yet answered, oldest first.
    var inFlight: [SentPush] = []
    /// The next batch, being read from the changelog; nil once none is left.
    var upcoming: Task<EncodedPush, any Error>?
    let overtaken = Overtaken()

    /// How many batches may be unanswered at once: three, one once a batch has been overtaken.
    var window: Int { overtaken.happened.load(ordering: .relaxed) ? 1 : 3 }
}
