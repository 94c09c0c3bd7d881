// RebalanceTests: live rebalancing from measured routing while jobs run; every job keeps its exact tokens.
import Foundation
import JambaCluster
import JambaWire
import XCTest

final class RebalanceTests: XCTestCase {
    static let model = ClusterHarness.fixture("tiny-b")

    func testRebalanceWhileJobsRun() throws {
        let prompts = Array(testPrompts.prefix(6))
        let expected = try Reference.greedy(model: Self.model, prompts: prompts, maxTokens: 160)
        let h = try ClusterHarness(model: Self.model)
        // Start from the static baseline (each expert once, round-robin) with half the slots spare.
        try h.startCoordinator(["--min-workers", "2", "--placement", "round-robin", "--spare-slots", "0.5", "--auto-rebalance", "0"])
        try h.startWorker("a")
        try h.startWorker("b")
        try h.waitFor("round-robin placement") { $0.live.count == 2 && $0.allPlaced }
        let before = StatusSnapshot(try h.client().status())
        XCTAssertEqual(before.experts(of: "a") + before.experts(of: "b"), 32, "round-robin holds each expert once")

        // Routing statistics first, then jobs that run across the rebalance.
        XCTAssertEqual(try h.client().generate(prompts[0], maxTokens: 160).tokens, expected[0])
        let endpoint = h.clientEndpoint
        let results = ResultBox(count: prompts.count)
        let group = DispatchGroup()
        for i in prompts.indices {
            group.enter()
            Thread.detachNewThread {
                results.set(i, (try? ClusterClient(endpoint: endpoint, timeout: 20).generate(prompts[i], maxTokens: 160).tokens) ?? [-1])
                group.leave()
            }
        }
        Thread.sleep(forTimeInterval: 0.3)
        let plan = try h.client().rebalance(dryRun: false)
        print("[rebalance] imbalance \(String(format: "%.3f", plan.imbalanceBefore)) -> \(String(format: "%.3f", plan.imbalanceAfter)), \(plan.moves.count) moves, applied \(plan.applied)")
        XCTAssertTrue(plan.applied)
        XCTAssertGreaterThan(plan.moves.count, 0)
        XCTAssertLessThan(plan.imbalanceAfter, plan.imbalanceBefore)
        XCTAssertEqual(group.wait(timeout: .now() + 120), .success)
        for i in prompts.indices { XCTAssertEqual(results.get(i), expected[i], "job \(i) across the rebalance") }
        try h.waitFor("replicas resident after the rebalance") { $0.experts(of: "a") + $0.experts(of: "b") > 32 && $0.allPlaced }
        let after = StatusSnapshot(try h.client().status())
        print("[rebalance] experts a=\(after.experts(of: "a")) b=\(after.experts(of: "b")), epoch \(after.reply.assignmentEpoch), measured imbalance \(after.reply.imbalance.maxOverMean)")
        // And a dry run right after changes nothing.
        let again = try h.client().rebalance(dryRun: true)
        XCTAssertFalse(again.applied)
    }
}
