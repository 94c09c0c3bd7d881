// Dispatch.planSlices: decode experts balanced in half-experts; whole experts leave up to one expert of imbalance.
import JambaScheduler
import XCTest

final class DispatchSliceTests: XCTestCase {
    func key(_ e: Int) -> ExpertKey { ExpertKey(layer: 1, expert: e) }

    func even(_ workers: [WorkerID]) -> [WorkerID: WorkerLoadState] {
        Dictionary(uniqueKeysWithValues: workers.map { ($0, WorkerLoadState()) })
    }

    func experts(_ rows: [Int]) -> [ExpertRows] { rows.enumerated().map { ExpertRows(expert: key($0.offset), rows: $0.element) } }

    func everywhere(_ n: Int, _ workers: [WorkerID]) -> Assignment {
        Assignment(holders: Dictionary(uniqueKeysWithValues: (0..<n).map { (key($0), workers) }))
    }

    /// The decode case: seven experts used in a layer (batch 8, top-2 of 8), two workers holding all of them.
    /// Whole experts give one worker four and the other three; half-experts give both the same work.
    func testSevenExpertsOnTwoWorkersBalanceInHalves() throws {
        let ex = experts([3, 2, 2, 2, 3, 2, 2])
        let whole = try Dispatch.planSlices(experts: ex, slices: 1, assignment: everywhere(7, ["a", "b"]), state: even(["a", "b"]))
        let halves = try Dispatch.planSlices(experts: ex, slices: 2, assignment: everywhere(7, ["a", "b"]), state: even(["a", "b"]))
        let total = ex.reduce(0.0) { $0 + 1 + Double($1.rows) / 16 }
        let wholeRatio = whole.makespan / (total / 2), halvesRatio = halves.makespan / (total / 2)
        print("[dispatch] 7 experts on 2 workers: makespan ÷ mean, whole \(wholeRatio), halves \(halvesRatio)")
        XCTAssertGreaterThan(wholeRatio, 1.1)
        XCTAssertLessThan(halvesRatio, 1.02)
        for e in ex {
            XCTAssertEqual(halves.bySlice[e.expert]?.count, 2)
            XCTAssertEqual(whole.bySlice[e.expert]?.count, 1)
        }
        // The plan equals the whole-expert planner's when slices = 1.
        let viaWhole = try Dispatch.planWhole(experts: ex, assignment: everywhere(7, ["a", "b"]), state: even(["a", "b"]))
        for e in ex { XCTAssertEqual(viaWhole.byExpert[e.expert]?.map(\.worker), whole.bySlice[e.expert]) }
        XCTAssertEqual(viaWhole.makespan, whole.makespan)
    }

    func testTable() throws {
        // (name, rows per expert, holders per expert, slices, state, expected workers per expert's slices)
        let cases: [(String, [Int], [[WorkerID]], Int, [WorkerID: WorkerLoadState], [[WorkerID]])] = [
            ("one expert, two holders: one half each", [4], [["a", "b"]], 2, even(["a", "b"]), [["a", "b"]]),
            ("a single holder takes both halves", [2, 2], [["a"], ["a", "b"]], 2, even(["a", "b"]), [["a", "a"], ["b", "b"]]),
            ("a worker already busy gets less", [1, 1], [["a", "b"], ["a", "b"]], 2,
             [("a", WorkerLoadState(queuedRows: 32, speed: 1)), ("b", WorkerLoadState())].reduce(into: [:]) { $0[$1.0] = $1.1 },
             [["b", "b"], ["b", "b"]]),
            ("a holder not in the state is skipped", [1], [["a", "c"]], 2, even(["a", "b"]), [["a", "a"]]),
            ("zero rows: no work", [0, 1], [["a", "b"], ["a", "b"]], 2, even(["a", "b"]), [[], ["a", "b"]]),
        ]
        for (name, rows, holders, slices, state, want) in cases {
            let assignment = Assignment(holders: Dictionary(uniqueKeysWithValues: holders.enumerated().map { (key($0.offset), $0.element) }))
            let plan = try Dispatch.planSlices(experts: experts(rows), slices: slices, assignment: assignment, state: state)
            let got = rows.indices.map { plan.bySlice[key($0)] ?? [] }
            XCTAssertEqual(got, want, name)
            // Deterministic: the same inputs give the same plan.
            XCTAssertEqual(try Dispatch.planSlices(experts: experts(rows), slices: slices, assignment: assignment, state: state), plan, name)
        }
    }

    func testErrors() {
        let assignment = everywhere(2, ["a"])
        XCTAssertThrowsError(try Dispatch.planSlices(experts: experts([1]), slices: 0, assignment: assignment, state: even(["a"]))) {
            XCTAssertEqual("\($0)", "\(SchedulerError.invalidSlices(0))")
        }
        XCTAssertThrowsError(try Dispatch.planSlices(experts: experts([1]), slices: 2, assignment: assignment, state: even(["b"]))) {
            guard case SchedulerError.noAvailableHolder(let k) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(k, self.key(0))
        }
        let dup = [ExpertRows(expert: key(0), rows: 1), ExpertRows(expert: key(0), rows: 2)]
        XCTAssertThrowsError(try Dispatch.planSlices(experts: dup, slices: 2, assignment: assignment, state: even(["a"])))
    }
}
