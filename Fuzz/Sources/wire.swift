// fuzz-wire: the bytes a server reads as a request body and a device reads as a response body.
//
// For each input, as every decoder the server and the device run on a body:
// - PushRequest and PullRequest (server), checked against the bundled inspection schema;
//   a push's changes are then merged into record states as the server stores them;
// - PushResponse, PullResponse and WireError bodies (device);
// - the JSON tree reader.
// Properties: nothing crashes or hangs; whatever decodes re-encodes to bytes that decode
// to the same message and to the same bytes again, and `encode(to:)` writes the bytes of
// `json.serialized`; merge states survive their stored form byte for byte.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = input(data, size)
    checkJSONRoundTrip(bytes)
    if let push = try? PushRequest(utf8: bytes, schema: inspection, maxChanges: 10_000) {
        var out: [UInt8] = []
        push.encode(to: &out)
        require(String(decoding: out, as: UTF8.self) == push.json.serialized, "PushRequest.encode differs from json")
        do {
            let again = try PushRequest(utf8: out, schema: inspection)
            require(again == push, "PushRequest changed in a round trip")
            require(encoded(again) == out, "PushRequest is not written the same bytes again")
        } catch { fatalError("an encoded PushRequest does not decode: \(error)") }
        merge(push.changes)
    }
    if let pull = try? PullRequest(utf8: bytes, schema: inspection) {
        var out: [UInt8] = []
        pull.encode(to: &out)
        do {
            let again = try PullRequest(utf8: out, schema: inspection)
            require(again == pull, "PullRequest changed in a round trip")
            require(encoded(again) == out, "PullRequest is not written the same bytes again")
        } catch { fatalError("an encoded PullRequest does not decode: \(error)") }
    }
    if let response = try? PushResponse(utf8: bytes) {
        var out: [UInt8] = []
        response.encode(to: &out)
        require(
            String(decoding: out, as: UTF8.self) == response.json.serialized, "PushResponse.encode differs from json")
        do {
            let again = try PushResponse(utf8: out)
            require(again == response, "PushResponse changed in a round trip")
            require(encoded(again) == out, "PushResponse is not written the same bytes again")
        } catch { fatalError("an encoded PushResponse does not decode: \(error)") }
    }
    if let response = try? PullResponse(utf8: bytes, schema: inspection) {
        var out: [UInt8] = []
        response.encode(to: &out)
        require(
            String(decoding: out, as: UTF8.self) == response.json.serialized, "PullResponse.encode differs from json")
        do {
            let again = try PullResponse(utf8: out, schema: inspection)
            require(again == response, "PullResponse changed in a round trip")
            require(encoded(again) == out, "PullResponse is not written the same bytes again")
        } catch { fatalError("an encoded PullResponse does not decode: \(error)") }
        merge(response.changes)
    }
    if let json = try? JSON(parsing: bytes), let error = WireError(json: json) {
        require(WireError(json: error.json) == error, "WireError changed in a round trip")
    }
    return 0
}

/// Merges changes into their records' states as a server or device does, and checks that
/// each state reads back from its stored form unchanged and lists its conflicts.
func merge(_ changes: [Change]) {
    var states: [String: (Entity, RecordState)] = [:]
    for change in changes {
        guard let entity = inspection.entity(change.entity) else {
            fatalError("a decoded change names an unknown entity")
        }
        let key = change.entity + "/" + change.recordID
        var state = states[key]?.1 ?? RecordState()
        state.apply(change, entity: entity)
        states[key] = (entity, state)
    }
    for (key, (entity, state)) in states {
        let stored = state.encoded
        do {
            let again = try RecordState(encoded: stored, entity: entity)
            require(again == state, "a merge state changed in its stored form")
            require(again.encoded == stored, "a merge state is not stored as the same bytes again")
        } catch { fatalError("a stored merge state does not read back: \(error)") }
        _ = state.exists(onDelete: entity.onDelete)
        _ = state.conflicts(entity: entity, recordID: String(key.split(separator: "/").last!))
    }
}

func encoded(_ message: PushRequest) -> [UInt8] {
    var out: [UInt8] = []
    message.encode(to: &out)
    return out
}
func encoded(_ message: PullRequest) -> [UInt8] {
    var out: [UInt8] = []
    message.encode(to: &out)
    return out
}
func encoded(_ message: PushResponse) -> [UInt8] {
    var out: [UInt8] = []
    message.encode(to: &out)
    return out
}
func encoded(_ message: PullResponse) -> [UInt8] {
    var out: [UInt8] = []
    message.encode(to: &out)
    return out
}
