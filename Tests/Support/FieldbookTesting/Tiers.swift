import Foundation
public import Testing

extension Tag {
    /// The data model, JSON, the wire messages and the merge: no file, no socket.
    @Tag public static var core: Self
    /// The device store on real SQLite files.
    @Tag public static var store: Self
    /// A server store (embedded SQLite or PostgreSQL), or the server over HTTP on loopback.
    @Tag public static var server: Self
    /// Devices syncing with a server: the protocol from the device's side.
    @Tag public static var device: Self
    /// The built binaries run as processes: the CLI, server processes, crash and fault runs.
    @Tag public static var endToEnd: Self
    /// Runs for tens of seconds or more: left out of the fast tier.
    @Tag public static var slow: Self
}

/// Which tests run: all of them (what CI runs), or the fast tier of the edit-test loop
/// (`./scripts/test --fast`, which sets `FIELDBOOK_FAST=1`): no PostgreSQL, few property cases,
/// and no test tagged ``Testing/Tag/slow``.
public enum TestTier {
    /// Whether this is the fast tier.
    public static let isFast = ProcessInfo.processInfo.environment["FIELDBOOK_FAST"] == "1"

    /// `full` in the full run, `fast` in the fast tier: how many random cases a property test runs.
    public static func cases(full: Int, fast: Int) -> Int { isFast ? fast : full }
}

extension Trait where Self == ConditionTrait {
    /// Runs in the full run only: for tests tagged ``Testing/Tag/slow``.
    public static var fullRunOnly: Self { .disabled(if: TestTier.isFast, "left out of the fast tier") }
}
