// ClusterCommands: `submit`, `status` and `rebalance` against a running coordinator.
import ArgumentParser
import Foundation
import JambaCluster
import JambaWire

struct CoordinatorOptions: ParsableArguments {
    @Option(name: .long, help: "The coordinator's client endpoint.")
    var coordinator = "tcp://127.0.0.1:7400"

    @Option(name: .long, help: "Seconds to wait for the coordinator to answer.")
    var timeout = 5.0

    func client() throws -> ClusterClient { try ClusterClient(endpoint: coordinator, timeout: timeout) }
}

struct Submit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Submit a job to a coordinator and print its text as it arrives.")

    @OptionGroup var target: CoordinatorOptions
    @OptionGroup var promptOptions: PromptOptions
    @OptionGroup var sampling: SamplingOptions
    @Flag(name: .long, help: "Print one JSON object at the end instead of streaming text.")
    var json = false

    struct Output: Encodable {
        let job: UInt64
        let tokens: [Int]
        let text: String
        let finish_reason: String
        let prompt_tokens: UInt32
        let queue_ms: Double
        let prefill_ms: Double
        let decode_ms: Double
    }

    func run() throws {
        try reportingErrors {
            var job = Jamba_V1_SubmitJob()
            if let p = promptOptions.prompt { job.text = p }
            if let t = promptOptions.tokens {
                var ids = Jamba_V1_TokenIds()
                ids.ids = try parseTokenList(t).map { Int32(clamping: $0) }
                job.tokens = ids
            }
            var sp = Jamba_V1_SamplingParams()
            sp.temperature = sampling.temperature
            sp.topK = Int32(clamping: sampling.topK)
            sp.topP = sampling.topP
            if let seed = sampling.seed { sp.seed = seed }
            sp.maxTokens = UInt32(clamping: sampling.maxTokens)
            sp.ignoreEos = sampling.ignoreEos
            job.sampling = sp
            job.stream = !json
            var tokens: [Int] = [], text = "", jobID: UInt64 = 0, errorMessage: String?
            let final = try target.client().submit(job) { ev in
                jobID = ev.jobID
                switch ev.event {
                case .tokens(let chunk):
                    tokens += chunk.tokenIds.map(Int.init)
                    text += chunk.text
                    if !json { emit(chunk.text) }
                case .error(let e):
                    errorMessage = e.message
                default:
                    break
                }
            }
            if !json { emit("\n") }
            if let errorMessage { throw ValidationError("job \(jobID) failed: \(errorMessage)") }
            if json {
                try printJSON(Output(job: jobID, tokens: tokens, text: text, finish_reason: "\(final.finishReason)",
                                     prompt_tokens: final.promptTokens, queue_ms: final.queueMs,
                                     prefill_ms: final.prefillMs, decode_ms: final.decodeMs))
            }
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Workers, expert placement, routing and throughput of a cluster.")

    @OptionGroup var target: CoordinatorOptions
    @Flag(name: .long, help: "Print one JSON object.") var json = false
    @Option(name: .long, help: "Wait up to this many seconds until the cluster is ready (every expert held by a live worker).")
    var waitReady: Double?
    @Option(name: .long, help: "With --wait-ready: also wait for at least this many live workers.")
    var minWorkers = 1

    func run() throws {
        try reportingErrors {
            var s: Jamba_V1_StatusReply
            if let waitReady {
                // Keep asking (a coordinator still loading its weights does not answer yet) until ready or late.
                let deadline = Date().addingTimeInterval(waitReady)
                var last: Jamba_V1_StatusReply?
                while true {
                    last = (try? target.client().status()) ?? last
                    if let l = last, Self.isReady(l, minWorkers: minWorkers) { s = l; break }
                    guard Date() < deadline else {
                        let live = last?.workers.filter { $0.state == .live }.count
                        throw ValidationError("cluster not ready after \(waitReady) s (" + (live.map { "\($0) live worker(s)" } ?? "coordinator not answering") + ")")
                    }
                    Thread.sleep(forTimeInterval: 0.2)
                }
            } else {
                s = try target.client().status()
            }
            if json { try printJSON(StatusView(s)) } else { print(StatusView(s).table(), terminator: "") }
        }
    }

    static func isReady(_ s: Jamba_V1_StatusReply, minWorkers: Int) -> Bool {
        s.workers.filter { $0.state == .live }.count >= minWorkers && !s.layers.isEmpty
            && s.layers.allSatisfy { $0.experts.allSatisfy { !$0.holders.isEmpty } }
    }
}

struct Rebalance: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Re-place experts from the measured routing (and apply unless --dry-run).")

    @OptionGroup var target: CoordinatorOptions
    @Flag(name: .long, help: "Only show the plan.") var dryRun = false
    @Flag(name: .long, help: "Print one JSON object.") var json = false

    struct Output: Encodable {
        struct MoveView: Encodable { let layer: UInt32; let expert: UInt32; let kind: String; let worker: String }
        let imbalance_before: Double
        let imbalance_after: Double
        let moves: [MoveView]
        let applied: Bool
        let epoch: UInt64
    }

    func run() throws {
        try reportingErrors {
            let r = try target.client().rebalance(dryRun: dryRun)
            let out = Output(imbalance_before: r.imbalanceBefore, imbalance_after: r.imbalanceAfter,
                             moves: r.moves.map { .init(layer: $0.layer, expert: $0.expert, kind: $0.kind == .add ? "add" : "drop",
                                                        worker: $0.kind == .add ? $0.toWorker : $0.fromWorker) },
                             applied: r.applied, epoch: r.epoch)
            if json { try printJSON(out); return }
            print(String(format: "imbalance (max/mean per-worker load, worst layer): %.3f -> %.3f", r.imbalanceBefore, r.imbalanceAfter))
            for m in out.moves { print("  \(m.kind.padding(toLength: 5, withPad: " ", startingAt: 0)) layer \(m.layer) expert \(m.expert) on \(m.worker)") }
            print(r.applied ? "applied (epoch \(r.epoch))" : (dryRun ? "dry run: nothing applied" : "nothing worth moving"))
        }
    }
}
