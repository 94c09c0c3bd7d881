// Public entry points of expert placement: plan from scratch or re-plan from the current assignment.

/// Tuning of `Placement.plan`. The defaults suit periodic rebalancing of a running cluster.
public struct PlacementOptions: Equatable, Sendable {
    /// When re-planning, a copy is loaded onto a worker only if it lowers the SUM over layers of the
    /// expected imbalance by at least this much (0.02 = 2% of one ideal MoE-layer step, saved on every
    /// step until the next rebalance). Loading weights costs time; small gains are not worth it.
    public var minGainPerMove: Double
    /// Upper bound on copies of one expert; nil = the number of workers with at least one slot.
    public var maxReplicasPerExpert: Int?
    /// Safety bound on local-search steps (each step strictly improves, so the search ends anyway).
    public var maxSearchSteps: Int

    public init(minGainPerMove: Double = 0.02, maxReplicasPerExpert: Int? = nil, maxSearchSteps: Int = 5_000) {
        self.minGainPerMove = minGainPerMove
        self.maxReplicasPerExpert = maxReplicasPerExpert
        self.maxSearchSteps = maxSearchSteps
    }
}

/// A plan with what it costs to get there.
public struct PlacementResult: Equatable, Sendable {
    public let assignment: Assignment
    /// Expected imbalance of `assignment` under the planning loads.
    public let imbalance: ImbalanceReport
    /// Expected imbalance of the current assignment under the same loads (nil when there is none, or
    /// when it is no longer valid, e.g. it references a worker that left).
    public let previousImbalance: ImbalanceReport?
    /// Steps from the current assignment to the new one, ordered by `Placement.diff`.
    public let moves: [Move]

    /// Expert copies that must be loaded (the cost of the rebalance).
    public var copiesAdded: Int { moves.filter { $0.kind == .add }.count }
    public var copiesDropped: Int { moves.filter { $0.kind == .drop }.count }
}

public enum Placement {
    /// Plans which workers hold which experts. See `planDetailed` for the full contract.
    public static func plan(layers: [Int], numExperts: Int, loads: LoadTable, workers: [WorkerInfo],
                            current: Assignment? = nil, options: PlacementOptions = PlacementOptions()) throws -> Assignment
    {
        try planDetailed(layers: layers, numExperts: numExperts, loads: loads, workers: workers,
                         current: current, options: options).assignment
    }

    /// Every expert of every layer in `layers` gets at least one holder; spare slots hold replicas of the
    /// experts with the highest load per copy; the expected per-layer imbalance (`ImbalanceReport`) is
    /// driven down by local search. With `current`, the plan starts from the current assignment and only
    /// loads a copy when it pays `options.minGainPerMove`; a from-scratch plan (workers renamed to
    /// overlap the current assignment) competes and wins only if it is better including its moves.
    /// Re-planning with unchanged loads and workers therefore moves nothing.
    ///
    /// Throws: no workers, bad speed/slots, duplicate worker or layer, numExperts ≤ 0, load table of the
    /// wrong shape or with negative loads, and total slots < layers × numExperts.
    public static func planDetailed(layers: [Int], numExperts: Int, loads: LoadTable, workers: [WorkerInfo],
                                    current: Assignment? = nil,
                                    options: PlacementOptions = PlacementOptions()) throws -> PlacementResult
    {
        let sorted = try validate(layers: layers, numExperts: numExperts, loads: loads, workers: workers, options: options)
        let usable = sorted.filter { $0.slots > 0 }.count
        let cap = max(1, min(options.maxReplicasPerExpert ?? usable, usable))
        let totalSlots = sorted.reduce(0) { $0 + $1.slots }
        let expertCount = layers.count * numExperts
        let steps = max(0, options.maxSearchSteps)

        // From scratch: search first under the cheap proportional model (it settles the coarse layout),
        // then under the balanced model that dispatch realises (few, expensive steps from there).
        var fresh = PlacementModel(layers: layers, numExperts: numExperts, workers: sorted, loads: loads)
        fresh.split = .proportional
        fresh.replicaCap = cap
        let counts = PlacementModel.replicaCounts(load: fresh.load, copies: min(totalSlots, cap * expertCount), cap: cap)
        fresh.placeLPT(counts: counts)
        fresh.improve(maxSteps: steps)
        fresh.split = .balanced
        fresh.recomputeAll()
        fresh.fillFreeSlots()
        fresh.improve(maxSteps: steps)
        fresh.fillFreeSlots()

        var chosen = fresh
        var previous: ImbalanceReport?
        if let current {
            previous = try? Imbalance.of(current, loads: loads, workers: sorted)
            // Re-planning searches under the balanced model only: the proportional model overstates
            // imbalance that dispatch absorbs anyway, and would buy moves that do not pay.
            let baseline = fresh.sets(of: current)
            var warm = PlacementModel(layers: layers, numExperts: numExperts, workers: sorted, loads: loads,
                                      baseline: baseline, moveCost: options.minGainPerMove)
            warm.replicaCap = cap
            warm.loadRepairing(current)
            warm.improve(maxSteps: steps)
            var relabelled = PlacementModel(layers: layers, numExperts: numExperts, workers: sorted, loads: loads,
                                            baseline: baseline, moveCost: options.minGainPerMove)
            relabelled.replicaCap = cap
            relabelled.loadRelabelled(fresh)
            relabelled.improve(maxSteps: steps)
            // Ties go to the warm start: same objective, and it was built to stay close to `current`.
            chosen = relabelled.objective < warm.objective - PlacementModel.minImprovement ? relabelled : warm
        }

        let assignment = chosen.assignment
        try assignment.validate(layers: layers, numExperts: numExperts, workers: sorted)
        let report = try Imbalance.of(assignment, loads: loads, workers: sorted)
        let moves = current.map { diff(from: $0, to: assignment, workers: sorted) } ?? []
        return PlacementResult(assignment: assignment, imbalance: report, previousImbalance: previous, moves: moves)
    }

    /// Checks every input and returns the workers sorted by id.
    static func validate(layers: [Int], numExperts: Int, loads: LoadTable, workers: [WorkerInfo],
                         options: PlacementOptions) throws -> [WorkerInfo]
    {
        guard numExperts > 0 else { throw SchedulerError.invalidExpertCount(numExperts) }
        guard !layers.isEmpty else { throw SchedulerError.noLayers }
        var seen = Set<Int>()
        for layer in layers where !seen.insert(layer).inserted { throw SchedulerError.duplicateLayer(layer) }
        let sorted = try WorkerValidation.sorted(workers)
        try loads.check(layers: layers, numExperts: numExperts)
        guard options.minGainPerMove.isFinite, options.minGainPerMove >= 0 else {
            throw SchedulerError.invalidParameter(name: "minGainPerMove", value: options.minGainPerMove)
        }
        if let r = options.maxReplicasPerExpert, r < 1 {
            throw SchedulerError.invalidParameter(name: "maxReplicasPerExpert", value: Double(r))
        }
        let required = layers.count * numExperts
        let available = sorted.reduce(0) { $0 + $1.slots }
        guard available >= required else { throw SchedulerError.insufficientSlots(required: required, available: available) }
        return sorted
    }
}
