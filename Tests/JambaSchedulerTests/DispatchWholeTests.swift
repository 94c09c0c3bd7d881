// Dispatch.planWhole: decode-sized batches go whole to one holder, balanced by streaming cost, deterministic.
import JambaScheduler
import XCTest

final class DispatchWholeTests: XCTestCase {
    func key(_ e: Int) -> ExpertKey { ExpertKey(layer: 3, expert: e) }

    func state(_ entries: [(WorkerID, Int, Double)]) -> [WorkerID: WorkerLoadState] {
        Dictionary(uniqueKeysWithValues: entries.map { ($0.0, WorkerLoadState(queuedRows: $0.1, speed: $0.2)) })
    }

    /// Experts per worker under each plan, as "a:3 b:4" (a worker with none is left out).
    func counts(_ plan: DispatchPlan) -> String {
        plan.byWorker.keys.sorted().map { "\($0):\(plan.byWorker[$0]?.count ?? 0)" }.joined(separator: " ")
    }

    /// The case that motivated it: four 1-row experts and two 2-row experts, all on both workers. Balancing rows
    /// (Dispatch.plan, then keeping few-row experts whole) can leave 4 experts on one worker and 2 on the other;
    /// balancing cost gives 3 and 3.
    func testBalancesExpertsNotRows() throws {
        let rows = [1, 1, 1, 1, 2, 2]
        let experts = rows.enumerated().map { ExpertRows(expert: key($0.offset), rows: $0.element) }
        let assignment = Assignment(holders: Dictionary(uniqueKeysWithValues: rows.indices.map { (key($0), ["a", "b"] as [WorkerID]) }))
        let plan = try Dispatch.planWhole(experts: experts, assignment: assignment, state: state([("a", 0, 1), ("b", 0, 1)]))
        print("[dispatch] 6 few-row experts on 2 workers: \(counts(plan)), makespan \(plan.makespan)")
        XCTAssertEqual(counts(plan), "a:3 b:3")
        // Cost 1 + rows/16 each: a and b carry 1+1+1+2 rows of work split 3 experts each → makespans equal.
        XCTAssertEqual(plan.finishTime["a"] ?? 0, plan.finishTime["b"] ?? 0, accuracy: 1.0 / 16 + 1e-12)
        for e in experts {
            XCTAssertEqual(plan.byExpert[e.expert]?.count, 1, "\(e.expert) is not split")
            XCTAssertEqual(plan.byExpert[e.expert]?.first?.rows, 0..<e.rows)
        }
    }

    func testTable() throws {
        // (name, rows per expert, holders per expert, worker state, expected experts per worker)
        let cases: [(String, [Int], [[WorkerID]], [WorkerID: WorkerLoadState], String)] = [
            ("single holders are forced", [2, 2, 2], [["a"], ["a"], ["a", "b"]], state([("a", 0, 1), ("b", 0, 1)]), "a:2 b:1"),
            ("twice as fast takes twice the experts", [1, 1, 1, 1, 1, 1], Array(repeating: ["a", "b"], count: 6),
             state([("a", 0, 1), ("b", 0, 2)]), "a:2 b:4"),
            ("queued rows count", [1, 1, 1, 1], Array(repeating: ["a", "b"], count: 4),
             state([("a", 32, 1), ("b", 0, 1)]), "a:1 b:3"),
            ("worker missing from state is routed around", [1, 1, 1], Array(repeating: ["a", "b", "c"], count: 3),
             state([("a", 0, 1), ("c", 0, 1)]), "a:2 c:1"),
            ("ties go to the lower id", [1], [["b", "a"]], state([("a", 0, 1), ("b", 0, 1)]), "a:1"),
            ("zero rows are not sent", [0, 3], [["a"], ["b"]], state([("a", 0, 1), ("b", 0, 1)]), "b:1"),
        ]
        for (name, rows, holders, st, expected) in cases {
            let experts = rows.enumerated().map { ExpertRows(expert: key($0.offset), rows: $0.element) }
            let assignment = Assignment(holders: Dictionary(uniqueKeysWithValues: holders.enumerated().map { (key($0.offset), $0.element) }))
            let plan = try Dispatch.planWhole(experts: experts, assignment: assignment, state: st)
            XCTAssertEqual(counts(plan), expected, name)
            let again = try Dispatch.planWhole(experts: experts.reversed(), assignment: assignment, state: st)
            XCTAssertEqual(plan, again, "\(name): deterministic whatever the input order")
        }
    }

    func testErrors() {
        let a = Assignment(holders: [key(0): ["a"]])
        XCTAssertThrowsError(try Dispatch.planWhole(experts: [ExpertRows(expert: key(0), rows: 1)], assignment: a, state: state([("b", 0, 1)]))) {
            XCTAssertEqual($0 as? SchedulerError, .noAvailableHolder(key(0)))
        }
        XCTAssertThrowsError(try Dispatch.planWhole(experts: [ExpertRows(expert: key(0), rows: 1), ExpertRows(expert: key(0), rows: 2)],
                                                    assignment: a, state: state([("a", 0, 1)]))) {
            XCTAssertEqual($0 as? SchedulerError, .duplicateExpert(key(0)))
        }
        XCTAssertThrowsError(try Dispatch.planWhole(experts: [ExpertRows(expert: key(0), rows: 1)], assignment: a, state: state([("a", 0, 0)]))) {
            XCTAssertEqual($0 as? SchedulerError, .invalidSpeed(worker: "a", speed: 0))
        }
    }
}
