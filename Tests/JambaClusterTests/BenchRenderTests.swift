// BenchRenderTests: `jamba bench --render-only` takes the bf16-against-llama.cpp target from interleaved pairs made
// after the run, and only from those; and it puts each decode row against its roofline.
import Foundation
import XCTest

final class BenchRenderTests: XCTestCase {
    let dir = NSTemporaryDirectory() + "bench-render-\(getpid())/"

    override func setUpWithError() throws {
        try FileManager.default.createDirectory(atPath: dir + "reference", withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ object: Any, to path: String) throws {
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
    }

    /// A run started at 19:00 with bf16 b1 at 80 tok/s; llama.cpp f16 measured apart at 100 tok/s (0.80×).
    func writeRun() throws {
        try write(["model": "m", "threads": 2, "date": "2026-12-04T19:00:00Z", "peakRSSBytes": [String: Int](),
                   "references": [Any](),
                   "rows": [["mode": "local", "dtype": "bf16", "scenario": "decode_b1", "batch": 1, "tokensPerSecond": 80.0,
                             "ttftSeconds": 0.1, "samples": [80.0]]]], to: dir + "results.json")
        try write(["llama_cpp_commit": "abc", "date": "2026-12-04T18:50:00+00:00",
                   "summary": ["f16": ["decode_b1": ["median_tokens_per_s": 100.0]]]], to: dir + "reference/llamacpp.json")
    }

    func interleaved(date: String, ratios: [Double], ours: String = "bf16") -> [String: Any] {
        ["date": date, "ours_dtype": ours, "llama_dtype": "f16",
         "batches": ["1": ["pairs": ratios.map { ["llama": 80.0, "ours": 80.0 * $0, "ratio": $0] }]]]
    }

    func render() throws -> String {
        try renderAll().split(separator: "\n").first { $0.contains("bf16 decode b1 ≥ llama.cpp f16") }.map(String.init) ?? ""
    }

    func renderAll() throws -> String {
        let p = Process()
        p.executableURL = try ClusterHarness.executable("jamba")
        p.arguments = ["bench", "--model", dir, "--render-only", "--out", dir + "results", "--reference", dir + "reference",
                       "--interleaved", dir + "interleaved.json"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        return String(decoding: out, as: UTF8.self)
    }

    func testTargetUsesInterleavedPairsMadeAfterTheRun() throws {
        try writeRun()
        // No pairs: the separate runs' ratio, 0.80×.
        var row = try render()
        print("[render] no pairs: \(row)")
        XCTAssertTrue(row.contains("0.80×") && row.hasSuffix("| no |"), row)

        // Pairs made after the run started: their median (1.02×), with the separate figure beside it.
        try write(interleaved(date: "2026-12-04T19:30:00+00:00", ratios: [0.98, 1.02, 1.05]), to: dir + "interleaved.json")
        row = try render()
        print("[render] later pairs: \(row)")
        XCTAssertTrue(row.contains("1.02× (median of 3 interleaved pairs, lowest 0.98×; separate runs: 0.80×"), row)
        XCTAssertTrue(row.hasSuffix("| yes |"), row)

        // Pairs from before the run, or of other dtypes, are not this run's: back to the separate ratio.
        try write(interleaved(date: "2026-12-04T18:30:00+00:00", ratios: [1.10]), to: dir + "interleaved.json")
        row = try render()
        print("[render] earlier pairs: \(row)")
        XCTAssertTrue(row.contains("0.80×") && !row.contains("interleaved"), row)
        try write(interleaved(date: "2026-12-04T19:30:00+00:00", ratios: [1.10], ours: "f32"), to: dir + "interleaved.json")
        row = try render()
        XCTAssertFalse(row.contains("interleaved"), row)
    }

    /// A step's roofline: its parts run one after the other, each taking at least the longer of streaming its bytes at
    /// the read limit and doing its FLOPs at the sgemm limit. Limits: 50 GB/s and 200 GFLOP/s.
    /// - Batch 1: dense 0.4 GB / 1 GFLOP (8 ms, memory), experts 0.1 GB / 0.2 GFLOP (2 ms, memory); measured 12.5 ms: 80%.
    /// - Batch 32: dense 0.4 GB / 3 GFLOP (15 ms, compute), experts 0.2 GB / 1 GFLOP (5 ms, compute); measured 25 ms: 80%.
    /// - Batch 8: dense 0.4 GB / 2 GFLOP (10 ms, compute), experts 0.3 GB / 0.4 GFLOP (6 ms, memory); measured 20 ms: 80%,
    ///   bound differently per part.
    /// A row without parts (an older run's JSON) gets no roofline; a row with the read limit measured around its own runs
    /// is set against that instead of the limit measured at the end.
    func testDecodeRowsAreMeasuredAgainstTheirRoofline() throws {
        let limits: [String: Any] = ["sgemmShape": [512, 5632, 1024], "sgemmGFLOPS": [100.0, 200.0], "readGBps": [30.0, 50.0],
                                     "sumGBps": [30.0, 50.0], "streamGBps": [25.0, 45.0], "sgemvGBps": [20.0, 40.0]]
        func row(_ scenario: String, batch: Int, ms: Double, parts: [(Double, Double)]?, readLimits: [Double]? = nil) -> [String: Any] {
            let bytes = (parts ?? [(0.5e9, 0)]).reduce(0) { $0 + $1.0 }
            var r: [String: Any] = ["mode": "local", "dtype": "f32", "scenario": scenario, "batch": batch, "tokensPerSecond": 1.0,
                                    "ttftSeconds": 0.1, "samples": [1.0], "msPerStep": ms, "bytesPerStep": bytes,
                                    "achievedPerSecond": bytes / (ms / 1000), "limitKind": "bytes"]
            if let readLimits { r["readLimitGBps"] = readLimits }
            if let parts {
                r["parts"] = zip(["dense", "experts"], parts).map { ["name": $0.0, "bytes": $0.1.0, "flops": $0.1.1] }
            }
            return r
        }
        try write(["model": "m", "threads": 2, "date": "2026-12-04T19:00:00Z", "peakRSSBytes": [String: Int](),
                   "references": [Any](), "limits": limits,
                   "rows": [row("decode_b1", batch: 1, ms: 12.5, parts: [(0.4e9, 1e9), (0.1e9, 0.2e9)]),
                            row("decode_b32", batch: 32, ms: 25, parts: [(0.4e9, 3e9), (0.2e9, 1e9)]),
                            row("decode_b8", batch: 8, ms: 20, parts: [(0.4e9, 2e9), (0.3e9, 0.4e9)]),
                            row("decode_b2", batch: 2, ms: 20, parts: nil),
                            // Measured with the bandwidth at 20 and 30 GB/s just before and after: 0.5 GB in 20 ms is
                            // 25 GB/s, 100% of their mean; its roofline (0.4 + 0.1 GB at 25 GB/s) is 20 ms, 100%.
                            row("decode_b4", batch: 4, ms: 20, parts: [(0.4e9, 1e9), (0.1e9, 0.2e9)], readLimits: [20, 30])]],
                  to: dir + "results.json")
        let text = try renderAll()
        func line(_ scenario: String) -> String {
            text.split(separator: "\n").first { $0.contains("| \(scenario) |") }.map(String.init) ?? ""
        }
        for s in ["decode_b1", "decode_b32", "decode_b8", "decode_b2", "decode_b4"] { print("[render] \(line(s))") }
        XCTAssertTrue(text.contains("| of limit | of roofline |"), text)
        XCTAssertTrue(line("decode_b1").contains("| 80% (memory) |"), line("decode_b1"))
        XCTAssertTrue(line("decode_b32").contains("| 80% (compute) |"), line("decode_b32"))
        XCTAssertTrue(line("decode_b8").contains("| 80% (dense: compute, experts: memory) |"), line("decode_b8"))
        // The memory-only ratio stays for the targets: 0.6 GB in 25 ms is 24 GB/s, 48% of 50.
        XCTAssertTrue(line("decode_b32").contains("| 48% |"), line("decode_b32"))
        XCTAssertFalse(line("decode_b2").contains("memory") || line("decode_b2").contains("compute"), line("decode_b2"))
        // A row measured with its own read limit is set against it, not against the end-of-bench 50 GB/s.
        XCTAssertTrue(line("decode_b4").contains("| 100% of 25.0 | 100% (memory) |"), line("decode_b4"))
    }

    /// Where our own kernel outruns OpenBLAS's sgemm (as on an Intel Xeon with Debian's OpenBLAS 0.3.21), the compute
    /// limit is the better of the two: a prefill at 300 GFLOP/s reads 75% of our kernel's 400, not 150% of sgemm's
    /// 200, and a compute-bound step's roofline uses 400 too. An older JSON without the kernel's figure keeps sgemm.
    func testTheComputeLimitIsTheBetterOfSgemmAndOurKernel() throws {
        var limits: [String: Any] = ["sgemmShape": [512, 5632, 1024], "sgemmGFLOPS": [100.0, 200.0], "fewRowsGFLOPS": [150.0, 400.0],
                                     "readGBps": [30.0, 50.0], "sumGBps": [30.0, 50.0], "streamGBps": [25.0, 45.0],
                                     "sgemvGBps": [20.0, 40.0]]
        let prefill: [String: Any] = ["mode": "local", "dtype": "f32", "scenario": "prefill512", "batch": 1, "tokensPerSecond": 500.0,
                                      "ttftSeconds": 1.0, "samples": [500.0], "achievedPerSecond": 300e9, "limitKind": "flops"]
        // 8 GFLOP of dense layers and 0.1 GB of experts in 25 ms: 8 / 400 = 20 ms + 0.1 / 50 = 2 ms, 88% of the step.
        let decode: [String: Any] = ["mode": "local", "dtype": "f32", "scenario": "decode_b32", "batch": 32, "tokensPerSecond": 1.0,
                                     "ttftSeconds": 0.1, "samples": [1.0], "msPerStep": 25.0, "bytesPerStep": 0.5e9,
                                     "achievedPerSecond": 20e9, "limitKind": "bytes",
                                     "parts": [["name": "dense", "bytes": 0.4e9, "flops": 8e9], ["name": "experts", "bytes": 0.1e9, "flops": 0.2e9]]]
        func render() throws -> String {
            try write(["model": "m", "threads": 2, "date": "2026-12-05T13:00:00Z", "peakRSSBytes": [String: Int](),
                       "references": [Any](), "limits": limits, "rows": [prefill, decode]], to: dir + "results.json")
            return try renderAll()
        }
        var text = try render()
        func line(_ key: String) -> String { text.split(separator: "\n").first { $0.contains(key) }.map(String.init) ?? "" }
        print("[render] \(line("| prefill512 |"))\n[render] \(line("| decode_b32 |"))\n[render] \(line("**compute limit**"))")
        XCTAssertTrue(line("| prefill512 |").contains("| 75% |"), line("| prefill512 |"))
        XCTAssertTrue(line("| decode_b32 |").contains("| 88% (dense: compute, experts: memory) |"), line("| decode_b32 |"))
        XCTAssertTrue(line("**compute limit**").contains("| 150 | 400 |") || line("**compute limit**").contains("| 150.0 | 400.0 |"),
                      line("**compute limit**"))
        limits["fewRowsGFLOPS"] = nil
        text = try render()
        XCTAssertTrue(line("| prefill512 |").contains("| 150% |"), "older JSON: against sgemm alone; \(line("| prefill512 |"))")
        XCTAssertEqual(line("**compute limit**"), "")
    }
}
