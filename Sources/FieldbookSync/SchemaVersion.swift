public import FieldbookCore
import FieldbookJSON

/// A schema's name and version, as every request names them.
public struct SchemaVersion: Sendable, Hashable, CustomStringConvertible {
    /// The schema's name, e.g. `inspection`.
    public var name: String
    /// The schema's version.
    public var version: Int

    /// The schema called `name` at `version`.
    public init(name: String, version: Int) {
        self.name = name
        self.version = version
    }

    /// The name and version of `schema`.
    public init(_ schema: Schema) { self.init(name: schema.name, version: schema.version) }

    /// The text people read, e.g. `inspection version 1`.
    public var description: String { "\(name) version \(version)" }

    /// The schema a request's text names (its `schema` member), read without checking the rest;
    /// nil if it names none.
    public static func requested(in bytes: [UInt8]) -> SchemaVersion? {
        guard let tape = try? JSONTape(wire: bytes), tape.kind(0) == .object, let s = tape.member(0, "schema"),
            let n = tape.member(s, "name"), let name = tape.string(n), let v = tape.member(s, "version"),
            let version = tape.int(v), version > 0, version <= Int64(Int32.max)
        else { return nil }
        return SchemaVersion(name: name, version: Int(version))
    }

    var json: JSON { .object([("name", .string(name)), ("version", .int(Int64(version)))]) }
}

extension SchemaVersion {
    func encode(to out: inout [UInt8]) {
        out.append(contentsOf: #"{"name":"#.utf8)
        JSON.writeString(name, to: &out)
        out.append(contentsOf: #","version":"#.utf8)
        JSON.writeInt(Int64(version), to: &out)
        out.append(UInt8(ascii: "}"))
    }
}
