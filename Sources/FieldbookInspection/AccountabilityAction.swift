public import FieldbookStore

/// An accountability action (问责) taken against a cadre over a finding.
public struct AccountabilityAction: EntityModel, Hashable {
    /// The entity's name in the inspection schema.
    public static let entityName = "accountability_action"

    /// How the cadre is held to account (方式).
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// 诫勉谈话
        case admonishment
        /// 批评教育
        case criticism
        /// 提醒谈话
        case reminder
    }

    /// The record id; empty until the record is inserted.
    public var id: String
    /// The id of the ``Finding`` the action is taken over.
    public var finding: String
    /// The cadre held to account (对象).
    public var person: String
    /// How the cadre is held to account.
    public var kind: Kind
    /// The date the action was decided on (日期).
    public var decidedOn: CalendarDate?

    /// An action over the finding with id `finding`; leave `id` empty for the store to give one on insert.
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
