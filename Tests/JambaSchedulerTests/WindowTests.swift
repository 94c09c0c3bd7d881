// RoutingWindow and WorkerStatsWindow: eviction by row count and by age (whichever is less), errors, feeding the planner.
import JambaScheduler
import XCTest

final class WindowTests: XCTestCase {
    func testDefaults() throws {
        let w = try RoutingWindow(layers: [1, 3], numExperts: 4)
        XCTAssertEqual(w.maxRows, 2_000)
        XCTAssertEqual(w.maxAge, 30)
        XCTAssertEqual(w.loads().perLayer, [[0, 0, 0, 0], [0, 0, 0, 0]])
    }

    func testEvictionTable() throws {
        struct Step { let layer: Int; let counts: [Int]; let at: Double }
        let cases: [(String, Int, Double, [Step], Double?, [[Double]])] = [
            ("under both limits", 100, 30, [Step(layer: 1, counts: [10, 0], at: 0), Step(layer: 1, counts: [0, 10], at: 1)],
             nil, [[10, 10], [0, 0]]),
            ("by count: newest rows win, the oldest step is cut proportionally", 100, 30,
             [Step(layer: 1, counts: [40, 0], at: 0), Step(layer: 1, counts: [20, 20], at: 1), Step(layer: 1, counts: [0, 40], at: 2)],
             nil, [[40, 60], [0, 0]]),
            ("by count: one step larger than the window", 10, 30, [Step(layer: 1, counts: [30, 10], at: 0)], nil, [[7.5, 2.5], [0, 0]]),
            ("by age: older than 30 s gone", 100, 30, [Step(layer: 1, counts: [5, 5], at: 0), Step(layer: 1, counts: [1, 0], at: 31)],
             nil, [[1, 0], [0, 0]]),
            ("by age: exactly 30 s old is kept", 100, 30, [Step(layer: 1, counts: [5, 5], at: 0), Step(layer: 1, counts: [1, 0], at: 30)],
             nil, [[6, 5], [0, 0]]),
            ("age applies to every layer", 100, 30, [Step(layer: 3, counts: [9, 9], at: 0), Step(layer: 1, counts: [1, 1], at: 40)],
             nil, [[1, 1], [0, 0]]),
            ("age is the smaller limit", 1_000, 5, (0..<20).map { Step(layer: 1, counts: [1, 1], at: Double($0)) }, nil, [[6, 6], [0, 0]]),
            ("count is the smaller limit", 6, 60, (0..<20).map { Step(layer: 1, counts: [1, 1], at: Double($0)) }, nil, [[3, 3], [0, 0]]),
            ("loads(now:) ages without new records", 100, 30, [Step(layer: 1, counts: [5, 5], at: 0)], 31, [[0, 0], [0, 0]]),
            ("counts per layer are separate", 4, 30, [Step(layer: 1, counts: [4, 0], at: 0), Step(layer: 3, counts: [0, 4], at: 1)],
             nil, [[4, 0], [0, 4]]),
        ]
        for (name, maxRows, maxAge, steps, now, expected) in cases {
            var w = try RoutingWindow(layers: [1, 3], numExperts: 2, maxRows: maxRows, maxAge: maxAge)
            for s in steps { try w.record(layer: s.layer, expertCounts: s.counts, at: s.at) }
            let got = w.loads(now: now).perLayer
            for (g, e) in zip(got.joined(), expected.joined()) { XCTAssertEqual(g, e, accuracy: 1e-9, "\(name): \(got)") }
        }
    }

    /// Thousands of steps (exercising front eviction and compaction) against a naive recomputation of the
    /// window's definition from the full history.
    func testLongRunMatchesNaiveWindow() throws {
        var rng = TestRNG(seed: 9)
        var w = try RoutingWindow(layers: [1, 3], numExperts: 4, maxRows: 500, maxAge: 2)
        var history: [[(at: Double, counts: [Int])]] = [[], []]
        var t = 0.0
        for step in 0..<5_000 {
            t += Double(rng.int(10)) / 100
            let layer = step % 2
            let counts = (0..<4).map { _ in rng.int(9) }
            try w.record(layer: [1, 3][layer], expertCounts: counts, at: t)
            history[layer].append((t, counts))
            guard step % 250 == 249 else { continue }
            for now in [t, t + 1.5] {
                let got = w.loads(now: now).perLayer
                for l in 0..<2 {
                    var expected = [0.0, 0, 0, 0]
                    var total = 0.0
                    for h in history[l].reversed() where h.at >= now - 2 && total < 500 {
                        let rows = Double(h.counts.reduce(0, +))
                        let f = rows > 0 ? min(1, (500 - total) / rows) : 0
                        for e in 0..<4 { expected[e] += Double(h.counts[e]) * f }
                        total += rows * f
                    }
                    for e in 0..<4 { XCTAssertEqual(got[l][e], expected[e], accuracy: 1e-6, "step \(step) layer \(l)") }
                }
            }
        }
    }

