// StatsSink: what the remote executor measures during a step, read by the coordinator between steps.
import JambaScheduler
import JambaWire

/// Filled inside engine steps (routing counts, rows served, time accounting), folded into the statistics windows
/// and the status report by the coordinator afterwards. Lives on the coordinator's thread only.
final class StatsSink {
    var routed: [(layer: Int, counts: [Int])] = []
    /// Per answered request: token rows × the share of each expert computed (a slice of an expert cut in two
    /// counts half its rows), so a worker computing halves is not credited with whole experts.
    var served: [(worker: WorkerID, rows: Double, busySeconds: Double)] = []
    /// Rows per second per worker, from the statistics window; dispatch and placement read it.
    var speed: [WorkerID: Double] = [:]
    var timings = Jamba_V1_StepTimings()
    /// Expert slices sent apart (one worker computing part of an expert), since start.
    var slicedParts = 0
    /// Expert parts re-sent to another holder after their worker failed them or was lost, since start.
    var resentParts = 0
    /// The longest compute a worker reported in the current layer (folded into timings.slowestComputeMs).
    var layerSlowestMs = 0.0

    func speed(of w: WorkerID) -> Double { speed[w] ?? (speed.values.max() ?? 1) }
}
