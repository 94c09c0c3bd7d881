// Messaging: multipart send/receive on a Socket, and zero-copy sends of large buffers (ZMQBuffer).
import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A heap buffer whose bytes libzmq can send without copying.
///
/// `Socket.send(_:zeroCopy:)` retains the buffer until libzmq's I/O thread has written the bytes to the
/// network, then releases it from that thread through libzmq's free callback. Fill it first (for
/// example by serializing a protobuf message straight into it); once it has been sent, its bytes must
/// not change again, which `withUnsafeMutableBytes` enforces.
///
/// It has everything `SwiftProtobufContiguousBytes` asks for, so a module that sees both can add
/// `extension ZMQBuffer: @retroactive SwiftProtobufContiguousBytes {}` and serialize into it directly.
public final class ZMQBuffer {
    public let count: Int
    private let base: UnsafeMutableRawPointer
    /// Set on the owning thread when the buffer is handed to libzmq.
    public private(set) var isSent = false

    /// `count` bytes of value `byte` (SwiftProtobuf's serializer allocates its output this way).
    public init(repeating byte: UInt8, count: Int) {
        precondition(count >= 0, "ZMQBuffer: negative count")
        self.count = count
        // At least one byte so `base` is a real allocation even for empty buffers.
        base = .allocate(byteCount: Swift.max(count, 1), alignment: 16)
        base.initializeMemory(as: UInt8.self, repeating: byte, count: Swift.max(count, 1))
    }

    /// `count` zero bytes.
    public convenience init(count: Int) {
        self.init(repeating: 0, count: count)
    }

    /// A buffer holding a copy of `bytes`.
    public convenience init<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        let array = Array(bytes)
        self.init(count: array.count)
        array.withUnsafeBytes { src in
            if let s = src.baseAddress { base.copyMemory(from: s, byteCount: src.count) }
        }
    }

    deinit { base.deallocate() }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        precondition(!isSent, "ZMQBuffer: mutated after it was handed to libzmq for a zero-copy send")
        return try body(UnsafeMutableRawBufferPointer(start: base, count: count))
    }

    /// A copy of the bytes (tests, small buffers).
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    fileprivate func markSent() -> UnsafeMutableRawPointer {
        isSent = true
        return base
    }

    /// Undoes `markSent` when libzmq refused the message without taking it.
    fileprivate func unmarkSent(_ previous: Bool) { isSent = previous }
}

/// libzmq's free callback for zero-copy messages: balances the `passRetained` done when the message
/// was created. Runs on a libzmq I/O thread, or on the sending thread if the send failed.
private let releaseZMQBuffer: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { _, hint in
    guard let hint else { return }
    Unmanaged<ZMQBuffer>.fromOpaque(hint).release()
}

extension Socket {
    // MARK: Send

    /// Sends `frames` as one multipart message, blocking while the pipe is full (up to SNDTIMEO, which
    /// then throws `isWouldBlock`). libzmq delivers all frames or none.
    public func send(_ frames: [[UInt8]]) throws(ZMQError) {
        _ = try sendFrames(frames, last: nil, flags: 0)
    }

    /// Sends without blocking. Returns false (and sends nothing) when the message cannot be queued now.
    public func trySend(_ frames: [[UInt8]]) throws(ZMQError) -> Bool {
        try sendFrames(frames, last: nil, flags: ZMQ_DONTWAIT)
    }

    /// Sends `head` (copied; e.g. a ROUTER's routing id) followed by `body` as the last frame without
    /// copying it: libzmq reads `body`'s bytes directly and releases it when done.
    public func send(_ head: [[UInt8]], zeroCopy body: ZMQBuffer) throws(ZMQError) {
        _ = try sendFrames(head, last: body, flags: 0)
    }

    /// Non-blocking `send(_:zeroCopy:)`. Returns false when nothing could be queued; `body` is then untouched.
    public func trySend(_ head: [[UInt8]], zeroCopy body: ZMQBuffer) throws(ZMQError) -> Bool {
        try sendFrames(head, last: body, flags: ZMQ_DONTWAIT)
    }

