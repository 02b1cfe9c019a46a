public import FieldbookCore
import FieldbookJSON

extension RecordState {
    /// Gives this device's changes that the server has not yet taken new timestamps, as the
    /// device does when the server refuses them as stamped too far ahead (`clock_ahead`), and
    /// shows again whatever value now wins.
    ///
    /// A change keeps its device, sequence number and base, so what it saw is unchanged
    /// (``ChangeStamp/saw(_:)`` reads those, not timestamps); only the order of concurrent
    /// changes by timestamp can move, and the state then holds what a peer that merges the
    /// re-stamped changes holds.
    /// - Parameter timestamp: the new timestamp of a sequence number, or nil to keep the old one.
    public mutating func restamp(device: String, entity: Entity, _ timestamp: (Int64) -> HybridTimestamp?) {
        func fill(_ stamp: inout ChangeStamp) -> Bool {
            guard stamp.device == device, stamp.serverSequence == nil, let new = timestamp(stamp.sequence) else {
                return false
            }
            stamp.timestamp = new
            return true
        }
        for n in slots.indices {
            var changed = false
            for i in slots[n].candidates.indices { changed = fill(&slots[n].candidates[i].stamp) || changed }
            guard changed, let position = entity.fieldIndex(layout.names[n]) else { continue }
            slots[n].candidates.sort { $0.stamp.precedes($1.stamp) }
            let field = entity.fields[position]
            slots[n].value = Self.winner(slots[n].candidates, policy: field.policy, type: field.type).value
        }
        for (name, var operations) in members {
            for (member, var ops) in operations {
                var changed = false
                for i in ops.indices { changed = fill(&ops[i].stamp) || changed }
                if changed { ops.sort { $0.stamp.precedes($1.stamp) } }
                operations[member] = ops
            }
            members[name] = operations
        }
        if var stamp = applied[device], fill(&stamp) { applied[device] = stamp }
        if var stamp = writes[device], fill(&stamp) { writes[device] = stamp }
        var moved = false
        for i in deletes.indices { moved = fill(&deletes[i]) || moved }
        if moved { deletes.sort { $0.precedes($1) } }
    }
}
