import FieldbookCore
import GRDB

/// An error from the store, naming the entity and field it concerns.
///
/// The description never includes field values, which can name people; it
/// says what is wrong and, where it helps, what would be right.
public struct StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of error this is. New codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code as text, e.g. `not_found`: stable, for programs.
        public let rawValue: String
        init(_ rawValue: String) { self.rawValue = rawValue }
        /// The code as text.
        public var description: String { rawValue }

        /// The entity is not in the schema.
        public static let unknownEntity = Code("unknown_entity")
        /// The field is not in the entity.
        public static let unknownField = Code("unknown_field")
        /// The value is of the wrong type for the field.
        public static let wrongType = Code("wrong_type")
        /// The value is not one of the enum's values.
        public static let notAllowed = Code("not_allowed")
        /// The text is longer than the field's maximum length.
        public static let tooLong = Code("too_long")
        /// The value is not written in the field's format (date, timestamp, id).
        public static let badFormat = Code("bad_format")
        /// A required field has no value.
        public static let required = Code("required")
        /// A reference names a record that does not exist.
        public static let missingReference = Code("missing_reference")
        /// No record has this id.
        public static let notFound = Code("not_found")
        /// A record with this id exists already.
        public static let duplicateID = Code("duplicate_id")
        /// The field is set once, at insert, and never changed (`append` policy).
        public static let immutable = Code("immutable")
        /// The record is referenced by other records and cannot be deleted.
        public static let referenced = Code("referenced")
        /// This device's role (``Store/role``) may not make the write: the schema's access rules
        /// refuse it; or the write would change a record outside this device's scope, or put one
        /// outside it (rule `ENTITY.scope`). The message names the rule and what to do.
        public static let forbidden = Code("forbidden")
        /// The store's schema cannot be migrated to the given one; nothing was changed.
        public static let migrationRefused = Code("migration_refused")
        /// The file is not a Fieldbook store, or was made by a newer version.
        public static let incompatibleStore = Code("incompatible_store")
        /// SQLite failed: the file cannot be opened or written (a full disk, no permission, a damaged
        /// file, another process holding it too long). ``StoreError/underlying`` has SQLite's error.
        public static let database = Code("database")
        /// A file could not be attached or read: it cannot be read, is larger than allowed, its
        /// content is not what its media type says, or this device does not hold it (yet).
        public static let file = Code("file")
    }

    /// What kind of error this is.
    public let code: Code
    /// The entity concerned, if any.
    public let entity: String?
    /// The field concerned, if any.
    public let field: String?
    /// What is wrong, for people, without any field value.
    public let message: String
    /// The error underneath, when there was one (SQLite's, for ``Code/database``).
    public let underlying: (any Error)?

    init(_ code: Code, entity: String? = nil, field: String? = nil, _ message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.entity = entity
        self.field = field
        self.message = message
        self.underlying = underlying
    }

    /// Two errors are equal when they say the same thing (the underlying errors are not compared).
    public static func == (lhs: StoreError, rhs: StoreError) -> Bool {
        lhs.code == rhs.code && lhs.entity == rhs.entity && lhs.field == rhs.field && lhs.message == rhs.message
    }

    /// Runs `body`, turning an SQLite error (GRDB's `DatabaseError`) into a ``Code/database``
    /// error: the store's API throws ``StoreError``, never another module's error type. Any other
    /// error (a ``StoreError``, or one an app throws from inside a transaction) passes unchanged.
    static func database<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as DatabaseError {
            throw StoreError(database: error)
        }
    }

    /// ``database(_:)`` for async work.
    static func databaseAsync<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as DatabaseError {
            throw StoreError(database: error)
        }
    }

    /// SQLite's result code and message (which name tables and constraints, never values).
    init(database error: DatabaseError) {
        self.init(
            .database, "SQLite error \(error.extendedResultCode.rawValue): \(error.message ?? "no message")",
            underlying: error)
    }

    init(_ problem: ValueProblem, entity: String, field: String) {
        let code: Code =
            switch problem.kind {
            case .wrongType: .wrongType
            case .notAllowed: .notAllowed
            case .tooLong: .tooLong
            case .badFormat: .badFormat
            case .required: .required
            }
        self.init(code, entity: entity, field: field, problem.reason)
    }

    /// `entity.field: message`, without any field value.
    public var description: String {
        switch (entity, field) {
        case (let entity?, let field?): "\(entity).\(field): \(message)"
        case (let entity?, nil): "\(entity): \(message)"
        default: message
        }
    }
}
