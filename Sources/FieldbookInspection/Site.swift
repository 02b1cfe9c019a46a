public import FieldbookStore

/// A place inspectors visit (场所): the `site` entity of the inspection schema.
public struct Site: EntityModel, Hashable {
    public static let entityName = "site"

    /// The kinds of site inspectors visit (docs/domain.md).
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case elderlyHome = "elderly_home"
        case happinessHome = "happiness_home"
        case elderCanteen = "elder_canteen"
        case socialWorkStation = "social_work_station"
        case cemetery
        case socialOrganisation = "social_organisation"
        case household
    }

    /// Who runs the site.
    public enum Operator: String, Codable, Sendable, CaseIterable {
        case `public`
        case publicBuiltPrivateRun = "public_built_private_run"
        case `private`
        case villageCommittee = "village_committee"
        case thirdParty = "third_party"
    }

    public var id: String
    public var name: String
    public var kind: Kind
    public var town: String?
    public var village: String?
    public var `operator`: Operator?
    public var starRating: Int?
    public var bedsTotal: Int?
    public var nursingBeds: Int?
    public var meetsSixHaves: Bool?
    /// The date the observed facts (beds, stars, six-haves) were seen.
    public var observedOn: CalendarDate?
    public var illegalGravesFound: Int
    public var tags: Set<String>

    public init(
        id: String = "", name: String, kind: Kind, town: String? = nil, village: String? = nil,
        operator: Operator? = nil, starRating: Int? = nil, bedsTotal: Int? = nil, nursingBeds: Int? = nil,
        meetsSixHaves: Bool? = nil, observedOn: CalendarDate? = nil, illegalGravesFound: Int = 0, tags: Set<String> = []
    ) {
        self.id = id
        self.name = name
        self.kind = kind
        self.town = town
        self.village = village
        self.operator = `operator`
        self.starRating = starRating
        self.bedsTotal = bedsTotal
        self.nursingBeds = nursingBeds
        self.meetsSixHaves = meetsSixHaves
        self.observedOn = observedOn
        self.illegalGravesFound = illegalGravesFound
        self.tags = tags
    }

    enum CodingKeys: String, CodingKey {
        case id, name, kind, town, village, `operator`
        case starRating = "star_rating"
        case bedsTotal = "beds_total"
        case nursingBeds = "nursing_beds"
        case meetsSixHaves = "meets_six_haves"
        case observedOn = "observed_on"
        case illegalGravesFound = "illegal_graves_found"
        case tags
    }
}
