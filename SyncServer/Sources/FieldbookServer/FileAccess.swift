package import FieldbookCore
public import FieldbookSync

/// A file a record's change referred to: a row of a store's file references, appended in the
/// push's transaction for each accepted change (docs/protocol.md, "Files").
package struct FileReference: Hashable, Sendable {
    package var sha256: String
    package var entity: String
    package var id: String

    /// The files `fields` — one change of record `id` of `entity` — refer to.
    package static func of(_ fields: [FieldChange], entity: Entity, id: String) -> [FileReference] {
        Change.attachments(of: fields, in: entity).map { FileReference(sha256: $0.sha256, entity: entity.name, id: id) }
    }
}

extension PushPlan {
    /// The files the push's accepted fresh changes refer to, each with its record, once
    /// (a rejected change refers to nothing: it is not merged).
    package func fileReferences(rejected: [Int: Rejection], schema: Schema) -> [FileReference] {
        var found: [FileReference] = []
        var seen = Set<FileReference>()
        for (n, change) in fresh.enumerated() where rejected[n] == nil {
            guard let entity = schema.entity(change.entity), entity.refersToFiles else { continue }
            for reference in FileReference.of(change.fields, entity: entity, id: change.recordID)
            where seen.insert(reference).inserted {
                found.append(reference)
            }
        }
        return found
    }
}

/// What decides whether a scoped token may read a file (``SyncStorage/fileReaders(_:token:generation:)``).
public struct FileReaders: Sendable, Hashable {
    /// The scope keys of each record whose accepted changes referred to the file, as the scope
    /// index holds them now.
    public var referrerKeys: [Set<String>]
    /// Whether the asking token uploaded the file whole under its present scope.
    public var uploaded: Bool

    /// Readers from their parts.
    public init(referrerKeys: [Set<String>], uploaded: Bool) {
        self.referrerKeys = referrerKeys
        self.uploaded = uploaded
    }
}

extension SyncStorage {
    /// Whether `identity` may read the file `sha256` — download it, learn that the server holds it,
    /// or refer to it in a push without uploading it. A token that sees everything may read every
    /// file; a scoped one the files that a change of a record it sees now referred to (a record's
    /// history included: a photo since replaced is still the record's), and those it uploaded whole
    /// itself since it was last rescoped. A hash alone — kept from a record that has left the
    /// token's scope, or read off someone's screen — opens nothing.
    public func mayRead(file sha256: String, identity: Identity) async throws -> Bool {
        guard let scopes = identity.scopes else { return true }
        let readers = try await fileReaders(sha256, token: identity.tokenID, generation: identity.scopeGeneration)
        if readers.uploaded { return true }
        let keys = ScopeIndex.tokenKeys(scopes)
        return readers.referrerKeys.contains { !$0.isDisjoint(with: keys) }
    }
}
