public import FieldbookCore
package import FieldbookSync

/// What a server store does with a schema it is opened with, or asked to publish, given the
/// versions it holds (its schema history): both stores decide the same way, and refuse what is not a
/// compatible evolution (``Schema/evolutionProblems(from:earlier:)``, the rules a device's store
/// follows too), changing nothing.
package enum SchemaUpgrade {
    /// What to do.
    package enum Step {
        /// The store's newest version stays; it is what the server runs.
        case current(Schema)
        /// `schema` becomes the newest version, after `previous`.
        case publish(Schema, previous: Schema)
    }

    /// Decides what `schema` means for a store holding `history` (each version's canonical text,
    /// oldest first; not empty). Opened with (`publishing` false) an older version the store holds,
    /// the store keeps its newest; publishing needs a version after the newest.
    /// - Throws: ``SchemaRefusal`` naming why, and that nothing was changed.
    package static func step(history: [String], schema: Schema, publishing: Bool) throws(SchemaRefusal) -> Step {
        var versions: [Schema] = []
        for text in history {
            do {
                versions.append(try Schema(json: text))
            } catch {
                throw SchemaRefusal("the database holds a schema that does not load: \(error)")
            }
        }
        guard let newest = versions.last else { throw SchemaRefusal("the database's schema is missing") }
        guard schema.name == newest.name else {
            throw SchemaRefusal("the database holds schema '\(newest.name)', not '\(schema.name)'")
        }
        if schema.version > newest.version {
            let problems = schema.evolutionProblems(from: newest, earlier: versions.dropLast())
            guard problems.isEmpty else {
                throw SchemaRefusal(
                    "schema version \(schema.version) cannot follow version \(newest.version) that the database holds; "
                        + "nothing was changed:\n  " + problems.joined(separator: "\n  "))
            }
            return .publish(schema, previous: newest)
        }
        if publishing {
            throw SchemaRefusal(
                "the database holds schema version \(newest.version) already; publish a version after it")
        }
        guard let held = versions.first(where: { $0.version == schema.version }) else {
            throw SchemaRefusal(
                "the database holds schema version \(newest.version), newer than \(schema.version), and not version \(schema.version) itself"
            )
        }
        guard held.json == schema.json else {
            throw SchemaRefusal(
                "the schema file's version \(schema.version) differs from the version \(schema.version) the database holds; give it a new version"
            )
        }
        return .current(newest)
    }

    /// Refuses a push read for one version when the store holds another (published while the
    /// request was on its way, by another process): its fields may since have been renamed. Checked
    /// under the lock a publish takes too.
    package static func checkUnchanged(stored: Int, request: SchemaVersion) throws(WireError) {
        guard stored != request.version else { return }
        throw WireError(
            .schemaMismatch,
            "the server took schema version \(stored) while the request for version \(request.version) was on its way; send it again"
        )
    }
}

/// Why a store will not take a schema (``SyncStorage/publish(_:)``, or a server started with it):
/// for the operator, with every problem on a line of its own; nothing was changed.
public struct SchemaRefusal: Error, CustomStringConvertible {
    /// What is wrong, naming versions, entities and fields, never stored data.
    public var description: String
    package init(_ description: String) { self.description = description }
}

/// One version of a store's schema history (`fieldbook-server schema list`).
public struct PublishedSchema: Sendable, Hashable {
    /// The schema at this version.
    public var schema: Schema
    /// When the store took it, ISO 8601 UTC; nil for the version a store held before it kept a
    /// history.
    public var publishedAt: String?
    /// The last server sequence number when the store took it: no change before it names what the
    /// version added (0 for the first version, nil for one taken before stores noted it).
    public var head: Int64?

    /// A version from its parts.
    public init(schema: Schema, publishedAt: String?, head: Int64? = nil) {
        self.schema = schema
        self.publishedAt = publishedAt
        self.head = head
    }
}
