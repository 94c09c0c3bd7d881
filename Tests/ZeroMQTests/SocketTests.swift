// SocketTests: the ZeroMQ wrapper against real libzmq on tcp loopback: round trips, zero-copy, limits, errors.
import CZeroMQ
import Foundation
import XCTest
@testable import ZeroMQ

final class SocketTests: XCTestCase {
    /// A ROUTER bound to an ephemeral loopback port, a DEALER connected to it, both with a receive
    /// timeout so a broken test fails instead of hanging.
    private func routerDealerPair(_ ctx: ZMQContext, dealerID: [UInt8] = Array("worker-1".utf8),
                                  routerOptions: [SocketOption] = []) throws -> (router: Socket, dealer: Socket, endpoint: String) {
        let router = try Socket(ctx, type: .router)
        for option in routerOptions { try router.set(option) }
        try router.set(.receiveTimeout(milliseconds: 5000))
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint
        let dealer = try Socket(ctx, type: .dealer)
        try dealer.set(.routingID(dealerID))
        try dealer.set(.receiveTimeout(milliseconds: 5000))
        try dealer.connect(endpoint)
        return (router, dealer, endpoint)
    }

    func testVersionIsLibzmq4() {
        print("libzmq \(zmqVersion)")
        XCTAssertTrue(zmqVersion.hasPrefix("4."), zmqVersion)
    }

    func testDealerRouterMultipartRoundTrip() throws {
        let ctx = try ZMQContext()
        let (router, dealer, endpoint) = try routerDealerPair(ctx)
        XCTAssertTrue(endpoint.hasPrefix("tcp://127.0.0.1:"), endpoint)
        XCTAssertNotEqual(endpoint, "tcp://127.0.0.1:*")
        XCTAssertEqual(try dealer.routingID, Array("worker-1".utf8))

        let big = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try dealer.send([[1, 2, 3], [], big])
        let got = try XCTUnwrap(router.receiveMultipart())
        XCTAssertEqual(got.count, 4, "ROUTER prepends the peer's routing id")
        XCTAssertEqual(got[0], Array("worker-1".utf8))
        XCTAssertEqual(got[1], [1, 2, 3])
        XCTAssertEqual(got[2], [])
        XCTAssertEqual(got[3], big)

        try router.send([got[0], Array("pong".utf8)])
        XCTAssertEqual(try dealer.receiveMultipart(), [Array("pong".utf8)])
        XCTAssertNil(try dealer.receiveMultipart(dontWait: true), "nothing else queued")
    }

    func testZeroCopySendOf4MiBArrivesIntactAndReleasesTheBuffer() throws {
        let ctx = try ZMQContext()
        let (router, dealer, _) = try routerDealerPair(ctx)
        let size = 4 << 20
        weak var weakBuffer: ZMQBuffer?
        var expected: [UInt8] = []
        do {
            let buffer = ZMQBuffer(count: size)
            buffer.withUnsafeMutableBytes { raw in
                for i in 0..<size { raw[i] = UInt8(truncatingIfNeeded: (i &* 2_654_435_761) >> 13) }
            }
            expected = buffer.bytes
            weakBuffer = buffer
            try dealer.send([Array("hdr".utf8)], zeroCopy: buffer)
            XCTAssertTrue(buffer.isSent)
        }
        let got = try XCTUnwrap(router.receiveMultipart())
        XCTAssertEqual(got.count, 3)
        XCTAssertEqual(got[1], Array("hdr".utf8))
        XCTAssertEqual(got[2].count, size)
        XCTAssertTrue(got[2] == expected, "4 MiB payload differs")

        // libzmq's free callback must release the retain taken for the send exactly once: too few and
        // the buffer leaks (weak ref stays set), too many and this test crashes.
        let deadline = Date().addingTimeInterval(5)
        while weakBuffer != nil && Date() < deadline { usleep(1000) }
        XCTAssertNil(weakBuffer, "ZMQBuffer not released after libzmq sent it")
    }

