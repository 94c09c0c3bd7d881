// BenchSideBySide: other engines' figures (bench/reference/*.json) beside ours, and the issue's targets checked.
import Foundation

extension BenchReport {
    /// One engine × weight precision, as written by tools/bench/run_transformers.py and run_llamacpp.sh.
    struct Reference: Codable {
        var engine: String
        var dtype: String
        var date: String
        /// Scenario ("prefill512", "decode_b1", ...) → median tokens/s.
        var tokensPerSecond: [String: Double]
    }

    /// Reads `summary` of transformers.json (one dtype) and llamacpp.json (per dtype) under `directory`;
    /// a missing file is skipped (the table then says so), a malformed one is an error naming it.
    /// The batch-1 ratios of `file` (tools/bench/interleave.py: bf16 against llama.cpp f16) when it was made at or
    /// after `notBefore` (ISO 8601); nil when it is missing, older, or of other dtypes.
    static func loadInterleavedB1(file: String, notBefore: String) throws -> [Double]? {
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        guard let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any] else {
            throw BenchError.badReference(file, "not a JSON object")
        }
        let iso = ISO8601DateFormatter()
        guard obj["ours_dtype"] as? String == "bf16", obj["llama_dtype"] as? String == "f16",
              let made = (obj["date"] as? String).flatMap(iso.date(from:)), let start = iso.date(from: notBefore), made >= start,
              let b1 = (obj["batches"] as? [String: Any])?["1"] as? [String: Any], let pairs = b1["pairs"] as? [[String: Any]]
        else { return nil }
        let ratios = pairs.compactMap { $0["ratio"] as? Double }
        return ratios.isEmpty ? nil : ratios
    }

    static func loadReferences(directory: String) throws -> [Reference] {
        var out: [Reference] = []
        func json(_ name: String) throws -> [String: Any]? {
            let url = URL(fileURLWithPath: directory).appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else { return nil }
            guard let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
                throw BenchError.badReference(url.path, "not a JSON object")
            }
            return obj
        }
        func rates(_ summary: Any?, _ file: String) throws -> [String: Double] {
            guard let s = summary as? [String: Any] else { throw BenchError.badReference(file, "no summary object") }
            var r: [String: Double] = [:]
            for (scenario, v) in s {
                if let d = v as? [String: Any], let t = d["median_tokens_per_s"] as? Double { r[scenario] = t }
            }
            return r
        }
        if let t = try json("transformers.json") {
            let version = ((t["versions"] as? [String: Any])?["transformers"] as? String).map { " " + $0 } ?? ""
            out.append(Reference(engine: "transformers\(version)", dtype: (t["dtype"] as? String) ?? "f32",
                                 date: (t["date"] as? String) ?? "", tokensPerSecond: try rates(t["summary"], "transformers.json")))
        }
        if let l = try json("llamacpp.json") {
            let commit = (l["llama_cpp_commit"] as? String).map { " " + $0 } ?? ""
            let summary = l["summary"] as? [String: Any] ?? [:]
            let perDType = l["dtypes"] as? [String: Any] ?? [:]
            for dtype in ["f32", "f16", "q8_0"] where summary[dtype] != nil {
                // Each dtype carries the date it was measured (run_llamacpp.sh can refresh one dtype alone).
                let date = ((perDType[dtype] as? [String: Any])?["date"] as? String) ?? (l["date"] as? String) ?? ""
                out.append(Reference(engine: "llama.cpp\(commit)", dtype: dtype, date: date,
                                     tokensPerSecond: try rates(summary[dtype], "llamacpp.json")))
            }
        }
        return out
    }

    func rate(mode: String, dtype: String, scenario: String) -> Double? {
        rows.first { $0.mode == mode && $0.dtype == dtype && $0.scenario == scenario }?.tokensPerSecond
    }

    func sideBySide() -> String {
        let scenarios = ["prefill512", "decode_b1", "decode_b8", "decode_b32"]
        var s = "\n## Side by side (tokens/s, 2 threads, same model and workloads)\n\n"
        s += "| engine | weights | prefill 512 | decode b1 | decode b8 | decode b32 | measured |\n|---|---|---|---|---|---|---|\n"
        let modes = rows.map(\.mode).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        for mode in modes {
            for dtype in rows.filter({ $0.mode == mode }).map(\.dtype).reduce(into: [String](), { if !$0.contains($1) { $0.append($1) } }) {
                let cells = scenarios.map { rate(mode: mode, dtype: dtype, scenario: $0).map(f1) ?? "" }
                s += "| JambaCluster \(mode) | \(dtype) | \(cells.joined(separator: " | ")) | this run, \(date) |\n"
            }
        }
        if references.isEmpty { s += "| (no bench/reference/*.json: see tools/bench/) | | | | | | |\n" }
        for r in references {
            let cells = scenarios.map { r.tokensPerSecond[$0].map(f1) ?? "" }
            s += "| \(r.engine) | \(r.dtype) | \(cells.joined(separator: " | ")) | \(r.date) |\n"
        }
        return s
    }

    /// The issue's targets, each with the figure reached.
    func targets() -> String {
        var s = "\n## Targets\n\n| target | reached | met |\n|---|---|---|\n"
        func row(_ what: String, _ value: Double?, _ goal: Double, _ show: (Double) -> String) {
            guard let v = value else { s += "| \(what) | not measured | |\n"; return }
            s += "| \(what) | \(show(v)) | \(v >= goal ? "yes" : "no") |\n"
        }
        let local = { (dtype: String, scenario: String) in rows.first { $0.mode == "local" && $0.dtype == dtype && $0.scenario == scenario } }
        let pct = { (v: Double) in String(format: "%.0f%%", 100 * v) }
        row("f32 prefill 512 ≥ 80% of the compute limit (sgemm or our kernel)", rows.first { $0.mode == "local" && $0.dtype == "f32" && $0.scenario.hasPrefix("prefill") }?.ofLimit, 0.8, pct)
        row("f32 decode b1 ≥ 85% of memory read", local("f32", "decode_b1")?.ofLimit, 0.85, pct)
        row("f32 decode b8 ≥ 70% of memory read", local("f32", "decode_b8")?.ofLimit, 0.70, pct)
        let f16 = references.first { $0.engine.hasPrefix("llama.cpp") && $0.dtype == "f16" }?.tokensPerSecond["decode_b1"]
        let bf16b1 = local("bf16", "decode_b1")?.tokensPerSecond
        let separate = bf16b1.flatMap { b in f16.map { b / $0 } }
        if let pairs = interleavedB1, !pairs.isEmpty {
            row("bf16 decode b1 ≥ llama.cpp f16 decode b1", median(pairs), 1.0) {
                String(format: "%.2f× (median of %d interleaved pairs, lowest %.2f×; separate runs: ", $0, pairs.count, pairs.min() ?? 0)
                    + (separate.map { String(format: "%.2f×", $0) } ?? "-") + " against \(f16.map(f1) ?? "?") tok/s)"
            }
        } else {
            row("bf16 decode b1 ≥ llama.cpp f16 decode b1 (\(f16.map(f1) ?? "?") tok/s)", separate, 1.0, { String(format: "%.2f×", $0) })
        }
        for dtype in ["f32", "bf16"] {
            let cluster = rows.first { $0.mode == "cluster 2w" && $0.dtype == dtype && $0.scenario == "decode_b8" }
            if let pairs = cluster?.pairedRatios, !pairs.isEmpty {
                // The ratio within interleaved pairs: the two sides of a pair see the same memory bandwidth.
                row("\(dtype) cluster 2 workers decode b8 ≥ 0.9× single process", median(pairs), 0.9) {
                    String(format: "%.2f× (median of %d interleaved pairs, lowest %.2f×; separate runs: ", $0, pairs.count, pairs.min() ?? 0)
                        + (separateRatio(dtype).map { String(format: "%.2f×", $0) } ?? "-") + ")"
                }
                continue
            }
            guard let r = separateRatio(dtype) else { continue }
            row("\(dtype) cluster 2 workers decode b8 ≥ 0.9× single process", r, 0.9, { String(format: "%.2f×", $0) })
        }
        return s
    }

    /// Cluster 2-worker b8 ÷ single-process b8 from the separate (not interleaved) runs.
    private func separateRatio(_ dtype: String) -> Double? {
        guard let single = rows.first(where: { $0.mode == "local" && $0.dtype == dtype && $0.scenario == "decode_b8" })?.tokensPerSecond,
              let two = rate(mode: "cluster 2w", dtype: dtype, scenario: "decode_b8") else { return nil }
        return two / single
    }

    private func f1(_ x: Double) -> String { String(format: x >= 100 ? "%.0f" : "%.1f", x) }
}

enum BenchError: Error, CustomStringConvertible {
    case badReference(String, String)

    var description: String {
        switch self {
        case let .badReference(file, why): "reference file \(file): \(why)"
        }
    }
}
