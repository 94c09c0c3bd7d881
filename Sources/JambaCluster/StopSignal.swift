// StopSignal: turns SIGINT/SIGTERM into a wake-up of a daemon's poll loop, so it can stop between messages.
import Dispatch
import Foundation
import ZeroMQ

/// Installs SIGINT and SIGTERM handlers that post to a Wakeup and set a flag the loop reads.
///
/// `@unchecked Sendable`: every stored property is an immutable `let`; the flag is lock-protected and the wakeup is
/// thread-safe; the signal sources are only kept alive, never touched after init.
public final class StopSignal: @unchecked Sendable {
    /// Kept only so the sources stay alive for the process lifetime.
    private let sources: [any DispatchSourceSignal]
    private let flag = LockedFlag()
    public let wakeup: Wakeup

    public init() throws {
        wakeup = try Wakeup()
        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)  // let Dispatch deliver it instead of the default "terminate"
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [flag, wakeup] in
                flag.set()
                wakeup.wake()
            }
            s.resume()
            sources.append(s)
        }
        self.sources = sources
    }

    public var isSet: Bool { flag.value }

    /// Lets tests and embedding code request a stop without a signal.
    public func trigger() {
        flag.set()
        wakeup.wake()
    }
}

/// A Bool behind a lock (Dispatch's handler runs on another thread).
final class LockedFlag: @unchecked Sendable {
    // `_value` only touched under `lock`.
    private let lock = NSLock()
    private var _value = false
    func set() { lock.lock(); _value = true; lock.unlock() }
    var value: Bool { lock.lock(); defer { lock.unlock() }; return _value }
}
