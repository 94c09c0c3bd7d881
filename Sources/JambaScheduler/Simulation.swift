// Deterministic what-if helpers for tests and benchmarks: Zipf loads, round-robin baseline, plan vs baseline.

import Foundation

/// Imbalance of the naive placement against the planned one under the same loads.
public struct SimulationReport: Equatable, Sendable {
    /// Round-robin placement, one copy per expert (what a cluster does before any balancing).
    public let roundRobin: ImbalanceReport
    /// The planned assignment under the proportional-split model (what `Placement` optimises).
    public let planned: ImbalanceReport
    /// The planned assignment as `Dispatch.plan` actually splits it (water-filling, empty queues, each
    /// layer scaled to `Simulation.dispatchRowsPerLayer` integer rows); ≤ `planned` up to rounding.
    public let dispatched: ImbalanceReport
    public let assignment: Assignment
}

public enum Simulation {
    /// Rows per layer used when replaying a load table through `Dispatch.plan`.
    public static let dispatchRowsPerLayer = 10_000

    /// Zipf-skewed loads: the expert of rank r (1-based) gets weight 1/r^exponent, scaled so that each
    /// layer totals `rowsPerLayer`. With a seed, which expert has which rank is shuffled per layer by a
    /// fixed SplitMix64 stream (real routers have different hot experts in different layers); without
    /// one, expert 0 is the hottest in every layer.
    public static func zipfLoads(layers: [Int], numExperts: Int, exponent: Double, rowsPerLayer: Double = 2_000,
                                 seed: UInt64? = nil) throws -> LoadTable
    {
        guard numExperts > 0 else { throw SchedulerError.invalidExpertCount(numExperts) }
        guard exponent.isFinite, exponent >= 0 else { throw SchedulerError.invalidParameter(name: "exponent", value: exponent) }
        guard rowsPerLayer.isFinite, rowsPerLayer > 0 else {
            throw SchedulerError.invalidParameter(name: "rowsPerLayer", value: rowsPerLayer)
        }
        let weights = (1...numExperts).map { 1 / pow(Double($0), exponent) }
        let sum = weights.reduce(0, +)
        var rng = SplitMix64(state: seed ?? 0)
        var rows: [[Double]] = []
        for _ in layers {
            var rank = Array(0..<numExperts)
            if seed != nil {
                for i in stride(from: numExperts - 1, to: 0, by: -1) {
                    let j = Int(rng.next() % UInt64(i + 1))
                    rank.swapAt(i, j)
                }
            }
            rows.append((0..<numExperts).map { e in weights[rank[e]] / sum * rowsPerLayer })
        }
        return try LoadTable(layers: layers, perLayer: rows)
    }

    /// One copy per expert, dealt to workers in turn (layer-major order), skipping full workers.
    public static func roundRobin(layers: [Int], numExperts: Int, workers: [WorkerInfo]) throws -> Assignment {
        let sorted = try WorkerValidation.sorted(workers)
        let required = layers.count * numExperts
        let available = sorted.reduce(0) { $0 + $1.slots }
        guard available >= required else { throw SchedulerError.insufficientSlots(required: required, available: available) }
        var used = Array(repeating: 0, count: sorted.count)
        var cursor = 0
        var holders: [ExpertKey: [WorkerID]] = [:]
        for layer in layers {
            for e in 0..<numExperts {
                while used[cursor] >= sorted[cursor].slots { cursor = (cursor + 1) % sorted.count }
                holders[ExpertKey(layer: layer, expert: e)] = [sorted[cursor].id]
                used[cursor] += 1
                cursor = (cursor + 1) % sorted.count
            }
        }
        return Assignment(holders: holders)
    }

    /// Imbalance as dispatch realises it: per layer, the makespan of `Dispatch.plan` with empty queues
    /// over the ideal time (same definition as `ImbalanceReport`, but with the water-filled split).
    public static func dispatchedImbalance(_ assignment: Assignment, loads: LoadTable,
                                           workers: [WorkerInfo]) throws -> ImbalanceReport
    {
        let sorted = try WorkerValidation.sorted(workers)
        var state: [WorkerID: WorkerLoadState] = [:]
        for w in sorted { state[w.id] = WorkerLoadState(queuedRows: 0, speed: w.speed) }
        let totalSpeed = sorted.reduce(0) { $0 + $1.speed }
        var perLayer: [Double] = []
        for (i, layer) in loads.layers.enumerated() {
            let row = loads.perLayer[i]
            let total = row.reduce(0, +)
            guard total > 0 else { perLayer.append(1); continue }
            let experts = row.enumerated().map { e, load in
                ExpertRows(expert: ExpertKey(layer: layer, expert: e),
                           rows: Int((load / total * Double(dispatchRowsPerLayer)).rounded()))
            }
            let rows = experts.reduce(0) { $0 + $1.rows }
            let plan = try Dispatch.plan(experts: experts, assignment: assignment, state: state)
            perLayer.append(rows > 0 ? plan.makespan / (Double(rows) / totalSpeed) : 1)
        }
        return ImbalanceReport(layers: loads.layers, perLayer: perLayer)
    }

    /// Round-robin vs planned (and dispatched) imbalance for one scenario.
    public static func compare(layers: [Int], numExperts: Int, loads: LoadTable, workers: [WorkerInfo],
                               options: PlacementOptions = PlacementOptions()) throws -> SimulationReport
    {
        let naive = try roundRobin(layers: layers, numExperts: numExperts, workers: workers)
        let result = try Placement.planDetailed(layers: layers, numExperts: numExperts, loads: loads,
                                                workers: workers, options: options)
        return SimulationReport(
            roundRobin: try Imbalance.of(naive, loads: loads, workers: workers),
            planned: result.imbalance,
            dispatched: try dispatchedImbalance(result.assignment, loads: loads, workers: workers),
            assignment: result.assignment)
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny fixed generator, so simulated loads are identical on
/// every platform and Swift version (the standard library's generator makes no such promise).
struct SplitMix64 {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
