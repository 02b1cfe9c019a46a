public import FieldbookStore

/// A site visit (督查): who went where, when, and what they found.
public struct Visit: EntityModel, Hashable {
    public static let entityName = "visit"

    public var id: String
    /// The id of the ``Site`` visited.
    public var site: String
    /// The id of the ``InspectionRound`` the visit belongs to, if any.
    public var round: String?
    public var visitedOn: CalendarDate
    public var inspectors: Set<String>
    public var summary: String?
    public var problemsFound: Int
    public var penaltyYuan: Double?
    public var recoveredYuan: Double?

    public init(
        id: String = "", site: String, round: String? = nil, visitedOn: CalendarDate, inspectors: Set<String> = [],
        summary: String? = nil, problemsFound: Int = 0, penaltyYuan: Double? = nil, recoveredYuan: Double? = nil
    ) {
        self.id = id
        self.site = site
        self.round = round
        self.visitedOn = visitedOn
        self.inspectors = inspectors
        self.summary = summary
        self.problemsFound = problemsFound
        self.penaltyYuan = penaltyYuan
        self.recoveredYuan = recoveredYuan
    }

    enum CodingKeys: String, CodingKey {
        case id, site, round
        case visitedOn = "visited_on"
        case inspectors, summary
        case problemsFound = "problems_found"
        case penaltyYuan = "penalty_yuan"
        case recoveredYuan = "recovered_yuan"
    }
}
