import FieldbookCore
import FieldbookJSON
import FieldbookSchemas
import FieldbookSync
import FieldbookTesting
import Foundation
import Testing

/// Builds changes the way devices and the server would number them.
struct Scenario {
    let schema = try! Schema(json: BundledSchemas.inspection)
    var finding: Entity { schema.entity("finding")! }
    var site: Entity { schema.entity("site")! }
    let record = "018f0000-0000-7000-8000-000000000001"
    var nextServerSequence: Int64 = 0

    /// A change by `device` with sequence `seq`, timestamp `t`, written having pulled to `base`.
    func change(
        _ device: String, _ seq: Int64, t: UInt64, base: Int64 = 0, entity: String = "finding", _ fields: [FieldChange]
    ) -> Change {
        change(device, seq, t: t, base: base, .update, entity: entity, fields)
    }

    func change(
        _ device: String, _ seq: Int64, t: UInt64, base: Int64 = 0, _ op: ChangeOperation,
        entity: String = "finding", _ fields: [FieldChange] = []
    ) -> Change {
        Change(
            sequence: seq, device: device, entity: entity, recordID: record, operation: op,
            timestamp: HybridTimestamp(millis: t, counter: 0), base: base, fields: fields)
    }

    /// The server accepts a change: gives it the next server sequence number.
    mutating func accept(_ change: Change) -> Change {
        nextServerSequence += 1
        var accepted = change
        accepted.serverSequence = nextServerSequence
        return accepted
    }

    func state(_ changes: [Change], entity: String = "finding") -> RecordState {
        var state = RecordState()
        for change in changes { state.apply(change, entity: schema.entity(entity)!) }
        return state
    }
}

func set(_ field: String, _ value: Value, at: String? = nil, epoch: Int64? = nil) -> FieldChange {
    FieldChange(field: field, kind: .set(value), observedAt: at, epoch: epoch)
}

let deviceA = "018f0000-0000-7000-8000-00000000000a"
let deviceB = "018f0000-0000-7000-8000-00000000000b"
let deviceC = "018f0000-0000-7000-8000-00000000000c"

@Suite("Merge: three-way, per field, by policy", .tags(.core))
struct MergeTests {
    /// Both orders of applying two concurrent changes after a common insert.
    func bothOrders(_ s: inout Scenario, _ a: Change, _ b: Change, entity: String = "finding") -> (
        RecordState, RecordState
    ) {
        let insert = s.accept(
            s.change(
                deviceC, 1, t: 1, .insert, entity: entity,
                entity == "finding"
                    ? [set("title", "敬老院消防通道堵塞"), set("status", "not_started")]
                    : [set("name", "新度镇敬老院"), set("kind", "elderly_home")]))
        let a = s.accept(a)
        let b = s.accept(b)
        return (s.state([insert, a, b], entity: entity), s.state([insert, b, a], entity: entity))
    }

    @Test("different fields changed concurrently: both kept")
    func differentFields() {
        var s = Scenario()
        let (x, y) = bothOrders(
            &s, s.change(deviceA, 1, t: 10, base: 1, [set("status", "completed")]),
            s.change(deviceB, 1, t: 5, base: 1, [set("responsible_person", "王芳"), set("deadline", "2022-06-30")]))
        #expect(x == y)
        #expect(x.values["status"] == "completed")
        #expect(x.values["responsible_person"] == "王芳")
        #expect(x.values["deadline"] == "2022-06-30")
        #expect(x.conflicts(entity: s.finding, recordID: s.record).isEmpty)
    }

    @Test("lww: the later timestamp wins in either order; a change that saw the other replaces it")
    func lww() {
        var s = Scenario()
        let (x, y) = bothOrders(
            &s, s.change(deviceA, 1, t: 20, base: 1, [set("responsible_person", "李明")]),
            s.change(deviceB, 1, t: 10, base: 1, [set("responsible_person", "王芳")]))
        #expect(x == y)
        #expect(x.values["responsible_person"] == "李明")

        // B writes again having seen A's change (server sequence 2): B's value replaces it.
        var state = x
        state.apply(s.change(deviceB, 2, t: 30, base: 3, [set("responsible_person", "张伟")]), entity: s.finding)
        #expect(state.values["responsible_person"] == "张伟")
    }

