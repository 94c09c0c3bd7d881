// Dispatch.sharedCoreGroups / preferOnePerSharedCores: workers on the same cores take a layer step one at a time.
import JambaScheduler
import XCTest

final class DispatchSharedCoresTests: XCTestCase {
    func key(_ e: Int) -> ExpertKey { ExpertKey(layer: 1, expert: e) }
    func host(_ h: String, _ cpus: Set<Int>, threads: Int) -> WorkerHost { WorkerHost(host: h, cpus: cpus, threads: threads) }

    func testGroups() {
        let cases: [(name: String, hosts: [WorkerID: WorkerHost], groups: [[WorkerID]])] = [
            ("same host, same CPUs", ["a": host("h", [0, 1], threads: 2), "b": host("h", [0, 1], threads: 2)], [["a", "b"]]),
            ("same host, disjoint CPUs (pinned apart)", ["a": host("h", [0], threads: 1), "b": host("h", [1], threads: 1)], [["a"], ["b"]]),
            ("different hosts", ["a": host("h1", [0, 1], threads: 2), "b": host("h2", [0, 1], threads: 2)], [["a"], ["b"]]),
            ("unknown host never groups", ["a": host("", [0], threads: 1), "b": host("", [0], threads: 1)], [["a"], ["b"]]),
            ("unknown CPUs on a known host overlap", ["a": host("h", [], threads: 2), "b": host("h", [3], threads: 1)], [["a", "b"]]),
            ("overlap is transitive", ["a": host("h", [0, 1], threads: 2), "b": host("h", [1, 2], threads: 2),
                                       "c": host("h", [2, 3], threads: 2), "d": host("h", [7], threads: 1)], [["a", "b", "c"], ["d"]]),
        ]
        for c in cases {
            XCTAssertEqual(Dispatch.sharedCoreGroups(c.hosts), c.groups, c.name)
        }
    }

    func testTable() {
        let all = (0..<4).map { ExpertRows(expert: key($0), rows: 2) }
        let both: [ExpertKey: [WorkerID]] = Dictionary(uniqueKeysWithValues: (0..<4).map { (key($0), ["a", "b"]) })
        let shared = ["a": host("h", [0, 1], threads: 2), "b": host("h", [0, 1], threads: 2)] as [WorkerID: WorkerHost]
        // (name, experts, holders, hosts, available, rotation, expected holders per expert)
        let cases: [(String, [ExpertRows], [ExpertKey: [WorkerID]], [WorkerID: WorkerHost], Set<WorkerID>, Int, [ExpertKey: [WorkerID]])] = [
            ("shared cores, full replicas: the first in turn takes all", all, both, shared, ["a", "b"], 0,
             Dictionary(uniqueKeysWithValues: (0..<4).map { (key($0), ["a"]) })),
            ("the next call: the other", all, both, shared, ["a", "b"], 1,
             Dictionary(uniqueKeysWithValues: (0..<4).map { (key($0), ["b"]) })),
            ("one thread each on two cores: each is a share of the compute, keep splitting", all, both,
             ["a": host("h", [0, 1], threads: 1), "b": host("h", [0, 1], threads: 1)], ["a", "b"], 0, both),
            ("different hosts: untouched", all, both,
             ["a": host("h1", [0, 1], threads: 2), "b": host("h2", [0, 1], threads: 2)], ["a", "b"], 0, both),
            ("the member holding most of the step wins over the turn; what it lacks keeps its holder", all,
             [key(0): ["a", "b"], key(1): ["a", "b"], key(2): ["b"], key(3): ["a", "b"]],
             shared, ["a", "b"], 0, [key(0): ["b"], key(1): ["b"], key(2): ["b"], key(3): ["b"]]),
            ("experts without rows do not count", [ExpertRows(expert: key(0), rows: 0), ExpertRows(expert: key(1), rows: 1)],
             [key(0): ["a"], key(1): ["a", "b"]], shared, ["a", "b"], 1, [key(0): ["a"], key(1): ["b"]]),
            ("a member not available is left out", all, both, shared, ["b"], 0, both),
            ("another host's replica stays", all, Dictionary(uniqueKeysWithValues: (0..<4).map { (key($0), ["a", "b", "c"] as [WorkerID]) }),
             shared.merging(["c": host("h2", [0], threads: 1)]) { x, _ in x }, ["a", "b", "c"], 0,
             Dictionary(uniqueKeysWithValues: (0..<4).map { (key($0), ["a", "c"] as [WorkerID]) })),
        ]
        for (name, experts, holders, hosts, available, rotation, expected) in cases {
            let out = Dispatch.preferOnePerSharedCores(experts: experts, assignment: Assignment(holders: holders), hosts: hosts,
                                                       available: available, rotation: rotation)
            for (k, want) in expected { XCTAssertEqual(out.holders(of: k).sorted(), want.sorted(), "\(name): \(k)") }
        }
    }

    /// Planned on the preferred assignment, a decode step goes to one worker only, whole experts, no slices.
    func testPlanGoesToOneWorker() throws {
        let experts = [3, 2, 2, 2, 3, 2, 2].enumerated().map { ExpertRows(expert: key($0.offset), rows: $0.element) }
        let holders = Dictionary(uniqueKeysWithValues: experts.map { ($0.expert, ["a", "b"] as [WorkerID]) })
        let hosts = ["a": host("h", [0, 1], threads: 2), "b": host("h", [0, 1], threads: 2)] as [WorkerID: WorkerHost]
        let state = ["a": WorkerLoadState(), "b": WorkerLoadState()] as [WorkerID: WorkerLoadState]
        for rotation in 0..<2 {
            let a = Dispatch.preferOnePerSharedCores(experts: experts, assignment: Assignment(holders: holders), hosts: hosts,
                                                     available: ["a", "b"], rotation: rotation)
            let plan = try Dispatch.planSlices(experts: experts, slices: 2, assignment: a, state: state)
            let workers = Set(plan.bySlice.values.joined())
            XCTAssertEqual(workers, [rotation == 0 ? "a" : "b"], "rotation \(rotation)")
        }
    }
}
