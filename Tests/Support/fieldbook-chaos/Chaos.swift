import ArgumentParser
import FieldbookServerProcess
import FieldbookTesting
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Fault injection, end to end: real device processes and a real server, killed and cut off
/// at random, then checked for lost, duplicated and diverged data. See docs/reliability.md.
@main
struct Chaos: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fieldbook-chaos",
        abstract: "Sync under faults: kill the server and devices, drop and cut connections; check nothing is lost.",
        subcommands: [Run.self, Device.self, Check.self],
        defaultSubcommand: Run.self)
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run devices against a server through a faulty proxy, inject faults, then check the result.")

    @Option(help: "Device processes.") var devices = 5
    @Option(help: "Changes to make in all, spread over the devices.") var changes = 50_000
    @Option(help: "Seed of the fault schedule and the devices' choices (default: random).") var seed: UInt64?
    @Option(help: "Seconds after which faults stop and the final sync and checks run, done or not.")
    var durationLimit = 1_200.0
    @Option(help: "Mean seconds between SIGKILLs of the server.") var serverKillEvery = 6.0
    @Option(help: "Mean seconds between SIGKILLs of a device in the middle of a sync.") var deviceKillEvery = 1.5
    @Option(help: "Share of requests the proxy drops before forwarding.") var drop = 0.03
    @Option(help: "Share of requests the proxy delays.") var delay = 0.05
    @Option(help: "Share of requests whose answer the proxy cuts, after the server did the work.") var cut = 0.04
    @Option(help: "Changes per device write round, on average.") var round = 250
    @Option(help: "Changes per push and per pulled page.") var batch = 100
    @Option(help: "Keep the files here (default: a temporary directory, removed if every check passes).")
    var directory: String?

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let seed = self.seed ?? UInt64.random(in: 1...999_999)
        var random = SeededGenerator(seed: seed)
        let dir =
            directory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("fieldbook-chaos-\(seed)-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        say("fieldbook-chaos: \(devices) devices, \(changes) changes, seed \(seed), files in \(dir)")
        // The server's error log (connections cut mid-request, say) goes to server.log, not here.
        let serverLog = open("\(dir)/server.log", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        let standardError = dup(2)
        if serverLog >= 0 { dup2(serverLog, 2) }
        defer {
            dup2(standardError, 2)
            close(standardError)
            if serverLog >= 0 { close(serverLog) }
        }

        let server = try ServerProcess(database: "\(dir)/server.sqlite")
        let names = ["王芳", "李明", "张伟", "刘洋", "陈静", "杨磊", "赵敏", "黄强"]
        var slots: [DeviceSlot] = []
        for index in 0..<devices {
            let name = names[index % names.count] + (index < names.count ? "" : "\(index)")
            let target = changes / devices + (index < changes % devices ? 1 : 0)
            slots.append(
                DeviceSlot(
                    index: index, store: "\(dir)/device-\(index + 1).sqlite",
                    token: try server.token(name: name, role: "office"),
                    target: target))
        }
        let proxy = try FaultProxy(upstreamPort: server.port, seed: seed &+ 1)
        proxy.setFaults(ProxyFaults(drop: drop, delay: delay, cut: cut))
        let device = DeviceCommand(
            binary: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(), directory: dir, round: round,
            batch: batch, seed: seed)

        var counts = FaultCounts()
        let start = ContinuousClock.now
        func elapsed() -> Double { (ContinuousClock.now - start) / .seconds(1) }
        func wait(_ mean: Double) -> Double { elapsed() + (-log(1 - random.unit()) * mean) }
        var nextServerKill = wait(serverKillEvery)
        var nextDeviceKill = wait(deviceKillEvery)
        var nextReport = 5.0
        var limited = false
        for slot in slots { try device.launch(slot, server: proxy.url) }

        // The faulty phase: devices write and sync; the server and devices die at random.
        while true {
            // A device that has exited (and whose output is read to the end): done, or run again.
            for slot in slots where slot.process?.isRunning == false && slot.output.state.withLock({ $0.ended }) {
                let process = slot.process!
                slot.made = max(slot.made, slot.output.state.withLock { $0.made })
                if process.terminationReason == .exit && process.terminationStatus == 0
                    && slot.output.state.withLock({ $0.done })
                {
                    slot.done = true
                    slot.process = nil
                } else {
                    if process.terminationReason == .exit { counts.gaveUp += 1 }
                    try device.launch(slot, server: proxy.url)
                }
            }
            if slots.allSatisfy(\.done) { break }
            if elapsed() > durationLimit {
                limited = true
                for slot in slots { slot.kill() }
                break
            }
            if let pid = server.processIdentifier, kill(pid, 0) != 0 {
                counts.serverDiedAlone += 1
                say("the server stopped without being killed; starting it again")
                server.stop()
                try restart(server)
            }
            if elapsed() >= nextServerKill {
                server.stop(signal: SIGKILL)
                counts.serverKills += 1
                usleep(useconds_t(random.next() % 800_000))
                try restart(server)
                nextServerKill = wait(serverKillEvery)
            }
            if elapsed() >= nextDeviceKill {
                // A device that has pushed or pulled at least one batch of its current sync.
                let syncing = slots.filter { slot in
                    slot.process?.isRunning == true && slot.output.state.withLock { $0.syncing && $0.batchesInSync > 0 }
                }
                if !syncing.isEmpty {
                    let victim = syncing[Int(random.next() % UInt64(syncing.count))]
                    usleep(useconds_t(random.next() % 30_000))
                    if victim.kill() { counts.deviceKills += 1 }
                    nextDeviceKill = wait(deviceKillEvery)
                }
            }
            if elapsed() >= nextReport {
                let made = slots.reduce(0) { $0 + max($1.made, $1.output.state.withLock { $0.made }) }
                say(
                    String(
                        format: "[%4.0f s] changes %d/%d  devices done %d/%d  faults %d (%@)", elapsed(), made, changes,
                        slots.filter(\.done).count, devices, counts.total(proxy.counts), counts.describe(proxy.counts)))
                nextReport += 5
            }
            usleep(10_000)
        }
        let faultyPhase = elapsed()

        // The clean phase: no faults, every device syncs twice (the second time pulls what the
        // others pushed after its first), straight to the server.
        proxy.setFaults(ProxyFaults())
        proxy.stop()
        var cleanFailures = 0
        for pass in 1...2 {
            for slot in slots {
                var tries = 0
                while try device.runToEnd(slot, server: server.url) != 0 {
                    tries += 1
                    if tries == 3 {
                        cleanFailures += 1
                        let log =
                            (try? String(contentsOfFile: "\(dir)/device-\(slot.index + 1).log", encoding: .utf8)) ?? ""
                        say(
                            "device \(slot.index + 1) failed its clean sync (pass \(pass)) 3 times: \(log.split(separator: "\n").last ?? "")"
                        )
                        break
                    }
                }
            }
        }
        guard server.stop(signal: SIGTERM) == 0 else { throw ChaosError("the server did not shut down cleanly") }
        let final = proxy.counts
        say(
            String(
                format:
                    "faulty phase %.1f s, clean sync %.1f s; %d device runs, %d device syncs gave up (retries exhausted), %d connections, %d requests through the proxy",
                faultyPhase, elapsed() - faultyPhase, slots.reduce(0) { $0 + $1.runs }, counts.gaveUp,
                final.connections, final.requests))
        say("faults: \(counts.describe(final))")
        if limited {
            say("duration limit (\(Int(durationLimit)) s) reached before every device made its changes")
        }

        let verdict = try Verifier(devices: slots.map(\.store), server: "\(dir)/server.sqlite").check()
        let failed = verdict.failed || cleanFailures > 0 || counts.serverDiedAlone > 0
        if failed { say("files kept in \(dir)") }
        verdict.print(faults: counts.total(final))
        if failed { throw ExitCode(1) }
        if directory == nil { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// Starts the server again on its port: a killed process may leave the port busy a moment.
    func restart(_ server: ServerProcess) throws {
        var tries = 0
        while true {
            do {
                try server.start()
                return
            } catch {
                tries += 1
                if tries == 50 { throw ChaosError("the server did not come back after a SIGKILL: \(error)") }
                usleep(100_000)
            }
        }
    }
}

/// Runs the checks alone on the files of an earlier run (`--directory`), e.g. after editing them.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the files of a run: device-N.sqlite and server.sqlite in a directory.")

    @Option(help: "The directory of the run.") var directory: String

    func run() throws {
        let devices = try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasPrefix("device-") && $0.hasSuffix(".sqlite") }.sorted().map { "\(directory)/\($0)" }
        let verdict = try Verifier(devices: devices, server: "\(directory)/server.sqlite").check()
        verdict.print(faults: 0)
        if verdict.failed { throw ExitCode(1) }
    }
}

