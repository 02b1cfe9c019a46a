public import FieldbookStore

/// An inspection round (巡察): a team inspects a unit for a period, then gives feedback.
public struct InspectionRound: EntityModel, Hashable {
    /// The entity's name in the inspection schema.
    public static let entityName = "inspection_round"

    /// The record id; empty until the record is inserted.
    public var id: String
    /// The round's title (标题).
    public var title: String
    /// The inspection team, e.g. 区委第一巡察组.
    public var team: String
    /// The unit inspected, e.g. 区民政局.
    public var unit: String
    /// The day the round began (开始).
    public var startedOn: CalendarDate?
    /// The day the round ended (结束).
    public var endedOn: CalendarDate?
    /// The day the team gave the unit its feedback (反馈).
    public var feedbackOn: CalendarDate?

    /// A round of `team` inspecting `unit`; leave `id` empty for the store to give one on insert.
    public init(
        id: String = "", title: String, team: String, unit: String, startedOn: CalendarDate? = nil,
        endedOn: CalendarDate? = nil, feedbackOn: CalendarDate? = nil
    ) {
        self.id = id
        self.title = title
        self.team = team
        self.unit = unit
        self.startedOn = startedOn
        self.endedOn = endedOn
        self.feedbackOn = feedbackOn
    }

    enum CodingKeys: String, CodingKey {
        case id, title, team, unit
        case startedOn = "started_on"
        case endedOn = "ended_on"
        case feedbackOn = "feedback_on"
    }
}
