// Shared by the fuzz targets (scripts/fuzz compiles one target with these and the sources of FieldbookJSON, FieldbookCore and FieldbookSync).

/// Stops the run when a property fails: libFuzzer reports it as a crash and saves the input.
func require(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID,
    line: UInt = #line
) {
    if !condition() { fatalError(message(), file: file, line: line) }
}

/// The fuzzer's input as bytes.
func input(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

/// The bundled inspection schema, as the server and the devices load it.
let inspection: Schema = {
    do { return try Schema(json: BundledSchemas.inspection) } catch {
        fatalError("the bundled schema does not load: \(error)")
    }
}()

/// Reads a value with a JSON tape and back: the JSON tree and the tape reader agree, and
/// serializing a parsed document and parsing it again gives the same document.
func checkJSONRoundTrip(_ bytes: [UInt8]) {
    guard let json = try? JSON(parsing: bytes) else { return }
    var out: [UInt8] = []
    json.write(to: &out)
    require(String(decoding: out, as: UTF8.self) == json.serialized, "JSON.write and JSON.serialized differ")
    let again: JSON
    do { again = try JSON(parsing: out) } catch { fatalError("serialized JSON does not parse: \(error)") }
    require(again == json, "JSON changed in a serialize/parse round trip")
    var twice: [UInt8] = []
    again.write(to: &twice)
    require(twice == out, "JSON is not serialized to the same bytes again")
}
