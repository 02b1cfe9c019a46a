import FieldbookCore
import FieldbookSync
import Synchronization

/// The schema versions a server serves: the newest, which its store runs, and every earlier one the
/// store holds, whose requests are read in their own version and translated (docs/protocol.md,
/// "Schema versions").
final class ServedVersions: Sendable {
    /// How requests of one earlier version are served.
    struct Served: Sendable {
        /// What the version's requests are read with: the version, with the enum values later
        /// versions added (a device learns them at its first sync after they are published).
        let reading: Schema
        /// Between the version and the newest.
        let translation: SchemaTranslation
        /// The same, for pages on their text.
        let page: EncodedPageTranslation
    }

    private let storage: any SyncStorage
    /// By version, for the newest version they translate to.
    private let cache = Mutex<(newest: Int, served: [Int: Served])>((0, [:]))

    init(storage: any SyncStorage) { self.storage = storage }

    /// How to serve requests of `version`, an earlier version than the newest; nil if the store
    /// does not hold it.
    func served(_ version: Int) async throws -> Served? {
        let newest = storage.schema
        if let hit = cache.withLock({ $0.newest == newest.version ? $0.served[version] : nil }) { return hit }
        let history = try await storage.schemaVersions().map(\.schema)
        guard let start = history.firstIndex(where: { $0.version == version }),
            let end = history.firstIndex(where: { $0.version == newest.version }), start < end
        else { return nil }
        let translation = SchemaTranslation(Array(history[start...end]))
        let served = Served(
            reading: history[start].widened(by: newest) { translation.newerName(entity: $0, field: $1) },
            translation: translation, page: EncodedPageTranslation(translation))
        cache.withLock {
            if $0.newest != newest.version { $0 = (newest.version, [:]) }
            $0.served[version] = served
        }
        return served
    }
}
