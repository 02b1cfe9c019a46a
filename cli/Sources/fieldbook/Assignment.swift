import FieldbookCore
import FieldbookStore
import Foundation

/// One `field=value` or `field:=JSON` argument, read by the field's schema type.
///
/// `field=value` takes the text as the field's type says: numbers for integer and
/// real fields, `true`/`false` (or `yes`/`no`, `是`/`否`) for booleans, comma-separated
/// members for sets, an empty value for null. `field:=JSON` gives a JSON value as it is.
struct Assignment {
    var field: String
    var value: Value

    static func parse(_ argument: String, entity: Entity) throws -> Assignment {
        let explicit = argument.range(of: ":=")
        let plain = argument.firstIndex(of: "=")
        guard let split = explicit?.lowerBound ?? plain, split != argument.startIndex else {
            throw CLIError(.usage, "'\(argument.prefix(40))' is not field=value (or field:=JSON)")
        }
        let name = String(argument[..<split])
        guard let field = entity.field(name) else {
            throw CLIError(
                .usage, "\(entity.name) has no field '\(name)'; fields: \(entity.fields.map(\.name).joined(separator: ", "))")
        }
        if let explicit, explicit.lowerBound == split {
            let text = String(argument[explicit.upperBound...])
            do {
                return Assignment(field: name, value: try Value(json: JSON(parsing: text), for: field.type))
            } catch let error as JSONParseError {
                throw CLIError(.usage, "\(entity.name).\(name): the value after ':=' is not JSON (\(error))")
            } catch {
                throw CLIError(.validation, "\(entity.name).\(name): \(error)")
            }
        }
        let text = String(argument[argument.index(after: split)...])
        return Assignment(field: name, value: try value(text, field: field, entity: entity.name))
    }

    static func value(_ text: String, field: Field, entity: String) throws -> Value {
        if text.isEmpty { return .null }
        func bad(_ expected: String) -> CLIError {
            CLIError(.validation, "\(entity).\(field.name) expects \(expected)")
        }
        switch field.type {
        case .integer:
            guard let i = Int64(text) else { throw bad("a whole number, e.g. 120") }
            return .integer(i)
        case .real:
            guard let d = Double(text), d.isFinite else { throw bad("a number, e.g. 4000 or 25131.5") }
            return .real(d)
        case .boolean:
            switch text.lowercased() {
            case "true", "yes", "y", "1", "是": return .boolean(true)
            case "false", "no", "n", "0", "否": return .boolean(false)
            default: throw bad("true or false")
            }
        case .textSet:
            return .set(text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        case .date:
            guard CalendarText.isValidDate(text) else { throw bad("a date written YYYY-MM-DD, e.g. 2022-06-30") }
            return .text(text)
        case .enumeration(let values):
            guard values.contains(text) else { throw bad("one of: \(values.joined(separator: ", "))") }
            return .text(text)
        default:
            return .text(text)
        }
    }
}

extension Array where Element == String {
    /// The `field=value` arguments as a dictionary for the store.
    func assignments(_ entity: Entity) throws -> [String: Value] {
        var values: [String: Value] = [:]
        for argument in self {
            let assignment = try Assignment.parse(argument, entity: entity)
            values[assignment.field] = assignment.value
        }
        return values
    }
}