    @Test("manual: concurrent different values are a conflict on every peer; a change that saw both settles it")
    func manual() {
        var s = Scenario()
        let (x, y) = bothOrders(
            &s, s.change(deviceA, 1, t: 20, base: 1, [set("deadline", "2022-03-31")]),
            s.change(deviceB, 1, t: 10, base: 1, [set("deadline", "2022-06-30")]))
        #expect(x == y)
        let conflicts = x.conflicts(entity: s.finding, recordID: s.record)
        #expect(conflicts.count == 1)
        #expect(conflicts.first?.field == "deadline")
        #expect(conflicts.first?.sides.map { $0.value } == ["2022-06-30", "2022-03-31"])
        #expect(x.values["deadline"] == "2022-03-31")  // the later one shows meanwhile

        // C resolves having pulled everything (base 3).
        var resolved = x
        resolved.apply(s.change(deviceC, 2, t: 40, base: 3, [set("deadline", "2022-06-30")]), entity: s.finding)
        #expect(resolved.conflicts(entity: s.finding, recordID: s.record).isEmpty)
        #expect(resolved.values["deadline"] == "2022-06-30")

        // A change that saw only one side does not settle it.
        var partial = x
        partial.apply(s.change(deviceC, 2, t: 40, base: 2, [set("deadline", "2022-09-30")]), entity: s.finding)
        #expect(partial.conflicts(entity: s.finding, recordID: s.record).count == 1)
    }

