/// Keeps a store's conflict table in step with the merge: the same decisions for every store.
package enum ConflictUpkeep {
    /// What to write for one record: `open` are the ids of its conflicts the table holds unresolved,
    /// `current` the conflicts its merged state has now.
    /// - Returns: the ids to mark resolved, and the conflicts to insert or refresh (reopening a resolved one).
    package static func changes(open: Set<String>, current: [Conflict]) -> (resolve: [String], upsert: [Conflict]) {
        let now = Set(current.map(\.id))
        return (open.subtracting(now).sorted(), current)
    }
}
