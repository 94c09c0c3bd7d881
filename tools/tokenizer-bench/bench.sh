#!/usr/bin/env bash
# Measures JambaTokenizer encode throughput (release build) on the 65,536-entry tokenizer from make_tokenizer.py.
#
# Builds a throwaway package under $WORK (default /tmp/tokenizer-bench/pkg) that symlinks Sources/JambaTokenizer
# and calls the public `TokenizerBenchmark.run`, so it neither touches Package.swift nor fights over the main
# build directory. Also compares the token count of each text with HF `tokenizers` (pip package) as a sanity
# check. Usage, from the repository root:
#   tools/tokenizer-bench/bench.sh            # generates /tmp/tokenizer-bench/tokenizer.json first if missing
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${OUT:-/tmp/tokenizer-bench}"
WORK="${WORK:-$OUT/pkg}"

if [[ ! -f "$OUT/tokenizer.json" ]]; then
    python3 "$ROOT/tools/tokenizer-bench/make_tokenizer.py" --out "$OUT"
fi

mkdir -p "$WORK/Sources/Bench"
ln -sfn "$ROOT/Sources/JambaTokenizer" "$WORK/Sources/JambaTokenizer"
cat > "$WORK/Package.swift" <<'EOF'
// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "TokenizerBench",
    platforms: [.macOS(.v13)],
    targets: [
        .target(name: "JambaTokenizer"),
        .executableTarget(name: "Bench", dependencies: ["JambaTokenizer"]),
    ]
)
EOF
cat > "$WORK/Sources/Bench/main.swift" <<'EOF'
import Foundation
import JambaTokenizer

// Bench TOKENIZER TEXT [BYTES]: encodes the first BYTES of TEXT (all of it by default).
let args = CommandLine.arguments
let url = URL(fileURLWithPath: args[1])
let all = try String(contentsOf: URL(fileURLWithPath: args[2]), encoding: .utf8)
let limit = args.count > 3 ? Int(args[3]) ?? all.utf8.count : all.utf8.count
let text = String(decoding: Array(all.utf8.prefix(limit)), as: UTF8.self)
let vocab = try Tokenizer(contentsOf: url).vocabSize
let result = try TokenizerBenchmark.run(tokenizerURL: url, text: text)
print(String(format: "%@ %d bytes: %.1f MB/s, %d tokens, vocab %d", (args[2] as NSString).lastPathComponent,
             text.utf8.count, result.bytesPerSecond / 1e6, result.tokens, vocab))
EOF

(cd "$WORK" && swift build -c release --product Bench 2>&1 | grep -E "error|warning: .*Bench|Compiling Bench" || true)
BENCH="$WORK/.build/release/Bench"

run() {  # file, byte limit
    "$BENCH" "$OUT/tokenizer.json" "$OUT/$1" "$2"
    python3 - "$OUT/tokenizer.json" "$OUT/$1" "$2" <<'EOF'
import sys
from tokenizers import Tokenizer
text = open(sys.argv[2], "rb").read()[: int(sys.argv[3])].decode("utf-8", "ignore")
print(f"  HF tokenizers: {len(Tokenizer.from_file(sys.argv[1]).encode(text, add_special_tokens=False).ids)} tokens")
EOF
}

run kjv.txt 1000000
run kjv.txt 100000000
run python.txt 1000000
