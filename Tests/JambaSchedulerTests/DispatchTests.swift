// Dispatch.plan: exact splits for small tables, every row exactly once, near-optimal makespan vs brute force.
import JambaScheduler
import XCTest

final class DispatchTests: XCTestCase {
    let e0 = ExpertKey(layer: 1, expert: 0)
    let e1 = ExpertKey(layer: 1, expert: 1)
    let e2 = ExpertKey(layer: 1, expert: 2)

    func state(_ entries: [(WorkerID, Int, Double)]) -> [WorkerID: WorkerLoadState] {
        Dictionary(uniqueKeysWithValues: entries.map { ($0.0, WorkerLoadState(queuedRows: $0.1, speed: $0.2)) })
    }

    func testSingleExpertSplitTable() throws {
        let cases: [(String, Int, [WorkerID], [WorkerID: WorkerLoadState], [String])] = [
            ("equal halves", 10, ["a", "b"], state([("a", 0, 1), ("b", 0, 1)]), ["a:0..<5", "b:5..<10"]),
            ("odd row goes to the lowest id", 7, ["a", "b"], state([("a", 0, 1), ("b", 0, 1)]), ["a:0..<4", "b:4..<7"]),
            ("by speed 1:3", 8, ["a", "b"], state([("a", 0, 1), ("b", 0, 3)]), ["a:0..<2", "b:2..<8"]),
            ("queue depth evens finish", 10, ["a", "b"], state([("a", 6, 1), ("b", 0, 1)]), ["a:0..<2", "b:2..<10"]),
            ("busy worker skipped", 10, ["a", "b"], state([("a", 100, 1), ("b", 0, 1)]), ["b:0..<10"]),
            ("holder missing from state", 6, ["a", "b", "c"], state([("a", 0, 1), ("c", 0, 2)]), ["a:0..<2", "c:2..<6"]),
            ("zero rows", 0, ["a"], state([("a", 0, 1)]), []),
            ("holder order is by id", 4, ["b", "a"], state([("a", 0, 1), ("b", 0, 1)]), ["a:0..<2", "b:2..<4"]),
        ]
        for (name, rows, holders, st, expected) in cases {
            let shares = try Dispatch.split(rows: rows, holders: holders, state: st)
            XCTAssertEqual(shares.map { "\($0.worker):\($0.rows)" }, expected, name)
        }
    }

    func testAllExpertsOfALayerTogether() throws {
        // e0 only on a; e1 on a and b; e2 on b and c. Optimum: a takes e0 (6) alone, e1 goes to b, e2 to c
        // and b: finish times 6, 6, 6.
        let assignment = Assignment(holders: [e0: ["a"], e1: ["a", "b"], e2: ["b", "c"]])
        let plan = try Dispatch.plan(
            experts: [ExpertRows(expert: e0, rows: 6), ExpertRows(expert: e1, rows: 4), ExpertRows(expert: e2, rows: 8)],
            assignment: assignment, state: state([("a", 0, 1), ("b", 0, 1), ("c", 0, 1)]))
        XCTAssertEqual(plan.makespan, 6, accuracy: 1e-12)
        XCTAssertEqual(plan.byWorker["a"], [WorkSlice(expert: e0, rows: 0..<6)])
        checkExactlyOnce(plan, rows: [e0: 6, e1: 4, e2: 8])
    }

    func testErrors() {
        let a = Assignment(holders: [e0: ["a"]])
        let st = state([("a", 0, 1)])
        let table: [(String, () throws -> Void, SchedulerError)] = [
            ("no available holder", { _ = try Dispatch.plan(experts: [ExpertRows(expert: self.e1, rows: 3)], assignment: a, state: st) },
             .noAvailableHolder(e1)),
            ("duplicate expert", { _ = try Dispatch.plan(experts: [ExpertRows(expert: self.e0, rows: 1), ExpertRows(expert: self.e0, rows: 2)],
                                                         assignment: a, state: st) }, .duplicateExpert(e0)),
            ("negative rows", { _ = try Dispatch.plan(experts: [ExpertRows(expert: self.e0, rows: -1)], assignment: a, state: st) },
             .negativeRows(e0, rows: -1)),
            ("zero speed", { _ = try Dispatch.split(rows: 2, holders: ["a"], state: self.state([("a", 0, 0)])) },
             .invalidSpeed(worker: "a", speed: 0)),
            ("negative queue", { _ = try Dispatch.split(rows: 2, holders: ["a"], state: self.state([("a", -3, 1)])) },
             .negativeQueue(worker: "a", queuedRows: -3)),
        ]
        for (name, body, expected) in table {
            XCTAssertThrowsError(try body(), name) { XCTAssertEqual($0 as? SchedulerError, expected, name) }
        }
    }

