import FieldbookJSON

/// Everything wrong with a schema file, each mistake with where it is.
///
/// ```
/// finding.status: policy 'max' needs an order
/// visit.site: references unknown entity 'sites'
/// ```
public struct SchemaError: Error, CustomStringConvertible, Sendable, Equatable {
    /// One mistake: a dotted path (`entity.field`, or a top-level key) and what is wrong there.
    public struct Issue: Sendable, Equatable, CustomStringConvertible {
        /// The dotted path, e.g. `finding.status`; empty for a mistake at the file's top level.
        public var path: String
        /// What is wrong there.
        public var message: String
        /// `path: message`, or the message alone when the path is empty.
        public var description: String { path.isEmpty ? message : "\(path): \(message)" }
    }

    /// All the mistakes found, in file order.
    public var issues: [Issue]

    /// The text people read: how many problems, then each on its own indented line.
    public var description: String {
        "invalid schema (\(issues.count) \(issues.count == 1 ? "problem" : "problems")):\n"
            + issues.map { "  " + $0.description }.joined(separator: "\n")
    }
}

extension Schema {
    /// Loads and validates a schema from the bytes of a schema file.
    ///
    /// - Throws: ``SchemaError`` listing every mistake, or ``JSONParseError`` if the file is not JSON.
    public init(json bytes: some Collection<UInt8>) throws {
        let document = try JSON(parsing: bytes)
        var loader = SchemaLoader()
        guard let schema = loader.load(document), loader.issues.isEmpty else {
            throw SchemaError(issues: loader.issues)
        }
        self = schema
    }

    /// Loads and validates a schema from the text of a schema file.
    public init(json text: String) throws {
        try self.init(json: Array(text.utf8))
    }
}

/// Names of entities and fields: lower-case ASCII identifiers, so they are safe as SQL names.
func isValidName(_ name: String) -> Bool {
    let bytes = Array(name.utf8)
    guard let first = bytes.first, bytes.count <= 63, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first)
    else { return false }
    return bytes.allSatisfy {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
            || $0 == UInt8(ascii: "_")
    }
}

struct SchemaLoader {
    var issues: [SchemaError.Issue] = []

    mutating func issue(_ path: String, _ message: String) {
        issues.append(.init(path: path, message: message))
    }

    /// Reads an object, reporting keys outside `allowed`.
    mutating func object(_ json: JSON, at path: String, allowed: Set<String>) -> [String: JSON]? {
        guard case .object(let pairs) = json else {
            issue(path, "expected an object, found \(json.typeName)")
            return nil
        }
        var result: [String: JSON] = [:]
        for (key, value) in pairs {
            if allowed.contains(key) {
                result[key] = value
            } else {
                issue(path, "unknown key '\(key)' (allowed: \(allowed.sorted().joined(separator: ", ")))")
            }
        }
        return result
    }

    mutating func string(_ json: JSON?, at path: String, key: String) -> String? {
        guard let json else { return nil }
        guard case .string(let s) = json else {
            issue(path, "'\(key)' must be a string, found \(json.typeName)")
            return nil
        }
        return s
    }

    mutating func bool(_ json: JSON?, at path: String, key: String) -> Bool? {
        guard let json else { return nil }
        guard case .bool(let b) = json else {
            issue(path, "'\(key)' must be true or false, found \(json.typeName)")
            return nil
        }
        return b
    }

    mutating func stringList(_ json: JSON?, at path: String, key: String) -> [String]? {
        guard let json else { return nil }
        guard case .array(let items) = json else {
            issue(path, "'\(key)' must be a list of strings, found \(json.typeName)")
            return nil
        }
        var result: [String] = []
        for item in items {
            guard case .string(let s) = item else {
                issue(path, "'\(key)' must be a list of strings, found a \(item.typeName) in it")
                return nil
            }
            result.append(s)
        }
        return result
    }

