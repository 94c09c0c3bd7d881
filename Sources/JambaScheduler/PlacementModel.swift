// Dense, index-based model of an assignment that the planner mutates and scores cheaply.

/// A change to the model: one copy of expert `k` added to or removed from worker `w` (dense indices).
enum PlacementOp: Hashable, Sendable {
    case add(Int, Int)
    case remove(Int, Int)
}

/// Experts are flattened to `k = layerPosition * numExperts + expert`; workers are indices into the
/// id-sorted worker list, so "lowest index" is "lowest worker id" in every tie-break.
/// Loads are normalised per layer to sum to the cluster's total speed: a layer's ideal time is then 1
/// and `time[i][w]` is directly worker w's imbalance ratio in layer i (see `ImbalanceReport`).
struct PlacementModel: Sendable {
    let layers: [Int]
    let numExperts: Int
    let workers: [WorkerInfo]
    let speed: [Double]
    let slots: [Int]
    let load: [Double]
    let totalSpeed: Double
    /// Copies each worker held before this plan (re-planning); copies outside it count as moves.
    let baseline: [Set<Int>]?
    /// Objective charge per copy added relative to `baseline`.
    let moveCost: Double
    /// Split model the times are computed with; changing it requires `recomputeAll()`.
    var split: SplitModel = .balanced
    /// Most copies one expert may have (`PlacementOptions.maxReplicasPerExpert`).
    var replicaCap = Int.max

    private(set) var holders: [[Int]]
    private(set) var held: [[Int]]
    private(set) var time: [[Double]]
    /// Copies held now that `baseline` does not contain: the copies a rebalance must load.
    private(set) var added = 0

    /// Weight of the sum-of-squares term in a layer's score. Tiny on purpose: it only breaks plateaus
    /// (two workers tied at the maximum, where moving one item changes no maximum) and never outweighs
    /// a real change of the maximum.
    static let spreadWeight = 1e-3

    init(layers: [Int], numExperts: Int, workers: [WorkerInfo], loads: LoadTable,
         baseline: [Set<Int>]? = nil, moveCost: Double = 0)
    {
        self.layers = layers
        self.numExperts = numExperts
        self.workers = workers
        speed = workers.map(\.speed)
        slots = workers.map(\.slots)
        let total = workers.reduce(0) { $0 + $1.speed }
        totalSpeed = total
        var flat: [Double] = []
        flat.reserveCapacity(layers.count * numExperts)
        for i in 0..<layers.count {
            let row = loads.effectiveRow(i)
            let sum = row.reduce(0, +)
            flat += row.map { $0 / sum * total }
        }
        load = flat
        self.baseline = baseline
        self.moveCost = moveCost
        holders = Array(repeating: [], count: flat.count)
        held = Array(repeating: [], count: workers.count)
        time = Array(repeating: Array(repeating: 0, count: workers.count), count: layers.count)
    }

    var expertCount: Int { load.count }
    var workerCount: Int { speed.count }
    func layerOf(_ k: Int) -> Int { k / numExperts }
    func free(_ w: Int) -> Int { slots[w] - held[w].count }
    func key(_ k: Int) -> ExpertKey { ExpertKey(layer: layers[layerOf(k)], expert: k % numExperts) }

    // MARK: mutation

    /// Adds a copy without recomputing times; false if `w` already holds `k`.
    private mutating func rawAdd(_ k: Int, _ w: Int) -> Bool {
        guard !holders[k].contains(w) else { return false }
        holders[k].insert(w, at: holders[k].firstIndex { $0 > w } ?? holders[k].count)
        held[w].insert(k, at: held[w].firstIndex { $0 > k } ?? held[w].count)
        if let baseline, !baseline[w].contains(k) { added += 1 }
        return true
    }

    private mutating func rawRemove(_ k: Int, _ w: Int) -> Bool {
        guard let hi = holders[k].firstIndex(of: w), let ki = held[w].firstIndex(of: k) else { return false }
        holders[k].remove(at: hi)
        held[w].remove(at: ki)
        if let baseline, !baseline[w].contains(k) { added -= 1 }
        return true
    }

    private mutating func rawApply(_ op: PlacementOp) -> Bool {
        switch op {
        case .add(let k, let w): return rawAdd(k, w)
        case .remove(let k, let w): return rawRemove(k, w)
        }
    }

    private mutating func rawUndo(_ op: PlacementOp) {
        switch op {
        case .add(let k, let w): _ = rawRemove(k, w)
        case .remove(let k, let w): _ = rawAdd(k, w)
        }
    }

