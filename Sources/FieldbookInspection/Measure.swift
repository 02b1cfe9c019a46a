public import FieldbookStore

/// A rectification measure (整改措施) for a finding, with who answers for it and by when.
public struct Measure: EntityModel, Hashable {
    public static let entityName = "measure"

    public var id: String
    /// The id of the ``Finding``.
    public var finding: String
    public var description: String
    public var responsibleLeader: String?
    public var responsibleUnit: String?
    public var responsiblePerson: String?
    public var deadline: CalendarDate?
    public var status: RectificationStatus
    public var longTerm: Bool

    public init(
        id: String = "", finding: String, description: String, responsibleLeader: String? = nil,
        responsibleUnit: String? = nil, responsiblePerson: String? = nil, deadline: CalendarDate? = nil,
        status: RectificationStatus = .notStarted, longTerm: Bool = false
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
    }

    enum CodingKeys: String, CodingKey {
        case id, finding, description
        case responsibleLeader = "responsible_leader"
        case responsibleUnit = "responsible_unit"
        case responsiblePerson = "responsible_person"
        case deadline, status
        case longTerm = "long_term"
    }
}
