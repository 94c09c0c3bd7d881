// ThreadPlacementTests: named threads are kept off the caller's CPU while a body runs, and given back after.
import Foundation
import XCTest
import CKernels
@testable import JambaMath

final class ThreadPlacementTests: XCTestCase {
    /// The CPUs a thread of this process may run on, from /proc (Linux).
    private func allowedCPUs(tid: Int32) throws -> Set<Int> {
        let status = try String(contentsOfFile: "/proc/self/task/\(tid)/status", encoding: .utf8)
        let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") })
        var cpus = Set<Int>()
        for part in line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces).split(separator: ",") {
            let ends = part.split(separator: "-").compactMap { Int($0) }
            if let lo = ends.first, let hi = ends.last { cpus.formUnion(lo...hi) }
        }
        return cpus
    }

    func testNamedThreadIsKeptOffTheCallersCPUAndGivenBackAfter() throws {
        let before = try allowedCPUs(tid: jc_thread_id())
        // A parked thread with a known name and thread id.
        let started = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let tidBox = TidBox()
        let thread = Thread {
            jc_set_thread_name("jc-steer-test")
            tidBox.tid = jc_thread_id()
            started.signal()
            release.wait()
        }
        thread.start()
        started.wait()
        defer { release.signal() }
        let tid = tidBox.tid

        var during = Set<Int>(), callerCPU = -1
        Kernels.keepingThreadsOffThisCPU(named: "jc-steer-test") {
            callerCPU = Int(jc_current_cpu())
            during = (try? allowedCPUs(tid: tid)) ?? []
        }
        let after = try allowedCPUs(tid: tid)
        print("caller on CPU \(callerCPU); named thread allowed \(before.sorted()) → during \(during.sorted()) → after \(after.sorted())")
        if before.count >= 2 {
            XCTAssertFalse(during.contains(callerCPU), "the named thread may still run on the caller's CPU \(callerCPU)")
            XCTAssertEqual(during, before.subtracting([callerCPU]))
        } else {
            XCTAssertEqual(during, before, "with one CPU allowed there is nowhere else to go: the mask must stay")
        }
        XCTAssertEqual(after, before, "the named thread's CPUs were not given back")
    }
}

/// The parked thread's id, written before `started` is signalled and read after it is waited for.
private final class TidBox: @unchecked Sendable {
    var tid: Int32 = 0
}
