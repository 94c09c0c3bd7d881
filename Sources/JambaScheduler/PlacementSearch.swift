// Local search that lowers the planner's objective by moving, swapping, adding and retargeting copies.

extension PlacementModel {
    /// Smallest objective decrease that counts as an improvement: above the balanced model's rounding
    /// (one row in `LayerTimes.balancedResolution`), so no step is taken for noise alone.
    static let minImprovement = 1e-5

    /// Layers whose imbalance is at most this are not searched: 0.1% of a layer step is below what the
    /// routing statistics can resolve.
    static let balancedEnough = 1.001

    /// Best-improvement descent, one layer at a time: for each layer, among the steps that take load off
    /// that layer's busiest worker, apply the one that lowers the objective most; repeat passes until a
    /// whole pass changes nothing (or `maxSteps`). Each step strictly lowers the objective, so it ends.
    /// Returns the number of steps applied.
    @discardableResult
    mutating func improve(maxSteps: Int) -> Int {
        var steps = 0
        var changed = true
        while changed && steps < maxSteps {
            changed = false
            for i in 0..<layers.count where steps < maxSteps {
                // A chosen step was admissible when evaluated, so applying it cannot fail; if it ever
                // did, the state is unchanged and the pass simply moves on.
                if let step = bestStep(relieving: i), apply(step) {
                    steps += 1
                    changed = true
                }
            }
            if baseline != nil && steps < maxSteps, let step = bestRevert(), apply(step) {
                steps += 1
                changed = true
            }
        }
        return steps
    }

    /// Steps considered for the busiest worker A of layer i (lowest id on ties), for each of A's experts
    /// k in that layer:
    /// - drop k from A (k keeps other copies);
    /// - move k to B, or add a further copy of k on B (B has a free slot);
    /// - swap k with one of B's copies k2 of any layer (lets the global slot budget flow between layers);
    /// - retarget one of B's spare replicas k2 (k2 has ≥ 2 copies) into a copy of k: this is how replica
    ///   counts follow the load when the hot experts change.
    /// When k2 is in another layer j, the two halves of a swap or retarget touch different layers, so the
    /// step's delta is the sum of two single-layer deltas. Those halves in layer j are evaluated once per
    /// (k2, B), and only when a bound says the sum could beat the best step so far: layer j's score
    /// cannot drop below 1 (its imbalance is ≥ 1), and under the balanced split removing a copy never
    /// lowers it (fewer choices for dispatch), so a retarget is never better than its "add" half.
    /// Candidates are generated in a fixed order and the first of equal best deltas wins: deterministic.
    private mutating func bestStep(relieving i: Int) -> [PlacementOp]? {
        var a = 0
        for w in 1..<max(1, workerCount) where time[i][w] > time[i][a] { a = w }
        // A layer already this close to ideal has nothing worth a step.
        guard time[i][a] > Self.balancedEnough else { return nil }
        let experts = held[a].filter { layerOf($0) == i }
        var best: [PlacementOp]?
        var bestDelta = -Self.minImprovement
        func take(_ d: Double?, _ ops: [PlacementOp]) {
            guard let d, d < bestDelta else { return }
            best = ops
            bestDelta = d
        }
        // Pass 1: everything inside layer i; remembers the layer-i halves for pass 2.
        var halves: [(k: Int, b: Int, move: Double?, add: Double?)] = []
        for k in experts {
            if holders[k].count >= 2 { take(delta([.remove(k, a)]), [.remove(k, a)]) }
            let canGrow = holders[k].count < replicaCap
            for b in 0..<workerCount where b != a && !holders[k].contains(b) {
                // B may be full here: in a swap or retarget the other half frees its slot.
                let moveK = delta([.remove(k, a), .add(k, b)], allowOverfull: true)
                let addK = canGrow ? delta([.add(k, b)], allowOverfull: true) : nil
                if free(b) > 0 {
                    take(moveK, [.remove(k, a), .add(k, b)])
                    take(addK, [.add(k, b)])
                }
                for k2 in held[b] where k2 != k && layerOf(k2) == i {
                    let swap: [PlacementOp] = [.remove(k, a), .add(k, b), .remove(k2, b), .add(k2, a)]
                    if !holders[k2].contains(a) { take(delta(swap), swap) }
                    let retarget: [PlacementOp] = [.remove(k2, b), .add(k, b)]
                    if canGrow && holders[k2].count >= 2 { take(delta(retarget), retarget) }
                }
                halves.append((k, b, moveK, addK))
            }
        }
        // Pass 2: swaps and retargets with a copy k2 of another layer, pruned by the bounds above.
        var giveToA: [Int: Double?] = [:]
        var release: [Int: Double?] = [:]
        for h in halves {
            for k2 in held[h.b] where layerOf(k2) != i {
                let j = layerOf(k2)
                let scoreJ = score(layer: j)
                // Bounds on the layer-j half: imbalance ≥ 1 and the spread term ≥ 0 give the first; the
                // second holds because a removed copy cannot lower the balanced split's imbalance or
                // spread (up to its one-row rounding, allowed for by minImprovement's margin).
                let floor = (1 - scoreJ) - moveCost
                let releaseFloor = split == .balanced ? -moveCost - Self.minImprovement : floor
                let memo = k2 * workerCount + h.b
                if let m = h.move, !holders[k2].contains(a), m + floor < bestDelta {
                    if giveToA[memo] == nil { giveToA[memo] = .some(delta([.remove(k2, h.b), .add(k2, a)], allowOverfull: true)) }
                    if let g = giveToA[memo] ?? nil { take(m + g, [.remove(h.k, a), .add(h.k, h.b), .remove(k2, h.b), .add(k2, a)]) }
                }
                if let ad = h.add, holders[k2].count >= 2, ad + releaseFloor < bestDelta {
                    if release[memo] == nil { release[memo] = .some(delta([.remove(k2, h.b)])) }
                    if let r = release[memo] ?? nil { take(ad + r, [.remove(k2, h.b), .add(h.k, h.b)]) }
                }
            }
        }
        return best
    }

    /// When re-planning, steps that bring the plan back toward the current assignment: drop a copy the
    /// current assignment does not have, restore one it has, or both on one worker. Without these the
    /// search could keep moves that no longer pay for themselves.
    private mutating func bestRevert() -> [PlacementOp]? {
        guard let baseline else { return nil }
        var best: [PlacementOp]?
        var bestDelta = -Self.minImprovement
        func consider(_ ops: [PlacementOp]) {
            guard let d = delta(ops), d < bestDelta else { return }
            best = ops
            bestDelta = d
        }
        for w in 0..<workerCount {
            let extra = held[w].filter { !baseline[w].contains($0) }
            let missing = baseline[w].filter { !holders[$0].contains(w) }.sorted()
            guard !extra.isEmpty || !missing.isEmpty else { continue }
            for k in extra { consider([.remove(k, w)]) }
            for k in missing where free(w) > 0 && holders[k].count < replicaCap { consider([.add(k, w)]) }
            for k in extra {
                for k2 in missing where holders[k2].count < replicaCap {
                    consider([.remove(k, w), .add(k2, w)])
                }
            }
        }
        return best
    }
}
