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
