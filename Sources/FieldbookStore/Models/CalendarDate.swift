import FieldbookCore
import Foundation

/// A calendar date, written `YYYY-MM-DD`: the type of `date` fields in typed models.
public struct CalendarDate: Codable, Hashable, Comparable, Sendable, LosslessStringConvertible {
    /// The year, e.g. 2021.
    public let year: Int
    /// The month, 1 to 12.
    public let month: Int
    /// The day of the month, 1 to 31.
    public let day: Int

    /// Reads `YYYY-MM-DD` (e.g. `2021-11-16`); nil for anything else or a day that does not exist.
    public init?(_ description: String) {
        guard CalendarText.isValidDate(description) else { return nil }
        let parts = description.split(separator: "-").compactMap { Int($0) }
        (year, month, day) = (parts[0], parts[1], parts[2])
    }

    /// The date; nil for a day that does not exist (e.g. 2022-02-30).
    public init?(year: Int, month: Int, day: Int) {
        self.init(String(format: "%04d-%02d-%02d", year, month, day))
    }

    /// `YYYY-MM-DD`, as the store keeps dates.
    public var description: String { String(format: "%04d-%02d-%02d", year, month, day) }

    /// Earlier dates sort first.
    public static func < (lhs: CalendarDate, rhs: CalendarDate) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }

    /// Decodes the `YYYY-MM-DD` text a `date` field holds.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let date = CalendarDate(text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not a YYYY-MM-DD date"))
        }
        self = date
    }

    /// Encodes as `YYYY-MM-DD` text.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
