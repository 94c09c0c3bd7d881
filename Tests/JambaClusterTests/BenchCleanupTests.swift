// BenchCleanupTests: `jamba bench` killed mid-run (SIGTERM) takes its local cluster's daemons with it.
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