    @Test("manual: a delete that saw every side settles the conflict; deletes that saw a side each settle it too")
    func deleteSettlesWhatItSaw() {
        var s = Scenario()
        let insert = s.accept(s.change(deviceA, 1, t: 1, .insert, [set("title", "问题"), set("deadline", "2022-01-31")]))
        let a = s.accept(s.change(deviceA, 2, t: 20, base: 1, [set("deadline", "2022-03-31")]))
        let b = s.accept(s.change(deviceB, 1, t: 10, base: 1, [set("deadline", "2022-06-30")]))
        #expect(s.state([insert, a, b]).conflicts(entity: s.finding, recordID: s.record).count == 1)
        // C saw both sides and deletes: the record is gone and nothing is left to settle, in either order.
        let delete = s.accept(s.change(deviceC, 1, t: 30, base: 3, .delete))
        for order in [[insert, a, b, delete], [insert, b, a, delete]] {
            let state = s.state(order)
            #expect(!state.exists(onDelete: .conflict))
            #expect(state.conflicts(entity: s.finding, recordID: s.record).isEmpty)
        }
        // A delete that saw one side only, next to an update that did not see it: the field stays contested.
        var t = Scenario()
        let insert2 = t.accept(t.change(deviceA, 1, t: 1, .insert, [set("title", "问题")]))
        let a2 = t.accept(t.change(deviceA, 2, t: 20, base: 1, [set("deadline", "2022-03-31")]))
        let deleteA = t.accept(t.change(deviceA, 3, t: 21, base: 2, .delete))
        let b2 = t.accept(t.change(deviceB, 1, t: 10, base: 1, [set("deadline", "2022-06-30")]))
        let open = t.state([insert2, a2, deleteA, b2])
        #expect(open.exists(onDelete: .conflict))
        #expect(
            Set(open.conflicts(entity: t.finding, recordID: t.record).map(\.id)) == [
                "\(t.record)/-", "\(t.record)/deadline",
            ])
        // Then a delete from B, which saw only its own side: the two deletes together saw every side.
        let deleteB = t.accept(t.change(deviceB, 2, t: 22, base: 1, .delete))
        let gone = t.state([insert2, a2, deleteA, b2, deleteB])
        #expect(!gone.exists(onDelete: .conflict))
        #expect(gone.conflicts(entity: t.finding, recordID: t.record).isEmpty)
    }

    @Test(
        "a deleted record held by references: its conflict lists the deletes and each holder's write, the same for any order of holders"
    )
    func heldConflict() throws {
        var s = Scenario()
        let insert = s.accept(
            s.change(deviceA, 1, t: 1, .insert, [set("title", "台账不全"), set("status", "not_started")]))
        let delete = s.accept(s.change(deviceA, 2, t: 10, base: 1, .delete))
        let state = s.state([insert, delete])
        #expect(state.isDeletedRecord(onDelete: .conflict))
        #expect(!s.state([insert]).isDeletedRecord(onDelete: .conflict))
        #expect(!RecordState().isDeletedRecord(onDelete: .conflict))
        // The write that shows in a register: the holder's side.
        let measure = s.state([
            s.accept(s.change(deviceB, 1, t: 20, base: 1, .insert, [set("title", "x"), set("status", "not_started")]))
        ])
        let stamp = try #require(measure.shownStamp(at: s.finding.fieldIndex("title")!, of: s.finding))
        #expect(stamp.device == deviceB && stamp.sequence == 1)
        let holders = [
            (Conflict.Referrer(entity: "measure", record: "018f0000-0000-7000-8000-0000000000aa"), stamp),
            (Conflict.Referrer(entity: "measure", record: "018f0000-0000-7000-8000-0000000000bb"), stamp),
        ]
        let conflict = state.heldConflict(entity: s.finding, recordID: s.record, holders: holders)
        #expect(conflict == state.heldConflict(entity: s.finding, recordID: s.record, holders: holders.reversed()))
        #expect(conflict.id == "\(s.record)/-")
        #expect(conflict.sides.map(\.deletes) == [true, false, false])
        #expect(conflict.sides.compactMap(\.referrer?.record) == holders.map(\.0.record))
    }

    @Test("manual: concurrent equal values are no conflict")
    func manualEqual() {
        var s = Scenario()
        let (x, _) = bothOrders(
            &s, s.change(deviceA, 1, t: 20, base: 1, [set("deadline", "2022-03-31")]),
            s.change(deviceB, 1, t: 10, base: 1, [set("deadline", "2022-03-31")]))
        #expect(x.conflicts(entity: s.finding, recordID: s.record).isEmpty)
    }

    @Test("observed: the later observation wins, not the later write")
    func observed() {
        var s = Scenario()
        let (x, y) = bothOrders(
            &s,
            s.change(deviceA, 1, t: 50, base: 1, entity: "site", [set("beds_total", 100, at: "2021-08-01")]),
            s.change(deviceB, 1, t: 10, base: 1, entity: "site", [set("beds_total", 120, at: "2021-09-02")]),
            entity: "site")
        #expect(x == y)
        #expect(x.values["beds_total"] == 120)
    }

    @Test("max: the greater status wins; a higher epoch (a reopen) wins over it")
    func maxWithEpoch() {
        var s = Scenario()
        let (x, y) = bothOrders(
            &s, s.change(deviceA, 1, t: 10, base: 1, [set("status", "completed", epoch: 0)]),
            s.change(deviceB, 1, t: 20, base: 1, [set("status", "in_progress", epoch: 0)]))
        #expect(x == y)
        #expect(x.values["status"] == "completed")

        var t = Scenario()
        let (p, q) = bothOrders(
            &t, t.change(deviceA, 1, t: 10, base: 1, [set("status", "completed", epoch: 0)]),
            t.change(
                deviceB, 1, t: 5, base: 1,
                [set("status", "in_progress", epoch: 1), FieldChange(field: "reopen_count", kind: .add(1))]))
        #expect(p == q)
        #expect(p.values["status"] == "in_progress")
        #expect(p.values["reopen_count"] == 1)
    }

    @Test("counter: concurrent deltas add up")
    func counter() {
        var s = Scenario()
        let (x, y) = bothOrders(
            &s,
            s.change(
                deviceA, 1, t: 10, base: 1, entity: "site", [FieldChange(field: "illegal_graves_found", kind: .add(3))]),
            s.change(
                deviceB, 1, t: 20, base: 1, entity: "site", [FieldChange(field: "illegal_graves_found", kind: .add(4))]),
            entity: "site")
        #expect(x == y)
        #expect(x.values["illegal_graves_found"] == 7)
    }

    @Test("union: members merge one by one; a concurrent add and remove keeps the member")
    func union() {
        var s = Scenario()
        let insert = s.accept(
            s.change(
                deviceC, 1, t: 1, .insert, entity: "site",
                [set("name", "新度镇敬老院"), set("kind", "elderly_home"), set("tags", .set(["公建民营", "消防"]))]))
        let a = s.accept(
            s.change(
                deviceA, 1, t: 10, base: 1, entity: "site",
                [FieldChange(field: "tags", kind: .members(added: ["示范"], removed: ["消防"]))]))
        let b = s.accept(
            s.change(
                deviceB, 1, t: 20, base: 1, entity: "site",
                [FieldChange(field: "tags", kind: .members(added: ["消防", "四星"], removed: []))]))
        let x = s.state([insert, a, b], entity: "site")
        let y = s.state([insert, b, a], entity: "site")
        #expect(x == y)
        #expect(x.values["tags"] == .set(["公建民营", "消防", "示范", "四星"]))
    }

    @Test("delete against a concurrent update is a conflict in either order; the record stays with the update")
    func deleteAgainstUpdate() {
        var s = Scenario()
        let (x, y) = bothOrders(
            &s, s.change(deviceA, 1, t: 10, base: 1, .delete),
            s.change(deviceB, 1, t: 20, base: 1, [set("responsible_person", "王芳")]))
        #expect(x == y)
        #expect(x.exists(onDelete: .conflict))
        #expect(x.values["responsible_person"] == "王芳")
        let conflicts = x.conflicts(entity: s.finding, recordID: s.record)
        #expect(conflicts.count == 1 && conflicts[0].field == nil)
        #expect(conflicts[0].sides.map { $0.deletes } == [true, false])
        // With delete-wins the record is gone either way.
        #expect(!x.exists(onDelete: .deleteWins))

        // Settled by keeping: an update that saw the delete.
        var kept = x
        kept.apply(s.change(deviceC, 2, t: 30, base: 3, []), entity: s.finding)
        #expect(kept.exists(onDelete: .conflict))
        #expect(kept.conflicts(entity: s.finding, recordID: s.record).isEmpty)
        // Settled by deleting: a delete that saw the update.
        var deleted = x
        deleted.apply(s.change(deviceC, 2, t: 30, base: 3, .delete), entity: s.finding)
        #expect(!deleted.exists(onDelete: .conflict))
        #expect(deleted.conflicts(entity: s.finding, recordID: s.record).isEmpty)
    }

    @Test("a delete that saw every write deletes; the record's values stay in the tombstone")
    func plainDelete() {
        var s = Scenario()
        let insert = s.accept(s.change(deviceA, 1, t: 1, .insert, [set("title", "问题"), set("status", "not_started")]))
        let delete = s.accept(s.change(deviceB, 1, t: 5, base: 1, .delete))
        let state = s.state([insert, delete])
        #expect(!state.exists(onDelete: .conflict))
        #expect(state.values["title"] == "问题")
        #expect(state.conflicts(entity: s.finding, recordID: s.record).isEmpty)
    }

    @Test("applying a change twice changes nothing")
    func idempotent() {
        var s = Scenario()
        let insert = s.accept(s.change(deviceA, 1, t: 1, .insert, [set("title", "问题"), set("status", "not_started")]))
        let count = s.accept(
            s.change(deviceA, 2, t: 2, entity: "finding", [FieldChange(field: "reopen_count", kind: .add(1))]))
        #expect(s.state([insert, count, count]) == s.state([insert, count]))
    }

    @Test(
        "a state merged on with another copy of its entity, or a later version with a field added first, keeps every field by name"
    )
    func otherLayout() throws {
        var s = Scenario()
        let insert = s.accept(
            s.change(
                deviceA, 1, t: 1, .insert,
                [set("title", "敬老院消防通道堵塞"), set("status", "not_started"), set("responsible_person", "张伟")]))
        let reopen = s.accept(s.change(deviceA, 2, t: 2, base: 1, [FieldChange(field: "reopen_count", kind: .add(1))]))
        let update = s.accept(
            s.change(deviceB, 1, t: 3, base: 1, [set("responsible_person", "王芳"), set("deadline", "2022-03-31")]))
        let reference = s.state([insert, reopen, update])

        // The same schema loaded again: equal entities, other objects.
        let again = try #require(try Schema(json: BundledSchemas.inspection).entity("finding"))
        // A later version whose finding has a field before all the others: every position moves.
        var file = try #require(
            try JSONSerialization.jsonObject(with: Data(BundledSchemas.inspection)) as? [String: Any])
        var entities = try #require(file["entities"] as? [[String: Any]])
        let n = try #require(entities.firstIndex { $0["name"] as? String == "finding" })
        var fields = try #require(entities[n]["fields"] as? [[String: Any]])
        fields.insert(["name": "aa_note", "type": "text", "policy": "lww"], at: 0)
        entities[n]["fields"] = fields
        file["entities"] = entities
        file["version"] = try #require(file["version"] as? Int) + 1
        let later = try #require(
            try Schema(json: Array(JSONSerialization.data(withJSONObject: file))).entity("finding"))

        for entity in [again, later] {
            var state = s.state([insert, reopen])
            state.apply(update, entity: entity)
            #expect(state == reference)
            #expect(state.values == reference.values)
            for (position, field) in entity.fields.enumerated() {
                #expect(state.value(at: position, of: entity) == reference.values[field.name], "\(field.name)")
            }
        }
        #expect(reference.values["responsible_person"] == "王芳")
        #expect(reference.values["reopen_count"] == .integer(1))
    }

    @Test("the stored form reads back equal, Chinese text byte for byte")
    func storedForm() throws {
        var s = Scenario()
        let (x, _) = bothOrders(
            &s, s.change(deviceA, 1, t: 20, base: 1, [set("deadline", "2022-03-31"), set("title", "养老院“六有”标准未达标")]),
            s.change(deviceB, 1, t: 10, base: 1, .delete))
        let text = x.json.serialized
        let back = try RecordState(json: JSON(parsing: text), entity: s.finding)
        #expect(back == x)
        #expect(back.json.serialized == text)
    }
}