    private func sendFrames(_ frames: [[UInt8]], last: ZMQBuffer?, flags: Int32) throws(ZMQError) -> Bool {
        let h = try liveHandle("zmq_send")
        let total = frames.count + (last == nil ? 0 : 1)
        guard total > 0 else { throw ZMQError(errno: EINVAL, call: "zmq_send (no frames)") }
        for (i, frame) in frames.enumerated() {
            let more = i + 1 < total ? ZMQ_SNDMORE : 0
            do {
                _ = try retryingEINTR("zmq_send(frame \(i) of \(total), \(frame.count) bytes)") {
                    frame.withUnsafeBytes { zmq_send(h, $0.baseAddress, $0.count, flags | more) }
                }
            } catch {
                // libzmq checks for room only at the first frame; later frames of a started message
                // are always accepted, so EAGAIN here means "nothing was queued".
                if i == 0 && error.isWouldBlock && flags & ZMQ_DONTWAIT != 0 { return false }
                throw error
            }
        }
        if let last {
            return try sendZeroCopy(h, last, flags: flags, index: frames.count, total: total)
        }
        return true
    }

    private func sendZeroCopy(_ h: UnsafeMutableRawPointer, _ buffer: ZMQBuffer, flags: Int32,
                              index: Int, total: Int) throws(ZMQError) -> Bool {
        let call = "zmq_msg_send(zero-copy frame \(index) of \(total), \(buffer.count) bytes)"
        let msg = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        defer { msg.deallocate() }
        let wasSent = buffer.isSent
        let data = buffer.markSent()
        // The retain travels with the message: released by the free callback exactly once, either after
        // the I/O thread has sent the bytes or by zmq_msg_close below if the send fails.
        let hint = Unmanaged.passRetained(buffer).toOpaque()
        guard zmq_msg_init_data(msg, data, buffer.count, releaseZMQBuffer, hint) == 0 else {
            let error = ZMQError.last("zmq_msg_init_data")
            Unmanaged<ZMQBuffer>.fromOpaque(hint).release()  // libzmq did not take ownership
            throw error
        }
        while true {
            if zmq_msg_send(msg, h, flags) >= 0 { return true }  // libzmq owns the message now
            let err = zmq_errno()
            if err == EINTR { continue }
            zmq_msg_close(msg)  // runs the free callback: releases our retain
            // Only a lone zero-copy frame can be refused with EAGAIN (see sendFrames); the buffer was
            // never handed over, so the caller may still modify and resend it.
            if err == EAGAIN && index == 0 && flags & ZMQ_DONTWAIT != 0 {
                buffer.unmarkSent(wasSent)
                return false
            }
            throw ZMQError(errno: err, call: call)
        }
    }

    // MARK: Receive

    /// Receives one whole multipart message. With `dontWait`, or when RCVTIMEO elapses, returns nil if
    /// no message is waiting. Frames are copied out of libzmq's buffers into Swift arrays.
    public func receiveMultipart(dontWait: Bool = false) throws(ZMQError) -> [[UInt8]]? {
        let h = try liveHandle("zmq_msg_recv")
        let msg = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        defer { msg.deallocate() }
        var frames: [[UInt8]] = []
        while true {
            zmq_msg_init(msg)
            defer { zmq_msg_close(msg) }
            // Only the first frame can be missing: libzmq hands out a multipart message atomically.
            let flags = frames.isEmpty && dontWait ? ZMQ_DONTWAIT : 0
            do {
                _ = try retryingEINTR("zmq_msg_recv(frame \(frames.count))") { zmq_msg_recv(msg, h, flags) }
            } catch {
                if frames.isEmpty && error.isWouldBlock { return nil }
                throw error
            }
            let size = zmq_msg_size(msg)
            if size > 0, let p = zmq_msg_data(msg) {
                frames.append(Array(UnsafeRawBufferPointer(start: p, count: size)))
            } else {
                frames.append([])
            }
            if zmq_msg_more(msg) == 0 { return frames }
        }
    }
}
