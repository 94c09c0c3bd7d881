// Re-planning from a current assignment (few moves, worker loss and join) and the ordering of Placement.diff.
import JambaScheduler
import XCTest

final class ReplanTests: XCTestCase {
    let layers = Fixture.moeLayers

    func zipf(_ seed: UInt64) throws -> LoadTable {
        try Simulation.zipfLoads(layers: layers, numExperts: 8, exponent: 1.0, seed: seed)
    }

    func testSameLoadsMoveNothing() throws {
        let workers = Fixture.workers(4, slots: 10)
        let first = try Placement.plan(layers: layers, numExperts: 8, loads: try zipf(7), workers: workers)
        let again = try Placement.planDetailed(layers: layers, numExperts: 8, loads: try zipf(7), workers: workers, current: first)
        XCTAssertEqual(again.assignment, first)
        XCTAssertEqual(again.moves, [])
        XCTAssertEqual(again.previousImbalance, again.imbalance)
    }

    func testSmallLoadDriftMovesLittle() throws {
        let workers = Fixture.workers(4, slots: 10)
        let loads = try zipf(7)
        let first = try Placement.plan(layers: layers, numExperts: 8, loads: loads, workers: workers)
        // ±3% noise on every expert.
        let noisy = try LoadTable(layers: layers, perLayer: loads.perLayer.enumerated().map { i, row in
            row.enumerated().map { e, v in v * (1 + 0.03 * (((i * 8 + e) % 3 == 0) ? 1 : -1)) }
        })
        let again = try Placement.planDetailed(layers: layers, numExperts: 8, loads: noisy, workers: workers, current: first)
        XCTAssertLessThanOrEqual(again.copiesAdded, 2, "\(again.moves)")
        XCTAssertLessThanOrEqual(again.imbalance.worst, 1.15)
        print("[replan] ±3% drift: \(again.copiesAdded) copies added; imbalance \(again.previousImbalance.map { Fixture.fmt($0.worst) } ?? "-") -> \(Fixture.fmt(again.imbalance.worst))")
    }

    func testHotExpertsChangeMovesFewerCopiesThanFreshPlan() throws {
        let workers = Fixture.workers(4, slots: 10)
        let first = try Placement.plan(layers: layers, numExperts: 8, loads: try zipf(7), workers: workers)
        let shifted = try zipf(8)
        let replan = try Placement.planDetailed(layers: layers, numExperts: 8, loads: shifted, workers: workers, current: first)
        let fresh = try Placement.plan(layers: layers, numExperts: 8, loads: shifted, workers: workers)
        let freshAdds = Placement.diff(from: first, to: fresh).filter { $0.kind == .add }.count
        Fixture.checkValid(replan.assignment, layers: layers, numExperts: 8, workers: workers)
        XCTAssertLessThanOrEqual(replan.imbalance.worst, 1.15, "\(replan.imbalance)")
        XCTAssertLessThan(replan.copiesAdded, freshAdds)
        XCTAssertLessThan(replan.imbalance.worst, replan.previousImbalance?.worst ?? 0)
        print("[replan] hot experts changed: imbalance \(Fixture.fmt(replan.previousImbalance?.worst ?? 0)) -> "
            + "\(Fixture.fmt(replan.imbalance.worst)) with \(replan.copiesAdded) copies added (fresh plan: \(freshAdds))")
    }

    func testWorkerLossRestoresCoverageAndKeepsTheRest() throws {
        let four = Fixture.workers(4, slots: 10)
        let first = try Placement.plan(layers: layers, numExperts: 8, loads: try zipf(7), workers: four)
        let three = Fixture.workers(3, slots: 12)
        // A huge move cost: only the copies that coverage requires may be added.
        let strict = try Placement.planDetailed(layers: layers, numExperts: 8, loads: try zipf(7), workers: three,
                                                current: first, options: PlacementOptions(minGainPerMove: 1e9))
        Fixture.checkValid(strict.assignment, layers: layers, numExperts: 8, workers: three)
        let orphans = first.holders.filter { $0.value == ["w3"] }.count
        XCTAssertEqual(strict.copiesAdded, orphans, "\(strict.moves)")
        XCTAssertNil(strict.previousImbalance, "the old assignment references a worker that left")
        let normal = try Placement.planDetailed(layers: layers, numExperts: 8, loads: try zipf(7), workers: three, current: first)
        Fixture.checkValid(normal.assignment, layers: layers, numExperts: 8, workers: three)
        XCTAssertLessThanOrEqual(normal.imbalance.worst, 1.15)
        print("[replan] worker lost: \(orphans) orphaned experts; strict adds \(strict.copiesAdded) (worst \(Fixture.fmt(strict.imbalance.worst))), "
            + "default adds \(normal.copiesAdded) (worst \(Fixture.fmt(normal.imbalance.worst)))")
    }

