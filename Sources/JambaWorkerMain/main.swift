// jamba-worker: holds a shard of a Jamba model's experts and computes expert batches for a coordinator.
import ArgumentParser
import Foundation
import JambaCluster
import JambaMath
import Logging

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jamba-worker",
        abstract: "Serve Jamba experts to a jamba-coordinator.")

    @Option(help: "Model folder (the same checkpoint as the coordinator's).") var model: String
    @Option(help: "The coordinator's worker endpoint, e.g. tcp://10.0.0.5:7401.") var coordinator = "tcp://127.0.0.1:7401"
    @Option(help: "BLAS threads for expert matrix products.") var threads = 1
    @Option(help: "Name shown in status (default: host-pid).") var name: String?
    @Option(help: "Expert slots offered (one slot = one expert of one layer; default: from memory).") var expertSlots: Int?
    @Option(help: "How experts are held: f32, or bf16 (half the memory, so twice the default slots; compute stays f32).")
    var weightsDtype: WeightDType = .f32
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel = "info"
    @Option(help: ArgumentHelp("CPUs this worker's threads run on, e.g. 1 or 2-3 (default: any; Linux).",
                               discussion: "On a machine shared with other daemons, pinning each worker to its own cores keeps the kernel from queueing its network thread behind another process's compute while a core sits idle."))
    var cpus: String?

    func validate() throws {
        guard FileManager.default.fileExists(atPath: model + "/config.json") else {
            throw ValidationError("no config.json in model folder '\(model)'")
        }
        guard threads >= 1 else { throw ValidationError("--threads must be ≥ 1") }
        if let expertSlots, expertSlots < 1 { throw ValidationError("--expert-slots must be ≥ 1") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level '\(logLevel)'") }
        if let cpus { do { _ = try CPUList.parse(cpus) } catch { throw ValidationError("\(error)") } }
    }

    func run() throws {
        Daemon.bootstrapLogging(level: Logger.Level(rawValue: logLevel) ?? .info)
        let workerName = name ?? "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
        let log = Logger(label: "jamba-worker[\(workerName)]")
        if let cpus {
            // Before the ZeroMQ context and the thread pool exist, so that their threads inherit the mask.
            do { try CPUList.pinProcess(to: CPUList.parse(cpus)) } catch { throw ValidationError("\(error)") }
        }
        BLAS.setThreads(threads)
        var s = WorkerSettings(modelDirectory: URL(fileURLWithPath: model), coordinator: coordinator, name: workerName, threads: threads)
        s.expertSlots = expertSlots
        s.weightsDType = weightsDtype
        let ok = Daemon.run(log: log, what: "worker", make: { try WorkerService(settings: s, logger: log) },
                            banner: { _ in "jamba-worker \(workerName): coordinator \(coordinator)" },
                            run: { try $0.run(stop: $1) })
        if !ok { throw ExitCode(1) }
    }
}

extension WeightDType: ExpressibleByArgument {}

WorkerCommand.main()
