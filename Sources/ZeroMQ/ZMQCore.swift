// ZMQCore: ZMQError, libzmq's version, and ZMQContext (the one thread-safe libzmq object).
import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed libzmq call: the errno it reported, libzmq's text for it, and which call failed.
public struct ZMQError: Error, Equatable, Sendable, CustomStringConvertible {
    public let errno: Int32
    public let message: String
    /// The libzmq function (and the argument that matters, e.g. `zmq_connect("tcp://x")`).
    public let call: String

    public init(errno: Int32, call: String) {
        self.errno = errno
        self.message = String(cString: zmq_strerror(errno))
        self.call = call
    }

    /// The error libzmq just reported on this thread (`zmq_errno()`), attributed to `call`.
    public static func last(_ call: @autoclosure () -> String) -> ZMQError {
        ZMQError(errno: zmq_errno(), call: call())
    }

    public var description: String { "\(call) failed: \(message) (errno \(errno))" }

    /// The operation would block: nothing to receive, a full pipe, or RCVTIMEO/SNDTIMEO elapsed.
    public var isWouldBlock: Bool { errno == EAGAIN }
    /// The context was shut down or terminated: the owning loop should close its sockets and exit.
    public var isTerminated: Bool { errno == ZMQErrno.ETERM }
    /// A ROUTER with ROUTER_MANDATORY was asked to send to a routing id it has no connection for.
    public var isHostUnreachable: Bool { errno == EHOSTUNREACH }
}

/// libzmq's own errno values. They are `ZMQ_HAUSNUMERO + n` macros that Swift does not import.
public enum ZMQErrno {
    static let hausnumero: Int32 = 156_384_712
    public static let EFSM: Int32 = hausnumero + 51
    public static let ENOCOMPATPROTO: Int32 = hausnumero + 52
    public static let ETERM: Int32 = hausnumero + 53
    public static let EMTHREAD: Int32 = hausnumero + 54
}

/// Runs a libzmq call returning -1 on error, retrying on EINTR (a signal, e.g. the profiler's or a
/// SIGCHLD, must not surface as a spurious failure). Any other error is thrown as `ZMQError`.
@inline(__always)
func retryingEINTR(_ call: @autoclosure () -> String, _ body: () -> Int32) throws(ZMQError) -> Int32 {
    while true {
        let rc = body()
        if rc >= 0 { return rc }
        let err = zmq_errno()
        if err == EINTR { continue }
        throw ZMQError(errno: err, call: call())
    }
}

/// The linked libzmq's version as "major.minor.patch" (e.g. "4.3.4").
public var zmqVersion: String {
    var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
    zmq_version(&major, &minor, &patch)
    return "\(major).\(minor).\(patch)"
}

/// A libzmq context: its I/O threads and the inproc namespace.
///
/// `Sendable` because libzmq contexts are thread-safe by contract, so one context can be shared by
/// every thread of a daemon. Sockets keep their context alive, so `zmq_ctx_term` (in `deinit`) only
/// runs once every socket is closed and therefore never blocks on a socket someone still uses.
/// To stop threads blocked in socket calls, call `shutdown()`: their calls fail with `isTerminated`.
public final class ZMQContext: @unchecked Sendable {
    // The raw pointer is only handed to libzmq's thread-safe context functions; `shutdownLock`
    // serializes `shutdown()` so zmq_ctx_shutdown runs at most once.
    let handle: UnsafeMutableRawPointer
    private let shutdownLock = PthreadLock()
    private var isShutDown = false

    /// A context with `ioThreads` background I/O threads (libzmq's default is 1, enough for ~1 GB/s).
    public init(ioThreads: Int32 = 1) throws(ZMQError) {
        guard let h = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
        handle = h
        if ioThreads != 1, zmq_ctx_set(h, ZMQ_IO_THREADS, ioThreads) != 0 {
            let error = ZMQError.last("zmq_ctx_set(ZMQ_IO_THREADS, \(ioThreads))")
            zmq_ctx_term(h)
            throw error
        }
    }

    /// Makes every blocking call on this context's sockets (now and later) fail with ETERM, from any
    /// thread. Sockets must still be closed by their owners; the context is freed once they are.
    public func shutdown() {
        shutdownLock.withLock {
            guard !isShutDown else { return }
            isShutDown = true
            zmq_ctx_shutdown(handle)
        }
    }

    deinit {
        // Retried on EINTR as libzmq documents; any other failure (EFAULT) cannot happen for a live handle.
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }
}

/// A minimal mutex that needs neither Foundation nor macOS 15 (`Synchronization.Mutex`).
final class PthreadLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }
}
