// PlacementController: the coordinator's placement sees workers that share cores and gives them whole layers.
import Foundation
@testable import JambaCluster
import JambaScheduler
import XCTest

final class PlacementControllerTests: XCTestCase {
    func registry(threads: Int, cpus: Set<Int>, hosts: [String]) -> WorkerRegistry {
        var r = WorkerRegistry(heartbeatTimeout: 10)
        for (i, host) in hosts.enumerated() {
            _ = r.register(identity: [UInt8(i)], name: "w\(i)", address: "", slots: 64, threads: threads,
                           hostID: host, cpus: cpus, now: Date())
        }
        return r
    }

    /// Which workers hold experts of each layer.
    func holdersPerLayer(_ a: Assignment, layers: [Int], experts: Int) -> [Int: Set<WorkerID>] {
        Dictionary(uniqueKeysWithValues: layers.map { l in (l, Set((0..<experts).flatMap { a.holders(of: ExpertKey(layer: l, expert: $0)) })) })
    }

    func testWorkersTakingTurnsHoldWholeLayersAndOthersShareEveryLayer() throws {
        let layers = [1, 3, 5, 7], experts = 8
        let pc = PlacementController(layers: layers, numExperts: experts, spareFraction: 0.25)
        let loads = try LoadTable(layers: layers, perLayer: layers.map { _ in Array(repeating: 1.0, count: experts) })

        // Two workers on one host, each with threads for both of its CPUs: one holder per layer, both used.
        let shared = registry(threads: 2, cpus: [0, 1], hosts: ["h", "h"])
        let a = try pc.plan(shared, loads: loads, speed: { _ in 1 }).assignment
        let perLayer = holdersPerLayer(a, layers: layers, experts: experts)
        print("[placement] 2 workers sharing 2 CPUs: holders per layer \(perLayer.mapValues { $0.count })")
        XCTAssertTrue(perLayer.values.allSatisfy { $0.count == 1 }, "a layer split between turn-taking workers")
        XCTAssertEqual(Set(perLayer.values.flatMap { $0 }).count, 2)

        // The same two on different hosts: the ordinary plan spreads every layer over both.
        let apart = registry(threads: 2, cpus: [0, 1], hosts: ["h1", "h2"])
        let b = try pc.plan(apart, loads: loads, speed: { _ in 1 }).assignment
        XCTAssertTrue(holdersPerLayer(b, layers: layers, experts: experts).values.allSatisfy { $0.count == 2 })
    }
}
