#!/usr/bin/env python3
"""interleave.py: our decode against llama.cpp's, alternating run by run, so both see the same machine.

This VM's memory bandwidth drifts by up to 1.7x within minutes (the read micro-benchmark has given 35 and 60 GB/s
on two threads half an hour apart), and decode at small batches is bound by it. Figures taken minutes apart therefore
compare the machine's moods, not the engines. This script alternates one llama.cpp run and one of ours, N times,
and reports the median of each and the median of the per-pair ratios.

Usage: python3 tools/bench/interleave.py [--pairs 7] [--batches 1,8] [--ours-dtype bf16] [--llama-dtype f16]
Needs: a release build (swift build -c release), the bench model (.bench-model/) and llama.cpp built with its
GGUF files by tools/bench/run_llamacpp.sh (.build-llamacpp/). Writes bench/interleaved.{json,md}.
Each run: 32-token prompt(s), 128 new tokens, 2 threads (llama-batched-bench -npp 32 -ntg 128 -npl B;
jamba bench --batches B --new-tokens 128 --repeats 1).
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def llama(bin_dir, gguf, batch, threads):
    cmd = [os.path.join(bin_dir, "llama-batched-bench"), "-m", gguf, "-t", str(threads), "-tb", str(threads),
           "-c", str(batch * 160 + 256), "-b", "2048", "-ub", "512", "-npp", "32", "-ntg", "128", "-npl", str(batch),
           "--output-format", "jsonl"]
    # llama-batched-bench (0c1e570) sometimes exits 0 after a full run with nothing on stdout (about one run in
    # four on the Intel VM, 2026-12-06): its jsonl line is lost. Such a run is repeated, up to 4 runs in all.
    for _ in range(4):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        if rows:
            break
        print(f"[interleave] no jsonl line from llama-batched-bench (batch {batch}); running it again", file=sys.stderr)
    else:
        sys.exit(f"no jsonl line from {' '.join(cmd)} in 4 runs")
    # batched-bench's speed_tg is B·ntg / t_tg: decode tokens per second over all sequences.
    return rows[-1]["speed_tg"]


def ours(binary, model, dtype, batch, threads):
    with tempfile.TemporaryDirectory() as tmp:
        stem = os.path.join(tmp, "r")
        cmd = [binary, "bench", "--model", model, "--threads", str(threads), "--dtypes", dtype, "--batches", str(batch),
               "--new-tokens", "128", "--repeats", "1", "--prefill-tokens", "16", "--cluster-workers", "", "--no-limits",
               "--reference", tmp, "--out", stem]
        subprocess.run(cmd, capture_output=True, text=True, check=True)
        report = json.load(open(stem + ".json"))
    return next(r["tokensPerSecond"] for r in report["rows"] if r["scenario"] == f"decode_b{batch}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ours-dtype", default="bf16")
    ap.add_argument("--llama-dtype", default="f16")
    ap.add_argument("--model", default=os.path.join(ROOT, ".bench-model"))
    ap.add_argument("--jamba", default=os.path.join(ROOT, ".build/release/jamba"))
    ap.add_argument("--llama-bin", default=os.path.join(ROOT, ".build-llamacpp/build/bin"))
    ap.add_argument("--gguf-dir", default=os.path.join(ROOT, ".build-llamacpp/gguf"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/interleaved"))
    args = ap.parse_args()
    gguf = os.path.join(args.gguf_dir, f"bench-{args.llama_dtype}.gguf")
    for path in (args.jamba, gguf, os.path.join(args.llama_bin, "llama-batched-bench"), args.model):
        if not os.path.exists(path):
            sys.exit(f"missing {path}: see the usage at the top of {__file__}")

    result = {"what": __doc__.split("\n")[0], "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "threads": args.threads, "ours_dtype": args.ours_dtype, "llama_dtype": args.llama_dtype, "batches": {}}
    for batch in [int(b) for b in args.batches.split(",")]:
        pairs = []
        for i in range(args.pairs):
            # Alternate who goes first, so a drift within a pair favours neither.
            if i % 2 == 0:
                a = llama(args.llama_bin, gguf, batch, args.threads); b = ours(args.jamba, args.model, args.ours_dtype, batch, args.threads)
            else:
                b = ours(args.jamba, args.model, args.ours_dtype, batch, args.threads); a = llama(args.llama_bin, gguf, batch, args.threads)
            pairs.append({"llama": a, "ours": b, "ratio": b / a})
            print(f"[interleave] b{batch} pair {i + 1}: llama.cpp {args.llama_dtype} {a:.1f} tok/s, ours {args.ours_dtype} {b:.1f} tok/s, ratio {b / a:.2f}", flush=True)
        result["batches"][str(batch)] = {
            "pairs": pairs,
            "median_llama": statistics.median(p["llama"] for p in pairs),
            "median_ours": statistics.median(p["ours"] for p in pairs),
            "median_ratio": statistics.median(p["ratio"] for p in pairs),
            "min_ratio": min(p["ratio"] for p in pairs),
        }
    json.dump(result, open(args.out + ".json", "w"), indent=1)
    md = [f"# Interleaved decode: JambaCluster {args.ours_dtype} vs llama.cpp {args.llama_dtype}", "",
          f"{result['date']}, {args.threads} threads, bench model, 32-token prompts, 128 new tokens; {args.pairs} pairs per batch,",
          "one llama.cpp run and one of ours back to back (the order alternates), so both see the same memory bandwidth.", "",
          "| batch | llama.cpp tok/s (median) | ours tok/s (median) | ours ÷ llama.cpp (median of pairs) | lowest pair |",
          "|---|---|---|---|---|"]
    for batch, r in result["batches"].items():
        md.append(f"| {batch} | {r['median_llama']:.1f} | {r['median_ours']:.1f} | {r['median_ratio']:.2f}× | {r['min_ratio']:.2f}× |")
    open(args.out + ".md", "w").write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
