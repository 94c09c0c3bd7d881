// LocalCluster: a coordinator and N workers as child processes on loopback ports, for the cluster benchmarks.
import ArgumentParser
import Foundation
import JambaCluster

/// Child daemons, killed when `stop` is called (or the value is dropped by `withCluster`).
final class LocalCluster {
    private(set) var processes: [Process] = []
    let clientEndpoint: String

    /// The daemons next to this executable.
    static func binary(_ name: String) -> URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent(name)
    }

    init(model: String, workers: Int, threads: Int, workerThreads: Int? = nil, coordinatorArgs: [String] = [], workerArgs: [String] = []) throws {
        let coord = Process()
        coord.executableURL = Self.binary("jamba-coordinator")
        coord.arguments = ["--model", model, "--client-endpoint", "tcp://127.0.0.1:*", "--worker-endpoint", "tcp://127.0.0.1:*",
                           "--min-workers", "\(workers)", "--threads", "\(threads)", "--log-level", "warning"] + coordinatorArgs
        let out = Pipe()
        coord.standardOutput = out
        try coord.run()
        processes.append(coord)
        // First stdout line: "jamba-coordinator: clients tcp://127.0.0.1:P, workers tcp://127.0.0.1:Q"
        let banner = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self).components(separatedBy: " ")
        guard banner.count >= 5 else {
            kill(coord.processIdentifier, SIGKILL)
            throw ValidationError("the coordinator did not start (run it by hand to see why)")
        }
        clientEndpoint = banner[2].trimmingCharacters(in: CharacterSet(charactersIn: ","))
        let workerEndpoint = banner[4].trimmingCharacters(in: .whitespacesAndNewlines)
        // Workers share this machine's cores: together they get `threads`, not `threads` each (oversubscribed
        // spinning threads would slow every process down).
        let workerThreads = workerThreads ?? max(1, threads / max(1, workers))
        for i in 0..<workers {
            let w = Process()
            w.executableURL = Self.binary("jamba-worker")
            w.arguments = ["--model", model, "--coordinator", workerEndpoint, "--name", "w\(i)", "--threads", "\(workerThreads)", "--log-level", "warning"] + workerArgs
            w.standardOutput = FileHandle.nullDevice
            try w.run()
            processes.append(w)
        }
    }

    func stop() {
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        for p in processes { p.waitUntilExit() }
        processes.removeAll()
    }

    deinit { stop() }
}