    /// Random small layers against exhaustive search: the plan covers every row once and its makespan is
    /// within one row's time (at the slowest involved speed) of the integer optimum.
    func testNearOptimalAgainstBruteForce() throws {
        var rng = TestRNG(seed: 42)
        let ids: [WorkerID] = ["a", "b", "c", "d"]
        var exact = 0
        let trials = 300
        for trial in 0..<trials {
            let workerCount = 2 + rng.int(3)
            let workers = Array(ids.prefix(workerCount))
            var st: [WorkerID: WorkerLoadState] = [:]
            for w in workers { st[w] = WorkerLoadState(queuedRows: rng.int(4), speed: [1.0, 1.5, 2.0, 3.0][rng.int(4)]) }
            var holders: [ExpertKey: [WorkerID]] = [:]
            var experts: [ExpertRows] = []
            for e in 0..<(1 + rng.int(3)) {
                let key = ExpertKey(layer: 1, expert: e)
                let hs = workers.filter { _ in rng.int(2) == 0 }
                holders[key] = hs.isEmpty ? [workers[rng.int(workerCount)]] : hs
                experts.append(ExpertRows(expert: key, rows: rng.int(7)))
            }
            let assignment = Assignment(holders: holders)
            let plan = try Dispatch.plan(experts: experts, assignment: assignment, state: st)
            checkExactlyOnce(plan, rows: Dictionary(uniqueKeysWithValues: experts.map { ($0.expert, $0.rows) }))
            let optimum = bruteForce(experts: experts, assignment: assignment, state: st)
            let slowest = st.values.map(\.speed).min() ?? 1
            XCTAssertGreaterThanOrEqual(plan.makespan, optimum - 1e-9, "trial \(trial)")
            XCTAssertLessThanOrEqual(plan.makespan, optimum + 1 / slowest + 1e-9, "trial \(trial)")
            if abs(plan.makespan - optimum) < 1e-9 { exact += 1 }
            XCTAssertEqual(try Dispatch.plan(experts: experts.reversed(), assignment: assignment, state: st), plan, "deterministic")
        }
        print("[dispatch] brute force: optimal makespan in \(exact)/\(trials) random layers, the rest within one row")
    }

    func testLargeStepMeetsTheHallBound() throws {
        // 16 experts with Zipf rows on 8 equal workers with small queues; experts 0-7 each on 3 workers,
        // 8-15 on one. The integer optimum is at least the Hall bound: for any worker set Y, the rows of
        // experts held only inside Y plus Y's queues, spread over Y. The plan must be within a row of it.
        var holders: [ExpertKey: [WorkerID]] = [:]
        var experts: [ExpertRows] = []
        let ids = (0..<8).map { WorkerID("w\($0)") }
        var holderIndex: [[Int]] = []
        for e in 0..<16 {
            let key = ExpertKey(layer: 1, expert: e)
            let hs = e < 8 ? [e, (e + 1) % 8, (e + 3) % 8] : [e % 8]
            holderIndex.append(hs)
            holders[key] = hs.map { ids[$0] }
            experts.append(ExpertRows(expert: key, rows: Int(4096.0 / Double(e + 1))))
        }
        var st: [WorkerID: WorkerLoadState] = [:]
        for (i, w) in ids.enumerated() { st[w] = WorkerLoadState(queuedRows: i * 10, speed: 1) }
        let plan = try Dispatch.plan(experts: experts, assignment: Assignment(holders: holders), state: st)
        checkExactlyOnce(plan, rows: Dictionary(uniqueKeysWithValues: experts.map { ($0.expert, $0.rows) }))
        var bound = 0.0
        for mask in 1..<(1 << 8) {
            let inside = { (w: Int) in mask & (1 << w) != 0 }
            let rows = experts.indices.filter { holderIndex[$0].allSatisfy(inside) }.reduce(0) { $0 + experts[$1].rows }
            let queued = (0..<8).filter(inside).reduce(0) { $0 + $1 * 10 }
            bound = max(bound, Double(rows + queued) / Double(mask.nonzeroBitCount))
        }
        XCTAssertGreaterThanOrEqual(plan.makespan, bound - 1e-9)
        XCTAssertLessThanOrEqual(plan.makespan, bound + 1)
        print("[dispatch] 16 experts on 8 workers: makespan \(plan.makespan), Hall lower bound \(Fixture.fmt(bound))")
    }

    // MARK: helpers

    func checkExactlyOnce(_ plan: DispatchPlan, rows: [ExpertKey: Int], file: StaticString = #filePath, line: UInt = #line) {
        for (key, n) in rows {
            let shares = plan.byExpert[key] ?? []
            var next = 0
            for s in shares {
                XCTAssertEqual(s.rows.lowerBound, next, "\(key) ranges must tile 0..<\(n)", file: file, line: line)
                XCTAssertFalse(s.rows.isEmpty, file: file, line: line)
                next = s.rows.upperBound
                XCTAssertTrue(plan.byWorker[s.worker]?.contains(WorkSlice(expert: key, rows: s.rows)) ?? false, file: file, line: line)
            }
            XCTAssertEqual(next, n, "\(key) rows covered", file: file, line: line)
        }
        let slices = plan.byWorker.values.reduce(0) { $0 + $1.count }
        XCTAssertEqual(slices, plan.byExpert.values.reduce(0) { $0 + $1.count }, file: file, line: line)
    }

    /// Minimum over all integer splits of the latest finish among workers that receive rows.
    func bruteForce(experts: [ExpertRows], assignment: Assignment, state: [WorkerID: WorkerLoadState]) -> Double {
        var best = Double.infinity
        var assigned: [WorkerID: Int] = [:]
        func go(_ i: Int) {
            guard i < experts.count else {
                let finish = assigned.filter { $0.value > 0 }.map { w, x in
                    Double((state[w]?.queuedRows ?? 0) + x) / (state[w]?.speed ?? 1)
                }
                best = min(best, finish.max() ?? 0)
                return
            }
            let hs = assignment.holders(of: experts[i].expert).filter { state[$0] != nil }
            func split(_ h: Int, _ left: Int) {
                if h == hs.count - 1 {
                    assigned[hs[h], default: 0] += left
                    go(i + 1)
                    assigned[hs[h], default: 0] -= left
                    return
                }
                for x in 0...left {
                    assigned[hs[h], default: 0] += x
                    split(h + 1, left - x)
                    assigned[hs[h], default: 0] -= x
                }
            }
            split(0, experts[i].rows)
        }
        go(0)
        return best
    }
}

/// Small deterministic generator for table-driven random cases (xorshift64*).
struct TestRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed | 1 }
    mutating func int(_ bound: Int) -> Int {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return Int((state &* 2_685_821_657_736_338_717) >> 33) % bound
    }
}