    func testZMQBufferHasTheShapeOfSwiftProtobufContiguousBytes() {
        // The integrator adds `extension ZMQBuffer: @retroactive SwiftProtobufContiguousBytes {}` to
        // serialize envelopes straight into send buffers; this mirror of that protocol keeps it possible.
        func fill<B: ContiguousBytesShape>(_: B.Type, _ n: Int) -> B {
            var b = B(repeating: 0, count: n)
            b.withUnsafeMutableBytes { for i in 0..<$0.count { $0[i] = UInt8(i) } }
            return b
        }
        let buffer = fill(ZMQBuffer.self, 5)
        XCTAssertEqual(buffer.bytes, [0, 1, 2, 3, 4])
        XCTAssertEqual(ZMQBuffer([7, 8]).withUnsafeBytes { Array($0) }, [7, 8])
        XCTAssertEqual(ZMQBuffer(repeating: 3, count: 2).bytes, [3, 3])
        XCTAssertEqual(ZMQBuffer(count: 0).count, 0)
    }

    func testRefusedZeroCopySendLeavesBufferUsableAndBalanced() throws {
        let ctx = try ZMQContext()
        let push = try Socket(ctx, type: .push)  // no peer: nothing can be queued
        weak var weakBuffer: ZMQBuffer?
        do {
            let buffer = ZMQBuffer([1, 2, 3])
            weakBuffer = buffer
            XCTAssertFalse(try push.trySend([], zeroCopy: buffer))
            XCTAssertFalse(buffer.isSent, "a refused buffer was never handed over")
            buffer.withUnsafeMutableBytes { $0[0] = 9 }  // would trap if still marked sent
            XCTAssertEqual(buffer.bytes, [9, 2, 3])
        }
        XCTAssertNil(weakBuffer, "refused send leaked its retain")
        XCTAssertFalse(try push.trySend([[1]]))
    }

    func testMaxMessageSizeDropsOversizedMessageAndConnection() throws {
        let ctx = try ZMQContext()
        let (router, dealer, _) = try routerDealerPair(ctx, routerOptions: [.maxMessageSize(1024)])
        XCTAssertEqual(try router.int64Option(ZMQ_MAXMSGSIZE, name: "ZMQ_MAXMSGSIZE"), 1024)
        try router.set(.receiveTimeout(milliseconds: 500))
        let monitor = try monitorSocket(router, ctx, name: "maxmsg")

        // Under the limit: delivered. This also makes sure the connection is up before the big one.
        try dealer.send([[UInt8](repeating: 1, count: 1000)])
        XCTAssertEqual(try router.receiveMultipart()?.last?.count, 1000)

        // Over the limit: libzmq's ZMTP decoder rejects it on the receiving side. The ROUTER never sees
        // it (nil after RCVTIMEO), and it closes that connection.
        try dealer.send([[UInt8](repeating: 2, count: 4096)])
        XCTAssertNil(try router.receiveMultipart(), "oversized message must not be delivered")
        let events = try drainMonitorEvents(monitor)
        print("ROUTER monitor events: \(events.map { String($0, radix: 16) })")
        XCTAssertTrue(events.contains(UInt16(ZMQ_EVENT_DISCONNECTED)), "connection was not dropped: \(events)")

        // The DEALER reconnects on its own (reconnect interval 100 ms by default), so later small
        // messages get through again; the oversized one is gone for good.
        try router.set(.receiveTimeout(milliseconds: 5000))
        try dealer.send([[3]])
        let after = try XCTUnwrap(router.receiveMultipart(), "DEALER did not reconnect after the drop")
        XCTAssertEqual(after.last, [3])
    }

    /// A PAIR receiving libzmq's monitor events for `socket` (test-only: the daemons log peers through
    /// their own protocol, so the wrapper does not expose monitoring).
    private func monitorSocket(_ socket: Socket, _ ctx: ZMQContext, name: String) throws -> Socket {
        let endpoint = "inproc://monitor-\(name)"
        XCTAssertEqual(zmq_socket_monitor(socket.handle, endpoint, ZMQ_EVENT_ALL), 0)
        let pair = try Socket(ctx, type: .pair)
        try pair.connect(endpoint)
        return pair
    }

