// SharedCorePlacement / Placement.planSharingCores: turn-taking workers are planned as one, then hold whole layers.
import JambaScheduler
import XCTest

final class PlacementSharedCoresTests: XCTestCase {
    let layers = [1, 3, 5, 7]
    let experts = 8

    func everything(on w: WorkerID) -> Assignment {
        var a = Assignment()
        for l in layers { for e in 0..<experts { a.add(ExpertKey(layer: l, expert: e), to: w) } }
        return a
    }

    /// The member holding each layer; fails if a layer is split between members or missing.
    func layerOwners(_ a: Assignment, members: [WorkerID], file: StaticString = #filePath, line: UInt = #line) -> [Int: WorkerID] {
        var owners: [Int: WorkerID] = [:]
        for l in layers {
            let holders = Set((0..<experts).flatMap { a.holders(of: ExpertKey(layer: l, expert: $0)) }.filter(members.contains))
            XCTAssertEqual(holders.count, 1, "layer \(l) held by \(holders.sorted())", file: file, line: line)
            owners[l] = holders.first
            for e in 0..<experts { XCTAssertFalse(a.holders(of: ExpertKey(layer: l, expert: e)).isEmpty, "expert \(e) of layer \(l) has no holder") }
        }
        return owners
    }

    func testMergeSumsSlotsAndKeepsOtherWorkers() {
        let infos = [WorkerInfo(id: "a", slots: 20, speed: 1), WorkerInfo(id: "b", slots: 20, speed: 3), WorkerInfo(id: "c", slots: 5)]
        let merged = SharedCorePlacement.merge(infos, groups: [["a", "b"]])
        XCTAssertEqual(merged.map(\.id), ["a", "c"])
        XCTAssertEqual(merged.map(\.slots), [40, 5])
        XCTAssertEqual(merged.first?.speed, 2)
        var a = Assignment()
        a.add(ExpertKey(layer: 1, expert: 0), to: "b")
        a.add(ExpertKey(layer: 1, expert: 0), to: "c")
        XCTAssertEqual(SharedCorePlacement.merge(a, groups: [["a", "b"]]).holders(of: ExpertKey(layer: 1, expert: 0)), ["a", "c"])
    }

    func testSplitGivesWholeLayersInTurnAndIsStable() {
        let slots: [WorkerID: Int] = ["a": 20, "b": 20]
        let first = SharedCorePlacement.split(everything(on: "a"), groups: [["a", "b"]], slots: slots, current: Assignment())
        XCTAssertEqual(layerOwners(first, members: ["a", "b"]), [1: "a", 3: "b", 5: "a", 7: "b"])
        XCTAssertEqual(first.copyCount, layers.count * experts, "no replicas inside a group")
        // Split again against what the members hold now: nothing moves.
        XCTAssertEqual(SharedCorePlacement.split(everything(on: "a"), groups: [["a", "b"]], slots: slots, current: first), first)
        // A layer stays with the member holding it, even against the turn order.
        var current = Assignment()
        for e in 0..<experts { current.add(ExpertKey(layer: 1, expert: e), to: "b") }
        let kept = SharedCorePlacement.split(everything(on: "a"), groups: [["a", "b"]], slots: slots, current: current)
        XCTAssertEqual(layerOwners(kept, members: ["a", "b"])[1], "b")
    }

    func testSplitRespectsEachMembersSlots() {
        // a has room for 10 experts, b for 30: a layer goes whole where it fits, the spill to the other member.
        let out = SharedCorePlacement.split(everything(on: "a"), groups: [["a", "b"]], slots: ["a": 10, "b": 30], current: Assignment())
        XCTAssertEqual(out.copyCount, layers.count * experts)
        XCTAssertLessThanOrEqual(out.experts(of: "a").count, 10)
        XCTAssertLessThanOrEqual(out.experts(of: "b").count, 30)
    }

    func testPlanSharingCoresHoldsWholeLayersAndReplansToNoMoves() throws {
        let loads = try LoadTable(layers: layers, perLayer: layers.map { _ in (0..<experts).map { Double($0 + 1) } })
        let workers = [WorkerInfo(id: "a", slots: 20), WorkerInfo(id: "b", slots: 20)]
        let plan = try Placement.planSharingCores(layers: layers, numExperts: experts, loads: loads, workers: workers,
                                                  current: nil, turnTakingGroups: [["a", "b"]])
        let owners = layerOwners(plan.assignment, members: ["a", "b"])
        XCTAssertEqual(Set(owners.values), ["a", "b"], "both members hold layers")
        for w in workers { XCTAssertLessThanOrEqual(plan.assignment.experts(of: w.id).count, w.slots) }
        let again = try Placement.planSharingCores(layers: layers, numExperts: experts, loads: loads, workers: workers,
                                                   current: plan.assignment, turnTakingGroups: [["a", "b"]])
        XCTAssertEqual(again.moves, [], "re-planning with unchanged loads moves nothing")
        // Without groups the same workers get the ordinary plan (experts split within layers).
        let ordinary = try Placement.planSharingCores(layers: layers, numExperts: experts, loads: loads, workers: workers,
                                                      current: nil, turnTakingGroups: [])
        XCTAssertEqual(ordinary, try Placement.planDetailed(layers: layers, numExperts: experts, loads: loads, workers: workers))
    }
}