    /// Applies `ops` atomically: either all apply and the result keeps every touched expert covered,
    /// every touched worker within its slots and every grown expert within `replicaCap` (those two
    /// unless `allowOverfull`), or nothing changes.
    mutating func apply(_ ops: [PlacementOp], allowOverfull: Bool = false) -> Bool {
        var done = 0
        var ok = true
        for op in ops {
            guard rawApply(op) else { ok = false; break }
            done += 1
        }
        if ok {
            for op in ops {
                switch op {
                case .add(let k, let w):
                    if !allowOverfull && (held[w].count > slots[w] || holders[k].count > replicaCap) { ok = false }
                case .remove(let k, _): if holders[k].isEmpty { ok = false }
                }
            }
        }
        guard ok else {
            for op in ops.prefix(done).reversed() { rawUndo(op) }
            return false
        }
        for i in affectedLayers(ops) { recompute(layer: i) }
        return true
    }

    /// Removes a copy even if it leaves the expert uncovered (repair of an infeasible current assignment).
    mutating func forceRemove(_ k: Int, _ w: Int) {
        if rawRemove(k, w) { recompute(layer: layerOf(k)) }
    }

    func affectedLayers(_ ops: [PlacementOp]) -> [Int] {
        var out: [Int] = []
        for op in ops {
            let k: Int
            switch op { case .add(let kk, _), .remove(let kk, _): k = kk }
            let i = layerOf(k)
            if !out.contains(i) { out.append(i) }
        }
        return out
    }

    /// Recomputed from scratch (not incrementally) so that a state always has the same times however it
    /// was reached: the search compares objectives and must not accumulate rounding drift.
    mutating func recompute(layer i: Int) {
        let range = (i * numExperts)..<((i + 1) * numExperts)
        time[i] = LayerTimes.compute(split, loads: load[range], holders: holders[range], speed: speed)
    }

    mutating func recomputeAll() {
        for i in 0..<layers.count { recompute(layer: i) }
    }

    // MARK: scoring

    /// Expected imbalance of layer i (uncovered experts simply contribute nothing here).
    func imbalance(layer i: Int) -> Double { time[i].max() ?? 0 }

    /// Layer imbalance plus a small spread term Σ s_w·t_w² / Σ s (speed-weighted: the balanced split
    /// minimises exactly that sum, so fewer copies can never lower it; see the search's pruning).
    func score(layer i: Int) -> Double {
        var peak = 0.0
        var squares = 0.0
        for (w, t) in time[i].enumerated() {
            peak = max(peak, t)
            squares += speed[w] * t * t
        }
        return peak + Self.spreadWeight * squares / totalSpeed
    }

    /// What the search minimises: Σ over layers of the layer score, plus the move charge.
    var objective: Double {
        var total = 0.0
        for i in 0..<layers.count { total += score(layer: i) }
        return total + moveCost * Double(added)
    }

    /// Change of `objective` if `ops` were applied; nil when the ops are not admissible. The state is
    /// restored exactly afterwards (times are saved, not recomputed: evaluation is the hot path).
    /// `allowOverfull` evaluates one half of a step whose other half frees the slot (see the search).
    mutating func delta(_ ops: [PlacementOp], allowOverfull: Bool = false) -> Double? {
        let touched = affectedLayers(ops)
        let saved = touched.map { time[$0] }
        var before = moveCost * Double(added)
        for i in touched { before += score(layer: i) }
        guard apply(ops, allowOverfull: allowOverfull) else { return nil }
        var after = moveCost * Double(added)
        for i in touched { after += score(layer: i) }
        for op in ops.reversed() { rawUndo(op) }
        for (i, t) in zip(touched, saved) { time[i] = t }
        return after - before
    }

    // MARK: conversion

    var assignment: Assignment {
        var out: [ExpertKey: [WorkerID]] = [:]
        for k in 0..<expertCount where !holders[k].isEmpty {
            out[key(k)] = holders[k].map { workers[$0].id }
        }
        return Assignment(holders: out)
    }

    /// Dense index of a key, or nil when the key is outside the planned layers/experts.
    func index(of key: ExpertKey) -> Int? {
        guard let i = layers.firstIndex(of: key.layer), key.expert >= 0, key.expert < numExperts else { return nil }
        return i * numExperts + key.expert
    }

    /// Per worker, the dense experts an assignment gives it (unknown workers and keys are ignored).
    func sets(of assignment: Assignment) -> [Set<Int>] {
        var index: [WorkerID: Int] = [:]
        for (w, info) in workers.enumerated() { index[info.id] = w }
        var out = Array(repeating: Set<Int>(), count: workerCount)
        for (key, list) in assignment.holders {
            guard let k = self.index(of: key) else { continue }
            for id in list { if let w = index[id] { out[w].insert(k) } }
        }
        return out
    }
}
