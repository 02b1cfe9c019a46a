// swift-tools-version:6.1
import PackageDescription

/// Strict settings for every target (see swift-log's Package.swift).
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Fieldbook",
    platforms: [.macOS(.v15), .iOS(.v18)],
    products: [
        .library(name: "FieldbookJSON", targets: ["FieldbookJSON"]),
        .library(name: "FieldbookCore", targets: ["FieldbookCore"]),
        .library(name: "FieldbookSync", targets: ["FieldbookSync"]),
        .library(name: "FieldbookStore", targets: ["FieldbookStore"]),
        .library(name: "FieldbookFiles", targets: ["FieldbookFiles"]),
        .library(name: "FieldbookHTTP", targets: ["FieldbookHTTP"]),
        .library(name: "FieldbookInspection", targets: ["FieldbookInspection"]),
        .executable(name: "fieldbook", targets: ["fieldbook"]),
        .executable(name: "fieldbook-bench", targets: ["fieldbook-bench"]),
        .executable(name: "fieldbook-server", targets: ["fieldbook-server"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        // The device's HTTP client (the server-side Swift standard; already in the graph through Hummingbird's tests).
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        // Already built for Hummingbird: the HTTP part types its channel handlers see.
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // Already built for Hummingbird; the tests stop their servers through it, gracefully.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // `swift package generate-documentation --target FieldbookStore`: the DocC catalog (a plugin; nothing links it).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // JSON values, a strict reader (a token tape over the bytes) and a writer; no I/O.
        .target(
            name: "FieldbookJSON",
            swiftSettings: strictSettings
        ),
        // The data model, no I/O: schemas and their loader, values, record ids, the clock, changes.
        .target(
            name: "FieldbookCore",
            dependencies: ["FieldbookJSON"],
            swiftSettings: strictSettings
        ),
        // The sync protocol, no I/O: wire messages, merge states, the push plan, conflict upkeep,
        // which records exist, the schema-evolution rules; the device and both server stores use it.
        .target(
            name: "FieldbookSync",
            dependencies: ["FieldbookCore", "FieldbookJSON"],
            swiftSettings: strictSettings
        ),
        // The schema files, embedded in code so every binary carries them.
        .target(
            name: "FieldbookSchemas",
            path: "Schemas",
            resources: [.embedInCode("inspection.json")],
            swiftSettings: strictSettings
        ),
        // Files named by their SHA-256 in a directory: written crash-safely, transferred in resumable
        // chunks; what a device keeps next to its store and a server beside its database.
        .target(
            name: "FieldbookFiles",
            dependencies: ["FieldbookCore", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictSettings
        ),
        // Declares SQLite's pre-update hook, which the system library has but sqlite3.h hides, and
        // makes SQLite's process-wide settings (sqlite3_config is variadic: not callable from Swift).
        .target(name: "CFieldbookSQLite"),
        // GRDB statements bound and stepped through the C API: the hot paths of device and server.
        .target(
            name: "FieldbookSQLite",
            dependencies: [
                "FieldbookCore",
                "FieldbookJSON",
                "FieldbookSync",
                "CFieldbookSQLite",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: strictSettings
        ),
        // The device store: SQLite (GRDB), migrations, records, changelog, sync over any transport;
        // no networking.
        .target(
            name: "FieldbookStore",
            dependencies: [
                "FieldbookCore",
                "FieldbookJSON",
                "FieldbookSync",
                "FieldbookSQLite",
                "FieldbookFiles",
                "CFieldbookSQLite",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        // The device's HTTP transport (AsyncHTTPClient): the only device-side module that links SwiftNIO.
        .target(
            name: "FieldbookHTTP",
            dependencies: [
                "FieldbookCore",
                "FieldbookJSON",
                "FieldbookSync",
                "FieldbookStore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // The inspection ledger's models (sites, visits, findings, …) over the bundled schema.
        .target(
            name: "FieldbookInspection",
            dependencies: ["FieldbookCore", "FieldbookStore", "FieldbookSchemas"],
            swiftSettings: strictSettings
        ),
        // Runs a fieldbook-server process on loopback: for the demo, the benchmarks and end-to-end tests.
        .target(
            name: "FieldbookServerProcess",
            swiftSettings: strictSettings
        ),
        // The sync server: Hummingbird routes over a storage protocol; SQLite storage.
        .target(
            name: "FieldbookServer",
            dependencies: [
                "FieldbookCore",
                "FieldbookJSON",
                "FieldbookSync",
                "FieldbookSQLite",
                "FieldbookFiles",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "SyncServer/Sources/FieldbookServer",
            swiftSettings: strictSettings
        ),
        // The PostgreSQL store: the only target that imports PostgresNIO.
        .target(
            name: "FieldbookServerPostgres",
            dependencies: [
                "FieldbookCore",
                "FieldbookJSON",
                "FieldbookSync",
                "FieldbookServer",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "SyncServer/Sources/FieldbookServerPostgres",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "fieldbook-server",
            dependencies: [
                "FieldbookCore",
                "FieldbookJSON",
                "FieldbookServer",
                "FieldbookServerPostgres",
                "FieldbookSchemas",
                "FieldbookFiles",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            path: "SyncServer/Sources/fieldbook-server",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "fieldbook",
            dependencies: [
                "FieldbookCore",
                "FieldbookJSON",
                "FieldbookSync",
                "FieldbookStore",
                "FieldbookHTTP",
                "FieldbookInspection",
                "FieldbookSchemas",
                "FieldbookServerProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "cli/Sources/fieldbook",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "fieldbook-bench",
            dependencies: [
                "FieldbookCore",
                "FieldbookJSON",
                "FieldbookSync",
                "FieldbookStore",
                "FieldbookHTTP",
                "FieldbookSchemas",
                "FieldbookServerProcess",
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Benchmarks/fieldbook-bench",
            swiftSettings: strictSettings
        ),
        // Writes to a store until killed: the child process of the crash-safety test.
        .executableTarget(
            name: "fieldbook-crash-writer",
            dependencies: ["FieldbookCore", "FieldbookStore", "FieldbookSchemas", "FieldbookTesting"],
            path: "Tests/Support/fieldbook-crash-writer",
            swiftSettings: strictSettings
        ),
        // Writes changes and syncs them until killed: the device process of the sync fault tests.
        .executableTarget(
            name: "fieldbook-sync-device",
            dependencies: ["FieldbookCore", "FieldbookStore", "FieldbookHTTP", "FieldbookSchemas"],
            path: "Tests/Support/fieldbook-sync-device",
            swiftSettings: strictSettings
        ),
        // Sync under faults, end to end: device processes, a server killed at random, a proxy that
        // drops and cuts connections; then checks nothing is lost, doubled or diverged (scripts/faults).
        .executableTarget(
            name: "fieldbook-chaos",
            dependencies: [
                "FieldbookCore",
                "FieldbookSync",
                "FieldbookStore",
                "FieldbookHTTP",
                "FieldbookSchemas",
                "FieldbookServerProcess",
                "FieldbookTesting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tests/Support/fieldbook-chaos",
            swiftSettings: strictSettings
        ),
        // The tests' helpers, one copy each: seeded generator, temporary directories, snapshots of
        // stores, the built products.
        .target(
            name: "FieldbookTesting",
            dependencies: [
                "FieldbookCore",
                "FieldbookStore",
                "FieldbookSchemas",
                "FieldbookServerProcess",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            path: "Tests/Support/FieldbookTesting",
            swiftSettings: strictSettings
        ),
        // The server suites' helpers: the stores they run on (SQLite, PostgreSQL), a running server,
        // fingerprints of a store, and the conformance checks every server store passes.
        .target(
            name: "FieldbookServerTesting",
            dependencies: [
                "FieldbookCore",
                "FieldbookSync",
                "FieldbookStore",
                "FieldbookServer",
                "FieldbookServerPostgres",
                "FieldbookServerProcess",
                "FieldbookTesting",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/Support/FieldbookServerTesting",
            swiftSettings: strictSettings
        ),
        // A SQLite VFS that records writes and syncs, to show what a power cut would leave on disk.
        .target(
            name: "CFieldbookPowerCut",
            path: "Tests/Support/CFieldbookPowerCut",
            linkerSettings: [.linkedLibrary("sqlite3")]
        ),
        // Two devices and a server in one process on that VFS: the files of the power-cut test.
        .executableTarget(
            name: "fieldbook-power-cut",
            dependencies: [
                "CFieldbookPowerCut", "FieldbookCore", "FieldbookSync", "FieldbookStore", "FieldbookServer",
                "FieldbookSchemas", "FieldbookTesting",
            ],
            path: "Tests/Support/fieldbook-power-cut",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "FieldbookCoreTests",
            dependencies: ["FieldbookJSON", "FieldbookCore", "FieldbookSync", "FieldbookSchemas", "FieldbookTesting"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "FieldbookStoreTests",
            dependencies: [
                "FieldbookCore", "FieldbookJSON", "FieldbookStore", "FieldbookInspection", "FieldbookSchemas",
                "FieldbookTesting", .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strictSettings
        ),
        // Devices and a live server over loopback HTTP; the protocol's property test.
        .testTarget(
            name: "FieldbookSyncTests",
            dependencies: [
                "FieldbookCore",
                "FieldbookFiles",
                .product(name: "Crypto", package: "swift-crypto"),
                "FieldbookJSON",
                "FieldbookSync",
                "FieldbookStore",
                "FieldbookHTTP",
                "FieldbookInspection",
                "FieldbookServerProcess",
                "FieldbookTesting",
                "FieldbookServerTesting",
                "FieldbookServer",
                "FieldbookServerPostgres",
                "FieldbookSchemas",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // End-to-end: runs the built `fieldbook` binary as a process; and its `field=value` parser, in process.
        .testTarget(
            name: "FieldbookCLITests",
            dependencies: [
                "fieldbook", "FieldbookCore", "FieldbookJSON", "FieldbookSync", "FieldbookStore", "FieldbookSchemas",
                "FieldbookServerProcess", "FieldbookTesting",
            ],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
