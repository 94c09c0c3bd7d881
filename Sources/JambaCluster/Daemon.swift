// Daemon: what both daemons do around their service: log setup, the banner, signals, and exit on failure.
import Foundation
import Logging

public enum Daemon {
    /// One log line per event on stderr at `level` (swift-log's stream handler).
    public static func bootstrapLogging(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }

    /// Creates the service (after installing the SIGINT/SIGTERM handlers), prints `banner(service)` as the first
    /// stdout line (scripts and tests read endpoints from it), and runs until a signal. Returns false on failure,
    /// which has been logged.
    public static func run<S>(log: Logger, what: String, make: () throws -> S, banner: (S) -> String,
                              run: (S, StopSignal) throws -> Void) -> Bool {
        do {
            let stop = try StopSignal()
            let service = try make()
            FileHandle.standardOutput.write(Data((banner(service) + "\n").utf8))
            try run(service, stop)
            return true
        } catch {
            log.critical("\(what) failed", metadata: ["error": "\(error)"])
            return false
        }
    }
}