    mutating func load(_ document: JSON) -> Schema? {
        guard
            let top = object(
                document, at: "", allowed: ["schema", "version", "description", "roles", "scopes", "entities"])
        else {
            return nil
        }
        let name = string(top["schema"], at: "", key: "schema")
        if top["schema"] == nil { issue("", "missing 'schema' (the schema's name)") }
        if let name, !isValidName(name) { issue("", "schema name '\(name)' must be a lower-case identifier") }
        var version: Int?
        switch top["version"] {
        case .int(let v)? where v >= 1 && v <= Int64(Int32.max): version = Int(v)
        case nil: issue("", "missing 'version' (a positive integer)")
        default: issue("", "'version' must be a positive integer")
        }
        _ = string(top["description"], at: "", key: "description")
        guard case .array(let entityList)? = top["entities"] else {
            issue("", top["entities"] == nil ? "missing 'entities'" : "'entities' must be a list")
            return nil
        }
        if entityList.isEmpty { issue("", "'entities' is empty") }

        // First pass: names, so references can be checked whatever the order.
        var entityNames = Set<String>()
        for (n, entityJSON) in entityList.enumerated() {
            if case .string(let entityName)? = entityJSON["name"], isValidName(entityName) {
                if !entityNames.insert(entityName).inserted { issue(entityName, "entity defined twice (#\(n + 1))") }
            }
        }
        let roles = loadRoles(top["roles"])
        var entities: [Entity] = []
        for (n, entityJSON) in entityList.enumerated() {
            if let entity = loadEntity(entityJSON, position: n, entityNames: entityNames, roles: roles) {
                entities.append(entity)
            }
        }
        let scopes = loadScopes(top["scopes"], entities: entities)
        checkFollows(entities)
        guard let name, let version else { return nil }
        return Schema(name: name, version: version, entities: entities, roles: roles, scopes: scopes)
    }

    mutating func loadEntity(_ json: JSON, position: Int, entityNames: Set<String>, roles: [Role]) -> Entity? {
        let fallbackPath = "entities[\(position)]"
        guard
            let e = object(
                json, at: (json["name"].flatMap { if case .string(let s) = $0 { s } else { nil } }) ?? fallbackPath,
                allowed: [
                    "name", "label", "description", "appendOnly", "onDelete", "access", "follows", "everyone",
                    "retired", "requires",
                    "fields",
                ])
        else { return nil }
        guard let name = string(e["name"], at: fallbackPath, key: "name") else {
            if e["name"] == nil { issue(fallbackPath, "missing 'name'") }
            return nil
        }
        guard isValidName(name) else {
            issue(fallbackPath, "entity name '\(name)' must be a lower-case identifier (a-z, 0-9, _), at most 63 long")
            return nil
        }
        guard !name.hasPrefix("sqlite_") else {
            issue(name, "names starting with 'sqlite_' are reserved by SQLite")
            return nil
        }
        let label = string(e["label"], at: name, key: "label")
        _ = string(e["description"], at: name, key: "description")
        let appendOnly = bool(e["appendOnly"], at: name, key: "appendOnly") ?? false
        var onDelete = DeletePolicy.conflict
        if let text = string(e["onDelete"], at: name, key: "onDelete") {
            if let policy = DeletePolicy(rawValue: text) {
                onDelete = policy
            } else {
                issue(name, "onDelete '\(text)' is not one of: conflict, delete-wins")
            }
        }
        guard case .array(let fieldList)? = e["fields"] else {
            issue(name, e["fields"] == nil ? "missing 'fields'" : "'fields' must be a list")
            return nil
        }
        if fieldList.isEmpty { issue(name, "'fields' is empty") }

        var fieldTypes: [String: FieldType] = [:]
        for fieldJSON in fieldList {
            if case .string(let fieldName)? = fieldJSON["name"], case .string(let typeName)? = fieldJSON["type"] {
                fieldTypes[fieldName] = Self.simpleType(typeName)
            }
        }
        var fields: [Field] = []
        var seen = Set<String>()
        for (n, fieldJSON) in fieldList.enumerated() {
            guard
                let field = loadField(
                    fieldJSON, entity: name, position: n, entityNames: entityNames, siblings: fieldTypes,
                    appendOnly: appendOnly)
            else { continue }
            if !seen.insert(field.name).inserted {
                issue("\(name).\(field.name)", "field defined twice")
                continue
            }
            fields.append(field)
        }
        let access = e["access"].flatMap { loadAccess($0, entity: name, fields: fields, roles: roles) }
        let requirements = loadRequirements(e["requires"], entity: name, fields: fields, declaredRoles: roles)
        let follows = stringList(e["follows"], at: name, key: "follows") ?? []
        for field in follows where fields.first(where: { $0.name == field })?.target == nil {
            issue("\(name).follows", "'\(field)' is not a reference field of \(name)")
        }
        let everyone = bool(e["everyone"], at: name, key: "everyone") ?? false
        if everyone && !follows.isEmpty { issue(name, "an entity every token sees follows nothing") }
        let retired = bool(e["retired"], at: name, key: "retired") ?? false
        var renamedFrom: [String: String] = [:]
        for field in fields {
            guard let old = field.renamedFrom, old != field.name else { continue }
            if fields.contains(where: { $0.name == old }) {
                issue("\(name).\(field.name)", "'renamedFrom' names '\(old)', which is still a field of \(name)")
            } else if let other = renamedFrom[old] {
                issue("\(name).\(field.name)", "'renamedFrom' names '\(old)', as \(name).\(other) does")
            }
            renamedFrom[old] = field.name
        }
        return Entity(
            name: name, label: label, appendOnly: appendOnly, onDelete: onDelete, fields: fields, access: access,
            follows: follows.filter { f in fields.contains { $0.name == f && $0.target != nil } }, everyone: everyone,
            retired: retired, requirements: requirements)
    }

