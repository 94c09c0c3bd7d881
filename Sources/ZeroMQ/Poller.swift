// Poller: the readiness wait of a socket-owning loop thread, plus Wakeup and Mailbox to reach it from other threads.
import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Readiness conditions (libzmq's ZMQ_POLLIN / ZMQ_POLLOUT).
public struct PollEvents: OptionSet, Sendable, Hashable {
    public let rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }
    public static let readable = PollEvents(rawValue: Int16(ZMQ_POLLIN))
    public static let writable = PollEvents(rawValue: Int16(ZMQ_POLLOUT))
}

/// Waits until some of a fixed set of sockets (and `Wakeup`s) are ready: the heart of a daemon's loop.
///
/// Owned by the loop's thread like its sockets (not `Sendable`). Items are identified by the index
/// `add` returned. A `Wakeup` that fired is drained before `poll` returns, so the loop only has to empty
/// its `Mailbox` afterwards; anything posted after that drain wakes the next `poll`.
public final class Poller {
    private enum Source {
        case socket(Socket)
        case wakeup(Wakeup)
    }

    private var sources: [Source] = []
    private var items: [zmq_pollitem_t] = []

    public init() {}

    public var count: Int { sources.count }

    /// Watches `socket` for `events`; returns its index in `poll` results. The poller keeps the socket alive.
    @discardableResult
    public func add(_ socket: Socket, events: PollEvents = .readable) throws(ZMQError) -> Int {
        let h = try socket.liveHandle("Poller.add")
        sources.append(.socket(socket))
        items.append(zmq_pollitem_t(socket: h, fd: 0, events: events.rawValue, revents: 0))
        return sources.count - 1
    }

    /// Watches a `Wakeup` (for readability); returns its index in `poll` results.
    @discardableResult
    public func add(_ wakeup: Wakeup) -> Int {
        sources.append(.wakeup(wakeup))
        items.append(zmq_pollitem_t(socket: nil, fd: wakeup.readFD, events: Int16(ZMQ_POLLIN), revents: 0))
        return sources.count - 1
    }

    /// Waits up to `timeoutMilliseconds` (-1 = forever, 0 = just check) and returns the indices of ready
    /// items in ascending order; empty on timeout. A signal does not cut the wait short: the call is
    /// retried with the remaining time. Throws `isTerminated` once the context is shut down.
    public func poll(timeoutMilliseconds: Int) throws(ZMQError) -> [Int] {
        for i in items.indices {
            items[i].revents = 0
            if case .socket(let socket) = sources[i] {
                // A socket closed after `add` must not leave a dangling handle in the poll set.
                items[i].socket = try socket.liveHandle("zmq_poll (item \(i) was closed)")
            }
        }
        let deadline = timeoutMilliseconds > 0 ? monotonicMilliseconds() + timeoutMilliseconds : 0
        var timeout = timeoutMilliseconds
        while true {
            let n = items.withUnsafeMutableBufferPointer { buf in
                zmq_poll(buf.baseAddress, Int32(buf.count), timeout)
            }
            if n >= 0 { break }
            let err = zmq_errno()
            guard err == EINTR else { throw ZMQError(errno: err, call: "zmq_poll(\(items.count) items, \(timeoutMilliseconds) ms)") }
            if timeoutMilliseconds > 0 { timeout = Swift.max(0, deadline - monotonicMilliseconds()) }
        }
        var ready: [Int] = []
        for i in items.indices where items[i].revents != 0 {
            ready.append(i)
            if case .wakeup(let wakeup) = sources[i] { wakeup.drain() }
        }
        return ready
    }

    /// What item `index` was ready for in the last `poll`.
    public func readiness(of index: Int) -> PollEvents {
        PollEvents(rawValue: items[index].revents)
    }
}

/// Milliseconds of a clock that never jumps (wall-clock changes must not stretch a poll timeout).
func monotonicMilliseconds() -> Int {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int(ts.tv_sec) * 1000 + Int(ts.tv_nsec) / 1_000_000
}

/// Wakes a `Poller` from any thread.
///
/// A non-blocking pipe watched as a plain file descriptor, rather than an inproc PAIR socket pair: the
/// writing end of a PAIR is a socket and would need a lock to be shared by many threads, while `write(2)`
/// on a pipe is thread-safe by itself. A full pipe means a wake-up is already pending, so it never blocks.
public final class Wakeup: Sendable {
    let readFD: Int32
    let writeFD: Int32

    public init() throws(ZMQError) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw ZMQError(errno: errno, call: "pipe") }
        for fd in fds {
            // Non-blocking: `wake` must never stall the caller and `drain` must stop when empty.
            // Close-on-exec: a worker that spawns helpers must not leak the loop's descriptors.
            let flags = fcntl(fd, F_GETFL)
            if flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 {
                let e = errno
                close(fds[0]); close(fds[1])
                throw ZMQError(errno: e, call: "fcntl(pipe)")
            }
        }
        readFD = fds[0]
        writeFD = fds[1]
    }

    /// Makes the next (or current) `poll` that watches this wakeup return. Cheap, never blocks.
    public func wake() {
        var byte: UInt8 = 1
        while write(writeFD, &byte, 1) < 0 && errno == EINTR {}
        // EAGAIN (pipe full) is fine: the poller has wake-ups pending already.
    }

    /// Consumes pending wake-ups. `Poller.poll` calls this itself for wakeups that fired.
    public func drain() {
        withUnsafeTemporaryAllocation(byteCount: 64, alignment: 1) { sink in
            while true {
                let n = read(readFD, sink.baseAddress, sink.count)
                if n > 0 { continue }
                if n < 0 && errno == EINTR { continue }
                return  // 0 cannot happen while we hold the write end; EAGAIN = empty
            }
        }
    }

    deinit {
        close(readFD)
        close(writeFD)
    }
}

/// A thread-safe queue into a socket-owning loop: any thread posts, the loop drains after its poll.
///
/// This is the bridge from async code: a task posts a command (e.g. "send this request, resume this
/// continuation with the reply") and the loop thread, which alone touches the sockets, executes it.
/// Only the post that finds the queue empty writes to the pipe, so a burst costs one wake-up.
public final class Mailbox<Element: Sendable>: @unchecked Sendable {
    // `queue` and `closed` are only touched under `lock`.
    public let wakeup: Wakeup
    private let lock = PthreadLock()
    private var queue: [Element] = []
    private var closed = false

    public init() throws(ZMQError) {
        wakeup = try Wakeup()
    }

    /// Enqueues `element` and wakes the loop. Returns false (dropping it) once the mailbox is closed.
    @discardableResult
    public func post(_ element: Element) -> Bool {
        let (accepted, needsWake) = lock.withLock { () -> (Bool, Bool) in
            if closed { return (false, false) }
            queue.append(element)
            return (true, queue.count == 1)
        }
        if needsWake { wakeup.wake() }
        return accepted
    }

    /// Everything posted so far, oldest first. Call it after every `poll` that reported the wakeup.
    public func drain() -> [Element] {
        lock.withLock {
            let items = queue
            queue.removeAll(keepingCapacity: true)
            return items
        }
    }

    /// Refuses further posts (returns what was still queued) and wakes the loop so it can notice.
    @discardableResult
    public func close() -> [Element] {
        let rest = lock.withLock { () -> [Element] in
            closed = true
            let items = queue
            queue.removeAll()
            return items
        }
        wakeup.wake()
        return rest
    }

    public var isClosed: Bool { lock.withLock { closed } }
}
