// WorkerPinningTests: `jamba-worker --cpus`: the CPU list parser, and a real worker whose threads all stay on the CPU given.
import Foundation
import JambaCluster
import JambaMath
import JambaWire
import XCTest
import ZeroMQ

final class WorkerPinningTests: XCTestCase {
    func testCPUListParsesNumbersRangesAndMixes() throws {
        XCTAssertEqual(try CPUList.parse("0"), [0])
        XCTAssertEqual(try CPUList.parse("2-3"), [2, 3])
        XCTAssertEqual(try CPUList.parse("5,0-2,1"), [0, 1, 2, 5])
        XCTAssertEqual(CPUList.describe([5, 0, 1, 2, 7, 8]), "0-2,5,7-8")
        for bad in ["", "a", "3-1", "-1", "1,,2", "1-2-3", "0x1", "99999"] {
            XCTAssertThrowsError(try CPUList.parse(bad), "'\(bad)' must be rejected") { error in
                XCTAssertTrue("\(error)".contains("--cpus"), "the error names the option: \(error)")
            }
        }
    }

    /// Reads `Cpus_allowed_list` of every thread of process `pid`.
    func threadCPUs(_ pid: Int32) throws -> [String: String] {
        let dir = "/proc/\(pid)/task"
        var out: [String: String] = [:]
        for tid in try FileManager.default.contentsOfDirectory(atPath: dir) {
            let status = try String(contentsOfFile: "\(dir)/\(tid)/status", encoding: .utf8)
            let name = (try? String(contentsOfFile: "\(dir)/\(tid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            for line in status.split(separator: "\n") where line.hasPrefix("Cpus_allowed_list:") {
                out["\(tid) \(name)"] = line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return out
    }

    func testPinnedWorkerKeepsEveryThreadOnItsCPU() throws {
        #if os(Linux)
        let allowed = try XCTUnwrap(Kernels.allowedCPUs)
        let cpu = try XCTUnwrap(allowed.last)
        let lone = try LoneWorker(model: ClusterHarness.fixture("tiny-b"), name: "pinned", extra: ["--cpus", "\(cpu)"])
        defer { lone.stop() }
        let (router, p) = (lone.router, lone.process)
        // Its Register message means the ZeroMQ context (and its I/O thread) exists.
        let deadline = Date().addingTimeInterval(20)
        var registered: Jamba_V1_Register?
        while registered == nil, Date() < deadline {
            guard let frames = try router.receiveMultipart(), frames.count == 2 else { continue }
            if case .register(let r) = try Jamba_V1_WorkerToCoordinator.parse(frames[1]).msg { registered = r }
        }
        let reg = try XCTUnwrap(registered, "the pinned worker registers")
        // It reports the CPUs it was pinned to, which is what tells the coordinator whether workers share cores.
        XCTAssertEqual(reg.cpus, [UInt32(cpu)])
        XCTAssertFalse(reg.hostID.isEmpty)
        let threads = try threadCPUs(p.processIdentifier)
        print("[pinning] worker --cpus \(cpu): threads and their allowed CPUs: \(threads.sorted { $0.key < $1.key })")
        XCTAssertTrue(threads.keys.contains { $0.hasSuffix("ZMQbg/IO/0") }, "libzmq's I/O thread is among them")
        XCTAssertEqual(threads.values.filter { $0 != "\(cpu)" }.count, 0, "every thread allowed on CPU \(cpu) only")
        #else
        XCTAssertThrowsError(try CPUList.pinProcess(to: [0]), "--cpus is Linux-only and says so")
        #endif
    }

    func testWorkerRejectsCPUsItMayNotUse() throws {
        let p = Process()
        p.executableURL = try ClusterHarness.executable("jamba-worker")
        p.arguments = ["--model", ClusterHarness.fixture("tiny-b"), "--coordinator", "tcp://127.0.0.1:1", "--cpus", "4000"]
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        p.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        print("[pinning] jamba-worker --cpus 4000: exit \(p.terminationStatus), \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        XCTAssertNotEqual(p.terminationStatus, 0)
        XCTAssertTrue(text.contains("4000"), "the error names the CPU")
    }
}
