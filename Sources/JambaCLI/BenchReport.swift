// BenchReport: benchmark results with the machine's limits, as JSON and as a Markdown table beside the references.
import Foundation

struct BenchReport: Codable {
    struct Limits: Codable {
        /// [m, n, k] of the sgemm measured.
        var sgemmShape: [Int]
        /// Indexed by threads - 1.
        var sgemmGFLOPS: [Double]
        /// Our few-row kernel at a prefill chunk's rows on aligned weights in cache (`MachineLimits.fewRowsGFLOPS`; 32
        /// rows unaligned before 2026-12-06); absent in older JSON.
        var fewRowsGFLOPS: [Double]?

        /// The compute limit: the better of OpenBLAS's sgemm and our own kernel, as the read limit is the better of two.
        func computeGFLOPS(threads i: Int) -> Double {
            max(sgemmGFLOPS[i], fewRowsGFLOPS.flatMap { $0.indices.contains(i) ? $0[i] : nil } ?? 0)
        }
        /// The memory read limit: the better of `sumGBps` and `streamGBps`.
        var readGBps: [Double]
        /// A SIMD sum over 1 GiB split across the threads.
        var sumGBps: [Double]
        /// The few-row kernel streaming a 1 GiB matrix against one row.
        var streamGBps: [Double]
        var sgemvGBps: [Double]
    }

    /// Weights per token (elements; bytes are these × the dtype's size, norms and SSM vectors aside).
    struct Parameters: Codable {
        var nonExpertParametersPerToken: Int
        var expertParameters: Int
        var moeLayers: Int
        var topK: Int
    }

    struct Row: Codable {
        var mode: String
        /// How the weights were held: f32 or bf16.
        var dtype: String
        var scenario: String
        var batch: Int
        var tokensPerSecond: Double
        var ttftSeconds: Double
        var samples: [Double]
        /// FLOP/s (prefill) or bytes/s of weights streamed (decode).
        var achievedPerSecond: Double?
        var limitKind: String?
        var msPerStep: Double?
        var bytesPerStep: Double?
        /// Fraction of the step spent in encoding, waiting for workers (transport + their compute), decoding.
        var encodeShare: Double?
        /// Of `encodeShare`: the part spent planning the dispatch (scheduler), the rest is the codec and the send.
        var planShare: Double?
        var waitShare: Double?
        var decodeShare: Double?
        var workerComputeShare: Double?
        /// Per layer, the slowest worker's compute, summed, as a share of step time (the critical path of `wait`).
        var slowestComputeShare: Double?
        /// Coordinator time per step outside the remote expert executor (its own layers), ms.
        var coordinatorMsPerStep: Double?
        /// Serialized expert requests and replies per engine step, bytes (all of the scenario's steps).
        var requestBytesPerStep: Double?
        var replyBytesPerStep: Double?
        /// cluster ÷ single-process tokens/s of interleaved pairs (a single-process run, then a cluster run).
        var pairedRatios: [Double]?
        /// achieved ÷ the matching limit with the run's thread count, filled in by `add`.
        var ofLimit: Double?
        /// A decode step's parts that run one after the other (the layers outside the experts, then the experts),
        /// each with the bytes of weights it streams and its arithmetic, for the step's roofline.
        var parts: [Part]?
        /// Roofline time ÷ the measured step, and what bound each part; filled in by `add`. Each part takes at least
        /// the longer of streaming its bytes at the read limit and doing its FLOPs at the sgemm limit, so no step
        /// can beat the sum of those on this machine, whichever resource binds (memory at small batches, arithmetic
        /// outside the experts at batch 32).
        var ofRoofline: Double?
        var roofBound: String?
        /// The read limit measured just before and just after this row's runs, GB/s. When present, `ofLimit` and the
        /// roofline's memory parts use their mean instead of the limit measured at the end of the bench.
        var readLimitGBps: [Double]?

        /// The compute limit measured just before and just after this row's runs (prefill), GFLOP/s: the better of
        /// sgemm at the limits' shape and our kernel, each time. When present, `ofLimit` uses their mean.
        var computeLimitGFLOPS: [Double]?

