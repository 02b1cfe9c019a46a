import FieldbookServerProcess
public import Foundation

/// The binaries this package builds, for tests that run them as processes (end to end).
public enum BuiltProducts {
    /// The binary `name` (`fieldbook`, `fieldbook-server`, `fieldbook-crash-writer`, …): in
    /// `FIELDBOOK_BIN_DIR` if set, else beside the test runner or in a folder above it.
    public static func url(_ name: String) throws -> URL {
        try ServerProcess.builtProduct(name)
    }

    /// Runs the binary `name` with `arguments` to its end.
    /// - Returns: its exit status and what it printed on standard output and standard error.
    public static func run(_ name: String, _ arguments: [String], environment: [String: String]? = nil) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let process = Process()
        process.executableURL = try url(name)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (
            process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self)
        )
    }
}

/// The repository's top folder (the one holding `Package.swift`), found from the calling test's
/// source file: for tests that read the docs or run the scripts.
public func repositoryRoot(_ file: String = #filePath) -> URL {
    var dir = URL(fileURLWithPath: file).deletingLastPathComponent()
    while dir.path != "/", !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
        dir.deleteLastPathComponent()
    }
    return dir
}

/// Code samples kept in step with the docs: the ```swift blocks of a Markdown file, and the
/// sample bodies of a test source file, each between `// sample begin` and `// sample end`
/// lines (indented 4 spaces, which are dropped), in order.
public enum CodeSamples {
    /// The code of each ```swift block of the Markdown file at `path`, in order.
    public static func blocks(inMarkdown path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "```swift\n").dropFirst().map {
            $0.components(separatedBy: "```").first!
        }
    }

    /// The samples of the Swift source file at `path`, dedented by 4 spaces, in order.
    public static func samples(inSource path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "    // sample begin\n")
            .dropFirst().map { part in
                part.components(separatedBy: "    // sample end").first!
                    .split(separator: "\n", omittingEmptySubsequences: false).map { $0.dropFirst(4) }
                    .joined(separator: "\n")
            }
    }
}
