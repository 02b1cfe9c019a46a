import FieldbookCore
import FieldbookSync
import Synchronization

/// The pushes of each token in progress in this process, so that a push that arrives ahead of
/// its turn can wait for the one before it instead of being refused.
///
/// A device sends its next batches before the answer to the one before them (``Store/push``), so
/// several of its pushes can be decoded at once and a later one reach the store first; the store
/// refuses it (`sequence_gap`) and applies nothing. The push route then waits until another push
/// of the same token, one not itself waiting, finishes here, and tries again. With no such
/// push (the earlier one went to another server process, or never came) the refusal stands and
/// the device sends the batch again later.
package final class PushArrivals: Sendable {
    private struct Lane {
        var running = 0
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let lanes = Mutex<[Int64: Lane]>([:])

    package init() {}

    /// Runs one push of `token`.
    package func run<T: Sendable>(token: Int64, _ body: () async throws -> T) async throws -> T {
        lanes.withLock { $0[token, default: Lane()].running += 1 }
        defer { leave(token) }
        return try await body()
    }

    /// Runs `store` (from inside ``run(token:_:)``) until it takes the push: while it refuses the
    /// push for a gap (`sequence_gap`), waits for another running push of `token` to finish and
    /// tries again. A device has several pushes on the wire, so the one it overtook may itself be
    /// waiting for the one before it. With no other push of `token` running, the refusal stands.
    package func store<T: Sendable>(token: Int64, _ store: () async throws -> T) async throws -> T {
        while true {
            do {
                return try await store()
            } catch let error as WireError where error.code == .sequenceGap {
                guard await awaitAnother(token: token) else { throw error }
            }
        }
    }

    /// Waits until another running push of `token` finishes; false at once if there is none.
    /// Called from inside ``run(token:_:)``: while it waits, this push does not count as running.
    package func awaitAnother(token: Int64) async -> Bool {
        let others = lanes.withLock { $0[token]!.running - 1 }
        guard others > 0 else { return false }
        await withCheckedContinuation { continuation in
            let resumeNow = lanes.withLock { lanes in
                // Another push may have finished since the count was read.
                guard lanes[token]!.running > 1 else { return true }
                lanes[token]!.running -= 1
                lanes[token]!.waiting.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
        return true
    }

    private func leave(_ token: Int64) {
        let waiting = lanes.withLock { lanes -> [CheckedContinuation<Void, Never>] in
            var lane = lanes[token]!
            lane.running -= 1
            let waiting = lane.waiting
            lane.running += waiting.count
            lane.waiting = []
            lanes[token] = lane.running == 0 ? nil : lane
            return waiting
        }
        for continuation in waiting { continuation.resume() }
    }
}
