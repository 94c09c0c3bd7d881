// Jamba: the `jamba` command line: local generation and inspection, and the client of a running cluster.
import ArgumentParser
import Foundation

@main
struct Jamba: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jamba",
        abstract: "Run Jamba models locally or through a JambaCluster coordinator.",
        subcommands: [Generate.self, Logits.self, Tokenize.self, Detokenize.self, Perplexity.self, Submit.self, Status.self, Rebalance.self, Bench.self, BenchBalance.self, BenchTokenizer.self]
    )
}

/// Runs a command body, printing any error to stderr with a non-zero exit status (never a crash or trace).
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch let e as CleanExit {
        throw e
    } catch let e as ValidationError {
        throw e
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}

/// Writes one line of JSON for an Encodable value to stdout.
func printJSON<T: Encodable>(_ value: T) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let data = try enc.encode(value)
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}

/// Writes text to stdout immediately (streaming output must not sit in a buffer).
func emit(_ s: String) {
    guard !s.isEmpty else { return }
    FileHandle.standardOutput.write(Data(s.utf8))
}

/// Parses "1,2,3" into token ids with a message naming the bad element.
func parseTokenList(_ s: String, flag: String = "--tokens") throws -> [Int] {
    let parts = s.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    guard !(parts.count == 1 && parts[0].isEmpty) else { throw ValidationError("\(flag) is empty") }
    return try parts.map { p in
        guard let v = Int(p), v >= 0 else { throw ValidationError("\(flag): '\(p)' is not a non-negative integer token id") }
        return v
    }
}
