public import FieldbookStore

/// An inspection round (巡察): a team inspects a unit for a period, then gives feedback.
public struct InspectionRound: EntityModel, Hashable {
    public static let entityName = "inspection_round"

    public var id: String
    public var title: String
    /// The inspection team, e.g. 区委第一巡察组.
    public var team: String
    /// The unit inspected, e.g. 区民政局.
    public var unit: String
    public var startedOn: CalendarDate?
    public var endedOn: CalendarDate?
    public var feedbackOn: CalendarDate?

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
