// WorkerRegistry.routingVersion: what the expert dispatcher's cached view of the workers is keyed on.
import Foundation
@testable import JambaCluster
import JambaScheduler
import XCTest

final class WorkerRegistryTests: XCTestCase {
    let key = ExpertKey(layer: 1, expert: 0)

    func liveRegistry() -> (WorkerRegistry, WorkerID) {
        var r = WorkerRegistry(heartbeatTimeout: 10)
        let id = r.register(identity: [1], name: "w0", address: "", slots: 8, threads: 2, hostID: "h", cpus: [0, 1],
                            now: Date()).id
        r[id]?.assigned = [key]
        r[id]?.held = [key]
        r[id]?.state = .live
        return (r, id)
    }

    /// Every change a dispatch plan depends on moves the version; load counters and heartbeats do not, so the
    /// cached view survives the replies of a step (each of which updates `inFlight`).
    func testRoutingChangesBumpTheVersionAndLoadCountersDoNot() {
        var (r, id) = liveRegistry()
        XCTAssertEqual(r.routableAssignment.holders(of: key), [id])

        let changes: [(String, (inout WorkerRegistry) -> Void)] = [
            ("a worker registers", { _ = $0.register(identity: [2], name: "w1", address: "", slots: 8, threads: 2, now: Date()) }),
            ("held experts change", { $0[id]?.held = [] }),
            ("assigned experts change", { $0[id]?.assigned = [ExpertKey(layer: 3, expert: 1)] }),
            ("state changes", { $0[id]?.state = .joining }),
            ("host changes", { $0[id]?.host = WorkerHost(host: "h", cpus: [0], threads: 2) }),
            ("marked lost", { $0.markLost(id) }),
            ("expired", { _ = $0.expire(now: Date().addingTimeInterval(60)) }),
        ]
        for (name, change) in changes {
            var (fresh, _) = liveRegistry()
            let before = fresh.routingVersion
            change(&fresh)
            XCTAssertNotEqual(fresh.routingVersion, before, name)
        }

        let counters: [(String, (inout WorkerRegistry) -> Void)] = [
            ("in flight", { $0[id]?.inFlight += 1 }),
            ("rows served", { $0[id]?.rowsServed += 8 }),
            ("busy time", { $0[id]?.busyMicros += 100 }),
            ("last heard", { $0[id]?.lastHeard = Date() }),
            ("resident bytes", { $0[id]?.residentBytes = 1 << 20 }),
            ("an equal held set written back", { r in let held = r[id]?.held ?? []; r[id]?.held = held }),
            ("nobody expired", { _ = $0.expire(now: Date()) }),
            ("nobody forgotten", { $0.forget(lostFor: 300, now: Date()) }),
        ]
        for (name, change) in counters {
            let before = r.routingVersion
            change(&r)
            XCTAssertEqual(r.routingVersion, before, name)
        }
        XCTAssertEqual(r.routableAssignment.holders(of: key), [id])
    }
}