@Suite("Merge: properties", .tags(.core))
struct MergePropertyTests {
    /// Random histories: devices write to one record while pushing and pulling at random;
    /// the server orders the changes. Every order of applying them that respects what each
    /// writer had seen gives the same state as the server's order.
    @Test("order independence over random concurrent histories", arguments: 0..<TestTier.cases(full: 400, fast: 100))
    func orderIndependence(seed: Int) throws {
        var rng = SeededGenerator(seed: UInt64(seed) &* 7919 &+ 1)
        let schema = try Schema(json: BundledSchemas.inspection)
        // Even seeds edit a finding (manual, lww, max with epoch, counter, deletes);
        // odd seeds a site (observed, union, counter).
        let onSite = seed % 2 == 1
        let finding = schema.entity(onSite ? "site" : "finding")!
        let devices = (0..<Int.random(in: 2...4, using: &rng)).map { "018f0000-0000-7000-8000-0000000000\($0)0" }
        let record = "018f0000-0000-7000-8000-000000000001"
        var serverLog: [Change] = []
        var sequence = [Int64](repeating: 0, count: devices.count)
        var cursor = [Int64](repeating: 0, count: devices.count)
        var unpushed = [[Change]](repeating: [], count: devices.count)
        var clock: UInt64 = 1

        func push(_ d: Int) {
            for var change in unpushed[d] {
                change.serverSequence = Int64(serverLog.count + 1)
                serverLog.append(change)
            }
            unpushed[d] = []
        }
        // The insert, pushed at once.
        sequence[0] = 1
        unpushed[0] = [
            Change(
                sequence: 1, device: devices[0], entity: finding.name, recordID: record, operation: .insert,
                timestamp: HybridTimestamp(millis: clock, counter: 0), base: 0,
                fields: onSite
                    ? [set("name", "敬老院"), set("kind", "elderly_home"), set("tags", .set(["甲"]))]
                    : [
                        set("title", "问题"), set("status", "not_started"),
                        FieldChange(field: "reopen_count", kind: .set(0)),
                    ])
        ]
        push(0)
        let statuses: [Value] = ["not_started", "in_progress", "completed"]
        for _ in 0..<Int.random(in: 3...14, using: &rng) {
            let d = Int.random(in: 0..<devices.count, using: &rng)
            switch Int.random(in: 0..<10, using: &rng) {
            case 0..<2: push(d)
            case 2..<4: cursor[d] = Int64(serverLog.count)
            default:
                // Clocks are skewed: a device's timestamp can be behind another's.
                clock += UInt64.random(in: 0...3, using: &rng)
                let t = clock + UInt64.random(in: 0...5, using: &rng)
                sequence[d] += 1
                var fields: [FieldChange] = []
                var op = ChangeOperation.update
                let tags = ["甲", "乙", "丙"]
                switch Int.random(in: 0..<9, using: &rng) + (onSite ? 10 : 0) {
                case 10, 11:
                    let date = "2021-0\(Int.random(in: 1...4, using: &rng))-01"
                    fields = [set("beds_total", .integer(Int64.random(in: 50...60, using: &rng)), at: date)]
                case 12:
                    fields = [set("observed_on", .text("2021-0\(Int.random(in: 1...4, using: &rng))-01"))]
                case 13, 14:
                    fields = [
                        FieldChange(
                            field: "tags",
                            kind: .members(
                                added: [tags.randomElement(using: &rng)!], removed: [tags.randomElement(using: &rng)!]))
                    ]
                case 15: fields = [FieldChange(field: "illegal_graves_found", kind: .add(1))]
                case 16: op = .delete
                case 17: fields = []
                case 18...: fields = [set("town", .text(["新度镇", "黄石镇"].randomElement(using: &rng)!))]
                case 0: fields = [set("deadline", .text("2022-0\(Int.random(in: 1...3, using: &rng))-30"))]
                case 1: fields = [set("responsible_person", .text(["王芳", "李明", "张伟"].randomElement(using: &rng)!))]
                case 2:
                    fields = [
                        set("status", statuses.randomElement(using: &rng)!, epoch: Int64.random(in: 0...1, using: &rng))
                    ]
                case 3: fields = [FieldChange(field: "reopen_count", kind: .add(Int64.random(in: 1...2, using: &rng)))]
                case 4: fields = [set("description", .text(["甲", "乙"].randomElement(using: &rng)!))]
                case 5: op = .delete
                case 6: fields = []  // keeps a record contested by a delete
                default:
                    fields = [set("deadline", "2022-12-31"), set("results", .text("第\(sequence[d])次"))]
                }
                unpushed[d].append(
                    Change(
                        sequence: sequence[d], device: devices[d], entity: finding.name, recordID: record,
                        operation: op, timestamp: HybridTimestamp(millis: t, counter: 0), base: cursor[d],
                        fields: fields))
            }
        }
        for d in devices.indices { push(d) }

        var reference = RecordState()
        for change in serverLog { reference.apply(change, entity: finding) }

        for _ in 0..<6 {
            // A random order that respects each device's order and what each writer saw.
            var remaining = serverLog
            var state = RecordState()
            var applied: Set<Int64> = []
            while !remaining.isEmpty {
                let ready = remaining.indices.filter { i in
                    let c = remaining[i]
                    return !remaining.contains { other in
                        other.serverSequence != c.serverSequence
                            && ((other.device == c.device && other.sequence < c.sequence)
                                || (other.serverSequence! <= c.base && !applied.contains(other.serverSequence!)))
                    }
                }
                let pick = ready.randomElement(using: &rng)!
                let change = remaining.remove(at: pick)
                state.apply(change, entity: finding)
                applied.insert(change.serverSequence!)
            }
            #expect(state == reference, "seed \(seed)")
            #expect(
                state.conflicts(entity: finding, recordID: record)
                    == reference.conflicts(entity: finding, recordID: record))
        }
    }
}
