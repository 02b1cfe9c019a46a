public import FieldbookStore

/// A place inspectors visit (场所): the `site` entity of the inspection schema.
public struct Site: EntityModel, Hashable {
    /// The entity's name in the inspection schema.
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

    /// The record id; empty until the record is inserted.
    public var id: String
    /// The site's name (名称).
    public var name: String
    /// What kind of site it is (类别).
    public var kind: Kind
    /// The town or subdistrict (镇/街道) it is in.
    public var town: String?
    /// The village or community (村/社区) it is in.
    public var village: String?
    /// Who runs it (运营方).
    public var `operator`: Operator?
    /// Its star rating (星级), as last observed (``observedOn``).
    public var starRating: Int?
    /// How many beds it has (床位), as last observed (``observedOn``).
    public var bedsTotal: Int?
    /// How many of its beds are nursing beds (护理床位), as last observed (``observedOn``).
    public var nursingBeds: Int?
    /// Whether it meets the six-haves (六有), as last observed (``observedOn``).
    public var meetsSixHaves: Bool?
    /// The date the observed facts (beds, stars, six-haves) were seen.
    public var observedOn: CalendarDate?
    /// How many illegal graves (违建墓) were found there: a counter, so concurrent finds add up.
    public var illegalGravesFound: Int
    /// Tags (标签); concurrent adds and removes merge member by member.
    public var tags: Set<String>

    /// A site called `name`; leave `id` empty for the store to give one on insert.
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
