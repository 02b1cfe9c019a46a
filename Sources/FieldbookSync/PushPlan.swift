package import FieldbookCore
import FieldbookJSON

/// The store-agnostic half of a push: every check, every merge and every conflict decision,
/// with the reading and writing left to the store.
///
/// Each server store runs the same steps, in one transaction that it rolls back on any error:
///
/// 0. Before the transaction (so the one writer does not): ``fieldTexts(_:)``, each change's
///    fields as stored.
/// 1. Read the device's row and make the plan: ``init(_:fields:identity:device:schema:)`` checks
///    ownership and order, and splits the changes into ``fresh`` ones and ones received before.
/// 2. Read the stored changes at ``earlierSequences`` and pass them to ``acknowledge(stored:)``,
///    which rejects a sequence number reused with different content.
///    Look up which of ``references`` the store holds (in one batch) and pass them to
///    ``checkReferences(known:)``, which rejects a reference to a record never seen.
/// 3. Insert the ``fresh`` changes (their field text is in ``freshFields``), numbered in order,
///    and record the device's ``lastSequence``.
/// 4. Read the merge states of ``records`` and pass them, with the new server sequence numbers,
///    to ``merge(states:serverSequences:scopes:)``; write what it returns, and keep the conflict
///    table in step with ``ConflictUpkeep``. When the schema declares scopes, pass a
///    ``ScopeIndex`` too (loaded with the entries ``ScopeIndex/missingForCheck(records:states:fresh:)``
///    names, for a scoped token), then keep the index in step with ``ScopeIndex/update(_:head:)``.
/// 5. Answer with ``response(serverSequences:rejected:)``.
///
/// So the stores cannot disagree about what a push means; they differ only in how they read
/// and write (one row at a time in SQLite, in arrays in PostgreSQL).
package struct PushPlan: Sendable {
    /// A change as a store holds it: what a repeated push is compared with.
    package struct Stored: Sendable, Equatable {
        package var serverSequence: Int64
        package var entity: String
        package var recordID: String
        package var operation: Int
        package var hlc: Int64
        package var base: Int64
        package var fields: String
        /// Why it was rejected (``Rejection/storedText``), if it was.
        package var rejected: String?

        package init(
            serverSequence: Int64, entity: String, recordID: String, operation: Int, hlc: Int64, base: Int64,
            fields: String, rejected: String? = nil
        ) {
            self.rejected = rejected
            self.serverSequence = serverSequence
            self.entity = entity
            self.recordID = recordID
            self.operation = operation
            self.hlc = hlc
            self.base = base
            self.fields = fields
        }
    }

    /// A record the push touched, merged: the state to store and the conflicts it now has.
    package struct Merged: Sendable {
        package var key: RecordKey
        package var state: RecordState
        /// Whether the record exists (the `live` column).
        package var live: Bool
        package var conflicts: [Conflict]
        /// The server sequence numbers of the push's changes merged into it, ascending.
        package var serverSequences: [Int64]
    }

    /// A record of the server store, by entity and id.
    package struct RecordKey: Hashable, Sendable {
        package var entity: String
        package var id: String

        package init(entity: String, id: String) {
            self.entity = entity
            self.id = id
        }
    }

    /// The pushing device's id.
    package let device: String
    /// The name stamped on every new change.
    package let author: String
    /// The pushing token's role, whose access rules every new change must pass.
    package let role: String?
    /// The pushing token's scope keys (``ScopeIndex/tokenKeys(_:)``), which every record a new change
    /// writes must meet before and after it; nil for a token that sees everything.
    package let scopeKeys: Set<String>?
    /// The changes not received before, in device order: sequences `lastSequence - fresh.count + 1 … lastSequence`.
    package private(set) var fresh: [Change] = []
    /// The stored form of each fresh change's fields (``FieldChange/text(_:)``).
    package private(set) var freshFields: [String] = []
    /// The device's last sequence number once the push is applied.
    package private(set) var lastSequence: Int64
    /// The records the fresh changes touch, each once, in the order first touched.
    package private(set) var records: [RecordKey] = []
    /// The records the fresh changes' reference fields name, each once, but for those the changes
    /// write to (a push may add a record and refer to it): the store must hold each of them.
    package private(set) var references: [RecordKey] = []
    /// For each fresh change, the position of its record in ``records`` (-1 for an entity the schema lacks).
    private var recordOfFresh: [Int] = []
    /// The device sequence numbers of the request's changes received in earlier pushes.
    package private(set) var earlierSequences: [Int64] = []
    /// Each request change in order: a fresh change (its index in ``fresh``) or one received before (its sequence).
    private var answers: [Answer] = []
    private var earlier: [Int64: (change: Change, fields: String)] = [:]
    private var earlierServerSequences: [Int64: Int64] = [:]
    private var earlierRejections: [Int64: Rejection] = [:]
    /// From a token with a role: the references the store does not hold (see ``checkReferences(known:)``).
    private var unheldReferences: Set<RecordKey> = []
    private let schema: Schema

    private enum Answer {
        case fresh(Int)
        case earlier(Int64)
    }

    /// Each change's fields as a store keeps them (``FieldChange/text(_:)``), in request order.
    ///
    /// Work for any thread: a store computes them before it takes its writer, which then only compares and stores them.
    package static func fieldTexts(_ request: PushRequest) -> [String] {
        // One buffer for all (a buffer per change grew several times for an insert's fields).
        var bytes: [UInt8] = []
        bytes.reserveCapacity(1024)
        return request.changes.map { change in
            bytes.removeAll(keepingCapacity: true)
            FieldChange.encode(change.fields, to: &bytes)
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// Checks a push against the device's row and sorts its changes.
    /// - Parameters:
    ///   - fields: ``fieldTexts(_:)`` of the request.
    ///   - device: the device's row, or nil for a device never seen: the token that owns it and its last sequence number.
    /// - Throws: ``WireError`` `forbidden` if the device id belongs to another token; `sequence_gap` if a new
    ///   change does not follow the last one; `sequence_reused` if the request repeats a sequence with other content.
    package init(
        _ request: PushRequest, fields texts: [String], identity: Identity,
        device row: (owner: Int64, lastSequence: Int64)?,
        schema: Schema
    ) throws {
        precondition(texts.count == request.changes.count, "one field text per change")
        if let row, row.owner != identity.tokenID {
            throw WireError(.forbidden, "this device id belongs to another token; each device uses its own id")
        }
        self.schema = schema
        device = request.device
        author = identity.name
        role = identity.role
        scopeKeys = identity.scopes.map(ScopeIndex.tokenKeys)
        let previous = row?.lastSequence ?? 0
        lastSequence = previous
        answers.reserveCapacity(request.changes.count)
        // Where each fresh change is in the request: copied out only if some are not fresh.
        var positions: [Int] = []
        positions.reserveCapacity(request.changes.count)
        try request.changes.withUnsafeBufferPointer { changes in
            for position in changes.indices {
                let sequence = changes[position].sequence
                if sequence <= lastSequence {
                    // Received before — in an earlier push, or earlier in this one: the same content gets the same answer.
                    if sequence > previous {
                        let index = Int(sequence - previous - 1)
                        guard
                            Self.same(
                                changes[positions[index]], texts[positions[index]], changes[position], texts[position])
                        else {
                            throw Self.reused(sequence)
                        }
                        answers.append(.fresh(index))
                    } else {
                        if let seen = earlier[sequence] {
                            guard Self.same(seen.change, seen.fields, changes[position], texts[position]) else {
                                throw Self.reused(sequence)
                            }
                        } else {
                            earlier[sequence] = (changes[position], texts[position])
                            earlierSequences.append(sequence)
                        }
                        answers.append(.earlier(sequence))
                    }
                    continue
                }
                guard sequence == lastSequence + 1 else {
                    throw WireError(
                        .sequenceGap,
                        "expected device sequence \(lastSequence + 1), got \(sequence); push every change in order")
                }
                lastSequence = sequence
                answers.append(.fresh(positions.count))
                positions.append(position)
            }
        }
        if positions.count == request.changes.count {
            fresh = request.changes
            freshFields = texts
        } else {
            fresh = positions.map { request.changes[$0] }
            freshFields = positions.map { texts[$0] }
        }
        (records, recordOfFresh) = Self.records(of: fresh, schema: schema)
        var written: Set<RecordKey>?  // built on the first reference: most pushes have few
        var seen: Set<RecordKey> = []
        Self.eachReference(in: fresh, schema: schema) { _, _, key in
            if written == nil { written = Set(records) }
            if !written!.contains(key), seen.insert(key).inserted { references.append(key) }
        }
    }

    /// Calls `visit` with each reference `changes` set: the change's index, the reference field, and
    /// the record named.
    private static func eachReference(in changes: [Change], schema: Schema, _ visit: (Int, Field, RecordKey) -> Void) {
        // Changes come in runs of one entity: its reference fields are found once per run.
        var entity = ""
        var fields: [Field] = []
        changes.withUnsafeBufferPointer { changes in
            for change in changes.indices {
                if changes[change].entity != entity {
                    entity = changes[change].entity
                    fields = schema.entity(entity)?.fields.filter { $0.target != nil } ?? []
                }
                if fields.isEmpty { continue }
                for fieldChange in changes[change].fields {
                    guard case .set(.text(let id)) = fieldChange.kind else { continue }
                    for field in fields where field.name == fieldChange.field {
                        visit(change, field, RecordKey(entity: field.target!, id: id))
                    }
                }
            }
        }
    }

    /// Whether the token's role or scope may refuse a change: then a change the store cannot take
    /// is rejected rather than failing the push.
    private var rejects: Bool { role != nil || scopeKeys != nil }

    /// Checks that the store holds every record of ``references``.
    ///
    /// From a token with a role or a scope, a change that refers to a record the store does not hold is
    /// rejected instead (``merge(states:serverSequences:)``): the record's insert was refused, and a
    /// refused write must not block the device's later changes.
    /// - Parameter known: the records of ``references`` the store holds (live or deleted).
    /// - Throws: ``WireError`` `unknown_reference` for the first change that refers to another.
    package mutating func checkReferences(known: Set<RecordKey>) throws {
        if references.allSatisfy(known.contains) { return }
        if rejects {
            unheldReferences = Set(references.filter { !known.contains($0) })
            return
        }
        var unknown: (change: Change, field: String, target: String)?
        let writes = Set(records)
        Self.eachReference(in: fresh, schema: schema) { change, field, key in
            if unknown == nil && !known.contains(key) && !writes.contains(key) {
                unknown = (fresh[change], field.name, key.entity)
            }
        }
        let (change, field, target) = unknown!
        throw WireError(
            .unknownReference,
            "device sequence \(change.sequence): \(change.entity).\(field) refers to a \(target) record the server has never seen; "
                + "a device pushes a record before what refers to it; after a restore, the device that made it must sync again "
                + "(nothing of this push was applied)")
    }

    /// The records `changes` touch (of entities in `schema`), each once, in the order first touched.
    package static func records(_ changes: [Change], schema: Schema) -> [RecordKey] {
        records(of: changes, schema: schema).records
    }

    /// ``records(_:schema:)``, and for each change the position of its record in that list (-1 for an entity not in `schema`).
    private static func records(of changes: [Change], schema: Schema) -> (records: [RecordKey], recordOf: [Int]) {
        var positions: [RecordKey: Int] = [:]
        var records: [RecordKey] = []
        var recordOf: [Int] = []
        recordOf.reserveCapacity(changes.count)
        // Changes come in runs of one entity: its name is looked up once per run (a decoded
        // change's name shares the schema's storage, so the comparison is of two pointers).
        var entity = ""
        var known = false
        changes.withUnsafeBufferPointer { changes in
            for change in changes.indices {
                if changes[change].entity != entity {
                    entity = changes[change].entity
                    known = schema.entity(entity) != nil
                }
                guard known else {
                    recordOf.append(-1)
                    continue
                }
                let key = RecordKey(entity: changes[change].entity, id: changes[change].recordID)
                if let position = positions[key] {
                    recordOf.append(position)
                } else {
                    positions[key] = records.count
                    recordOf.append(records.count)
                    records.append(key)
                }
            }
        }
        return (records, recordOf)
    }

    /// Checks the changes received before against what the store holds at ``earlierSequences``.
    /// - Throws: ``WireError`` `sequence_reused` if one differs, `sequence_gap` if one is missing.
    package mutating func acknowledge(stored: [Int64: Stored]) throws {
        for sequence in earlierSequences {
            guard let row = stored[sequence] else {
                throw WireError(.sequenceGap, "sequence \(sequence) was acknowledged but is not stored")
            }
            let (change, fields) = earlier[sequence]!
            let same =
                row.entity == change.entity && row.recordID == change.recordID
                && row.operation == change.operation.rawValue
                && row.hlc == Int64(bitPattern: change.timestamp.rawValue) && row.base == change.base
                && (row.fields == fields || storedFields(row.fields, match: change))
            guard same else { throw Self.reused(sequence) }
            earlierServerSequences[sequence] = row.serverSequence
            if let text = row.rejected { earlierRejections[sequence] = Rejection(sequence: sequence, stored: text) }
        }
    }

    /// Merges the fresh changes, numbered `serverSequences` (one per fresh change, in order), into
    /// the stored `states` of ``records`` (a record missing from `states` is new).
    ///
    /// A change the pushing token's role may not make (``Entity/refusal(role:_:fields:current:)``,
    /// judged against the record as the changes before it leave it) is not merged: it is in
    /// `rejected`, by its index in ``fresh``. So is, from a token with a role or a scope, a change to
    /// a record the server does not hold (its insert was refused), and, from a token with a scope,
    /// a change to a record outside its scope before or after it (judged by `scopes`, whose
    /// ``ScopeIndex/loaded`` holds the entries ``ScopeIndex/missingForCheck(records:states:fresh:)`` names).
    package func merge(states: [RecordKey: RecordState], serverSequences: [Int64], scopes: ScopeIndex? = nil) -> (
        records: [Merged], rejected: [Int: Rejection]
    ) {
        precondition(serverSequences.count == fresh.count, "one server sequence per fresh change")
        let entities = records.map { schema.entity($0.entity)! }
        var merged = records.map { states[$0] ?? RecordState() }
        var merges = [[Int64]](repeating: [], count: records.count)
        var rejected: [Int: Rejection] = [:]
        var positions: [RecordKey: Int] = [:]
        if rejects { for (n, key) in records.enumerated() { positions[key] = n } }
        fresh.withUnsafeBufferPointer { fresh in
            for index in fresh.indices where recordOfFresh[index] >= 0 {
                let record = recordOfFresh[index]
                if rejects || entities[record].hasRequirements(binding: role),
                    let refusal = refusal(
                        fresh[index], entities[record], merged[record], merged: merged, positions: positions,
                        scopes: scopes)
                {
                    rejected[index] = Rejection(sequence: fresh[index].sequence, refusal: refusal)
                    continue
                }
                merged[record].apply(fresh[index], serverSequence: serverSequences[index], entity: entities[record])
                merges[record].append(serverSequences[index])
            }
        }
        // A record whose every change was rejected is not stored.
        let result = records.indices.filter { !merged[$0].isUnwritten }.map { n in
            Merged(
                key: records[n], state: merged[n], live: merged[n].exists(onDelete: entities[n].onDelete),
                conflicts: merged[n].conflicts(entity: entities[n], recordID: records[n].id),
                serverSequences: merges[n])
        }
        return (result, rejected)
    }

    /// Why `change` to a record in `state` breaks the entity's requirements, or the pushing token's
    /// role or scope may not make it, if so;
    /// `merged` holds the states of ``records`` as the push has merged them so far, `positions`
    /// each record's position there.
    private func refusal(
        _ change: Change, _ entity: Entity, _ state: RecordState, merged: [RecordState], positions: [RecordKey: Int],
        scopes: ScopeIndex?
    ) -> AccessRefusal? {
        let who = role ?? ""
        // The evidence a value needs (`requires`), whoever sends the change: judged against the
        // record as the changes before it leave it, as the device judged it against its copy.
        if entity.hasRequirements(binding: role), !state.isUnwritten || change.operation == .insert {
            let before = { (name: String) in entity.fieldIndex(name).flatMap { state.value(at: $0, of: entity) } }
            if let refusal = entity.requirementRefusal(
                change.operation, role: role, changed: Set(change.fields.map(\.field)), before: before,
                after: { name in
                    guard let written = change.fields.first(where: { $0.field == name }) else { return before(name) }
                    return written.applied(to: before(name) ?? .null)
                })
            {
                return refusal
            }
        }
        guard rejects else { return nil }
        if role != nil, entity.access != nil,
            let refusal = entity.refusal(
                role: role, change.operation, fields: change.fields.map { ($0.field, $0.setValue) },
                current: { name in entity.fieldIndex(name).flatMap { state.value(at: $0, of: entity) } })
        {
            return refusal
        }
        if change.operation != .insert && state.isUnwritten {
            return AccessRefusal(
                rule: "\(entity.name).exists", role: who,
                message: "this change is to a \(entity.name) record the server does not hold (its insert was refused); "
                    + "discard it")
        }
        for fieldChange in change.fields {
            guard case .set(.text(let id)) = fieldChange.kind, let target = entity.field(fieldChange.field)?.target
            else { continue }
            let key = RecordKey(entity: target, id: id)
            // A record this push writes is held once a change of it is merged (a device inserts a
            // record before it refers to it).
            let unheld = unheldReferences.contains(key) || positions[key].map { merged[$0].isUnwritten } ?? false
            if unheld {
                return AccessRefusal(
                    rule: "\(entity.name).\(fieldChange.field)", role: who,
                    message:
                        "\(entity.name).\(fieldChange.field) refers to a \(target) record the server does not hold "
                        + "(its insert was refused); discard this change")
            }
        }
        if let scopeKeys, let scopes {
            return scopes.refusal(
                change, entity, state, tokenKeys: scopeKeys, role: role, merged: merged, positions: positions)
        }
        return nil
    }

    /// The answer: a server sequence for every change of the request, in order, and the rejections
    /// among them — `rejected` for the fresh changes (by index, from ``merge(states:serverSequences:)``),
    /// the stored ones for changes received before.
    package func response(serverSequences: [Int64], rejected: [Int: Rejection] = [:]) -> PushResponse {
        var rejections: [Rejection] = []
        let assigned = answers.map { answer -> PushResponse.Assignment in
            switch answer {
            case .fresh(let index):
                if let rejection = rejected[index] { rejections.append(rejection) }
                return .init(sequence: fresh[index].sequence, serverSequence: serverSequences[index])
            case .earlier(let sequence):
                if let rejection = earlierRejections[sequence] { rejections.append(rejection) }
                return .init(sequence: sequence, serverSequence: earlierServerSequences[sequence]!)
            }
        }
        return PushResponse(assigned: assigned, rejected: rejections)
    }

    private static func same(_ a: Change, _ aFields: String, _ b: Change, _ bFields: String) -> Bool {
        a.entity == b.entity && a.recordID == b.recordID && a.operation == b.operation && a.timestamp == b.timestamp
            && a.base == b.base && (aFields == bFields || sameFields(a.fields, b.fields))
    }

    /// Whether two lists hold the same field changes, in any order: a change writes each of its
    /// fields once, so the order of its JSON keys is not content (a client's encoder may order them
    /// differently each time it runs).
    private static func sameFields(_ a: [FieldChange], _ b: [FieldChange]) -> Bool {
        a.count == b.count && Set(a) == Set(b)
    }

    /// Whether a stored change's field text holds the field changes of `change`, in any order. An
    /// insert sent again may also hold, beyond what was stored, fields set to their defaults: the
    /// defaults of fields a schema version published between the two sends added, which the
    /// device's version or the server's translation gave it the second time (docs/protocol.md,
    /// "Schema versions"). The stored change stands; the device adopts it when it pulls it.
    private func storedFields(_ text: String, match change: Change) -> Bool {
        guard let entity = schema.entity(change.entity),
            let stored = try? FieldChange.decode(utf8: Array(text.utf8), entity: entity)
        else { return false }
        if Self.sameFields(stored, change.fields) { return true }
        guard change.operation == .insert, stored.count < change.fields.count else { return false }
        let held = Set(stored)
        let storedNames = Set(stored.map(\.field))
        return held.isSubset(of: Set(change.fields))
            && change.fields.allSatisfy { field in
                held.contains(field)
                    || (!storedNames.contains(field.field)
                        && entity.field(field.field).map { field.kind == .set($0.insertDefault ?? .null) } == true)
            }
    }

    private static func reused(_ sequence: Int64) -> WireError {
        WireError(
            .sequenceReused,
            "device sequence \(sequence) was received before with different content; sequence numbers are never reused")
    }
}
