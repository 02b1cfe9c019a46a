// fuzz-schema: schema files, as `Schema(json:)` loads them (a device's bundled schema, a
// server's `--schema` file, the schema a server sends on `GET /v1/schema`).
//
// Properties: nothing crashes or hangs; a schema that loads is written by `Schema.json`
// in a canonical form that loads to the same schema and writes the same bytes again; a
// schema has no differences from itself; comparing it with the bundled schema works; each
// field's default is a value its own check accepts unchanged.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSchema(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = input(data, size)
    checkJSONRoundTrip(bytes)
    guard let schema = try? Schema(json: bytes) else { return 0 }
    let canonical = schema.json.serialized
    let again: Schema
    do { again = try Schema(json: canonical) } catch {
        fatalError("a loaded schema's canonical form does not load: \(error)")
    }
    require(again == schema, "a schema changed in its canonical form")
    require(again.json.serialized == canonical, "a schema's canonical form is not stable")
    require(schema.differences(from: schema).isEmpty, "a schema differs from itself")
    _ = schema.differences(from: inspection)
    _ = inspection.differences(from: schema)
    for entity in schema.entities {
        require(schema.entity(entity.name) != nil, "an entity is not found by its name")
        for field in entity.fields {
            require(entity.field(field.name) != nil, "a field is not found by its name")
            if let value = field.defaultValue {
                do {
                    let normalized = try field.normalize(value)
                    require(normalized == value, "a default is not in normal form")
                } catch { fatalError("a field's own check refuses its default: \(error)") }
            }
        }
    }
    return 0
}
