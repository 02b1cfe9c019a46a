public import FieldbookCore
public import FieldbookStore

/// A problem found (问题), tracked until it is closed off.
public struct Finding: EntityModel, Hashable {
    /// The entity's name in the inspection schema.
    public static let entityName = "finding"

    /// The aspects findings are grouped by in a rectification report.
    public enum Aspect: String, Codable, Sendable, CaseIterable {
        case policyImplementation = "policy_implementation"
        case misconductNearPeople = "misconduct_near_people"
        case partyOrganisation = "party_organisation"
        case earlierRectification = "earlier_rectification"
    }

    /// The record id; empty until the record is inserted.
    public var id: String
    /// The id of the ``InspectionRound`` that found it, if any.
    public var round: String?
    /// The id of the ``Visit`` that found it, if any.
    public var visit: String?
    /// The id of the ``Site`` it concerns, if any.
    public var site: String?
    /// The aspect (方面) it is grouped under in a rectification report.
    public var aspect: Aspect?
    /// A free-text category (类别).
    public var category: String?
    /// What the problem is (问题), in one line.
    public var title: String
    /// The problem in detail (描述); concurrent different edits are a conflict a person settles.
    public var description: String?
    /// Where its rectification stands (状态). Concurrent changes keep the furthest status, but a reopen
    /// (a higher ``reopenCount``) wins.
    public var status: RectificationStatus
    /// How many times the finding was reopened (a counter).
    public var reopenCount: Int
    /// The rectification deadline (整改期限).
    public var deadline: CalendarDate?
    /// The leader answerable for the rectification (责任领导).
    public var responsibleLeader: String?
    /// The unit answerable for the rectification (责任单位).
    public var responsibleUnit: String?
    /// The person answerable for the rectification (责任人).
    public var responsiblePerson: String?
    /// 现阶段成效
    public var results: String?
    /// 下一步举措
    public var nextSteps: String?
    /// The date the rectification was completed (整改完成).
    public var rectifiedOn: CalendarDate?
    /// A long-term mechanism (长效机制) that never "closes".
    public var longTerm: Bool
    /// Photos and documents that prove the rectification (整改佐证); concurrent additions all stay.
    public var evidence: Set<Attachment>

    /// A finding titled `title`; leave `id` empty for the store to give one on insert.
    public init(
        id: String = "", round: String? = nil, visit: String? = nil, site: String? = nil, aspect: Aspect? = nil,
        category: String? = nil, title: String, description: String? = nil, status: RectificationStatus = .notStarted,
        reopenCount: Int = 0, deadline: CalendarDate? = nil, responsibleLeader: String? = nil,
        responsibleUnit: String? = nil, responsiblePerson: String? = nil, results: String? = nil,
        nextSteps: String? = nil, rectifiedOn: CalendarDate? = nil, longTerm: Bool = false,
        evidence: Set<Attachment> = []
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
        self.evidence = evidence
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
        case evidence
    }
}
