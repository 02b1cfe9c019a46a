/// A hybrid logical clock timestamp: wall-clock milliseconds in the high 48
/// bits, a counter in the low 16. Ordered as one 64-bit number.
public struct HybridTimestamp: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// The packed value, as stored and sent.
    public let rawValue: UInt64

    /// A timestamp from its packed value, as stored and sent.
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// A timestamp from milliseconds since 1970 (the low 48 bits are kept) and a counter.
    public init(millis: UInt64, counter: UInt16) {
        rawValue = millis << 16 | UInt64(counter)
    }

    /// Milliseconds since 1970 (the physical part).
    public var millis: UInt64 { rawValue >> 16 }
    /// The logical counter.
    public var counter: UInt16 { UInt16(truncatingIfNeeded: rawValue) }

    /// The timestamp 0: ordered before every other; a new clock's ``HybridLogicalClock/last``.
    public static let zero = HybridTimestamp(rawValue: 0)

    /// Ordered as the packed 64-bit value: by milliseconds, then by counter.
    public static func < (lhs: HybridTimestamp, rhs: HybridTimestamp) -> Bool { lhs.rawValue < rhs.rawValue }

    /// `2021-11-16T09:30:00.000Z+0003`: the wall time and the counter.
    public var description: String {
        CalendarText.timestamp(millisecondsSince1970: Int64(millis)) + "+" + String(counter)
    }
}

/// A hybrid logical clock (Kulkarni et al., 2014): timestamps that follow the
/// wall clock when it moves forward, never go backwards when it jumps back,
/// and stay ahead of every timestamp received from another device.
///
/// The clock is a value; its owner persists ``last`` with each change it
/// stamps, and restores it with ``init(last:)`` after a restart.
public struct HybridLogicalClock: Sendable {
    /// The latest timestamp issued or received.
    public private(set) var last: HybridTimestamp

    /// A clock whose latest timestamp is `last`: `.zero` for a new clock, the persisted one after a restart.
    public init(last: HybridTimestamp = .zero) {
        self.last = last
    }

    /// A new timestamp, greater than every one issued or received before.
    /// - Parameter wallMillis: the wall clock now, in milliseconds since 1970.
    public mutating func now(wallMillis: UInt64) -> HybridTimestamp {
        if wallMillis > last.millis {
            last = HybridTimestamp(millis: wallMillis, counter: 0)
        } else if last.counter == UInt16.max {
            // The counter is full: borrow the next millisecond.
            last = HybridTimestamp(millis: last.millis + 1, counter: 0)
        } else {
            last = HybridTimestamp(rawValue: last.rawValue + 1)
        }
        return last
    }

    /// Moves the clock past a timestamp seen from another device, so that
    /// everything stamped here afterwards orders after it.
    public mutating func receive(_ remote: HybridTimestamp) {
        if remote > last { last = remote }
    }
}
