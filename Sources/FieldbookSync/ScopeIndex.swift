package import FieldbookCore
import FieldbookJSON

/// A record's place in the scopes, as a server store keeps it (docs/protocol.md, "Scopes").
package struct ScopeEntry: Sendable, Equatable {
    /// The keys the record has of its own (``Schema/ownKeys(_:id:value:)``), and ``ScopeIndex/everyone``
    /// for an entity every token sees.
    package var own: Set<String>
    /// The records it follows: the records its ``Entity/follows`` fields name.
    package var parents: [PushPlan.RecordKey]
    /// Its keys: its own, and those of the records it follows (but ``ScopeIndex/everyone``).
    package var keys: Set<String>

    package init(own: Set<String>, parents: [PushPlan.RecordKey], keys: Set<String>) {
        self.own = own
        self.parents = parents
        self.keys = keys
    }

    /// The stored form: `{"own": [...], "parents": [[entity, id], ...], "keys": [...]}`, keys sorted.
    package var storedText: String {
        JSON.object([
            ("own", .array(own.sorted().map(JSON.string))),
            ("parents", .array(parents.map { .array([.string($0.entity), .string($0.id)]) })),
            ("keys", .array(keys.sorted().map(JSON.string))),
        ]).serialized
    }

    /// Reads ``storedText``; nil if it is not one.
    package init?(stored text: String) {
        guard let json = try? JSON(parsing: Array(text.utf8)), case .array(let own)? = json["own"],
            case .array(let parents)? = json["parents"], case .array(let keys)? = json["keys"]
        else { return nil }
        func strings(_ list: [JSON]) -> Set<String> {
            Set(list.compactMap { if case .string(let s) = $0 { s } else { nil } })
        }
        self.own = strings(own)
        self.keys = strings(keys)
        self.parents = parents.compactMap {
            guard case .array(let pair) = $0, pair.count == 2, case .string(let entity) = pair[0],
                case .string(let id) = pair[1]
            else { return nil }
            return PushPlan.RecordKey(entity: entity, id: id)
        }
    }
}

/// What a scoped pull reads: one entry of a scope key's log.
package struct ScopeLogEntry: Sendable, Hashable {
    /// What happened to the record at ``serverSequence`` for the key.
    package enum Kind: Int, Sendable {
        /// A change to the record, which had the key after it.
        case change = 0
        /// The record gained the key: a token with it receives the record's whole history.
        case enter = 1
        /// The record lost the key: a token with it no longer sees the record, unless through another.
        case leave = 2
    }

    package var key: String
    package var serverSequence: Int64
    package var record: PushPlan.RecordKey
    package var kind: Kind

    package init(key: String, serverSequence: Int64, record: PushPlan.RecordKey, kind: Kind) {
        self.key = key
        self.serverSequence = serverSequence
        self.record = record
        self.kind = kind
    }
}