    /// The type for a type name, with placeholder payloads: enough to check sibling references.
    static func simpleType(_ name: String) -> FieldType? {
        switch name {
        case "text": .text
        case "integer": .integer
        case "real": .real
        case "boolean": .boolean
        case "date": .date
        case "timestamp": .timestamp
        case "enum": .enumeration([])
        case "reference": .reference("")
        case "set": .textSet
        case "attachment": .attachment
        case "attachments": .attachments
        default: nil
        }
    }

    static let fieldKeys: Set<String> = [
        "name", "label", "description", "type", "required", "maxLength", "default", "policy", "values", "entity",
        "order", "observedBy", "epoch", "onDelete", "renamedFrom", "retired",
    ]

    // swiftlint:disable:next function_body_length cyclomatic_complexity
    mutating func loadField(
        _ json: JSON, entity: String, position: Int, entityNames: Set<String>, siblings: [String: FieldType],
        appendOnly: Bool
    ) -> Field? {
        let fallbackPath = "\(entity).fields[\(position)]"
        let declaredName = json["name"].flatMap { if case .string(let s) = $0 { s } else { nil } }
        let path = declaredName.map { "\(entity).\($0)" } ?? fallbackPath
        guard let f = object(json, at: path, allowed: Self.fieldKeys) else { return nil }
        guard let name = string(f["name"], at: fallbackPath, key: "name") else {
            if f["name"] == nil { issue(fallbackPath, "missing 'name'") }
            return nil
        }
        if !isValidName(name) {
            issue(path, "field name must be a lower-case identifier (a-z, 0-9, _), at most 63 long")
        } else if name == "id" {
            issue(path, "'id' is reserved for the record id")
        }
        let label = string(f["label"], at: path, key: "label")
        _ = string(f["description"], at: path, key: "description")
        let (typeName, type) = loadType(f, at: path, entityNames: entityNames)
        let onDelete = loadOnDelete(f, at: path, typeName: typeName)
        let required = bool(f["required"], at: path, key: "required") ?? false
        let maxLength = loadMaxLength(f, at: path, type: type)
        let policy = loadPolicy(f, at: path, name: name, type: type, siblings: siblings, appendOnly: appendOnly)
        let defaultValue = loadDefault(f, at: path, name: name, type: type, maxLength: maxLength, policy: policy)
        let renamedFrom = string(f["renamedFrom"], at: path, key: "renamedFrom")
        if let renamedFrom {
            if !isValidName(renamedFrom) || renamedFrom == "id" {
                issue(path, "'renamedFrom' must be a field name (a lower-case identifier, not 'id')")
            } else if renamedFrom == name {
                issue(path, "'renamedFrom' names the field itself")
            }
        }
        let retired = bool(f["retired"], at: path, key: "retired") ?? false
        if retired && required { issue(path, "a retired field cannot be required") }
        guard let type, let policy else { return nil }
        return Field(
            name: name, label: label, type: type, required: required, maxLength: maxLength, defaultValue: defaultValue,
            policy: policy, onDelete: onDelete, renamedFrom: renamedFrom, retired: retired)
    }

