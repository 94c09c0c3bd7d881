// BenchCommand: `jamba bench`: prefill and decode throughput with this machine's limits measured in the same run.
import ArgumentParser
import Foundation
import JambaMath
import JambaModel

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark prefill and decode, single-process and through a local cluster; writes bench/*.json and *.md.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Repeats per scenario (the median is reported).") var repeats = 3
    @Option(help: "New tokens per decode run.") var newTokens = 128
    @Option(help: "Decode batch sizes.") var batches = "1,8,32"
    @Option(help: "Prefill prompt length, single-process and cluster runs (0: no prefill run).") var prefillTokens = 512
    @Option(help: "Cluster runs with these worker counts (empty: none).") var clusterWorkers = "1,2"
    @Option(help: "Cluster decode batch sizes.") var clusterBatches = "1,8,32"
    @Option(help: "Weight precisions of the single-process runs, smallest first (peak RSS is a lifetime maximum, so each figure includes the runs before it).")
    var dtypes = "bf16,f32"
    @Option(help: "Weight precisions of the cluster runs (coordinator and workers).") var clusterDtypes = "f32"
    @Option(help: "Interleaved pairs (a single-process run, then a cluster run) for the 2-worker batch-8 ratio; 0: none.")
    var clusterPairs = 5
    @Option(help: "Threads per worker in the cluster runs (default: --threads, so that the workers, sharing this machine's cores, hold whole layers and take layer steps in turn; fewer makes them split every step).")
    var clusterWorkerThreads: Int?
    @Flag(help: "Pin each cluster worker to its own cores (jamba-worker --cpus) when their threads fit in this machine's (measured within noise here: bench/cluster-overheads.md).")
    var clusterPinWorkers = false
    @Option(help: "Folder of other engines' figures (tools/bench/run_transformers.py, run_llamacpp.sh).")
    var reference = "bench/reference"
    @Option(help: "Interleaved bf16-against-llama.cpp-f16 pairs (tools/bench/interleave.py); --render-only uses their batch-1 ratio for the target when they were made after this run started.")
    var interleaved = "bench/interleaved.json"
    @Option(help: "Output file stem: writes STEM.json and STEM.md.") var out = "bench/results"
    @Flag(help: "Products beyond the few-row limit through sgemm only (what BLAS.chunksFewRows is compared against).")
    var manyRowsSgemm = false
    @Flag(help: "Skip the machine-limit micro-benchmarks (quick runs only; ratios are then omitted).") var noLimits = false
    @Flag(help: "Measure nothing: re-read STEM.json, the reference folder and --interleaved, and rewrite STEM.json and STEM.md.")
    var renderOnly = false

    func validate() throws {
        guard prefillTokens >= 0 else { throw ValidationError("--prefill-tokens must be ≥ 0, not \(prefillTokens)") }
        guard modelOptions.weightsDtype == .f32 else { throw ValidationError("bench takes --dtypes and --cluster-dtypes, not --weights-dtype") }
        _ = try parseDTypes(dtypes, flag: "--dtypes")
        _ = try parseDTypes(clusterDtypes, flag: "--cluster-dtypes")
        if let t = clusterWorkerThreads, !(1...256).contains(t) {
            throw ValidationError("--cluster-worker-threads must be 1...256, not \(t)")
        }
    }

    func parseDTypes(_ s: String, flag: String) throws -> [WeightDType] {
        try s.split(separator: ",").map { part in
            guard let d = WeightDType(rawValue: String(part).trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("\(flag): unknown weight dtype '\(part)' (expected f32 or bf16)")
            }
            return d
        }
    }

    func run() throws {
        BLAS.chunkedManyRows = !manyRowsSgemm
        try reportingErrors {
            if renderOnly {
                var report = try JSONDecoder().decode(BenchReport.self, from: Data(contentsOf: URL(fileURLWithPath: out + ".json")))
                report.references = try BenchReport.loadReferences(directory: reference)
                report.interleavedB1 = try BenchReport.loadInterleavedB1(file: interleaved, notBefore: report.date)
                report.applyLimits()
                try report.write(stem: out)
                print(report.markdown())
                return
            }
            let threads = modelOptions.threads ?? BLAS.threads
            BLAS.setThreads(threads)
            var report = BenchReport(model: modelOptions.model, threads: threads, date: ISO8601DateFormatter().string(from: Date()))
            report.references = try BenchReport.loadReferences(directory: reference)
            var vocab = 0
            // Allocated before any model, so that it counts the same in every dtype's peak and is subtracted there.
            let probe = noLimits ? nil : MachineLimits.ReadProbe()
            for dtype in try parseDTypes(dtypes, flag: "--dtypes") {
                let local = try LocalModel(modelOptions, weightsDType: dtype)
                let m = local.model
                vocab = m.config.vocabSize
                if report.parameters == nil {
                    report.parameters = BenchReport.Parameters(nonExpertParametersPerToken: m.nonExpertParametersPerToken,
                                                               expertParameters: m.expertParameters,
                                                               moeLayers: m.config.moeLayers.count, topK: m.config.numExpertsPerTok)
                }
                try runLocal(local, dtype: dtype, report: &report, probe: probe)
                report.peakRSSBytes[dtype.rawValue] = peakRSS() - (probe?.bytes ?? 0)
            }
            if !noLimits {
                let config = try JambaConfig.load(directory: modelOptions.url)
                report.limits = measureLimits(config: config, threads: threads)
                report.applyLimits()
                log("limits: \(report.limits.map { "sgemm \(Int($0.sgemmGFLOPS[threads - 1])) GFLOP/s, few-row kernel \(Int($0.fewRowsGFLOPS?[threads - 1] ?? 0)) GFLOP/s, read \(Int($0.readGBps[threads - 1])) GB/s" } ?? "skipped")")
            }

            let workerCounts = clusterWorkers.isEmpty ? [] : try parseTokenList(clusterWorkers, flag: "--cluster-workers")
            if !workerCounts.isEmpty {
                let cb = try parseTokenList(clusterBatches, flag: "--cluster-batches")
                if vocab == 0 { vocab = try JambaConfig.load(directory: modelOptions.url).vocabSize }
                for dtype in try parseDTypes(clusterDtypes, flag: "--cluster-dtypes") {
                    for n in workerCounts where n > 0 {
                        var pairs: ClusterBench.Pairs?
                        if n == 2, cb.contains(8), clusterPairs > 0 {
                            // The single-process side of each pair runs in this process, loaded again here (after
                            // the peak-memory figures were taken, so they stay per dtype).
                            let local = try LocalModel(modelOptions, weightsDType: dtype)
                            var bench = LocalBench(model: local.model, experts: local.experts)
                            let (tokens, b) = (newTokens, 8)
                            pairs = ClusterBench.Pairs(batch: b, count: clusterPairs) { seed in
                                let run = try bench.decode(batch: b, promptLen: 32, newTokens: tokens, seed: seed)
                                return Double(b * run.stepSeconds.count) / run.stepSeconds.reduce(0, +)
                            }
                        }
                        try report.add(contentsOf: ClusterBench(model: modelOptions.model, workers: n, threads: threads, workerThreads: clusterWorkerThreads,
                                                                  pinWorkers: clusterPinWorkers,
                                                                  dtype: dtype, log: log)
                            .run(batches: cb, newTokens: newTokens, repeats: repeats, vocab: vocab, prefillTokens: prefillTokens, pairs: pairs))
                    }
                }
            }
            try report.write(stem: out)
            print(report.markdown())
        }
    }

    /// Prefill and decode scenarios on a model loaded in this process.
    func runLocal(_ local: LocalModel, dtype: WeightDType, report: inout BenchReport, probe: MachineLimits.ReadProbe?) throws {
        let m = local.model
        var bench = LocalBench(model: m, experts: local.experts)
        if prefillTokens > 0 {
            let prompt = LocalBench.prompt(prefillTokens, seed: 1, vocab: m.config.vocabSize)
            // The compute limit of these minutes, as decode's read limit below: this VM's arithmetic speed drifts too.
            var computeLimits: [Double] = []
            if probe != nil { computeLimits.append(computeLimitNow(config: m.config)) }
            let times = try bench.prefill(prompt, repeats: repeats)
            if probe != nil { computeLimits.append(computeLimitNow(config: m.config)) }
            let flops = 2.0 * Double(prefillTokens) * Double(activeParams(m))
            report.add(.init(mode: "local", dtype: dtype.rawValue, scenario: "prefill\(prefillTokens)", batch: 1,
                             tokensPerSecond: Double(prefillTokens) / median(times), ttftSeconds: median(times),
                             samples: times.map { Double(prefillTokens) / $0 }, achievedPerSecond: flops / median(times), limitKind: "flops",
                             computeLimitGFLOPS: computeLimits.isEmpty ? nil : computeLimits))
            let limits = computeLimits.isEmpty ? "" : ", compute limit before/after \(computeLimits.map { String(format: "%.0f", $0) }.joined(separator: "/")) GFLOP/s"
            log("\(dtype) prefill \(prefillTokens): \(Int(Double(prefillTokens) / median(times))) tok/s\(limits)")
        }

        for b in try parseTokenList(batches, flag: "--batches") where b > 0 {
            var runs: [LocalBench.DecodeRun] = []
            // The read limit of these minutes: measured just before and just after the runs (the one at the end of the
            // bench can be a minute and 1.5× away).
            var readLimits: [Double] = []
            if let probe { readLimits.append(probe.readGBps(threads: BLAS.threads)) }
            for r in 0..<repeats { runs.append(try bench.decode(batch: b, promptLen: 32, newTokens: newTokens, seed: UInt64(100 * r + b))) }
            if let probe { readLimits.append(probe.readGBps(threads: BLAS.threads)) }
            let perRun = runs.map { Double(b * $0.stepSeconds.count) / $0.stepSeconds.reduce(0, +) }
            let stepMedian = median(runs.flatMap(\.stepSeconds))
            let experts = median(runs.flatMap { $0.expertsPerStep.map(Double.init) })
            let bytes = Double(m.nonExpertBytesPerToken) + experts * Double(m.expertBytes)
            // Every row multiplies through the non-expert weights (LM head included) and its top-k experts per MoE layer;
            // the step streams the non-expert weights once and each expert any row uses once.
            let parts = [BenchReport.Part(name: "dense", bytes: Double(m.nonExpertBytesPerToken),
                                          flops: 2.0 * Double(b) * Double(m.nonExpertParametersPerToken)),
                         BenchReport.Part(name: "experts", bytes: experts * Double(m.expertBytes),
                                          flops: 2.0 * Double(b * m.config.moeLayers.count * m.config.numExpertsPerTok * m.expertParameters))]
            report.add(.init(mode: "local", dtype: dtype.rawValue, scenario: "decode_b\(b)", batch: b, tokensPerSecond: median(perRun),
                             ttftSeconds: median(runs.map(\.ttft)), samples: perRun,
                             achievedPerSecond: bytes / stepMedian, limitKind: "bytes",
                             msPerStep: 1000 * stepMedian, bytesPerStep: bytes, parts: parts,
                             readLimitGBps: readLimits.isEmpty ? nil : readLimits))
            let expertMs = 1000 * median(runs.flatMap(\.expertSecondsPerStep))
            let limits = readLimits.isEmpty ? "" : ", read limit before/after \(readLimits.map { String(format: "%.1f", $0) }.joined(separator: "/")) GB/s"
            log("\(dtype) decode b\(b): \(String(format: "%.1f", median(perRun))) tok/s, \(String(format: "%.1f", 1000 * stepMedian)) ms/step (experts \(String(format: "%.1f", expertMs)) ms), \(Int(bytes / 1e6)) MB/step\(limits)")
        }
    }

    func log(_ s: String) { FileHandle.standardError.write(Data("[bench] \(s)\n".utf8)) }

    /// Parameters a prefill token multiplies through (no embedding, LM head once per prompt is ignored).
    func activeParams(_ m: JambaModel) -> Int {
        m.nonExpertParametersPerToken - m.lmHead.count + m.config.moeLayers.count * m.config.numExpertsPerTok * m.expertParameters
    }

    /// The compute limit now, GFLOP/s, with the run's threads: the better of sgemm at the limits' shape and our kernel
    /// (each best of 3; about a second).
    func computeLimitNow(config c: JambaConfig) -> Double {
        let t = prefillTokens > 0 ? prefillTokens : 512
        let sgemm = MachineLimits.sgemmGFLOPS(m: t, n: 2 * c.intermediateSize, k: c.hiddenSize, threads: BLAS.threads, repeats: 3)
        return max(sgemm, MachineLimits.fewRowsGFLOPS(threads: BLAS.threads, repeats: 3))
    }

    func measureLimits(config c: JambaConfig, threads: Int) -> BenchReport.Limits {
        // sgemm at the model's largest prefill shape: [T, H] · gate_up[2I, H]ᵀ (T = 512 when prefill is not run).
        let t = prefillTokens > 0 ? prefillTokens : 512
        let ts = Array(1...max(1, threads))
        let sum = ts.map { MachineLimits.memoryReadGBps(threads: $0) }
        let stream = ts.map { MachineLimits.streamGBps(threads: $0) }
        return BenchReport.Limits(
            sgemmShape: [t, 2 * c.intermediateSize, c.hiddenSize],
            sgemmGFLOPS: ts.map { MachineLimits.sgemmGFLOPS(m: t, n: 2 * c.intermediateSize, k: c.hiddenSize, threads: $0) },
            fewRowsGFLOPS: ts.map { MachineLimits.fewRowsGFLOPS(threads: $0) },
            readGBps: zip(sum, stream).map { max($0, $1) }, sumGBps: sum, streamGBps: stream,
            sgemvGBps: ts.map { MachineLimits.sgemvGBps(threads: $0) })
    }
}
