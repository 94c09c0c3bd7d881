// Initial solutions for the planner: replica counts, greedy LPT packing, repair of a current assignment, relabelling.

extension PlacementModel {
    /// Replica count per expert: one each, then every spare copy goes to the expert whose normalised
    /// load per copy is largest (EPLB's rule, here across all layers at once, so a skewed layer draws
    /// more of the global slot budget than a flat one). Ties go to the lowest (layer, expert).
    /// No expert gets more copies than `cap` (two copies on one worker would be useless).
    static func replicaCounts(load: [Double], copies: Int, cap: Int) -> [Int] {
        var counts = Array(repeating: 1, count: load.count)
        var spare = copies - load.count
        while spare > 0 {
            var best = -1
            var bestValue = -1.0
            for k in 0..<load.count where counts[k] < cap {
                let value = load[k] / Double(counts[k])
                if value > bestValue { best = k; bestValue = value }
            }
            guard best >= 0 else { break }
            counts[best] += 1
            spare -= 1
        }
        return counts
    }

    /// Longest-processing-time packing of all copies of all layers, largest per-copy load first, each
    /// onto the worker with a free slot (not already holding the expert) whose time in that layer stays
    /// smallest. Interleaving the layers matters: the slot budget is global, so the copies that end up
    /// forced onto whatever slots remain are the smallest ones of the whole model, not a whole layer.
    /// A replica that finds no eligible worker is skipped (its slot stays free); a first copy always
    /// fits because copies ≤ slots.
    mutating func placeLPT(counts: [Int]) {
        var items: [(k: Int, size: Double)] = []
        for k in 0..<expertCount {
            for _ in 0..<counts[k] { items.append((k, load[k] / Double(counts[k]))) }
        }
        items.sort { $0.size != $1.size ? $0.size > $1.size : $0.k < $1.k }
        // Estimated time: a copy handles 1/count of the rows at its own speed. The real split depends on
        // the final holder set; the local search works on the real split model afterwards.
        var estimate = Array(repeating: Array(repeating: 0.0, count: workerCount), count: layers.count)
        for item in items {
            let i = layerOf(item.k)
            var best = -1
            var bestTime = 0.0
            for w in 0..<workerCount where free(w) > 0 && !holders[item.k].contains(w) {
                let t = estimate[i][w] + item.size / speed[w]
                // Ties: more free slots first (spreads the global budget evenly), then lowest id.
                if best < 0 || t < bestTime || (t == bestTime && free(w) > free(best)) {
                    best = w
                    bestTime = t
                }
            }
            guard best >= 0 else { continue }
            _ = apply([.add(item.k, best)])
            estimate[i][best] = bestTime
        }
        recomputeAll()
    }

    /// Puts a replica in every slot the search left free (it may drop copies under the proportional
    /// model): the expert with the highest load per copy that the worker does not hold, lowest index on
    /// ties. Under the balanced split an extra copy never raises any layer's imbalance (dispatch just
    /// gains a choice), and the spare capacity absorbs routing drift until the next rebalance.
    mutating func fillFreeSlots() {
        for w in 0..<workerCount {
            while free(w) > 0 {
                var best = -1
                var bestValue = -1.0
                for k in 0..<expertCount where holders[k].count < replicaCap && !holders[k].contains(w) {
                    let value = load[k] / Double(holders[k].count + 1)
                    if value > bestValue { best = k; bestValue = value }
                }
                guard best >= 0, apply([.add(best, w)]) else { break }
            }
        }
    }

    /// Loads `current` into an empty model and makes it feasible with as few changes as possible:
    /// copies on unknown workers or outside the planned layers are ignored, over-full workers shed
    /// replicas first (the copy whose expert has most copies, then the least loaded per copy), and
    /// uncovered experts are placed hottest first on a free slot, or else in place of a spare replica.
    mutating func loadRepairing(_ current: Assignment) {
        let sets = sets(of: current)
        for w in 0..<workerCount {
            for k in sets[w].sorted() { _ = apply([.add(k, w)], allowOverfull: true) }
        }
        for w in 0..<workerCount {
            while free(w) < 0 {
                let victim = held[w].min { a, b in
                    let ka = (holders[a].count, -load[a] / Double(holders[a].count))
                    let kb = (holders[b].count, -load[b] / Double(holders[b].count))
                    return ka != kb ? ka > kb : a < b
                }
                guard let victim else { break }
                forceRemove(victim, w)
            }
        }
        let uncovered = (0..<expertCount).filter { holders[$0].isEmpty }.sorted {
            load[$0] != load[$1] ? load[$0] > load[$1] : $0 < $1
        }
        for k in uncovered { cover(k) }
    }

    /// Gives uncovered expert `k` a holder: the free slot with the least time in k's layer, or else
    /// the spare replica (an expert with ≥ 2 copies) whose removal leaves the best layer times.
    /// One of the two always exists when total slots ≥ experts (pigeonhole).
    private mutating func cover(_ k: Int) {
        let i = layerOf(k)
        var best: (w: Int, t: Double)?
        for w in 0..<workerCount where free(w) > 0 {
            let t = time[i][w] + load[k] / speed[w]
            if best == nil || t < (best?.t ?? 0) { best = (w, t) }
        }
        if let best {
            _ = apply([.add(k, best.w)])
            return
        }
        var swap: (ops: [PlacementOp], d: Double)?
        for w in 0..<workerCount {
            for k2 in held[w] where holders[k2].count >= 2 {
                let ops: [PlacementOp] = [.remove(k2, w), .add(k, w)]
                guard let d = delta(ops) else { continue }
                if swap == nil || d < (swap?.d ?? 0) { swap = (ops, d) }
            }
        }
        if let swap { _ = apply(swap.ops) }
    }

    /// Copies `other`'s placement into this (empty) model, renaming workers so that the new plan keeps
    /// as many copies as possible where `baseline` has them. Only workers with identical slots and speed
    /// are interchangeable, so the imbalance is unchanged. Greedy matching by largest overlap; ties by
    /// lowest indices keep it deterministic.
    mutating func loadRelabelled(_ other: PlacementModel) {
        let base = baseline ?? Array(repeating: [], count: workerCount)
        var target = Array(repeating: -1, count: workerCount)
        var taken = Array(repeating: false, count: workerCount)
        var pairs: [(a: Int, b: Int, overlap: Int)] = []
        for a in 0..<workerCount {
            for b in 0..<workerCount where slots[a] == slots[b] && speed[a] == speed[b] {
                pairs.append((a, b, other.held[a].filter { base[b].contains($0) }.count))
            }
        }
        pairs.sort { x, y in
            x.overlap != y.overlap ? x.overlap > y.overlap : (x.a != y.a ? x.a < y.a : x.b < y.b)
        }
        for p in pairs where target[p.a] < 0 && !taken[p.b] {
            target[p.a] = p.b
            taken[p.b] = true
        }
        for a in 0..<workerCount {
            let b = target[a] >= 0 ? target[a] : a
            for k in other.held[a] { _ = apply([.add(k, b)], allowOverfull: true) }
        }
    }
}
