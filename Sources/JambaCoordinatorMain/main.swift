// jamba-coordinator: runs the non-expert layers of every job and drives the expert workers over ZeroMQ.
import ArgumentParser
import Foundation
import JambaCluster
import JambaMath
import Logging

struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jamba-coordinator",
        abstract: "Serve a Jamba model: non-expert layers here, experts on jamba-worker processes.")

    @Option(help: "Model folder (config.json, safetensors, tokenizer.json).") var model: String
    @Option(help: "Where clients (jamba submit/status) connect.") var clientEndpoint = "tcp://127.0.0.1:7400"
    @Option(help: "Where workers connect; bind tcp://0.0.0.0:PORT to accept workers from other machines.")
    var workerEndpoint = "tcp://127.0.0.1:7401"
    @Option(help: "Place experts only once this many workers have registered.") var minWorkers = 1
    @Option(help: "BLAS threads for this process.") var threads: Int?
    @Option(help: "Longest prompt + generation per job (default: max_position_embeddings).") var maxContext: Int?
    @Option(help: "Most jobs decoded together in one step.") var maxBatch = 64
    @Option(help: "Seconds without a heartbeat before a worker is declared lost.") var heartbeatTimeout = 3.5
    @Option(help: "Seconds to wait for a worker's expert reply.") var requestTimeout = 30.0
    @Option(help: "Spare expert slots per worker beyond an even share, for hot-expert replicas (0.25 = 25%).")
    var spareSlots = 0.25
    @Option(help: "Placement when workers join or leave: balanced (planned, with replicas) or round-robin (each expert once).")
    var placement = "balanced"
    @Option(help: "Routed rows per layer kept in the statistics window.") var statsWindowRows = 2000
    @Option(help: "Seconds kept in the statistics window.") var statsWindowSeconds = 30.0
    @Option(help: "Rebalance automatically when imbalance stays above this (0 disables).") var autoRebalance = 1.3
    @Option(help: "Largest client request in MiB; larger ones are refused with an OVERSIZED error.") var maxRequestMb = 16
    @Option(help: "How non-expert weight matrices are held: f32, or bf16 (half the memory and bytes per step).")
    var weightsDtype: WeightDType = .f32
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel = "info"

    func validate() throws {
        guard FileManager.default.fileExists(atPath: model + "/config.json") else {
            throw ValidationError("no config.json in model folder '\(model)'")
        }
        guard minWorkers >= 1 else { throw ValidationError("--min-workers must be ≥ 1") }
        guard maxRequestMb >= 1 && maxRequestMb <= 1024 else { throw ValidationError("--max-request-mb must be in 1...1024") }
        guard maxBatch >= 1 else { throw ValidationError("--max-batch must be ≥ 1") }
        guard heartbeatTimeout > 0, requestTimeout > 0 else { throw ValidationError("timeouts must be positive") }
        guard spareSlots >= 0 else { throw ValidationError("--spare-slots must be ≥ 0") }
        guard ["balanced", "round-robin"].contains(placement) else { throw ValidationError("--placement must be balanced or round-robin") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level '\(logLevel)'") }
    }

    func run() throws {
        Daemon.bootstrapLogging(level: Logger.Level(rawValue: logLevel) ?? .info)
        let log = Logger(label: "jamba-coordinator")
        if let threads { BLAS.setThreads(threads) }
        var s = CoordinatorSettings(modelDirectory: URL(fileURLWithPath: model), clientEndpoint: clientEndpoint, workerEndpoint: workerEndpoint)
        s.minWorkers = minWorkers
        s.weightsDType = weightsDtype
        s.maxContext = maxContext
        s.maxBatch = maxBatch
        s.heartbeatTimeout = heartbeatTimeout
        s.requestTimeout = requestTimeout
        s.spareSlotFraction = spareSlots
        s.placementPolicy = placement
        s.maxClientMessageBytes = maxRequestMb << 20
        s.statsWindowRows = statsWindowRows
        s.statsWindowSeconds = statsWindowSeconds
        s.autoRebalanceThreshold = autoRebalance
        let ok = Daemon.run(log: log, what: "coordinator", make: { try CoordinatorService(settings: s, logger: log) },
                            banner: { "jamba-coordinator: clients \($0.endpoints.client), workers \($0.endpoints.worker)" },
                            run: { try $0.run(stop: $1) })
        if !ok { throw ExitCode(1) }
    }
}

extension WeightDType: ExpressibleByArgument {}

CoordinatorCommand.main()