    func testBackwardTimestampIsClampedToLatest() throws {
        var w = try RoutingWindow(layers: [1], numExperts: 2, maxAge: 10)
        try w.record(layer: 1, expertCounts: [1, 0], at: 100)
        try w.record(layer: 1, expertCounts: [0, 1], at: 95)
        XCTAssertEqual(w.latest, 100)
        XCTAssertEqual(w.loads(now: 109).perLayer, [[1, 1]], "the late record counts as recorded at 100")
        XCTAssertEqual(w.rows(layer: 1), 2)
    }

    func testErrors() throws {
        var w = try RoutingWindow(layers: [1], numExperts: 2)
        let table: [(String, () throws -> Void, SchedulerError)] = [
            ("unknown layer", { try w.record(layer: 2, expertCounts: [1, 1], at: 0) }, .unknownLayer(2)),
            ("wrong width", { try w.record(layer: 1, expertCounts: [1], at: 0) }, .loadShapeMismatch(layer: 1, expectedExperts: 2, got: 1)),
            ("negative count", { try w.record(layer: 1, expertCounts: [1, -1], at: 0) }, .invalidLoad(layer: 1, expert: 1, value: -1)),
            ("NaN time", { try w.record(layer: 1, expertCounts: [1, 1], at: .nan) }, .invalidTimestamp(.nan)),
            ("zero rows limit", { _ = try RoutingWindow(layers: [1], numExperts: 2, maxRows: 0) }, .invalidParameter(name: "maxRows", value: 0)),
            ("duplicate layer", { _ = try RoutingWindow(layers: [1, 1], numExperts: 2) }, .duplicateLayer(1)),
        ]
        for (name, body, expected) in table {
            XCTAssertThrowsError(try body(), name) { error in
                // NaN never equals itself: compare the case, not the payload.
                if case .invalidTimestamp = expected, case .invalidTimestamp? = error as? SchedulerError { return }
                XCTAssertEqual(error as? SchedulerError, expected, name)
            }
        }
    }

    func testWindowFeedsThePlanner() throws {
        let layers = [1, 3]
        var w = try RoutingWindow(layers: layers, numExperts: 8)
        // 100 steps of 64 tokens, top-2: expert 2 of layer 1 and expert 6 of layer 3 are hot.
        for step in 0..<100 {
            try w.record(layer: 1, expertCounts: [8, 8, 56, 8, 8, 8, 16, 16], at: Double(step) * 0.05)
            try w.record(layer: 3, expertCounts: [10, 10, 10, 10, 10, 10, 48, 20], at: Double(step) * 0.05)
        }
        XCTAssertEqual(w.rows(layer: 1), 2_000, accuracy: 1e-9)
        let loads = w.loads()
        let workers = Fixture.workers(4, slots: 5)
        let result = try Placement.planDetailed(layers: layers, numExperts: 8, loads: loads, workers: workers)
        XCTAssertGreaterThan(result.assignment.holders(of: ExpertKey(layer: 1, expert: 2)).count, 1)
        XCTAssertLessThanOrEqual(result.imbalance.worst, 1.15, "\(result.imbalance)")
    }

    func testWorkerStatsWindow() throws {
        var s = try WorkerStatsWindow(maxAge: 10, maxSamples: 3)
        XCTAssertNil(s.speed(of: "a"))
        try s.record(worker: "a", rows: 100, busySeconds: 1, at: 0)
        try s.record(worker: "b", rows: 50, busySeconds: 0, at: 0)
        XCTAssertEqual(s.speed(of: "a"), 100)
        XCTAssertNil(s.speed(of: "b"), "no busy time yet: unmeasured, not zero")
        for t in 1...3 { try s.record(worker: "a", rows: 300, busySeconds: 1, at: Double(t)) }
        XCTAssertEqual(s.speed(of: "a"), 300, "only the last 3 samples are kept")
        try s.record(worker: "c", rows: 10, busySeconds: 1, at: 12)
        XCTAssertEqual(s.stats().keys.sorted(), ["a", "c"], "b aged out")
        XCTAssertEqual(s.stats(now: 100), [:])
        XCTAssertThrowsError(try s.record(worker: "a", rows: -1, busySeconds: 1, at: 13))
        XCTAssertThrowsError(try s.record(worker: "a", rows: .nan, busySeconds: 1, at: 13))
        // Half an expert's rows (one slice of two) count half.
        var h = try WorkerStatsWindow(maxAge: 10)
        try h.record(worker: "a", rows: 2.5, busySeconds: 0.5, at: 0)
        try h.record(worker: "a", rows: 1.5, busySeconds: 0.5, at: 1)
        XCTAssertEqual(h.speed(of: "a"), 4)
    }
}
