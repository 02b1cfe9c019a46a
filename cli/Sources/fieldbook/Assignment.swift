import FieldbookCore

extension FieldAssignment {
    /// Reads a `field=value` or `field:=JSON` argument (see ``FieldAssignment``), with the CLI's exit codes.
    static func parse(_ argument: String, entity: Entity) throws(CLIError) -> FieldAssignment {
        do {
            return try FieldAssignment(parsing: argument, entity: entity)
        } catch {
            throw CLIError(error)
        }
    }

    /// Reads the text after `field=` as a value of `field`, with the CLI's exit codes.
    static func value(_ text: String, field: Field, entity: String) throws(CLIError) -> Value {
        do {
            return try FieldAssignment.value(text, for: field, entity: entity)
        } catch {
            throw CLIError(error)
        }
    }
}

extension CLIError {
    /// A refused argument: `usage` when it is not `field=value`, `validation` when the value does not fit.
    init(_ problem: FieldAssignment.Problem) {
        switch problem.kind {
        case .syntax: self.init(.usage, problem.message)
        case .value: self.init(.validation, problem.message)
        }
    }
}

extension Array where Element == String {
    /// The `field=value` arguments as a dictionary for the store.
    func assignments(_ entity: Entity) throws -> [String: Value] {
        var values: [String: Value] = [:]
        for argument in self {
            let assignment = try FieldAssignment.parse(argument, entity: entity)
            values[assignment.field] = assignment.value
        }
        return values
    }
}