        /// The compute limit this row is set against, GFLOP/s.
        func computeLimit(_ limits: Limits, threads i: Int) -> Double {
            if let own = computeLimitGFLOPS, !own.isEmpty { return own.reduce(0, +) / Double(own.count) }
            return limits.computeGFLOPS(threads: i)
        }

        /// The read limit this row is set against, GB/s.
        func readLimit(_ limits: Limits, threads i: Int) -> Double {
            if let own = readLimitGBps, !own.isEmpty { return own.reduce(0, +) / Double(own.count) }
            return limits.readGBps[i]
        }
    }

    /// Part of a step for its roofline: weights streamed and arithmetic done.
    struct Part: Codable {
        var name: String
        var bytes: Double
        var flops: Double
    }

    var model: String
    var threads: Int
    var date: String
    var limits: Limits?
    var parameters: Parameters?
    var rows: [Row] = []
    /// Peak resident set of the benchmark process, per weights dtype (each dtype loads the model afresh).
    var peakRSSBytes: [String: Int] = [:]
    /// Other engines' figures on the same model (bench/reference/*.json), printed beside ours.
    var references: [Reference] = []
    /// Ours (bf16) ÷ llama.cpp (f16) at batch 1 in interleaved pairs (tools/bench/interleave.py) made after this
    /// run started; `make bench` runs them after the bench and renders again. The separate llama.cpp run is minutes
    /// away from ours, and this machine's bandwidth drifts by more than the margin in that time.
    var interleavedB1: [Double]?

    init(model: String, threads: Int, date: String) {
        self.model = model
        self.threads = threads
        self.date = date
    }

    mutating func add(_ r: Row) {
        rows.append(r)
        applyLimits()
    }

    /// Fills each row's achieved ÷ limit once the limits are measured (they are measured after the single-process
    /// runs, so that their 1 GiB buffers do not count in those runs' peak resident memory).
    mutating func applyLimits() {
        guard let l = limits else { return }
        let i = max(0, min(threads, l.sgemmGFLOPS.count) - 1)
        for j in rows.indices {
            guard let a = rows[j].achievedPerSecond, let kind = rows[j].limitKind else { continue }
            let read = rows[j].readLimit(l, threads: i)
            rows[j].ofLimit = kind == "flops" ? a / (rows[j].computeLimit(l, threads: i) * 1e9) : a / (read * 1e9)
            if let parts = rows[j].parts, !parts.isEmpty, let ms = rows[j].msPerStep, ms > 0,
               let roof = Self.roofline(parts, readGBps: read, sgemmGFLOPS: l.computeGFLOPS(threads: i)) {
                rows[j].ofRoofline = 1000 * roof.seconds / ms
                rows[j].roofBound = roof.bound
            }
        }
    }

    mutating func add(contentsOf rs: [Row]) { for r in rs { add(r) } }

    /// The least time parts run in sequence take at these limits, and what binds each ("memory", "compute", or
    /// per part, e.g. "dense: compute, experts: memory").
    static func roofline(_ parts: [Part], readGBps: Double, sgemmGFLOPS: Double) -> (seconds: Double, bound: String)? {
        guard readGBps > 0, sgemmGFLOPS > 0 else { return nil }
        var seconds = 0.0
        var bounds: [(String, String)] = []
        for p in parts {
            let memory = p.bytes / (readGBps * 1e9), compute = p.flops / (sgemmGFLOPS * 1e9)
            seconds += max(memory, compute)
            bounds.append((p.name, memory >= compute ? "memory" : "compute"))
        }
        let kinds = Set(bounds.map(\.1))
        return (seconds, kinds.count == 1 ? bounds[0].1 : bounds.map { "\($0.0): \($0.1)" }.joined(separator: ", "))
    }

    func write(stem: String) throws {
        let url = URL(fileURLWithPath: stem)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(self).write(to: URL(fileURLWithPath: stem + ".json"))
        try Data(markdown().utf8).write(to: URL(fileURLWithPath: stem + ".md"))
    }