/// The faults the driver injected itself (the proxy counts its own).
struct FaultCounts {
    var serverKills = 0
    var deviceKills = 0
    /// Device runs that ended with an error (a sync that ran out of retries): restarted.
    var gaveUp = 0
    /// Times the server process was found dead without having been killed: a crash, a failure.
    var serverDiedAlone = 0

    func total(_ proxy: ProxyCounts) -> Int { serverKills + deviceKills + proxy.drops + proxy.delays + proxy.cuts }

    func describe(_ proxy: ProxyCounts) -> String {
        "server killed \(serverKills), device killed mid-sync \(deviceKills), requests dropped \(proxy.drops), delayed \(proxy.delays), answers cut \(proxy.cuts)"
    }
}

/// One device: its store and token, and the process running it now.
final class DeviceSlot {
    let index: Int
    let store: String
    let token: String
    let target: Int
    var process: Process?
    var output = DeviceOutput()
    var runs = 0
    var made = 0
    var done = false

    init(index: Int, store: String, token: String, target: Int) {
        self.index = index
        self.store = store
        self.token = token
        self.target = target
    }

    /// SIGKILLs the device process; true if it was running.
    @discardableResult
    func kill() -> Bool {
        guard let process, process.isRunning else { return false }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return true
    }
}

/// What a device process has printed so far, read on a thread of its own.
final class DeviceOutput: Sendable {
    let state = Mutex(State())