    func testWorkerJoinGetsWork() throws {
        let four = Fixture.workers(4, slots: 10)
        let first = try Placement.plan(layers: layers, numExperts: 8, loads: try zipf(7), workers: four)
        let five = Fixture.workers(5, slots: 10)
        let replan = try Placement.planDetailed(layers: layers, numExperts: 8, loads: try zipf(7), workers: five, current: first)
        XCTAssertFalse(replan.assignment.experts(of: "w4").isEmpty)
        XCTAssertLessThan(replan.imbalance.mean, replan.previousImbalance?.mean ?? 0)
        print("[replan] worker joined: mean imbalance \(Fixture.fmt(replan.previousImbalance?.mean ?? 0)) -> "
            + "\(Fixture.fmt(replan.imbalance.mean)) with \(replan.copiesAdded) copies added")
    }

    // MARK: diff

    func testDiffWithoutCapacityPutsAddsFirst() {
        let x = ExpertKey(layer: 1, expert: 0), y = ExpertKey(layer: 1, expert: 1)
        let from = Assignment(holders: [x: ["a"], y: ["b", "c"]])
        let to = Assignment(holders: [x: ["b"], y: ["a", "c"]])
        XCTAssertEqual(Placement.diff(from: from, to: to), [
            Move(kind: .add, expert: x, worker: "b"), Move(kind: .add, expert: y, worker: "a"),
            Move(kind: .drop, expert: x, worker: "a"), Move(kind: .drop, expert: y, worker: "b"),
        ])
        XCTAssertEqual(Placement.diff(from: from, to: from), [])
    }

    func testDiffTable() {
        let x = ExpertKey(layer: 1, expert: 0), y = ExpertKey(layer: 1, expert: 1), z = ExpertKey(layer: 1, expert: 2)
        let one = [WorkerInfo(id: "a", slots: 1), WorkerInfo(id: "b", slots: 1)]
        let cases: [(String, Assignment, Assignment, [WorkerInfo], [String])] = [
            ("free slot: add then drop", Assignment(holders: [x: ["a"]]), Assignment(holders: [x: ["b"]]), one,
             ["+L1E0@b", "-L1E0@a"]),
            ("full, replica retarget: drop the spare replica first", Assignment(holders: [x: ["a", "b"]]),
             Assignment(holders: [x: ["b"], z: ["a"]]), one, ["-L1E0@a", "+L1E2@a"]),
            ("full, sole copies trade places: one transient add", Assignment(holders: [x: ["a"], y: ["b"]]),
             Assignment(holders: [x: ["b"], y: ["a"]]), one, ["+L1E0@b(transient)", "-L1E0@a", "+L1E1@a", "-L1E1@b"]),
        ]
        for (name, from, to, workers, expected) in cases {
            XCTAssertEqual(Placement.diff(from: from, to: to, workers: workers).map(\.description), expected, name)
        }
    }

    /// Executes a diff step by step: no expert ever loses its last holder, and a worker only exceeds
    /// its slots on an add marked transient, by one copy.
    func testDiffOfReplanNeverUncoversAnExpert() throws {
        let workers = Fixture.workers(4, slots: 10)
        let first = try Placement.plan(layers: layers, numExperts: 8, loads: try zipf(7), workers: workers)
        let second = try Placement.plan(layers: layers, numExperts: 8, loads: try zipf(99), workers: workers)
        let moves = Placement.diff(from: first, to: second, workers: workers)
        var state = first
        for m in moves {
            switch m.kind {
            case .add:
                state.add(m.expert, to: m.worker)
                let used = state.slotsUsed[m.worker] ?? 0
                XCTAssertLessThanOrEqual(used, 10 + (m.exceedsSlots ? 1 : 0), "\(m)")
            case .drop:
                state.remove(m.expert, from: m.worker)
                XCTAssertFalse(state.holders(of: m.expert).isEmpty, "\(m) uncovers its expert")
            }
        }
        XCTAssertEqual(state, second)
    }
}
