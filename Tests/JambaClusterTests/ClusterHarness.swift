// ClusterHarness: starts the real jamba-coordinator and jamba-worker executables on loopback for a test.
import Foundation
import JambaCluster
import XCTest

/// Real processes on ephemeral loopback ports, always killed when the harness goes away.
final class ClusterHarness {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func fixture(_ name: String) -> String { repo.appendingPathComponent("Tests/Fixtures/\(name)").path }

    /// Where `swift build` put the executables: next to this test bundle, or JAMBA_BIN_DIR.
    static let binDir: URL = {
        if let d = ProcessInfo.processInfo.environment["JAMBA_BIN_DIR"] { return URL(fileURLWithPath: d) }
        var dir = Bundle.main.bundleURL
        for _ in 0..<4 {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("jamba-coordinator").path) { return dir }
            dir = dir.deletingLastPathComponent()
        }
        return repo.appendingPathComponent(".build/debug")
    }()

    let model: String
    private(set) var coordinator: Process?
    private(set) var workers: [String: Process] = [:]
    private(set) var clientEndpoint = ""
    private(set) var workerEndpoint = ""
    let logDir: URL

    init(model: String = ClusterHarness.fixture("tiny-b")) throws {
        self.model = model
        logDir = FileManager.default.temporaryDirectory.appendingPathComponent("jamba-cluster-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: logDir, withIntermediateDirectories: true)
    }

    deinit { stopAll() }

    func stopAll() {
        for p in workers.values where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        if let c = coordinator, c.isRunning { kill(c.processIdentifier, SIGKILL) }
        for p in Array(workers.values) + [coordinator].compactMap({ $0 }) { p.waitUntilExit() }
        workers.removeAll()
        coordinator = nil
    }

    static func executable(_ name: String) throws -> URL {
        let url = binDir.appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw ClusterError.badArgument("not built: \(url.path) — run `swift build` before the tests (make test does)")
        }
        return url
    }

    /// Starts the coordinator on ephemeral ports and reads them back from its first stdout line.
    func startCoordinator(_ extra: [String] = []) throws {
        let p = Process()
        p.executableURL = try Self.executable("jamba-coordinator")
        p.arguments = ["--model", model, "--client-endpoint", "tcp://127.0.0.1:*", "--worker-endpoint", "tcp://127.0.0.1:*"] + extra
        let out = Pipe()
        p.standardOutput = out
        p.standardError = try FileHandle(forWritingTo: touch("coordinator.log"))
        try p.run()
        coordinator = p
        let line = try readLine(out.fileHandleForReading, timeout: 30)
        // "jamba-coordinator: clients tcp://127.0.0.1:PORT, workers tcp://127.0.0.1:PORT"
        let parts = line.components(separatedBy: " ")
        guard parts.count >= 5 else { throw ClusterError.badArgument("unexpected coordinator banner: \(line)") }
        clientEndpoint = parts[2].trimmingCharacters(in: CharacterSet(charactersIn: ","))
        workerEndpoint = parts[4]
    }

    func startWorker(_ name: String, _ extra: [String] = []) throws {
        let p = Process()
        p.executableURL = try Self.executable("jamba-worker")
        p.arguments = ["--model", model, "--coordinator", workerEndpoint, "--name", name] + extra
        p.standardOutput = FileHandle.nullDevice
        p.standardError = try FileHandle(forWritingTo: touch("\(name).log"))
        try p.run()
        workers[name] = p
    }

    func worker(_ name: String) -> Process? { workers[name] }

    func client(timeout: Double = 10) throws -> ClusterClient { try ClusterClient(endpoint: clientEndpoint, timeout: timeout) }

    /// Polls status until `condition` holds (e.g. every expert placed), or fails after `timeout`.
    func waitFor(_ what: String, timeout: Double = 30, _ condition: (StatusSnapshot) -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        let c = try client()
        while Date() < deadline {
            if let s = try? c.status(), condition(StatusSnapshot(s)) { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw ClusterError.timeout(what: "waiting for \(what); logs in \(logDir.path)", seconds: timeout)
    }

    func log(_ name: String) -> String { (try? String(contentsOf: logDir.appendingPathComponent("\(name).log"), encoding: .utf8)) ?? "" }

    private func touch(_ name: String) throws -> URL {
        let url = logDir.appendingPathComponent(name)
        FileManager.default.createFile(atPath: url.path, contents: nil)
        return url
    }

    private func readLine(_ h: FileHandle, timeout: Double) throws -> String {
        var data = Data()
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let chunk = h.availableData
            if chunk.isEmpty { break }
            data.append(chunk)
            if let s = String(data: data, encoding: .utf8), let nl = s.firstIndex(of: "\n") { return String(s[..<nl]) }
        }
        throw ClusterError.timeout(what: "coordinator banner (log: \(log("coordinator")))", seconds: timeout)
    }
}
