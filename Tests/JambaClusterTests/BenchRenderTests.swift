// BenchRenderTests: `jamba bench --render-only` takes the bf16-against-llama.cpp target from interleaved pairs made
// after the run, and only from those.
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
        let text = String(decoding: out, as: UTF8.self)
        return text.split(separator: "\n").first { $0.contains("bf16 decode b1 ≥ llama.cpp f16") }.map(String.init) ?? ""
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
}
