public import FieldbookStore
public import Foundation

/// An append-only note on a finding's progress (进展). Notes are never edited, so they never conflict.
public struct ProgressNote: EntityModel, Hashable {
    public static let entityName = "progress_note"

    public var id: String
    public var finding: String
    public var text: String
    public var author: String?
    public var writtenAt: Date?

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
