// StatusView: the cluster status as JSON for scripts and as a readable table for people.
import Foundation
import JambaWire

struct StatusView: Encodable {
    struct Worker: Encodable {
        let name: String, address: String, state: String
        let experts: [String: [UInt32]]
        let expert_count: Int
        let resident_bytes: UInt64, queue_depth: UInt32, ms_since_heartbeat: UInt64
        let rows_served: UInt64, busy_micros: UInt64
    }
    struct Expert: Encodable { let expert: UInt32; let holders: [String]; let tokens_routed: UInt64 }
    struct Layer: Encodable { let layer: UInt32; let experts: [Expert] }
    struct Imbalance: Encodable { let max_over_mean: Double; let worst_layer: UInt32; let per_layer: [String: Double] }

    let model: String, fingerprint: String
    let workers: [Worker]
    let layers: [Layer]
    let jobs_running: UInt32, jobs_queued: UInt32
    let tokens_per_second: Double
    let imbalance: Imbalance?
    let stats_window_seconds: Double
    let assignment_epoch: UInt64

    init(_ s: Jamba_V1_StatusReply) {
        model = s.modelName
        fingerprint = s.modelFingerprint
        workers = s.workers.map { w in
            Worker(name: w.name, address: w.address, state: "\(w.state)",
                   experts: Dictionary(uniqueKeysWithValues: w.experts.map { ("\($0.layer)", $0.experts) }),
                   expert_count: w.experts.reduce(0) { $0 + $1.experts.count },
                   resident_bytes: w.residentBytes, queue_depth: w.queueDepth, ms_since_heartbeat: w.msSinceHeartbeat,
                   rows_served: w.rowsServed, busy_micros: w.busyMicros)
        }
        layers = s.layers.map { l in Layer(layer: l.layer, experts: l.experts.map { Expert(expert: $0.expert, holders: $0.holders, tokens_routed: $0.tokensRouted) }) }
        jobs_running = s.jobsRunning
        jobs_queued = s.jobsQueued
        tokens_per_second = s.tokensPerSecond
        imbalance = s.hasImbalance ? Imbalance(max_over_mean: s.imbalance.maxOverMean, worst_layer: s.imbalance.worstLayer,
                                               per_layer: Dictionary(uniqueKeysWithValues: s.imbalance.perLayer.map { ("\($0.layer)", $0.maxOverMean) })) : nil
        stats_window_seconds = s.statsWindowSeconds
        assignment_epoch = s.assignmentEpoch
    }

    func table() -> String {
        var out = "model \(model) (fingerprint \(fingerprint)), assignment epoch \(assignment_epoch)\n"
        out += String(format: "jobs: %d running, %d queued; %.1f tokens/s over the last %.0f s", jobs_running, jobs_queued, tokens_per_second, stats_window_seconds)
        if let imbalance { out += String(format: "; imbalance %.3f (worst layer %d)", imbalance.max_over_mean, imbalance.worst_layer) }
        out += "\n\nWORKER               STATE     EXPERTS  RESIDENT   QUEUE  HEARTBEAT  ROWS SERVED  BUSY s   ADDRESS\n"
        for w in workers {
            out += pad(w.name, 20) + " " + pad(w.state.replacingOccurrences(of: "WORKER_STATE_", with: "").lowercased(), 9)
            out += " " + pad("\(w.expert_count)", 8) + " " + pad(String(format: "%.1f MB", Double(w.resident_bytes) / 1e6), 10)
            out += " " + pad("\(w.queue_depth)", 6) + " " + pad("\(w.ms_since_heartbeat) ms", 10) + " " + pad("\(w.rows_served)", 12)
            out += " " + pad(String(format: "%.2f", Double(w.busy_micros) / 1e6), 8) + " " + w.address + "\n"
        }
        out += "\nEXPERTS per MoE layer: tokens routed over the window [holders]\n"
        for l in layers {
            out += "layer \(l.layer):"
            for e in l.experts { out += "  e\(e.expert)=\(e.tokens_routed) [\(e.holders.joined(separator: ","))]" }
            out += "\n"
        }
        return out
    }

    private func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
}
