// BenchCluster: the prefill and decode workloads through a real coordinator and N workers on loopback.
import ArgumentParser
import Foundation
import JambaCluster
import JambaMath
import JambaWire

struct ClusterBench {
    let model: String
    let workers: Int
    let threads: Int
    /// Threads per worker; nil: `threads` divided among the workers.
    let workerThreads: Int?
    /// Each worker pinned to its own cores (`jamba-worker --cpus`), when they fit.
    let pinWorkers: Bool
    /// How the coordinator and the workers hold their weights.
    let dtype: WeightDType
    let log: (String) -> Void

    /// Interleaved pairs for one batch size: `local(seed)` runs the same decode in this process (tok/s), then the
    /// cluster runs it; the bandwidth of this VM drifts by minutes, so a ratio is only fair within a pair.
    struct Pairs {
        let batch: Int
        let count: Int
        let local: (UInt64) throws -> Double
    }

    func run(batches: [Int], newTokens: Int, repeats: Int, vocab: Int, prefillTokens: Int = 0, pairs: Pairs? = nil) throws -> [BenchReport.Row] {
        let dtypeArgs = ["--weights-dtype", dtype.rawValue]
        let cluster = try LocalCluster(model: model, workers: workers, threads: threads, workerThreads: workerThreads,
                                       pinWorkers: pinWorkers, coordinatorArgs: dtypeArgs, workerArgs: dtypeArgs)
        defer { cluster.stop() }
        let clientEP = cluster.clientEndpoint
        let client = try ClusterClient(endpoint: clientEP, timeout: 120)
        let deadline = Date().addingTimeInterval(300)
        while Date() < deadline {
            if let s = try? client.status(), s.workers.filter({ $0.state == .live }).count == workers,
               s.layers.allSatisfy({ $0.experts.allSatisfy { !$0.holders.isEmpty } }) { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        var rows: [BenchReport.Row] = []
        if prefillTokens > 0 {
            // One job with a long prompt and one new token: the coordinator's prefill (in its chunks), every MoE
            // layer's rows sent to the workers. Time to first token is queue + prefill as the coordinator saw it.
            _ = try runJobs(1, promptLen: prefillTokens, newTokens: 1, endpoint: clientEP, vocab: vocab, seed: 3)  // warm-up
            var seconds: [Double] = [], ttfts: [Double] = []
            for r in 0..<repeats {
                let f = try runJobs(1, promptLen: prefillTokens, newTokens: 1, endpoint: clientEP, vocab: vocab, seed: UInt64(1 + r))[0]
                seconds.append(f.prefillMs / 1000)
                ttfts.append((f.queueMs + f.prefillMs) / 1000)
            }
            guard median(seconds) > 0 else { throw ValidationError("cluster prefill reported no time") }
            rows.append(BenchReport.Row(mode: "cluster \(workers)w", dtype: dtype.rawValue, scenario: "prefill\(prefillTokens)", batch: 1,
                                        tokensPerSecond: Double(prefillTokens) / median(seconds), ttftSeconds: median(ttfts),
                                        samples: seconds.map { Double(prefillTokens) / $0 }))
            log("cluster \(workers)w \(dtype) prefill \(prefillTokens): \(Int(Double(prefillTokens) / median(seconds))) tok/s")
        }
        for b in batches where b > 0 {
            _ = try runJobs(b, promptLen: 32, newTokens: 4, endpoint: clientEP, vocab: vocab, seed: 7)  // warm-up
            var rates: [Double] = [], jobRates: [Double] = [], ttfts: [Double] = []
            let before = try client.status().timings
            for r in 0..<repeats {
                let start = try client.status().timings
                let finals = try runJobs(b, promptLen: 32, newTokens: newTokens, endpoint: clientEP, vocab: vocab, seed: UInt64(100 * r + b))
                let jobRate = Self.jobDecodeRate(finals, batch: b, newTokens: newTokens)
                jobRates.append(jobRate)
                rates.append(Self.decodeStepRate(from: start, to: try client.status().timings) ?? jobRate)
                ttfts.append(median(finals.map { ($0.queueMs + $0.prefillMs) / 1000 }))
            }
            let after = try client.status().timings
            let stepMs = after.stepMs - before.stepMs
            var row = BenchReport.Row(mode: "cluster \(workers)w", dtype: dtype.rawValue, scenario: "decode_b\(b)", batch: b, tokensPerSecond: median(rates),
                                      ttftSeconds: median(ttfts), samples: rates)
            if stepMs > 0 {
                let decodeSteps = after.decodeSteps - before.decodeSteps
                row.msPerStep = decodeSteps > 0 ? (after.decodeStepMs - before.decodeStepMs) / Double(decodeSteps)
                                                : stepMs / Double(after.steps - before.steps)
                row.encodeShare = (after.encodeMs - before.encodeMs) / stepMs
                row.planShare = (after.planMs - before.planMs) / stepMs
                row.waitShare = (after.waitMs - before.waitMs) / stepMs
                row.decodeShare = (after.decodeMs - before.decodeMs) / stepMs
                row.workerComputeShare = (after.workerComputeMs - before.workerComputeMs) / stepMs
                row.slowestComputeShare = (after.slowestComputeMs - before.slowestComputeMs) / stepMs
                // Outside the executor, over the same steps as ms/step (decode-only ones when there were any).
                row.coordinatorMsPerStep = decodeSteps > 0
                    ? ((after.decodeStepMs - before.decodeStepMs) - (after.decodeExpertMs - before.decodeExpertMs)) / Double(decodeSteps)
                    : (stepMs - (after.expertMs - before.expertMs)) / Double(after.steps - before.steps)
                let steps = Double(max(1, after.steps - before.steps))
                row.requestBytesPerStep = Double(after.requestBytes - before.requestBytes) / steps
                row.replyBytesPerStep = Double(after.replyBytes - before.replyBytes) / steps
            }
            // tok/s × s/step = rows per step: b when every job decoded in every step (a check on the harness).
            let rowsPerStep = row.msPerStep.map { median(rates) * $0 / 1000 }
            log("cluster \(workers)w \(dtype) decode b\(b): \(String(format: "%.1f", median(rates))) tok/s over decode-only steps (per job, first to last token: \(String(format: "%.1f", median(jobRates)))), \(String(format: "%.1f", row.msPerStep ?? 0)) ms/step (coordinator outside the expert executor \(String(format: "%.1f", row.coordinatorMsPerStep ?? 0)) ms), \(rowsPerStep.map { String(format: "%.1f", $0) } ?? "?") rows/step, encode \(pct(row.encodeShare)) (plan \(pct(row.planShare))), wait \(pct(row.waitShare)) (slowest worker computing \(pct(row.slowestComputeShare)), all workers \(pct(row.workerComputeShare))), decode \(pct(row.decodeShare)), requests \(Int((row.requestBytesPerStep ?? 0) / 1024)) KB and replies \(Int((row.replyBytesPerStep ?? 0) / 1024)) KB per step")
            if let p = pairs, p.batch == b {
                var ratios: [Double] = []
                for i in 0..<p.count {
                    let seed = UInt64(1000 + 100 * i + b)
                    let single = try p.local(seed)
                    let start = try client.status().timings
                    let finals = try runJobs(b, promptLen: 32, newTokens: newTokens, endpoint: clientEP, vocab: vocab, seed: seed)
                    let cluster = Self.decodeStepRate(from: start, to: try client.status().timings)
                        ?? Self.jobDecodeRate(finals, batch: b, newTokens: newTokens)
                    ratios.append(cluster / single)
                    log("cluster \(workers)w \(dtype) decode b\(b) pair \(i + 1): single process \(String(format: "%.1f", single)) tok/s, cluster \(String(format: "%.1f", cluster)) tok/s, ratio \(String(format: "%.3f", cluster / single))")
                }
                row.pairedRatios = ratios
            }
            rows.append(row)
        }
        return rows
    }

    /// Tokens per second over the coordinator's decode-only steps between two status snapshots (every row a
    /// sequence's next token): what the single process measures over its decode steps. nil if there were none.
    static func decodeStepRate(from a: Jamba_V1_StepTimings, to b: Jamba_V1_StepTimings) -> Double? {
        let ms = b.decodeStepMs - a.decodeStepMs
        guard b.decodeSteps > a.decodeSteps, ms > 0 else { return nil }
        return Double(b.decodeRows - a.decodeRows) / (ms / 1000)
    }

    /// Tokens per second from the jobs' own decode times (first to last token of the slowest). Jobs are admitted
    /// as their requests arrive, so an early job's decode also spans the prompt steps of the later ones: at batch
    /// 32 this reads up to ~15% below the decode-step rate.
    static func jobDecodeRate(_ finals: [Jamba_V1_JobFinal], batch: Int, newTokens: Int) -> Double {
        Double(batch * (newTokens - 1)) / ((finals.map(\.decodeMs).max() ?? 0) / 1000)
    }

    private func pct(_ x: Double?) -> String { x.map { String(format: "%.1f%%", 100 * $0) } ?? "-" }

    /// `batch` concurrent jobs (one client thread each) of `promptLen` random tokens; returns their final events.
    private func runJobs(_ batch: Int, promptLen: Int, newTokens: Int, endpoint: String, vocab: Int, seed: UInt64) throws -> [Jamba_V1_JobFinal] {
        let results = FinalsBox(count: batch)
        runOnThreads(batch) { i in
            do {
                let c = try ClusterClient(endpoint: endpoint, timeout: 120)
                var job = Jamba_V1_SubmitJob()
                var ids = Jamba_V1_TokenIds()
                ids.ids = LocalBench.prompt(promptLen, seed: seed + UInt64(i), vocab: vocab).map { Int32($0) }
                job.tokens = ids
                var sp = Jamba_V1_SamplingParams()
                sp.maxTokens = UInt32(newTokens)
                sp.ignoreEos = true
                job.sampling = sp
                job.stream = false
                // A job the cluster could not finish still ends with a final event (reason ERROR, after an error
                // event); timing it would report infinite tokens/s, so it fails the run with the cluster's reason.
                var reason: String?
                let final = try c.submit(job) { ev in if case .error(let e) = ev.event { reason = e.message } }
                guard final.finishReason != .error, final.completionTokens == UInt32(newTokens) else {
                    throw ValidationError("job \(i) ended \(final.finishReason) after \(final.completionTokens) of \(newTokens) tokens: \(reason ?? "no reason given")")
                }
                results.set(i, final)
            } catch {
                results.fail("\(error)")
            }
        }
        if let e = results.error { throw ValidationError("cluster job failed: \(e)") }
        return results.all
    }
}

final class FinalsBox: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var finals: [Jamba_V1_JobFinal]
    private(set) var error: String?
    init(count: Int) { finals = Array(repeating: Jamba_V1_JobFinal(), count: count) }
    func set(_ i: Int, _ f: Jamba_V1_JobFinal) { lock.lock(); finals[i] = f; lock.unlock() }
    func fail(_ e: String) { lock.lock(); error = e; lock.unlock() }
    var all: [Jamba_V1_JobFinal] { lock.lock(); defer { lock.unlock() }; return finals }
}
