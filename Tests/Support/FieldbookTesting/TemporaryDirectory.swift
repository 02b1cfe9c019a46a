public import Foundation

/// A fresh directory under the system's temporary directory, removed with everything in it when
/// the last reference goes.
public final class TemporaryDirectory: Sendable {
    /// Where it is.
    public let url: URL

    public init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("fieldbook-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// The path of `name` in the directory.
    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// A PostgreSQL schema name unique to this directory: a PostgreSQL store "in" it is fresh,
    /// and opening it again (a server restart) finds the same tables.
    public var namespace: String {
        "t_" + url.lastPathComponent.dropFirst("fieldbook-".count).lowercased().filter { $0 != "-" }
    }

    deinit { try? FileManager.default.removeItem(at: url) }
}
