import GRDB

extension Store {
    /// The records `query` selects, live: an async sequence that yields the current results
    /// first, then the results again after each committed transaction that changes them — a
    /// local write, or a page of changes applied by ``sync(_:options:)`` (a page is one
    /// transaction, so it yields once). A transaction that leaves the results as they were
    /// yields nothing.
    ///
    /// ```swift
    /// for try await findings in store.observe(Query("finding").filter("status", .notEqual, "completed")) {
    ///     print(findings.count, "open findings")
    /// }
    /// ```
    ///
    /// In SwiftUI, drive a view's state from a task:
    ///
    /// ```swift
    /// struct OpenFindings: View {
    ///     let store: Store
    ///     @State private var findings: [Record] = []
    ///
    ///     var body: some View {
    ///         List(findings, id: \.id) { Text($0["title"].text ?? "") }
    ///             .task {
    ///                 do {
    ///                     for try await latest in store.observe(Query("finding").sorted(by: "deadline")) {
    ///                         findings = latest
    ///                     }
    ///                 } catch {}
    ///             }
    ///     }
    /// }
    /// ```
    ///
    /// It is told of the writes of this `Store`. A write by another process to the same file is
    /// not noticed until a write of this store makes the query fetch again.
    /// Built on GRDB's `ValueObservation`: iterating starts the observation, and ending the
    /// iteration (or cancelling its task) stops it.
    public func observe(_ query: Query) -> StoreObservation<[Record]> {
        StoreObservation(
            ValueObservation.tracking { db in try self.transaction(db).fetch(query) }.removeDuplicates()
                .values(in: pool))
    }

    /// One record, live: yields it now (nil if there is none), then again after each committed
    /// transaction that changes it, deletes it or makes it (see ``observe(_:)``).
    public func observe(_ entity: String, id: String) -> StoreObservation<Record?> {
        StoreObservation(
            ValueObservation.tracking { db in try self.transaction(db).record(entity, id: id) }.removeDuplicates()
                .values(in: pool))
    }
}

/// The results of a live query (``Store/observe(_:)``): an async sequence that yields a new value
/// after each committed transaction that changes it. It throws ``StoreError``.
public struct StoreObservation<Value: Sendable & Equatable>: AsyncSequence, Sendable {
    /// The query's results (or the record) at one moment.
    public typealias Element = Value

    private let values: AsyncValueObservation<Value>

    init(_ values: AsyncValueObservation<Value>) { self.values = values }

    /// Starts the observation: the first value is the current one.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: values.makeAsyncIterator()) }

    /// Iterates a ``StoreObservation``.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncValueObservation<Value>.Iterator

        /// The next value; waits for a transaction that changes it.
        public mutating func next() async throws -> Value? {
            do {
                return try await base.next()
            } catch let error as DatabaseError {
                throw StoreError(database: error)
            }
        }
    }
}
