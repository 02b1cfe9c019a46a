// fuzz-assignment: the `fieldbook` CLI's `field=value` and `field:=JSON` arguments.
//
// The first byte picks an entity of the bundled inspection schema and the second a field;
// the rest is the argument's text (as the CLI gets it: decoded from UTF-8, invalid bytes
// repaired). Properties: nothing crashes or hangs; the argument as given either parses
// or is refused with a Problem; `name=TEXT` for a field the entity has is never refused as
// syntax, whatever TEXT is, and a text field gets TEXT exactly; `name:=JSON` of a parsed
// value gives that value back; a parsed value is either accepted or refused by the field's
// own check (`Field.normalize`), never crashes it.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAssignment(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = input(data, size)
    guard bytes.count >= 2 else { return 0 }
    let entity = inspection.entities[Int(bytes[0]) % inspection.entities.count]
    let field = entity.fields[Int(bytes[1]) % entity.fields.count]
    let text = String(decoding: bytes[2...], as: UTF8.self)

    // The text as a whole argument.
    if let assignment = try? FieldAssignment(parsing: text, entity: entity) {
        require(entity.field(assignment.field) != nil, "parsed a field the entity does not have")
        _ = try? entity.field(assignment.field)!.normalize(assignment.value)
    }

    // The text as the value of a field the entity has.
    do {
        let assignment = try FieldAssignment(parsing: field.name + "=" + text, entity: entity)
        require(assignment.field == field.name, "name=value parsed to another field")
        if field.type == .text {
            require(assignment.value == (text.isEmpty ? .null : .text(text)), "a text value changed")
            if case .text(let parsed) = assignment.value {
                require(Array(parsed.utf8) == Array(text.utf8), "a text value's bytes changed")
            }
        }
        if let normalized = try? field.normalize(assignment.value) {
            // What the CLI stores, written back as JSON, reads as the same value.
            let json = normalized.json.serialized
            do {
                let again = try FieldAssignment(parsing: field.name + ":=" + json, entity: entity)
                require(again.value == normalized, "name:=JSON did not give the value back")
            } catch { fatalError("name:=\(json) is refused: \(error)") }
        }
    } catch {
        require(error.kind == .value, "name=TEXT refused as syntax: \(error)")
    }

    // The text as JSON for a field the entity has.
    do {
        _ = try FieldAssignment(parsing: field.name + ":=" + text, entity: entity)
    } catch {
        if error.kind == .syntax {
            require((try? JSON(parsing: text)) == nil, "valid JSON refused as syntax: \(error)")
        }
    }
    return 0
}
