// BenchTokenizer: `jamba bench-tokenizer`: encode throughput of a tokenizer.json on a text file (bench/tokenizer.*).
import ArgumentParser
import Foundation
import JambaTokenizer

struct BenchTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-tokenizer",
        abstract: "Encode throughput (MB/s on one core) of a tokenizer.json; make one with tools/tokenizer-bench/make_tokenizer.py.")

    @Option(help: "A tokenizer.json file.") var tokenizer: String
    @Option(help: "Text files to encode (comma-separated).") var text: String
    @Option(help: "Output file stem.") var out = "bench/tokenizer"

    struct Row: Codable { let text: String; let bytes: Int; let tokens: Int; let megabytesPerSecond: Double }
    struct Report: Codable { let tokenizer: String; let vocabSize: Int; let date: String; let rows: [Row] }

    func run() throws {
        try reportingErrors {
            let url = URL(fileURLWithPath: tokenizer)
            let vocab = try Tokenizer(contentsOf: url).vocabSize
            var rows: [Row] = []
            for path in text.split(separator: ",").map(String.init) {
                let t = try String(contentsOfFile: path, encoding: .utf8)
                let r = try TokenizerBenchmark.run(tokenizerURL: url, text: t)
                rows.append(Row(text: URL(fileURLWithPath: path).lastPathComponent, bytes: t.utf8.count, tokens: r.tokens,
                                megabytesPerSecond: r.bytesPerSecond / 1e6))
            }
            let report = Report(tokenizer: url.lastPathComponent, vocabSize: vocab, date: ISO8601DateFormatter().string(from: Date()), rows: rows)
            var md = "# Tokenizer encode throughput\n\n`\(report.tokenizer)`, vocabulary \(vocab), one core, \(report.date).\n\n"
            md += "| text | bytes | tokens | MB/s |\n|---|---|---|---|\n"
            for r in rows { md += String(format: "| %@ | %d | %d | %.1f |\n", r.text, r.bytes, r.tokens, r.megabytesPerSecond) }
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try FileManager.default.createDirectory(at: URL(fileURLWithPath: out).deletingLastPathComponent(), withIntermediateDirectories: true)
            try enc.encode(report).write(to: URL(fileURLWithPath: out + ".json"))
            try Data(md.utf8).write(to: URL(fileURLWithPath: out + ".md"))
            print(md)
        }
    }
}