    func markdown() -> String {
        var s = "# JambaCluster benchmark\n\n"
        s += "Model `\(model)`, \(threads) BLAS thread(s), \(date). Medians of the repeats; ratios are against limits measured in the same run. Decode rows are set against the memory read limit measured just before and after their own runs (\"88% of 34.1\": GB/s, the mean of the two), and single-process prefill rows against the compute limit measured the same way (GFLOP/s), because this machine's speed drifts within minutes; the table below is measured at the end.\n\n"
        if let l = limits {
            s += "| machine limit | 1 thread | \(l.sgemmGFLOPS.count) threads |\n|---|---|---|\n"
            s += "| sgemm \(l.sgemmShape.map(String.init).joined(separator: "×")) GFLOP/s | \(f(l.sgemmGFLOPS.first)) | \(f(l.sgemmGFLOPS.last)) |\n"
            if let few = l.fewRowsGFLOPS {
                s += "| few-row kernel, a prefill chunk of rows, f32 weights in cache, GFLOP/s | \(f(few.first)) | \(f(few.last)) |\n"
                s += "| **compute limit** (the better of the two) | \(f(l.computeGFLOPS(threads: 0))) | \(f(l.computeGFLOPS(threads: l.sgemmGFLOPS.count - 1))) |\n"
            }
            s += "| memory read GB/s: SIMD sum of 1 GiB | \(f(l.sumGBps.first)) | \(f(l.sumGBps.last)) |\n"
            s += "| memory read GB/s: few-row kernel streaming 1 GiB | \(f(l.streamGBps.first)) | \(f(l.streamGBps.last)) |\n"
            s += "| **memory read limit** (the better of the two) | \(f(l.readGBps.first)) | \(f(l.readGBps.last)) |\n"
            s += "| sgemv GB/s | \(f(l.sgemvGBps.first)) | \(f(l.sgemvGBps.last)) |\n\n"
        }
        s += "| mode | weights | scenario | tok/s | TTFT s | ms/step | MB/step | achieved | of limit | of roofline | encode (of it: plan) | wait | decode |\n"
        s += "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        for r in rows {
            let achieved = r.achievedPerSecond.map { r.limitKind == "flops" ? "\(f($0 / 1e9)) GFLOP/s" : "\(f($0 / 1e9)) GB/s" } ?? ""
            s += "| \(r.mode) | \(r.dtype) | \(r.scenario) | \(f(r.tokensPerSecond)) | \(f3(r.ttftSeconds)) | \(r.msPerStep.map(f) ?? "") | "
            let roof = r.ofRoofline.map { pct($0) + (r.roofBound.map { " (\($0))" } ?? "") } ?? ""
            // A row with its own limit shows it: "88% of 34.1" (GB/s or GFLOP/s, the mean of before and after its runs).
            let own = (r.limitKind == "flops" ? r.computeLimitGFLOPS : r.readLimitGBps)
                .flatMap { $0.isEmpty ? nil : $0.reduce(0, +) / Double($0.count) }
            let ofLimit = r.ofLimit.map { pct($0) + (own.map { " of \(f($0))" } ?? "") } ?? ""
            s += "\(r.bytesPerStep.map { f($0 / 1e6) } ?? "") | \(achieved) | \(ofLimit) | \(roof) | "
            s += "\(r.encodeShare.map(pct) ?? "")\(r.planShare.map { " (" + pct($0) + ")" } ?? "") | \(r.waitShare.map(pct) ?? "") | \(r.decodeShare.map(pct) ?? "") |\n"
        }
        for (dtype, bytes) in peakRSSBytes.sorted(by: { $0.key > $1.key }) {
            s += "\nPeak resident memory of the benchmark process with \(dtype) weights: \(f(Double(bytes) / 1e9)) GB (without the bench's 512 MiB read-limit probe)."
        }
        s += "\n" + sideBySide() + targets()
        return s
    }

    private func f(_ x: Double?) -> String { x.map { String(format: $0 >= 100 ? "%.0f" : "%.1f", $0) } ?? "" }
    private func f(_ x: Double) -> String { String(format: x >= 100 ? "%.0f" : "%.1f", x) }
    private func f3(_ x: Double) -> String { String(format: "%.3f", x) }
    private func pct(_ x: Double) -> String { String(format: "%.0f%%", 100 * x) }
}
