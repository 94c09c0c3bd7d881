// PlacementController: turns scheduler plans into per-worker assignments, adding copies before dropping any.
import Foundation
import JambaScheduler
import JambaWire

/// Applies placements in two phases so no expert is ever without a serving copy:
/// 1. each worker is assigned its new experts PLUS the copies it serves now; new copies load while it serves;
/// 2. once every worker that gained experts reports them resident, the copies that moved away are dropped.
/// Both phases are sent between engine steps, so a step always routes to a consistent set of holders.
struct PlacementController {
    /// How experts are placed when workers join or leave. Rebalancing (manual or automatic) always plans.
    enum Policy: String, Sendable { case balanced, roundRobin = "round-robin" }

    let layers: [Int]
    let numExperts: Int
    let policy: Policy
    /// Spare expert slots per worker beyond an even share (0.25: 25% more than layers × experts / workers),
    /// which is where replicas of hot experts go; also what keeps each worker's memory near 1/N of the experts.
    let spareFraction: Double
    private(set) var epoch: UInt64 = 0
    /// The plan being applied; nil when the cluster is settled.
    private(set) var target: Assignment?
    private(set) var lastImbalance: ImbalanceReport?

    init(layers: [Int], numExperts: Int, spareFraction: Double, policy: Policy = .balanced) {
        self.layers = layers
        self.numExperts = numExperts
        self.policy = policy
        self.spareFraction = spareFraction
    }

    /// Each up worker's slots, capped at an even share plus the spare fraction.
    func workerInfos(_ registry: WorkerRegistry, speed: (WorkerID) -> Double) -> [WorkerInfo] {
        let up = registry.up
        guard !up.isEmpty else { return [] }
        let share = Int((Double(layers.count * numExperts) * (1 + spareFraction) / Double(up.count)).rounded(.up))
        return up.map { WorkerInfo(id: $0.id, slots: min($0.slots, max(1, share)), speed: speed($0.id)) }
    }

    /// The placement for a membership change: the policy's layout (round-robin: each expert once, in order, the
    /// static baseline the balancing benchmark compares against), or a plan from `loads`.
    func membershipPlan(_ registry: WorkerRegistry, loads: LoadTable, speed: (WorkerID) -> Double) throws -> (Assignment, ImbalanceReport?) {
        switch policy {
        case .balanced:
            let r = try plan(registry, loads: loads, speed: speed)
            return (r.assignment, r.imbalance)
        case .roundRobin:
            let infos = workerInfos(registry, speed: speed)
            let a = try Simulation.roundRobin(layers: layers, numExperts: numExperts, workers: infos)
            return (a, try? Imbalance.of(a, loads: loads, workers: infos))
        }
    }

    /// A plan from `loads`, starting from what the up workers are assigned now. Workers that take layer steps in
    /// turn (sharing cores) are planned as one and given whole layers each.
    func plan(_ registry: WorkerRegistry, loads: LoadTable, speed: (WorkerID) -> Double) throws -> PlacementResult {
        let infos = workerInfos(registry, speed: speed)
        let current = registry.assignedAssignment
        return try Placement.planSharingCores(layers: layers, numExperts: numExperts, loads: loads, workers: infos,
                                              current: current.copyCount == 0 ? nil : current,
                                              turnTakingGroups: Self.turnTakingGroups(registry))
    }

    /// Up workers that share cores and take layer steps in turn (`Dispatch.turnTakingGroups`).
    static func turnTakingGroups(_ registry: WorkerRegistry) -> [[WorkerID]] {
        Dispatch.turnTakingGroups(Dictionary(uniqueKeysWithValues: registry.up.map { ($0.id, $0.host) }))
    }

    /// Starts applying `assignment`: phase 1 (adds only).
    mutating func apply(_ assignment: Assignment, imbalance: ImbalanceReport?, link: WorkerLink) {
        target = assignment
        lastImbalance = imbalance
        for w in link.registry.up {
            let keep = w.assigned.intersection(w.held)  // copies it serves now stay until phase 2
            let next = Set(assignment.experts(of: w.id)).union(keep)
            if next != w.assigned { send(next, to: w, link: link) }
        }
        advance(link: link)
    }

    /// Phase 2 once every worker holds its new experts: drop what moved away. Returns true when settled.
    @discardableResult
    mutating func advance(link: WorkerLink) -> Bool {
        guard let target else { return true }
        for w in link.registry.up where !Set(target.experts(of: w.id)).isSubset(of: w.held) || w.readyEpoch != w.assignedEpoch {
            return false
        }
        for w in link.registry.up {
            let final = Set(target.experts(of: w.id))
            if final != w.assigned { send(final, to: w, link: link) }
        }
        self.target = nil
        return true
    }

    /// Forgets a plan that can no longer complete (a worker in it was lost); the caller re-plans.
    mutating func abandon() { target = nil }

    private mutating func send(_ experts: Set<ExpertKey>, to w: WorkerRecord, link: WorkerLink) {
        epoch += 1
        let a = WireConversions.assignment(epoch: epoch, experts: experts)
        link.registry[w.id]?.assigned = experts
        link.registry[w.id]?.assignedEpoch = epoch
        link.log.info("assignment sent", metadata: ["worker": "\(w.name)", "epoch": "\(epoch)", "experts": "\(experts.count)"])
        link.send(.assignment(a), to: w.identity)
    }
}