    /// The field's `type` (with an enum's `values`, a reference's `entity`), and the name it was given.
    mutating func loadType(_ f: [String: JSON], at path: String, entityNames: Set<String>) -> (String?, FieldType?) {
        var type: FieldType?
        let typeName = string(f["type"], at: path, key: "type")
        if f["type"] == nil { issue(path, "missing 'type'") }
        switch typeName {
        case nil: break
        case "enum":
            if let values = stringList(f["values"], at: path, key: "values") {
                if values.isEmpty { issue(path, "an enum needs at least one value in 'values'") }
                if Set(values).count != values.count { issue(path, "enum 'values' has duplicates") }
                if values.contains("") { issue(path, "enum 'values' has an empty value") }
                type = .enumeration(values)
            } else if f["values"] == nil {
                issue(path, "type 'enum' needs 'values'")
            }
        case "reference":
            if let target = string(f["entity"], at: path, key: "entity") {
                if entityNames.contains(target) {
                    type = .reference(target)
                } else {
                    issue(path, "references unknown entity '\(target)'")
                }
            } else if f["entity"] == nil {
                issue(path, "type 'reference' needs 'entity'")
            }
        case let other?:
            type = Self.simpleType(other)
            if type == nil {
                issue(
                    path,
                    "unknown type '\(other)' (one of: text, integer, real, boolean, date, timestamp, enum, reference, set, attachment, attachments)"
                )
            }
        }
        if f["values"] != nil, typeName != "enum" { issue(path, "'values' is only for type 'enum'") }
        if f["entity"] != nil, typeName != "reference" { issue(path, "'entity' is only for type 'reference'") }
        return (typeName, type)
    }

    /// A reference's `onDelete` (`conflict` when not given).
    mutating func loadOnDelete(_ f: [String: JSON], at path: String, typeName: String?) -> ReferencePolicy {
        guard let text = string(f["onDelete"], at: path, key: "onDelete") else { return .conflict }
        if typeName != "reference" {
            issue(path, "'onDelete' is only for type 'reference'")
        } else if let policy = ReferencePolicy(rawValue: text) {
            return policy
        } else {
            issue(path, "onDelete '\(text)' is not one of: conflict, cascade")
        }
        return .conflict
    }

    /// A text or set field's `maxLength`.
    mutating func loadMaxLength(_ f: [String: JSON], at path: String, type: FieldType?) -> Int? {
        guard let m = f["maxLength"] else { return nil }
        var maxLength: Int?
        if case .int(let v) = m, v > 0, v <= 1_000_000 {
            maxLength = Int(v)
        } else {
            issue(path, "'maxLength' must be an integer from 1 to 1000000")
        }
        if let type, type != .text, type != .textSet { issue(path, "'maxLength' is only for text and set fields") }
        return maxLength
    }

