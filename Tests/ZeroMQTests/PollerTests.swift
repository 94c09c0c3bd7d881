// PollerTests: poll timeouts, readiness of sockets, and waking a poll loop from other threads.
import Foundation
import XCTest
@testable import ZeroMQ

final class PollerTests: XCTestCase {
    func testPollTimeoutReturnsNothingAfterAboutTheTimeout() throws {
        let ctx = try ZMQContext()
        let pull = try Socket(ctx, type: .pull)
        try pull.bind("inproc://idle")
        let poller = Poller()
        XCTAssertEqual(try poller.add(pull), 0)

        let start = monotonicMilliseconds()
        let ready = try poller.poll(timeoutMilliseconds: 200)
        let elapsed = monotonicMilliseconds() - start
        print("poll(200 ms) on an idle socket returned \(ready) after \(elapsed) ms")
        XCTAssertEqual(ready, [])
        XCTAssertGreaterThanOrEqual(elapsed, 190)
        XCTAssertLessThan(elapsed, 2000)

        XCTAssertEqual(try poller.poll(timeoutMilliseconds: 0), [], "zero timeout just checks")
    }

    func testPollReportsOnlyTheReadySocket() throws {
        let ctx = try ZMQContext()
        let a = try Socket(ctx, type: .pull)
        let b = try Socket(ctx, type: .pull)
        try a.bind("inproc://a")
        try b.bind("inproc://b")
        let pushB = try Socket(ctx, type: .push)
        try pushB.connect("inproc://b")

        let poller = Poller()
        let ia = try poller.add(a)
        let ib = try poller.add(b)
        try pushB.send([[42]])
        XCTAssertEqual(try poller.poll(timeoutMilliseconds: 2000), [ib])
        XCTAssertEqual(poller.readiness(of: ib), .readable)
        XCTAssertEqual(poller.readiness(of: ia), [])
        XCTAssertEqual(try b.receiveMultipart(dontWait: true), [[42]])
        XCTAssertNil(try a.receiveMultipart(dontWait: true))
        // Level-triggered: once drained, the socket is no longer reported.
        XCTAssertEqual(try poller.poll(timeoutMilliseconds: 0), [])
    }

    func testPollingAClosedSocketThrowsInsteadOfUsingADanglingHandle() throws {
        let ctx = try ZMQContext()
        let s = try Socket(ctx, type: .pull)
        let poller = Poller()
        try poller.add(s)
        s.close()
        XCTAssertThrowsError(try poller.poll(timeoutMilliseconds: 0)) { error in
            XCTAssertEqual((error as? ZMQError)?.errno, ENOTSOCK, "\(error)")
        }
    }

    func testWakeupFromAnotherThreadEndsAnInfinitePoll() throws {
        let wakeup = try Wakeup()
        let poller = Poller()
        let idx = poller.add(wakeup)
        let waker = Thread {
            usleep(100_000)
            wakeup.wake()
            wakeup.wake()  // repeated wakes coalesce
        }
        let start = monotonicMilliseconds()
        waker.start()
        XCTAssertEqual(try poller.poll(timeoutMilliseconds: -1), [idx])
        let elapsed = monotonicMilliseconds() - start
        XCTAssertLessThan(elapsed, 5000)
        usleep(20_000)  // let the second wake land before checking that draining consumed everything
        _ = try poller.poll(timeoutMilliseconds: 0)
        XCTAssertEqual(try poller.poll(timeoutMilliseconds: 0), [], "poll drains fired wakeups")
    }

    func testMailboxDeliversPostsFromManyThreadsInOrderPerThread() throws {
        let mailbox = try Mailbox<Int>()
        let poller = Poller()
        let idx = poller.add(mailbox.wakeup)
        let threads = 4, perThread = 500
        for t in 0..<threads {
            Thread {
                for i in 0..<perThread { mailbox.post(t * 10_000 + i) }
            }.start()
        }
        var received: [Int] = []
        let deadline = monotonicMilliseconds() + 10_000
        while received.count < threads * perThread && monotonicMilliseconds() < deadline {
            let ready = try poller.poll(timeoutMilliseconds: 1000)
            if ready.contains(idx) { received += mailbox.drain() }
        }
        XCTAssertEqual(received.count, threads * perThread, "lost or stuck posts")
        for t in 0..<threads {
            let mine = received.filter { $0 / 10_000 == t }
            XCTAssertEqual(mine, (0..<perThread).map { t * 10_000 + $0 })
        }

        XCTAssertEqual(mailbox.close(), [])
        XCTAssertFalse(mailbox.post(1), "closed mailbox refuses posts")
        XCTAssertTrue(mailbox.isClosed)
    }

    func testDaemonStyleLoopServesRequestsAndStopsOnMailboxCommand() throws {
        // The shape of a worker: one thread owns a ROUTER, polls it together with a mailbox, answers
        // each request, and exits when told to through the mailbox.
        let ctx = try ZMQContext()
        let control = try Mailbox<String>()
        let endpointBox = try Mailbox<String>()
        let loop = Thread {
            do {
                let router = try Socket(ctx, type: .router)
                try router.bind("tcp://127.0.0.1:*")
                endpointBox.post(try router.lastEndpoint)
                let poller = Poller()
                let iSock = try poller.add(router)
                let iCtl = poller.add(control.wakeup)
                while true {
                    let ready = try poller.poll(timeoutMilliseconds: -1)
                    if ready.contains(iCtl), control.drain().contains("stop") { return }
                    if ready.contains(iSock) {
                        while let frames = try router.receiveMultipart(dontWait: true), frames.count == 2 {
                            try router.send([frames[0], frames[1].reversed()])
                        }
                    }
                }
            } catch {
                endpointBox.post("error: \(error)")
            }
        }
        loop.start()

        let waiter = Poller()
        waiter.add(endpointBox.wakeup)
        XCTAssertEqual(try waiter.poll(timeoutMilliseconds: 5000), [0])
        let endpoint = try XCTUnwrap(endpointBox.drain().first)
        XCTAssertTrue(endpoint.hasPrefix("tcp://"), endpoint)

        let client = try Socket(ctx, type: .dealer)
        try client.set(.receiveTimeout(milliseconds: 5000))
        try client.connect(endpoint)
        for n in 1...20 {
            try client.send([Array(0..<UInt8(n))])
            XCTAssertEqual(try client.receiveMultipart(), [Array((0..<UInt8(n)).reversed())])
        }
        control.post("stop")
        let deadline = Date().addingTimeInterval(5)
        while !loop.isFinished && Date() < deadline { usleep(1000) }
        XCTAssertTrue(loop.isFinished, "loop thread did not stop")
    }
}
