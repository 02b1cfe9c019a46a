public import FieldbookCore
public import FieldbookStore

/// A site visit (督查): who went where, when, and what they found.
public struct Visit: EntityModel, Hashable {
    /// The entity's name in the inspection schema.
    public static let entityName = "visit"

    /// The record id; empty until the record is inserted.
    public var id: String
    /// The id of the ``Site`` visited.
    public var site: String
    /// The id of the ``InspectionRound`` the visit belongs to, if any.
    public var round: String?
    /// The day of the visit (日期).
    public var visitedOn: CalendarDate
    /// Who went (人员); concurrent adds and removes merge member by member.
    public var inspectors: Set<String>
    /// What was seen (情况); concurrent different edits are a conflict a person settles.
    public var summary: String?
    /// How many problems were found (发现问题): a counter, so concurrent counts add up.
    public var problemsFound: Int
    /// The penalty charged (违约金), in yuan.
    public var penaltyYuan: Double?
    /// The money recovered (追回), in yuan.
    public var recoveredYuan: Double?
    /// Photos taken on the visit (现场照片); concurrent additions all stay.
    public var photos: Set<Attachment>

    /// A visit to the site with id `site` on `visitedOn`; leave `id` empty for the store to give one on insert.
    public init(
        id: String = "", site: String, round: String? = nil, visitedOn: CalendarDate, inspectors: Set<String> = [],
        summary: String? = nil, problemsFound: Int = 0, penaltyYuan: Double? = nil, recoveredYuan: Double? = nil,
        photos: Set<Attachment> = []
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
        self.photos = photos
    }

    enum CodingKeys: String, CodingKey {
        case id, site, round
        case visitedOn = "visited_on"
        case inspectors, summary
        case problemsFound = "problems_found"
        case penaltyYuan = "penalty_yuan"
        case recoveredYuan = "recovered_yuan"
        case photos
    }
}