    /// The field's merge `policy`, with what it needs (`order`, `epoch`, `observedBy`), checked against its type.
    mutating func loadPolicy(
        _ f: [String: JSON], at path: String, name: String, type: FieldType?, siblings: [String: FieldType],
        appendOnly: Bool
    ) -> MergePolicy? {
        var policy: MergePolicy?
        let policyName = string(f["policy"], at: path, key: "policy") ?? (appendOnly ? "append" : nil)
        if policyName == nil, f["policy"] == nil {
            issue(path, "missing 'policy' (lww, observed, max, union, counter, append or manual)")
        }
        if f["order"] != nil, policyName != "max" { issue(path, "'order' is only for policy 'max'") }
        if f["epoch"] != nil, policyName != "max" { issue(path, "'epoch' is only for policy 'max'") }
        if f["observedBy"] != nil, policyName != "observed" {
            issue(path, "'observedBy' is only for policy 'observed'")
        }
        switch policyName {
        case nil: break
        case "lww": policy = .lww
        case "manual": policy = .manual
        case "append": policy = .append
        case "union":
            if let type, !type.isSet { issue(path, "policy 'union' is only for set and attachments fields") }
            policy = .union
        case "counter":
            if let type, type != .integer { issue(path, "policy 'counter' is only for integer fields") }
            policy = .counter
        case "observed":
            policy = loadObserved(f, at: path, name: name, siblings: siblings)
        case "max":
            policy = loadMax(f, at: path, name: name, type: type, siblings: siblings)
        case let other?:
            issue(path, "unknown policy '\(other)' (one of: lww, observed, max, union, counter, append, manual)")
        }
        if appendOnly, let policyName, policyName != "append" {
            issue(path, "fields of an append-only entity have policy 'append'")
        }
        return policy
    }

    /// Policy `observed`: the date or timestamp field named by `observedBy`.
    mutating func loadObserved(_ f: [String: JSON], at path: String, name: String, siblings: [String: FieldType])
        -> MergePolicy?
    {
        guard let by = string(f["observedBy"], at: path, key: "observedBy") else {
            if f["observedBy"] == nil {
                issue(
                    path,
                    "policy 'observed' needs 'observedBy' (the date or timestamp field that carries the domain time)")
            }
            return nil
        }
        switch siblings[by] {
        case nil: issue(path, "policy 'observed' names unknown field '\(by)' in 'observedBy'")
        case .date?, .timestamp?:
            if by == name { issue(path, "policy 'observed' cannot be observed by the field itself") }
        default: issue(path, "policy 'observed' needs 'observedBy' to name a date or timestamp field")
        }
        return .observed(by: by)
    }

    /// Policy `max`: an enum's `order`, or a naturally ordered type; an optional integer `epoch`.
    mutating func loadMax(
        _ f: [String: JSON], at path: String, name: String, type: FieldType?, siblings: [String: FieldType]
    ) -> MergePolicy {
        let order = stringList(f["order"], at: path, key: "order")
        var epoch: String?
        if let e = string(f["epoch"], at: path, key: "epoch") {
            if siblings[e] != .integer || e == name {
                issue(path, "policy 'max' needs 'epoch' to name another integer field")
            }
            epoch = e
        }
        if case .enumeration(let values)? = type {
            if let order {
                if Set(order) != Set(values) || order.count != values.count {
                    issue(path, "policy 'max' needs an order that lists each enum value once")
                }
            } else if f["order"] == nil {
                issue(path, "policy 'max' needs an order")
            }
        } else if let type {
            if !type.isNaturallyOrdered {
                issue(
                    path,
                    "policy 'max' is for enums with an order, or integer, real, boolean, date and timestamp fields")
            } else if order != nil {
                issue(path, "'order' is only for enum fields; \(type.name) values have their natural order")
            }
        }
        return .max(order: order, epoch: epoch)
    }

    /// The field's `default`, checked as a value of its type (null: no default).
    mutating func loadDefault(
        _ f: [String: JSON], at path: String, name: String, type: FieldType?, maxLength: Int?, policy: MergePolicy?
    ) -> Value? {
        guard let d = f["default"], let type else { return nil }
        let field = Field(
            name: name, label: nil, type: type, required: false, maxLength: maxLength, defaultValue: nil,
            policy: policy ?? .lww)
        do {
            let value = try field.normalize(Value(json: d, for: type))
            return value == .null ? nil : value
        } catch {
            issue(path, "'default' is not a valid \(type.name): \(error.reason)")
            return nil
        }
    }
}
