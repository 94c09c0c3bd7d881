// ClusterTestSupport: status snapshots, job helpers and the in-process reference the cluster must reproduce.
import Foundation
import JambaCluster
import JambaModel
import JambaWire
import XCTest
import ZeroMQ

/// A status reply with the questions tests ask of it.
struct StatusSnapshot {
    let reply: Jamba_V1_StatusReply

    init(_ r: Jamba_V1_StatusReply) { reply = r }

    var live: [Jamba_V1_WorkerStatus] { reply.workers.filter { $0.state == .live } }
    func worker(_ name: String) -> Jamba_V1_WorkerStatus? { reply.workers.first { $0.name == name } }
    func experts(of name: String) -> Int { worker(name)?.experts.reduce(0) { $0 + $1.experts.count } ?? 0 }

    /// Every expert of every MoE layer has at least one holder.
    var allPlaced: Bool {
        !reply.layers.isEmpty && reply.layers.allSatisfy { $0.experts.allSatisfy { !$0.holders.isEmpty } }
    }
}

/// A real jamba-worker whose coordinator is a ROUTER socket the test holds (bound on an ephemeral loopback port),
/// so the test plays the coordinator's side of the protocol. Stop it with `stop`.
struct LoneWorker {
    let router: Socket
    let process: Process
    private let context: ZMQContext

    init(model: String, name: String, extra: [String] = []) throws {
        context = try ZMQContext()
        router = try Socket(context, type: .router)
        try router.set(.receiveTimeout(milliseconds: 500))
        try router.bind("tcp://127.0.0.1:*")
        process = Process()
        process.executableURL = try ClusterHarness.executable("jamba-worker")
        process.arguments = ["--model", model, "--coordinator", try router.lastEndpoint, "--name", name] + extra
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        router.close()
        context.shutdown()
    }
}

/// Greedy tokens from the in-process engine: the reference every cluster answer is compared with.
enum Reference {
    static func greedy(model: String, prompts: [[Int]], maxTokens: Int) throws -> [[Int]] {
        let (m, ck) = try JambaModel.load(directory: URL(fileURLWithPath: model))
        let store = try ExpertStore.load(ExpertStore.allIDs(m.config), from: ck, config: m.config)
        return try prompts.map { p in
            var e = Engine(model: m, executor: LocalExpertExecutor(experts: store))
            try e.submit(id: 0, prompt: p, params: SamplingParams(maxTokens: maxTokens, ignoreEOS: true))
            var out: [Int] = []
            while !e.isIdle { for ev in e.step() { if case let .token(_, t) = ev { out.append(t) } } }
            return out
        }
    }
}

extension ClusterClient {
    /// Submits token ids greedily and returns the generated ids (throws on a refused or failed job).
    func generate(_ prompt: [Int], maxTokens: Int, stream: Bool = true) throws -> (tokens: [Int], final: Jamba_V1_JobFinal, errors: [String]) {
        var job = Jamba_V1_SubmitJob()
        var ids = Jamba_V1_TokenIds()
        ids.ids = prompt.map { Int32($0) }
        job.tokens = ids
        var sp = Jamba_V1_SamplingParams()
        sp.maxTokens = UInt32(maxTokens)
        sp.ignoreEos = true
        job.sampling = sp
        job.stream = stream
        var tokens: [Int] = [], errors: [String] = []
        let final = try submit(job) { ev in
            if case .tokens(let c) = ev.event { tokens += c.tokenIds.map(Int.init) }
            if case .error(let e) = ev.event { errors.append(e.message) }
        }
        return (tokens, final, errors)
    }
}

let testPrompts: [[Int]] = [
    [1, 409, 501, 625, 1080, 496, 407, 1179, 285, 379, 496],
    [1, 804, 2871, 271, 379],
    [1],
    [1, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200],
    [1, 7, 8, 9],
    [1, 300, 301, 302, 303, 304],
    [1, 2000, 1000, 500],
    [1, 3000, 3001],
]
