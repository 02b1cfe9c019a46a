import FieldbookCore
import FieldbookJSON

/// One `field=value` or `field:=JSON` argument, read by the field's schema type: the `fieldbook`
/// command line's way to write a value.
///
/// `field=value` takes the text as the field's type says: numbers for integer and real
/// fields, `true`/`false` (or `yes`/`no`, `是`/`否`) for booleans, comma-separated members
/// for sets, an empty value for null. `field:=JSON` gives a JSON value as it is.
///
/// The argument is split at its first `=`, so a value may hold `=` and `:=`.
/// Field names are ASCII, so the split is made on the argument's bytes: a value that
/// begins with a combining mark is still the field's value.
struct FieldAssignment: Sendable, Hashable {
    /// The field's name, as the entity declares it.
    var field: String
    /// The value read for it (``Value/null`` for an empty `field=`).
    var value: Value

    /// An assignment of `value` to the field called `field`, as given (not checked against a schema).
    init(field: String, value: Value) {
        self.field = field
        self.value = value
    }

    /// Why an argument was refused. The message names the entity and field, never the value.
    struct Problem: Error, Sendable, Hashable, CustomStringConvertible {
        /// What was refused: the argument's form or its value.
        enum Kind: Sendable, Hashable {
            /// Not `field=value`: no `=`, no field name, a field the entity does not have, or JSON that does not parse.
            case syntax
            /// A value that does not fit the field's type.
            case value
        }

        /// Whether the argument's form or its value was refused.
        var kind: Kind
        /// A sentence for people saying what is wrong.
        var message: String

        /// A problem of `kind`, described by `message`.
        init(_ kind: Kind, _ message: String) {
            self.kind = kind
            self.message = message
        }

        /// The text people read: ``message``.
        var description: String { message }
    }

    /// Reads `field=value` or `field:=JSON` for a field of `entity`.
    init(parsing argument: String, entity: Entity) throws(Problem) {
        let utf8 = argument.utf8
        guard let equals = utf8.firstIndex(of: UInt8(ascii: "=")) else {
            throw Problem(.syntax, "'\(argument.prefix(40))' is not field=value (or field:=JSON)")
        }
        var nameEnd = equals
        let explicit = equals != utf8.startIndex && utf8[utf8.index(before: equals)] == UInt8(ascii: ":")
        if explicit { nameEnd = utf8.index(before: equals) }
        guard nameEnd != utf8.startIndex else {
            throw Problem(.syntax, "'\(argument.prefix(40))' is not field=value (or field:=JSON)")
        }
        let name = String(decoding: utf8[..<nameEnd], as: UTF8.self)
        guard let field = entity.field(name) else {
            throw Problem(
                .syntax,
                "\(entity.name) has no field '\(name)'; fields: \(entity.fields.map(\.name).joined(separator: ", "))")
        }
        let text = String(decoding: utf8[utf8.index(after: equals)...], as: UTF8.self)
        if explicit {
            let json: JSON
            do {
                json = try JSON(parsing: text)
            } catch {
                throw Problem(.syntax, "\(entity.name).\(name): the value after ':=' is not JSON (\(error))")
            }
            do {
                self.init(field: name, value: try Value(json: json, for: field.type))
            } catch {
                throw Problem(.value, "\(entity.name).\(name): \(error)")
            }
            return
        }
        self.init(field: name, value: try Self.value(text, for: field, entity: entity.name))
    }

    /// Reads the text of a `field=value` argument (the part after `=`) as a value of `field`.
    static func value(_ text: String, for field: Field, entity: String) throws(Problem) -> Value {
        if text.isEmpty { return .null }
        func bad(_ expected: String) -> Problem {
            Problem(.value, "\(entity).\(field.name) expects \(expected)")
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
        case .attachment, .attachments:
            // A reference names a file the device must hold: `fieldbook attach` stores it first.
            throw Problem(
                .value,
                "\(entity).\(field.name) holds files: add them with 'fieldbook attach \(entity) ID \(field.name) FILE…'"
            )
        case .textSet:
            return .set(
                text.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true)
                    .map { trimmingWhitespace(String(decoding: $0, as: UTF8.self)) }
                    .filter { !$0.isEmpty })
        case .date:
            guard CalendarText.isValidDate(text) else { throw bad(CalendarText.dateExpectation(for: text)) }
            return .text(text)
        case .enumeration(let values):
            guard values.contains(text) else { throw bad("one of: \(values.joined(separator: ", "))") }
            return .text(text)
        default:
            return .text(text)
        }
    }

    /// The text without the spaces (Unicode category Zs) and tabs at its ends.
    static func trimmingWhitespace(_ text: String) -> String {
        func isSpace(_ s: Unicode.Scalar) -> Bool { s == "\t" || s.properties.generalCategory == .spaceSeparator }
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }),
            let last = scalars.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(scalars[first...last])
    }
}
