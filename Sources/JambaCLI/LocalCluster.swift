// LocalCluster: a coordinator and N workers as child processes on loopback ports, for the cluster benchmarks.
import ArgumentParser
import Dispatch
import Foundation
import JambaCluster
import JambaMath

/// Child daemons, killed when `stop` is called (or the value is dropped by `withCluster`).
final class LocalCluster {
    private(set) var processes: [Process] = []
    let clientEndpoint: String

    /// The daemons next to this executable.
    static func binary(_ name: String) -> URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent(name)
    }

    /// CPUs of each worker when `pinWorkers`: consecutive groups of `workerThreads` of this process's allowed CPUs,
    /// or nil when the workers' threads do not fit in them (then nobody is pinned).
    static func workerCPUs(workers: Int, workerThreads: Int, allowed: [Int]) -> [[Int]]? {
        guard workers >= 1, workerThreads >= 1, workers * workerThreads <= allowed.count else { return nil }
        return (0..<workers).map { Array(allowed[($0 * workerThreads)..<(($0 + 1) * workerThreads)]) }
    }

    init(model: String, workers: Int, threads: Int, workerThreads: Int? = nil, pinWorkers: Bool = false,
         coordinatorArgs: [String] = [], workerArgs: [String] = []) throws {
        // Workers share this machine's cores. By default each gets all of them: the coordinator then sees workers
        // on the same cores, gives each whole layers, and sends each layer step to the one holding it, which uses
        // every core without a second round trip (SharedCorePlacement, Dispatch.preferOnePerSharedCores). With
        // fewer threads each (e.g. --cluster-worker-threads 1) the workers split every step, as workers on
        // separate machines do.
        let workerThreads = workerThreads ?? threads
        let coord = Process()
        coord.executableURL = Self.binary("jamba-coordinator")
        coord.arguments = ["--model", model, "--client-endpoint", "tcp://127.0.0.1:*", "--worker-endpoint", "tcp://127.0.0.1:*",
                           "--min-workers", "\(workers)", "--threads", "\(threads)", "--log-level", "warning"] + coordinatorArgs
        let out = Pipe()
        coord.standardOutput = out
        Children.installCleanup()
        try coord.run()
        processes.append(coord)
        Children.shared.add(coord.processIdentifier)
        // First stdout line: "jamba-coordinator: clients tcp://127.0.0.1:P, workers tcp://127.0.0.1:Q"
        let banner = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self).components(separatedBy: " ")
        guard banner.count >= 5 else {
            kill(coord.processIdentifier, SIGKILL)
            throw ValidationError("the coordinator did not start (run it by hand to see why)")
        }
        clientEndpoint = banner[2].trimmingCharacters(in: CharacterSet(charactersIn: ","))
        let workerEndpoint = banner[4].trimmingCharacters(in: .whitespacesAndNewlines)
        // Pinned, each worker's network thread wakes on the worker's own (idle, waiting) core; unpinned, this VM's
        // scheduler often queues it behind the other worker's compute while a core idles (bench/cluster-overheads.md).
        let pins = pinWorkers ? Self.workerCPUs(workers: workers, workerThreads: workerThreads, allowed: Kernels.allowedCPUs ?? []) : nil
        for i in 0..<workers {
            let w = Process()
            w.executableURL = Self.binary("jamba-worker")
            w.arguments = ["--model", model, "--coordinator", workerEndpoint, "--name", "w\(i)", "--threads", "\(workerThreads)", "--log-level", "warning"]
                + (pins.map { ["--cpus", CPUList.describe($0[i])] } ?? []) + workerArgs
            w.standardOutput = FileHandle.nullDevice
            try w.run()
            processes.append(w)
            Children.shared.add(w.processIdentifier)
        }
    }

    func stop() {
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        for p in processes {
            p.waitUntilExit()
            Children.shared.remove(p.processIdentifier)
        }
        processes.removeAll()
    }

    deinit { stop() }
}

/// The daemons this process started and has not stopped. A SIGINT or SIGTERM (Ctrl-C, `timeout`, a CI step killed)
/// ends this process without running `stop`; the handler kills them first, so no coordinator or worker outlives it.
final class Children: @unchecked Sendable {
    static let shared = Children()
    // Guarded by `lock`.
    private let lock = NSLock()
    private var pids = Set<pid_t>()
    private var sources: [DispatchSourceSignal] = []

    func add(_ pid: pid_t) { lock.lock(); pids.insert(pid); lock.unlock() }
    func remove(_ pid: pid_t) { lock.lock(); pids.remove(pid); lock.unlock() }

    /// Installs the SIGINT/SIGTERM handlers once.
    static func installCleanup() {
        shared.lock.lock()
        defer { shared.lock.unlock() }
        guard shared.sources.isEmpty else { return }
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)  // delivered to the dispatch source instead
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                shared.lock.lock()
                let pids = shared.pids
                shared.lock.unlock()
                for pid in pids { kill(pid, SIGKILL) }
                exit(128 + sig)
            }
            source.resume()
            shared.sources.append(source)
        }
    }
}