/// The scope index's rules, shared by both server stores: each record's keys (its own and those of
/// the records it follows), kept in step as pushes change records and as records move between
/// scopes; the write check of a scoped token; and what a scoped pull's page holds.
///
/// A store keeps, for each record, its ``ScopeEntry``; for each record, the records that follow it
/// (its children); and for each scope key, a log of ``ScopeLogEntry`` by server sequence number,
/// which a scoped pull reads by index. The index works in rounds: ``update(_:head:)`` asks for the
/// entries and children it lacks (``Step/need(entries:children:)``), the store reads them into
/// ``loaded`` and ``children`` and asks again, until it answers what to write.
package struct ScopeIndex: Sendable {
    /// The key of every record of an entity every token sees (``Entity/everyone``); every scoped
    /// token has it.
    package static let everyone = "*"

    package let schema: Schema
    /// The entries read from the store, by record; nil for a record the store has none for.
    package var loaded: [PushPlan.RecordKey: ScopeEntry?] = [:]
    /// The records that follow each record, as read from the store.
    package var children: [PushPlan.RecordKey: [PushPlan.RecordKey]] = [:]
    /// Each merged record's own keys and parents, worked out in the first round of ``update(_:head:)``.
    private var computed: [PushPlan.RecordKey: (own: Set<String>, parents: [PushPlan.RecordKey])] = [:]

    package init(schema: Schema) {
        self.schema = schema
    }

    /// Whether the schema declares scopes: without them, no index is kept and every token sees everything.
    package var isActive: Bool { !schema.scopes.isEmpty }

    /// A signature of what the index depends on in the schema (its scopes, each entity's `follows`
    /// and `everyone`): a store whose index was built for another rebuilds it.
    package var signature: String {
        guard isActive else { return "" }
        return JSON.array(
            schema.scopes.map { .array([.string($0.name), .string($0.entity), .string($0.field)]) }
                + schema.entities.filter { !$0.follows.isEmpty || $0.everyone }.map {
                    .array([.string($0.name), .array($0.follows.map(JSON.string)), .bool($0.everyone)])
                }
        ).serialized
    }

    /// A token's keys as the index matches them: its scopes and ``everyone``.
    package static func tokenKeys(_ scopes: [String]) -> Set<String> {
        Set(scopes).union([everyone])
    }

    // MARK: - A record's keys

    /// A record's own keys and the records it follows, read through `value` (a field's value by name).
    package func ownAndParents(_ entity: Entity, id: String, value: (String) -> Value?) -> (
        own: Set<String>, parents: [PushPlan.RecordKey]
    ) {
        var own = Set(schema.ownKeys(entity, id: id, value: value).map(\.description))
        if entity.everyone { own.insert(Self.everyone) }
        var parents: [PushPlan.RecordKey] = []
        for name in entity.follows {
            guard case .text(let target)? = value(name), let targetEntity = entity.field(name)?.target else {
                continue
            }
            let parent = PushPlan.RecordKey(entity: targetEntity, id: target)
            if !parents.contains(parent) { parents.append(parent) }
        }
        return (own, parents)
    }

    /// A record's own keys and the records it follows, from its merge state.
    package func ownAndParents(_ entity: Entity, id: String, state: RecordState) -> (
        own: Set<String>, parents: [PushPlan.RecordKey]
    ) {
        ownAndParents(entity, id: id) { name in entity.fieldIndex(name).flatMap { state.value(at: $0, of: entity) } }
    }

    /// The keys a record has from `own` and the keys of its parents (``everyone`` does not pass down).
    package static func keys(own: Set<String>, parentKeys: [Set<String>]) -> Set<String> {
        var keys = own
        for parent in parentKeys { keys.formUnion(parent.subtracting([everyone])) }
        return keys
    }

    // MARK: - The write check

    /// The records whose entries the write check of a push needs and ``loaded`` lacks: the records
    /// it writes, and those they follow (as stored and as the changes set them).
    package func missingForCheck(
        records: [PushPlan.RecordKey], states: [PushPlan.RecordKey: RecordState], fresh: [Change]
    )
        -> [PushPlan.RecordKey]
    {
        var wanted: Set<PushPlan.RecordKey> = Set(records)
        for key in records {
            guard let entity = schema.entity(key.entity), !entity.follows.isEmpty, let state = states[key] else {
                continue
            }
            wanted.formUnion(ownAndParents(entity, id: key.id, state: state).parents)
        }
        for change in fresh {
            guard let entity = schema.entity(change.entity), !entity.follows.isEmpty else { continue }
            for fieldChange in change.fields where entity.follows.contains(fieldChange.field) {
                if case .set(.text(let id)) = fieldChange.kind, let target = entity.field(fieldChange.field)?.target {
                    wanted.insert(PushPlan.RecordKey(entity: target, id: id))
                }
            }
        }
        return wanted.filter { loaded[$0] == nil }.sorted { ($0.entity, $0.id) < ($1.entity, $1.id) }
    }

    /// The keys of `key` while a push is merged: computed from `merged` for the push's records
    /// (`positions`), the loaded entry's for the others.
    func keys(
        of key: PushPlan.RecordKey, merged: [RecordState], positions: [PushPlan.RecordKey: Int], depth: Int = 0
    ) -> Set<String> {
        guard let position = positions[key], depth < 64 else { return (loaded[key] ?? nil)?.keys ?? [] }
        let state = merged[position]
        guard !state.isUnwritten, let entity = schema.entity(key.entity) else { return [] }
        let (own, parents) = ownAndParents(entity, id: key.id, state: state)
        return Self.keys(
            own: own, parentKeys: parents.map { keys(of: $0, merged: merged, positions: positions, depth: depth + 1) })
    }

    /// Why a token with scope keys `tokenKeys` (``tokenKeys(_:)``) may not make `change` to a record
    /// in `state` (as the push leaves it so far), if it may not: a record it changes must be in its
    /// scope before the change and after it, so it cannot write outside its scope, guess its way
    /// into another's records, refer into another scope or move a record into or out of its own.
    /// Records of an entity every token sees are left to the access rules.
    func refusal(
        _ change: Change, _ entity: Entity, _ state: RecordState, tokenKeys: Set<String>, role: String?,
        merged: [RecordState], positions: [PushPlan.RecordKey: Int]
    ) -> AccessRefusal? {
        if entity.everyone { return nil }
        let key = PushPlan.RecordKey(entity: entity.name, id: change.recordID)
        let before = state.isUnwritten ? nil : keys(of: key, merged: merged, positions: positions)
        var after = before ?? []
        if change.operation != .delete {
            var set: [String: Value] = [:]
            for fieldChange in change.fields { if let value = fieldChange.setValue { set[fieldChange.field] = value } }
            let (own, parents) = ownAndParents(entity, id: change.recordID) { name in
                if let value = set[name] { return value }
                return entity.fieldIndex(name).flatMap { state.value(at: $0, of: entity) }
            }
            after = Self.keys(
                own: own, parentKeys: parents.map { keys(of: $0, merged: merged, positions: positions) })
        }
        let wasOutside = before.map { $0.isDisjoint(with: tokenKeys) } ?? false
        guard wasOutside || after.isDisjoint(with: tokenKeys) else { return nil }
        return Self.outside(entity.name, role: role, wasOutside: wasOutside)
    }

    /// The refusal of a change to a record outside a token's scope (`wasOutside`), or of one that
    /// would put it outside: rule `ENTITY.scope`, the same words on device and server.
    package static func outside(_ entity: String, role: String?, wasOutside: Bool) -> AccessRefusal {
        AccessRefusal(
            rule: "\(entity).scope", role: role ?? "",
            message: wasOutside
                ? "this \(entity) record is outside this token's scope; discard this change"
                : "this change would put a \(entity) record outside this token's scope (a record it follows "
                    + "is in another scope, or the change moves it there); ask the office to make it, and discard it")
    }

    // MARK: - Keeping the index in step

    /// What a push changes in the index.
    package struct Update: Sendable {
        /// The entries to store (new or changed).
        package var entries: [(record: PushPlan.RecordKey, entry: ScopeEntry)] = []
        /// The links (a child follows a parent) to remove.
        package var unlinked: [(parent: PushPlan.RecordKey, child: PushPlan.RecordKey)] = []
        /// The links to add.
        package var linked: [(parent: PushPlan.RecordKey, child: PushPlan.RecordKey)] = []
        /// The log entries to add, by key.
        package var log: [ScopeLogEntry] = []

        package init() {}
    }

    /// One round of ``update(_:head:)``.
    package enum Step: Sendable {
        /// Read these records' entries into ``loaded`` and these records' children into ``children``,
        /// then ask again.
        case need(entries: [PushPlan.RecordKey], children: [PushPlan.RecordKey])
        /// Write this.
        case done(Update)
    }

    /// What the merged records of a push (``PushPlan/merge(states:serverSequences:scopes:)``) change
    /// in the index: their entries, their links, the entries of the records that follow them
    /// (a site moved to another town takes its findings, and their measures, with it), and the log.
    /// `head` is the push's last server sequence number: when the records that follow a moved
    /// record enter or leave a key.
    package mutating func update(_ merged: [PushPlan.Merged], head: Int64) -> Step {
        var needEntries: Set<PushPlan.RecordKey> = []
        var needChildren: Set<PushPlan.RecordKey> = []
        var current: [PushPlan.RecordKey: ScopeEntry] = [:]
        var mergedKeys: Set<PushPlan.RecordKey> = []
        // Which merged records follow each record now: children the store does not know yet.
        var newChildren: [PushPlan.RecordKey: [PushPlan.RecordKey]] = [:]
        for record in merged {
            guard let entity = schema.entity(record.key.entity) else { continue }
            let (own, parents) =
                computed[record.key]
                ?? {
                    let found = ownAndParents(entity, id: record.key.id, state: record.state)
                    computed[record.key] = found
                    return found
                }()
            // Asked for with the record: every record a merged one follows is read (one round, not two).
            for parent in parents where loaded[parent] == nil { needEntries.insert(parent) }
            guard let old = loaded[record.key] else {
                needEntries.insert(record.key)
                continue
            }
            current[record.key] = ScopeEntry(own: own, parents: parents, keys: old?.keys ?? [])
            mergedKeys.insert(record.key)
            for parent in parents { newChildren[parent, default: []].append(record.key) }
        }
        func entry(_ key: PushPlan.RecordKey) -> ScopeEntry?? {
            if let entry = current[key] { return .some(entry) }
            if let entry = loaded[key] { return .some(entry) }
            needEntries.insert(key)
            return nil
        }
        var dirty = merged.map(\.key).filter { current[$0] != nil }
        var isNew: Set<PushPlan.RecordKey> = Set(dirty.filter { loaded[$0] == .some(nil) })
        var rounds = 0
        while let record = dirty.popLast(), rounds < 1_000_000 {
            rounds += 1
            guard let found = entry(record), var recordEntry = found else { continue }
            var parentKeys: [Set<String>] = []
            var known = true
            for parent in recordEntry.parents {
                guard let parentEntry = entry(parent) else {
                    known = false
                    continue
                }
                parentKeys.append(parentEntry?.keys ?? [])
            }
            guard known else { continue }
            let keys = Self.keys(own: recordEntry.own, parentKeys: parentKeys)
            if keys == recordEntry.keys && !isNew.contains(record) { continue }
            isNew.remove(record)
            recordEntry.keys = keys
            current[record] = recordEntry
            // A record new to the store has no children there (what refers to a record comes after it).
            guard let stored = loaded[record] == .some(nil) ? [] : children[record] else {
                needChildren.insert(record)
                continue
            }
            for child in stored + (newChildren[record] ?? []) where child != record { dirty.append(child) }
        }
        if !needEntries.isEmpty || !needChildren.isEmpty {
            return .need(
                entries: needEntries.sorted { ($0.entity, $0.id) < ($1.entity, $1.id) },
                children: needChildren.sorted { ($0.entity, $0.id) < ($1.entity, $1.id) })
        }
        return .done(writes(current, merged: merged, mergedKeys: mergedKeys, head: head))
    }

    /// The writes for the entries `current` (computed by ``update(_:head:)``).
    private func writes(
        _ current: [PushPlan.RecordKey: ScopeEntry], merged: [PushPlan.Merged], mergedKeys: Set<PushPlan.RecordKey>,
        head: Int64
    ) -> Update {
        var update = Update()
        for (record, entry) in current {  // in any order: each row is written once
            let old = loaded[record] ?? nil
            if old != entry { update.entries.append((record, entry)) }
            if mergedKeys.contains(record) {
                let oldParents = old?.parents ?? []
                for parent in oldParents where !entry.parents.contains(parent) {
                    update.unlinked.append((parent, record))
                }
                for parent in entry.parents where !oldParents.contains(parent) {
                    update.linked.append((parent, record))
                }
            } else if let old {
                for key in entry.keys.subtracting(old.keys).sorted() {
                    update.log.append(ScopeLogEntry(key: key, serverSequence: head, record: record, kind: .enter))
                }
                for key in old.keys.subtracting(entry.keys).sorted() {
                    update.log.append(ScopeLogEntry(key: key, serverSequence: head, record: record, kind: .leave))
                }
            }
        }
        for record in merged where !record.serverSequences.isEmpty {
            guard let entry = current[record.key] else { continue }
            let last = record.serverSequences.last!
            guard let old = loaded[record.key] ?? nil else {
                for sequence in record.serverSequences {
                    for key in entry.keys.sorted() {
                        update.log.append(
                            ScopeLogEntry(key: key, serverSequence: sequence, record: record.key, kind: .change))
                    }
                }
                continue
            }
            let kept = entry.keys.intersection(old.keys).sorted()
            for sequence in record.serverSequences {
                for key in kept {
                    update.log.append(
                        ScopeLogEntry(key: key, serverSequence: sequence, record: record.key, kind: .change))
                }
            }
            for key in entry.keys.subtracting(old.keys).sorted() {
                update.log.append(ScopeLogEntry(key: key, serverSequence: last, record: record.key, kind: .enter))
            }
            for key in old.keys.subtracting(entry.keys).sorted() {
                update.log.append(ScopeLogEntry(key: key, serverSequence: last, record: record.key, kind: .leave))
            }
        }
        return update
    }

    // MARK: - Building the index from scratch

    /// Every record's entry, from every record's merge state: for a store whose index was built
    /// for another ``signature`` (or never).
    package func rebuild(_ records: [(key: PushPlan.RecordKey, state: RecordState)]) -> [PushPlan.RecordKey: ScopeEntry]
    {
        var partial: [PushPlan.RecordKey: (own: Set<String>, parents: [PushPlan.RecordKey])] = [:]
        for (key, state) in records {
            guard let entity = schema.entity(key.entity) else { continue }
            partial[key] = ownAndParents(entity, id: key.id, state: state)
        }
        var done: [PushPlan.RecordKey: ScopeEntry] = [:]
        func keys(_ key: PushPlan.RecordKey, depth: Int) -> Set<String> {
            if let entry = done[key] { return entry.keys }
            guard let (own, parents) = partial[key], depth < 64 else { return [] }
            let entry = ScopeEntry(
                own: own, parents: parents,
                keys: Self.keys(own: own, parentKeys: parents.map { keys($0, depth: depth + 1) }))
            done[key] = entry
            return entry.keys
        }
        for key in partial.keys { _ = keys(key, depth: 0) }
        return done
    }

    // MARK: - A scoped page

    /// What a scoped pull's page holds, from the log entries of the token's keys after its cursor
    /// (each once, ascending by server sequence number): the changes of records in scope now, the
    /// records that entered it (sent with their whole history), and those that left it. `visible`
    /// says whether a record is in the token's scope now; records are named as the store names
    /// them (a ``PushPlan/RecordKey``, or a store's own number for one), and the entered and left
    /// ones come in the order first met: a store lists them by ``ordered(_:)``.
    ///
    /// A change of a record out of scope now is not sent (its record's leave is, or was); a leave of
    /// a record in scope now is not sent (it is in scope through another key, or came back); a
    /// record that entered is sent whole, so its changes are not sent again beside it.
    package static func page<Record: Hashable>(
        _ entries: [(serverSequence: Int64, record: Record, kind: ScopeLogEntry.Kind)], visible: (Record) -> Bool
    ) -> (changes: [Int64], entered: [Record], left: [Record]) {
        var inScope: [Record: Bool] = [:]
        func isVisible(_ record: Record) -> Bool {
            if let known = inScope[record] { return known }
            let answer = visible(record)
            inScope[record] = answer
            return answer
        }
        var entered: [Record] = []
        var enteredSet: Set<Record> = []
        var left: [Record] = []
        var leftSet: Set<Record> = []
        for entry in entries {
            switch entry.kind {
            case .enter where isVisible(entry.record):
                if enteredSet.insert(entry.record).inserted { entered.append(entry.record) }
            case .leave where !isVisible(entry.record):
                if leftSet.insert(entry.record).inserted { left.append(entry.record) }
            default: break
            }
        }
        var changes: [Int64] = []
        changes.reserveCapacity(entries.count)
        for entry in entries
        where entry.kind == .change && isVisible(entry.record)
            && (enteredSet.isEmpty || !enteredSet.contains(entry.record))
        {
            // Entries come by server sequence number: one change's entries (one per key) are adjacent.
            if changes.last != entry.serverSequence { changes.append(entry.serverSequence) }
        }
        return (changes, entered, left)
    }

    /// A page's entered or left records in the order every store lists them: by entity, then id,
    /// bytewise (so that both stores answer the same page byte for byte).
    package static func ordered(_ records: [PushPlan.RecordKey]) -> [PushPlan.RecordKey] {
        records.sorted { a, b in
            a.entity == b.entity
                ? a.id.utf8.lexicographicallyPrecedes(b.id.utf8)
                : a.entity.utf8.lexicographicallyPrecedes(b.entity.utf8)
        }
    }
}
