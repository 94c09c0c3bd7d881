// BenchCleanupTests: `jamba bench` runs its cluster workloads to the end, and killed mid-run takes its daemons along.
import Foundation
import XCTest

final class BenchCleanupTests: XCTestCase {
    /// Pids whose parent is `parent`, from /proc.
    func children(of parent: Int32) -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            // "pid (comm) state ppid ...": the fields after the command name.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == parent
        }
    }

    /// The cluster side of the bench on a tiny model: prefill and decode at two batch sizes through a real
    /// coordinator and worker, every scenario reported with a positive rate.
    func testBenchRunsTheClusterWorkloads() throws {
        let stem = NSTemporaryDirectory() + "bench-cluster-\(getpid())"
        let bench = Process()
        bench.executableURL = try ClusterHarness.executable("jamba")
        bench.arguments = ["bench", "--model", ClusterHarness.fixture("tiny-b"), "--threads", "1", "--dtypes", "f32",
                           "--batches", "2", "--prefill-tokens", "40", "--cluster-workers", "1", "--cluster-batches", "1,3",
                           "--cluster-dtypes", "f32", "--no-limits", "--repeats", "1", "--new-tokens", "6",
                           "--cluster-pairs", "0", "--out", stem]
        bench.standardOutput = FileHandle.nullDevice
        bench.standardError = FileHandle.nullDevice
        try bench.run()
        bench.waitUntilExit()
        XCTAssertEqual(bench.terminationStatus, 0)
        let data = try Data(contentsOf: URL(fileURLWithPath: stem + ".json"))
        guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let rows = json["rows"] as? [[String: Any]] else { return XCTFail("no rows in \(stem).json") }
        var found: [String: Double] = [:]
        for r in rows {
            guard let mode = r["mode"] as? String, let scenario = r["scenario"] as? String,
                  let rate = r["tokensPerSecond"] as? Double else { continue }
            found["\(mode) \(scenario)"] = rate
        }
        print("[bench] scenarios reported: \(found.sorted { $0.key < $1.key }.map { "\($0.key) \(Int($0.value)) tok/s" })")
        for key in ["local prefill40", "local decode_b2", "cluster 1w prefill40", "cluster 1w decode_b1", "cluster 1w decode_b3"] {
            XCTAssertGreaterThan(found[key] ?? 0, 0, "\(key) missing or not positive")
        }
    }

    func testTerminatedBenchLeavesNoDaemonBehind() throws {
        #if os(Linux)
        let bench = Process()
        bench.executableURL = try ClusterHarness.executable("jamba")
        bench.arguments = ["bench", "--model", ClusterHarness.fixture("tiny-b"), "--threads", "1", "--dtypes", "f32",
                           "--batches", "0", "--prefill-tokens", "0", "--cluster-workers", "1", "--cluster-batches", "1",
                           "--cluster-dtypes", "f32", "--no-limits", "--repeats", "1000", "--new-tokens", "8",
                           "--cluster-pairs", "0", "--out", NSTemporaryDirectory() + "bench-cleanup-\(getpid())"]
        bench.standardOutput = FileHandle.nullDevice
        bench.standardError = FileHandle.nullDevice
        try bench.run()
        defer { if bench.isRunning { kill(bench.processIdentifier, SIGKILL) } }
        // Wait until the coordinator and its worker run.
        var daemons: [Int32] = []
        let deadline = Date().addingTimeInterval(60)
        while daemons.count < 2 && Date() < deadline && bench.isRunning {
            Thread.sleep(forTimeInterval: 0.2)
            daemons = children(of: bench.processIdentifier)
        }
        XCTAssertEqual(daemons.count, 2, "the bench should have started a coordinator and a worker")
        kill(bench.processIdentifier, SIGTERM)
        bench.waitUntilExit()
        Thread.sleep(forTimeInterval: 0.5)
        let alive = daemons.filter { kill($0, 0) == 0 && FileManager.default.fileExists(atPath: "/proc/\($0)/stat")
            && !((try? String(contentsOfFile: "/proc/\($0)/stat", encoding: .utf8))?.contains(") Z ") ?? true) }
        print("[cleanup] bench exit \(bench.terminationStatus) after SIGTERM; daemons \(daemons), still running \(alive)")
        XCTAssertEqual(bench.terminationStatus, 128 + SIGTERM)
        XCTAssertEqual(alive, [], "daemons outlived the bench")
        for pid in alive { kill(pid, SIGKILL) }
        #else
        throw XCTSkip("reads /proc: Linux only")
        #endif
    }
}