    struct State {
        var made = 0
        var syncing = false
        var batchesInSync = 0
        var done = false
        /// The process's output is read to its end.
        var ended = false
    }

    func consume(_ handle: FileHandle) {
        var pending = ""
        while true {
            let data = handle.availableData
            if data.isEmpty {
                state.withLock { $0.ended = true }
                return
            }
            pending += String(decoding: data, as: UTF8.self)
            while let newline = pending.firstIndex(of: "\n") {
                let line = pending[..<newline]
                pending = String(pending[pending.index(after: newline)...])
                state.withLock { state in
                    if line.hasPrefix("made ") {
                        state.made = Int(line.dropFirst(5)) ?? state.made
                    } else if line == "sync" {
                        state.syncing = true
                        state.batchesInSync = 0
                    } else if line.hasPrefix("progress") {
                        state.batchesInSync += 1
                    } else if line.hasPrefix("synced") {
                        state.syncing = false
                    } else if line == "done" {
                        state.done = true
                    }
                }
            }
        }
    }
}

/// Starts device processes: this same binary, `fieldbook-chaos device …`.
struct DeviceCommand {
    let binary: URL
    let directory: String
    let round: Int
    let batch: Int
    let seed: UInt64

    func process(_ slot: DeviceSlot, server: URL, target: Int) throws -> (Process, DeviceOutput) {
        slot.runs += 1
        let process = Process()
        process.executableURL = binary
        process.arguments = [
            "device", "--store", slot.store, "--server", server.absoluteString, "--token", slot.token,
            "--target", String(target), "--round", String(round), "--batch", String(batch),
            "--seed", String(seed &* 1_000_003 &+ UInt64(slot.index) &* 7919 &+ UInt64(slot.runs)),
        ]
        let log = "\(directory)/device-\(slot.index + 1).log"
        if !FileManager.default.fileExists(atPath: log) {
            _ = FileManager.default.createFile(atPath: log, contents: nil)
        }
        let errors = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        errors.seekToEndOfFile()
        process.standardError = errors
        let pipe = Pipe()
        process.standardOutput = pipe
        let output = DeviceOutput()
        let handle = pipe.fileHandleForReading
        Thread.detachNewThread { output.consume(handle) }
        try process.run()
        try errors.close()
        return (process, output)
    }

    func launch(_ slot: DeviceSlot, server: URL) throws {
        (slot.process, slot.output) = try process(slot, server: server, target: slot.target)
    }

    /// Runs the device once to the end (a sync with no new changes); returns its exit status.
    func runToEnd(_ slot: DeviceSlot, server: URL) throws -> Int32 {
        let (process, _) = try process(slot, server: server, target: 0)
        process.waitUntilExit()
        return process.terminationReason == .exit ? process.terminationStatus : -1
    }
}
