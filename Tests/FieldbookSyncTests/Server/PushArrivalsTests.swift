import FieldbookCore
import FieldbookServer
import FieldbookServerTesting
import FieldbookSync
import FieldbookTesting
import Synchronization
import Testing

/// `PushArrivals` on its own: when a push refused for a gap waits, for what, and that two such
/// pushes of one token cannot wait for each other.
@Suite("Server: a push that overtook the one before it waits only for a running push of its token", .tags(.server))
struct PushArrivalsTests {
    /// Something a task sets and another reads.
    final class Flag: Sendable {
        let value = Atomic(false)
    }

    @Test("with no other push of its token running, a refused push does not wait", .timeLimit(.minutes(1)))
    func alone() async throws {
        let arrivals = PushArrivals()
        #expect(try await arrivals.run(token: 1) { await arrivals.awaitAnother(token: 1) } == false)

        // A push of another token running does not count.
        let other = await running(arrivals, token: 2)
        #expect(try await arrivals.run(token: 1) { await arrivals.awaitAnother(token: 1) } == false)
        other.finish()
        try await other.push.value
    }

    @Test("a waiting push goes on when the other push of its token finishes, not before", .timeLimit(.minutes(1)))
    func waitsForTheOther() async throws {
        let arrivals = PushArrivals()
        let first = await running(arrivals, token: 7)
        let resumed = Flag()
        let second = Task {
            try await arrivals.run(token: 7) {
                let waited = await arrivals.awaitAnother(token: 7)
                resumed.value.store(true, ordering: .sequentiallyConsistent)
                return waited
            }
        }
        try await Task.sleep(for: .milliseconds(300))
        let wentOn = resumed.value.load(ordering: .sequentiallyConsistent)
        #expect(!wentOn, "it went on while the other push was still running")
        first.finish()
        #expect(try await second.value == true)
        try await first.push.value
    }

    @Test("two refused pushes of one token do not wait for each other", .timeLimit(.minutes(1)), arguments: 0..<20)
    func noMutualWait(round: Int) async throws {
        // Both running, then both refused at once: while one waits it does not count as running,
        // so the other finds nobody to wait for (or finds the first already waiting and goes on);
        // when it finishes, the first goes on too.
        let arrivals = PushArrivals()
        let (entered, enteredFeed) = AsyncStream<Void>.makeStream()
        let gate = Gate()
        let pushes = (0..<2).map { _ in
            Task {
                try await arrivals.run(token: 3) {
                    enteredFeed.yield()
                    await gate.wait()
                    return await arrivals.awaitAnother(token: 3)
                }
            }
        }
        var count = 0
        for await _ in entered {
            count += 1
            if count == 2 { break }
        }
        await gate.open()
        var waited: [Bool] = []
        for push in pushes { waited.append(try await push.value) }
        #expect(waited.contains(true), "one of them found the other running: \(waited)")
        // Nothing is left counted: a later lone push does not wait.
        #expect(try await arrivals.run(token: 3) { await arrivals.awaitAnother(token: 3) } == false)
    }

    @Test("a push that overtook two pushes of its token waits for both, in turn", .timeLimit(.minutes(1)))
    func overtookTwo() async throws {
        // Pushes 1, 2 and 3 of one device reach the store as 3, 2, 1 would: 3 and 2 are refused
        // and wait for 1. When 1 finishes, 3 tries again before 2 does and is refused again: it
        // must wait for 2 this time, not give up.
        let arrivals = PushArrivals()
        let store = InOrder()
        let (release, releaseFeed) = AsyncStream<Void>.makeStream()
        let (entered, enteredFeed) = AsyncStream<Void>.makeStream()
        let first = Task {
            try await arrivals.run(token: 5) {
                enteredFeed.yield()
                for await _ in release { break }
                try await arrivals.store(token: 5) { try await store.take(1) }
            }
        }
        for await _ in entered { break }
        let third = Task {
            try await arrivals.run(token: 5) { try await arrivals.store(token: 5) { try await store.take(3) } }
        }
        try await store.waitForAttempt(of: 3)
        let second = Task {
            try await arrivals.run(token: 5) {
                try await arrivals.store(token: 5) {
                    // Its second try comes late, after the third push's.
                    if await store.attempts(of: 2) > 0 { try await Task.sleep(for: .milliseconds(200)) }
                    try await store.take(2)
                }
            }
        }
        try await store.waitForAttempt(of: 2)
        try await Task.sleep(for: .milliseconds(100))  // both are waiting now
        releaseFeed.yield()
        try await first.value
        try await second.value
        try await third.value
        #expect(await store.next == 4)
        #expect(await store.attempts(of: 3) == 3, "refused before the first push, before the second, then taken")
    }

    /// A store that takes a device's pushes 1, 2, 3, … in order only and refuses the others for a gap.
    actor InOrder {
        private(set) var next = 1
        private var tried: [Int: Int] = [:]

        func take(_ push: Int) throws {
            tried[push, default: 0] += 1
            guard push == next else { throw WireError(.sequenceGap, "expected push \(next), got \(push)") }
            next += 1
        }

        func attempts(of push: Int) -> Int { tried[push, default: 0] }

        func waitForAttempt(of push: Int) async throws {
            while tried[push, default: 0] == 0 { try await Task.sleep(for: .milliseconds(5)) }
        }
    }

    /// A push of `token` that has started and runs until `finish` is called.
    func running(_ arrivals: PushArrivals, token: Int64) async -> (
        push: Task<Void, any Error>, finish: @Sendable () -> Void
    ) {
        let (release, releaseFeed) = AsyncStream<Void>.makeStream()
        let (entered, enteredFeed) = AsyncStream<Void>.makeStream()
        let push = Task {
            try await arrivals.run(token: token) {
                enteredFeed.yield()
                for await _ in release { break }
            }
        }
        for await _ in entered { break }
        return (push, { releaseFeed.yield() })
    }

    /// Lets every task waiting at it go on at once.
    actor Gate {
        private var isOpen = false
        private var waiting: [CheckedContinuation<Void, Never>] = []

        func wait() async {
            if isOpen { return }
            await withCheckedContinuation { waiting.append($0) }
        }

        func open() {
            isOpen = true
            for continuation in waiting { continuation.resume() }
            waiting = []
        }
    }
}
