import FieldbookCore
package import FieldbookSync
import Foundation

/// The server's bound on clock skew: a change stamped more than the bound ahead of the
/// server's clock is refused, so that one device's clock cannot move every peer's clock
/// (nor, near 2^63, stop it). Both stores share it: the HTTP layer checks a push before the
/// store sees it.
package enum ClockBound {
    /// The server's wall clock, in milliseconds since 1970.
    package static func now() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }

    /// Refuses `request` if one of its changes is stamped more than `bound` ahead of `now`.
    /// - Throws: ``WireError`` `clock_ahead`, with the server's time and the bound, naming the first such change
    ///   by its sequence number and how far ahead it is (never a field value).
    package static func check(_ request: PushRequest, now: Int64, bound: Duration) throws(WireError) {
        let ahead = bound.components.seconds * 1000 + bound.components.attoseconds / 1_000_000_000_000_000
        let (sum, overflow) = now.addingReportingOverflow(max(ahead, 0))
        let limit =
            overflow || sum >= Int64.max >> 16
            ? UInt64.max : HybridTimestamp(millis: UInt64(max(sum, 0)), counter: .max).rawValue
        for change in request.changes where change.timestamp.rawValue > limit {
            let by = Int64(change.timestamp.millis) - now
            throw WireError(
                .clockAhead,
                "change \(change.sequence) is stamped \(describe(milliseconds: by)) ahead of the server's clock; "
                    + "the server accepts at most \(describe(milliseconds: ahead)) ahead: re-stamp pending changes and push again",
                serverTime: now, maxAhead: ahead)
        }
    }

    /// `3 days`, `5 hours`, `12 minutes`, `40 seconds`: a duration for an error message.
    static func describe(milliseconds: Int64) -> String {
        let units: [(Int64, String)] = [(86_400_000, "day"), (3_600_000, "hour"), (60_000, "minute"), (1000, "second")]
        for (size, name) in units where milliseconds >= size {
            let count = milliseconds / size
            return count >= 1_000_000 ? "more than a million \(name)s" : "\(count) \(name)\(count == 1 ? "" : "s")"
        }
        return "\(max(milliseconds, 0)) ms"
    }
}
