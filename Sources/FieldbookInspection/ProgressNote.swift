public import FieldbookStore
public import Foundation

/// An append-only note on a finding's progress (进展). Notes are never edited, so they never conflict.
public struct ProgressNote: EntityModel, Hashable {
    /// The entity's name in the inspection schema.
    public static let entityName = "progress_note"

    /// The record id; empty until the record is inserted.
    public var id: String
    /// The id of the ``Finding`` the note is on. While that finding does not exist, neither does the note.
    public var finding: String
    /// What the note says (内容).
    public var text: String
    /// Who wrote it (记录人).
    public var author: String?
    /// When it was written (时间).
    public var writtenAt: Date?

    /// A note on the finding with id `finding`; leave `id` empty for the store to give one on insert.
    public init(id: String = "", finding: String, text: String, author: String? = nil, writtenAt: Date? = nil) {
        self.id = id
        self.finding = finding
        self.text = text
        self.author = author
        self.writtenAt = writtenAt
    }

    enum CodingKeys: String, CodingKey {
        case id, finding, text, author
        case writtenAt = "written_at"
    }
}
