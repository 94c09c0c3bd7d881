// BenchBalance: `jamba bench-balance`: imbalance and tokens/s with static round-robin placement, then after rebalancing.
import ArgumentParser
import Foundation
import JambaCluster
import JambaModel
import JambaWire

struct BenchBalance: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-balance",
        abstract: "Skewed-routing benchmark: a cluster starts with round-robin placement, is measured, rebalances, is measured again.")

    @Option(help: "Model folder (ideally one whose routers prefer a few experts: tools/skew/make_skewed_model.py).") var model: String
    @Option(help: "Expert workers.") var workers = 4
    @Option(help: "Spare expert slots per worker beyond an even share.") var spareSlots = 0.25
    @Option(help: "Concurrent jobs per measurement.") var jobs = 16
    @Option(help: "New tokens per job.") var newTokens = 32
    @Option(help: "Measurements per phase (median reported).") var repeats = 3
    @Option(help: "BLAS threads per process.") var threads = 1
    @Option(help: "Output file stem.") var out = "bench/balance"

    struct Phase: Codable {
        var placement: String
        var expectedImbalance: Double
        var perLayerImbalance: [String: Double]
        var rowsServedMaxOverMean: Double
        var tokensPerSecond: Double
        var samples: [Double]
        var copies: Int
    }

    struct Report: Codable {
        var model: String, workers: Int, spareSlots: Double, jobs: Int, newTokens: Int, date: String
        var before: Phase?
        var after: Phase?
        var moves: Int = 0
    }

    func run() throws {
        try reportingErrors {
            let vocab = try JambaConfig.load(directory: URL(fileURLWithPath: model)).vocabSize
            // Threads divided among the workers, so each is a share of the machine and the planner's balance shows.
            let cluster = try LocalCluster(model: model, workers: workers, threads: threads,
                                           workerThreads: max(1, threads / max(1, workers)), coordinatorArgs: [
                "--placement", "round-robin", "--spare-slots", "\(spareSlots)", "--auto-rebalance", "0"])
            defer { cluster.stop() }
            let clientEP = cluster.clientEndpoint
            let client = try ClusterClient(endpoint: clientEP, timeout: 60)
            try waitSettled(client, minCopies: 1)
            var report = Report(model: model, workers: workers, spareSlots: spareSlots, jobs: jobs, newTokens: newTokens,
                                date: ISO8601DateFormatter().string(from: Date()))
            _ = try workload(clientEP, vocab: vocab, seed: 1)  // fills the routing window
            report.before = try measure(client, endpoint: clientEP, vocab: vocab, name: "round-robin")
            let plan = try client.rebalance(dryRun: false)
            report.moves = plan.moves.count
            log("rebalance: expected imbalance \(String(format: "%.3f", plan.imbalanceBefore)) -> \(String(format: "%.3f", plan.imbalanceAfter)), \(plan.moves.count) moves")
            // Settled: the replicas serve (more copies than round-robin's one each) and the count stopped changing.
            try waitSettled(client, minCopies: (report.before?.copies ?? 0) + 1)
            _ = try workload(clientEP, vocab: vocab, seed: 2)
            report.after = try measure(client, endpoint: clientEP, vocab: vocab, name: "rebalanced")
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try FileManager.default.createDirectory(at: URL(fileURLWithPath: out).deletingLastPathComponent(), withIntermediateDirectories: true)
            try enc.encode(report).write(to: URL(fileURLWithPath: out + ".json"))
            let md = markdown(report)
            try Data(md.utf8).write(to: URL(fileURLWithPath: out + ".md"))
            print(md)
        }
    }

    func log(_ s: String) { FileHandle.standardError.write(Data("[bench-balance] \(s)\n".utf8)) }

    func copies(_ s: Jamba_V1_StatusReply) -> Int { s.layers.reduce(0) { $0 + $1.experts.reduce(0) { $0 + $1.holders.count } } }

    /// Waits until every worker is live, every expert placed, and (after a rebalance) the new copies serve.
    func waitSettled(_ c: ClusterClient, minCopies: Int) throws {
        let deadline = Date().addingTimeInterval(300)
        var stable = 0, last = -1
        while Date() < deadline {
            if let s = try? c.status(), s.workers.filter({ $0.state == .live }).count == workers,
               s.layers.allSatisfy({ $0.experts.allSatisfy { !$0.holders.isEmpty } }), copies(s) >= minCopies {
                stable = copies(s) == last ? stable + 1 : 0
                last = copies(s)
                if stable >= 5 { return }
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw ValidationError("cluster did not settle")
    }

    func measure(_ c: ClusterClient, endpoint: String, vocab: Int, name: String) throws -> Phase {
        var rates: [Double] = []
        let before = try c.status()
        for r in 0..<repeats { rates.append(try workload(endpoint, vocab: vocab, seed: UInt64(10 + r))) }
        let s = try c.status()
        let served = s.workers.map { w in Double(w.rowsServed - (before.workers.first { $0.name == w.name }?.rowsServed ?? 0)) }
        let mean = served.reduce(0, +) / Double(max(1, served.count))
        let phase = Phase(placement: name, expectedImbalance: s.imbalance.maxOverMean,
                          perLayerImbalance: Dictionary(uniqueKeysWithValues: s.imbalance.perLayer.map { ("\($0.layer)", $0.maxOverMean) }),
                          rowsServedMaxOverMean: mean > 0 ? (served.max() ?? 0) / mean : 0,
                          tokensPerSecond: median(rates), samples: rates, copies: copies(s))
        log("\(name): imbalance \(String(format: "%.3f", phase.expectedImbalance)) (rows served max/mean \(String(format: "%.3f", phase.rowsServedMaxOverMean))), \(String(format: "%.1f", phase.tokensPerSecond)) tok/s, \(phase.copies) expert copies")
        return phase
    }

    /// `jobs` concurrent greedy jobs; returns generated tokens per second of wall time.
    func workload(_ endpoint: String, vocab: Int, seed: UInt64) throws -> Double {
        let box = FinalsBox(count: jobs)
        let t0 = Date()
        runOnThreads(jobs) { i in
            do {
                let c = try ClusterClient(endpoint: endpoint, timeout: 120)
                var job = Jamba_V1_SubmitJob()
                var ids = Jamba_V1_TokenIds()
                ids.ids = LocalBench.prompt(16, seed: seed * 1000 + UInt64(i), vocab: vocab).map { Int32($0) }
                job.tokens = ids
                var sp = Jamba_V1_SamplingParams()
                sp.maxTokens = UInt32(newTokens)
                sp.ignoreEos = true
                job.sampling = sp
                box.set(i, try c.submit(job) { _ in })
            } catch {
                box.fail("\(error)")
            }
        }
        if let e = box.error { throw ValidationError("job failed: \(e)") }
        return Double(jobs * newTokens) / Date().timeIntervalSince(t0)
    }

    func markdown(_ r: Report) -> String {
        var s = "# Expert balancing benchmark\n\nModel `\(r.model)`, \(r.workers) workers, \(Int(r.spareSlots * 100))% spare expert slots, "
        s += "\(r.jobs) concurrent jobs × \(r.newTokens) new tokens, \(r.date). Imbalance = max/mean expected per-worker load "
        s += "over the measured routing window (worst layer); rows served = max/mean rows computed per worker in the phase.\n\n"
        s += "| placement | imbalance (worst layer) | rows served max/mean | tok/s | expert copies |\n|---|---|---|---|---|\n"
        for p in [r.before, r.after].compactMap({ $0 }) {
            s += String(format: "| %@ | %.3f | %.3f | %.1f | %d |\n", p.placement, p.expectedImbalance, p.rowsServedMaxOverMean, p.tokensPerSecond, p.copies)
        }
        s += "\nRebalance moves: \(r.moves).\n"
        return s
    }
}
