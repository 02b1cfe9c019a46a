public import FieldbookCore
public import FieldbookStore

/// A rectification measure (整改措施) for a finding, with who answers for it and by when.
public struct Measure: EntityModel, Hashable {
    /// The entity's name in the inspection schema.
    public static let entityName = "measure"

    /// The record id; empty until the record is inserted.
    public var id: String
    /// The id of the ``Finding``.
    public var finding: String
    /// What will be done (措施); concurrent different edits are a conflict a person settles.
    public var description: String
    /// The leader answerable for the measure (责任领导).
    public var responsibleLeader: String?
    /// The unit answerable for the measure (责任单位).
    public var responsibleUnit: String?
    /// The person answerable for the measure (责任人).
    public var responsiblePerson: String?
    /// The deadline (整改期限).
    public var deadline: CalendarDate?
    /// Where the measure stands (状态); concurrent changes keep the furthest status.
    public var status: RectificationStatus
    /// A long-term mechanism (长效机制) that never "closes".
    public var longTerm: Bool
    /// Photos and documents that prove the measure was taken (整改佐证); concurrent additions all stay.
    public var evidence: Set<Attachment>

    /// A measure for the finding with id `finding`; leave `id` empty for the store to give one on insert.
    public init(
        id: String = "", finding: String, description: String, responsibleLeader: String? = nil,
        responsibleUnit: String? = nil, responsiblePerson: String? = nil, deadline: CalendarDate? = nil,
        status: RectificationStatus = .notStarted, longTerm: Bool = false, evidence: Set<Attachment> = []
    ) {
        self.id = id
        self.finding = finding
        self.description = description
        self.responsibleLeader = responsibleLeader
        self.responsibleUnit = responsibleUnit
        self.responsiblePerson = responsiblePerson
        self.deadline = deadline
        self.status = status
        self.longTerm = longTerm
        self.evidence = evidence
    }

    enum CodingKeys: String, CodingKey {
        case id, finding, description
        case responsibleLeader = "responsible_leader"
        case responsibleUnit = "responsible_unit"
        case responsiblePerson = "responsible_person"
        case deadline, status
        case longTerm = "long_term"
        case evidence
    }
}
