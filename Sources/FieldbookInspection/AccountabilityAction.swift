public import FieldbookStore

/// An accountability action (问责) taken against a cadre over a finding.
public struct AccountabilityAction: EntityModel, Hashable {
    public static let entityName = "accountability_action"

    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// 诫勉谈话
        case admonishment
        /// 批评教育
        case criticism
        /// 提醒谈话
        case reminder
    }

    public var id: String
    public var finding: String
    public var person: String
    public var kind: Kind
    public var decidedOn: CalendarDate?

    public init(id: String = "", finding: String, person: String, kind: Kind, decidedOn: CalendarDate? = nil) {
        self.id = id
        self.finding = finding
        self.person = person
        self.kind = kind
        self.decidedOn = decidedOn
    }

    enum CodingKeys: String, CodingKey {
        case id, finding, person, kind
        case decidedOn = "decided_on"
    }
}
