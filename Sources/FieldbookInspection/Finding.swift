public import FieldbookStore

/// A problem found (问题), tracked until it is closed off.
public struct Finding: EntityModel, Hashable {
    public static let entityName = "finding"

    /// The aspects findings are grouped by in a rectification report.
    public enum Aspect: String, Codable, Sendable, CaseIterable {
        case policyImplementation = "policy_implementation"
        case misconductNearPeople = "misconduct_near_people"
        case partyOrganisation = "party_organisation"
        case earlierRectification = "earlier_rectification"
    }

    public var id: String
    public var round: String?
    public var visit: String?
    public var site: String?
    public var aspect: Aspect?
    public var category: String?
    public var title: String
    public var description: String?
    public var status: RectificationStatus
    /// How many times the finding was reopened (a counter).
    public var reopenCount: Int
    public var deadline: CalendarDate?
    public var responsibleLeader: String?
    public var responsibleUnit: String?
    public var responsiblePerson: String?
    /// 现阶段成效
    public var results: String?
    /// 下一步举措
    public var nextSteps: String?
    public var rectifiedOn: CalendarDate?
    /// A long-term mechanism (长效机制) that never "closes".
    public var longTerm: Bool

    public init(
        id: String = "", round: String? = nil, visit: String? = nil, site: String? = nil, aspect: Aspect? = nil,
        category: String? = nil, title: String, description: String? = nil, status: RectificationStatus = .notStarted,
        reopenCount: Int = 0, deadline: CalendarDate? = nil, responsibleLeader: String? = nil,
        responsibleUnit: String? = nil, responsiblePerson: String? = nil, results: String? = nil,
        nextSteps: String? = nil, rectifiedOn: CalendarDate? = nil, longTerm: Bool = false
    ) {
        self.id = id
        self.round = round
        self.visit = visit
        self.site = site
        self.aspect = aspect
        self.category = category
        self.title = title
        self.description = description
        self.status = status
        self.reopenCount = reopenCount
        self.deadline = deadline
        self.responsibleLeader = responsibleLeader
        self.responsibleUnit = responsibleUnit
        self.responsiblePerson = responsiblePerson
        self.results = results
        self.nextSteps = nextSteps
        self.rectifiedOn = rectifiedOn
        self.longTerm = longTerm
    }

    enum CodingKeys: String, CodingKey {
        case id, round, visit, site, aspect, category, title, description, status
        case reopenCount = "reopen_count"
        case deadline
        case responsibleLeader = "responsible_leader"
        case responsibleUnit = "responsible_unit"
        case responsiblePerson = "responsible_person"
        case results
        case nextSteps = "next_steps"
        case rectifiedOn = "rectified_on"
        case longTerm = "long_term"
    }
}
