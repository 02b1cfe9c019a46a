import FieldbookCore
public import FieldbookFiles
import FieldbookJSON
import FieldbookSync
public import Foundation
import Logging
import ServiceLifecycle

/// Collects the files no record refers to any more (docs/deployment.md, "Files").
///
/// A file is kept while a record's current value or an open conflict's side refers to it, and for
/// `grace` after it was last stored or referenced by a push (a push that refers to a file marks it,
/// before the push is stored): a device offline with a change that refers to it, or one that pulled
/// a record before it changed, still finds it. Partial uploads untouched for `grace` are dropped; one
/// in progress is kept. Each file is checked again just before it is deleted.
public enum FileCollection {
    /// What a collection found and did.
    public struct Report: Sendable, Hashable {
        /// Files kept (referenced, or within the grace period).
        public var kept = 0
        /// The hashes of the files deleted (or that would be, for a dry run).
        public var removed: [String] = []
        /// Partial uploads deleted (or that would be).
        public var partialsRemoved = 0
    }

    /// The hashes every record's current value and every open conflict refer to.
    public static func referenced(by storage: any SyncStorage) async throws -> Set<String> {
        var hashes = Set<String>()
        for entity in storage.schema.entities {
            let fields = entity.fields.indices.filter { entity.fields[$0].type.isAttachment }
            guard !fields.isEmpty else { continue }
            for (_, state) in try await storage.states(entity.name) {
                for index in fields {
                    for attachment in state.value(at: index, of: entity)?.attachments ?? [] {
                        hashes.insert(attachment.sha256)
                    }
                }
            }
        }
        for conflict in try await storage.storedConflicts() {
            for side in conflict.sides {
                for attachment in side.value.attachments { hashes.insert(attachment.sha256) }
            }
        }
        return hashes
    }

    /// Deletes from `directory` the files `storage`'s records do not refer to and that were not
    /// stored or referenced within `grace` of `now`, and the partial uploads untouched as long.
    public static func collect(
        storage: any SyncStorage, directory: FileDirectory, grace: Duration, now: Date = Date(), dryRun: Bool = false
    ) async throws -> Report {
        let cutoff = now.addingTimeInterval(-Double(grace.components.seconds))
        // Listed before the references are read: a file stored after this is not a candidate.
        let stored = directory.stored()
        let references = try await referenced(by: storage)
        var report = Report()
        for file in stored where file.modified < cutoff && !references.contains(file.sha256) {
            // Referenced by a push since the listing: kept.
            guard let again = directory.modified(file.sha256), again < cutoff else { continue }
            if !dryRun { directory.remove(file.sha256) }
            report.removed.append(file.sha256)
        }
        report.kept = stored.count - report.removed.count
        for partial in directory.partials() where partial.modified < cutoff {
            if !dryRun { directory.removePartial(partial.key) }
            report.partialsRemoved += 1
        }
        return report
    }
}

/// Runs ``FileCollection/collect(storage:directory:grace:now:dryRun:)`` every `interval` while the
/// server runs (a service of the application), logging what it removed.
struct FileCollector: Service {
    let storage: any SyncStorage
    let directory: FileDirectory
    let grace: Duration
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard !Task.isCancelled else { return }
                do {
                    let report = try await FileCollection.collect(
                        storage: storage, directory: directory, grace: grace)
                    if !report.removed.isEmpty || report.partialsRemoved > 0 {
                        logger.notice(
                            "files collected",
                            metadata: [
                                "removed": .stringConvertible(report.removed.count),
                                "partials": .stringConvertible(report.partialsRemoved),
                                "kept": .stringConvertible(report.kept),
                            ])
                    }
                } catch {
                    logger.warning(
                        "files not collected", metadata: ["error": .string(String(describing: type(of: error)))])
                }
            }
        }
    }
}