    /// Event numbers received so far (each event is [u16 event, u32 value] + [endpoint]).
    private func drainMonitorEvents(_ monitor: Socket) throws -> [UInt16] {
        var events: [UInt16] = []
        while let frames = try monitor.receiveMultipart(dontWait: true) {
            guard let first = frames.first, first.count >= 2 else { continue }
            events.append(UInt16(first[0]) | UInt16(first[1]) << 8)
        }
        return events
    }

    func testErrorsCarryErrnoAndCallName() throws {
        let ctx = try ZMQContext()
        let dealer = try Socket(ctx, type: .dealer)
        do {
            try dealer.connect("not-an-endpoint")
            XCTFail("connect to a malformed endpoint succeeded")
        } catch {
            XCTAssertEqual(error.errno, EINVAL)
            XCTAssertTrue(error.call.contains("zmq_connect"), error.call)
            XCTAssertTrue(error.call.contains("not-an-endpoint"), error.call)
            XCTAssertFalse(error.message.isEmpty)
            print("expected error: \(error)")
        }
        do {
            try dealer.connect("bogus://127.0.0.1:5555")
            XCTFail("unknown transport accepted")
        } catch {
            XCTAssertEqual(error.errno, EPROTONOSUPPORT, "\(error)")
        }

        // Two binds on one port: the second reports EADDRINUSE.
        let a = try Socket(ctx, type: .router)
        try a.bind("tcp://127.0.0.1:*")
        let b = try Socket(ctx, type: .router)
        XCTAssertThrowsError(try b.bind(a.lastEndpoint)) { error in
            XCTAssertEqual((error as? ZMQError)?.errno, EADDRINUSE, "\(error)")
        }

        // ROUTER_MANDATORY turns a silent drop into EHOSTUNREACH.
        try a.set(.routerMandatory(true))
        XCTAssertThrowsError(try a.send([Array("nobody".utf8), [1]])) { error in
            let z = error as? ZMQError
            XCTAssertEqual(z?.isHostUnreachable, true, "\(error)")
            XCTAssertEqual(z?.call.hasPrefix("zmq_send"), true, "\(error)")
        }

        // A closed socket fails cleanly instead of passing a dangling handle to libzmq.
        dealer.close()
        XCTAssertThrowsError(try dealer.send([[1]])) { error in
            XCTAssertEqual((error as? ZMQError)?.errno, ENOTSOCK, "\(error)")
        }
    }

    func testContextShutdownUnblocksAReceiveOnAnotherThread() throws {
        let ctx = try ZMQContext()
        let results = try Mailbox<String>()
        let started = DispatchSemaphore(value: 0)
        let thread = Thread {
            do {
                // The socket is created, used and closed on this thread only.
                let pull = try Socket(ctx, type: .pull)
                try pull.bind("inproc://shutdown-test")
                started.signal()
                _ = try pull.receiveMultipart()
                results.post("received")
            } catch {
                results.post((error as? ZMQError)?.isTerminated == true ? "terminated" : "\(error)")
            }
        }
        thread.start()
        started.wait()
        usleep(50_000)
        ctx.shutdown()
        ctx.shutdown()  // idempotent
        let poller = Poller()
        poller.add(results.wakeup)
        XCTAssertEqual(try poller.poll(timeoutMilliseconds: 5000), [0])
        XCTAssertEqual(results.drain(), ["terminated"])
    }
}

/// Mirror of SwiftProtobuf's `SwiftProtobufContiguousBytes` requirements (ZeroMQ does not depend on it).
protocol ContiguousBytesShape {
    init(repeating: UInt8, count: Int)
    init<S: Sequence>(_ sequence: S) where S.Element == UInt8
    var count: Int { get }
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
    mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R
}

extension ZMQBuffer: ContiguousBytesShape {}
