#!/usr/bin/env python3
"""llamacpp_bench.py: helper of run_llamacpp.sh (synthetic tokenizer for the converter; runs and parses llama.cpp's benchmarks).

Usage (normally called by tools/bench/run_llamacpp.sh, which builds llama.cpp and converts the model first):
    python3 tools/bench/llamacpp_bench.py tokenizer HF_DIR
        writes HF_DIR/tokenizer.json + tokenizer_config.json: a Llama-style BPE (byte fallback) tokenizer with exactly
        config.json's vocab_size entries (<unk> <s> </s>, the 256 <0xXX> byte tokens, ASCII, then filler pieces).
        The bench model ships no tokenizer and convert_hf_to_gguf.py needs one; every benchmark feeds random ids.
    python3 tools/bench/llamacpp_bench.py bench --bin BUILD/bin --gguf-dir DIR [--dtypes f32 f16 q8_0] [--repeats 3]
                                             [--update]   (keep the other dtypes already in --out)
        per dtype (DIR/bench-<dtype>.gguf), 2 threads:
          llama-bench -p 512 -n 128 -r R -o json   -> prefill512 tok/s (pp512), decode b1 tok/s (tg128), TTFT(512)
          llama-batched-bench -npp 32 -ntg 128 -npl B -c B*160 --output-format jsonl, B in 1 8 32, R processes
                                                  -> decode tok/s at batch B (S_TG = B*128/T_TG), ms/step = T_TG/128,
                                                     TTFT = T_PP (prefill of the B 32-token prompts)
        Every command runs in its own process; peak RSS = that process's ru_maxrss (weights are mmapped, so the
        resident pages of the model file count). Writes the JSON given by --out.
        Shared machine: before each process it waits up to --max-wait s for the rest of the machine to use < 0.25
        cores; a process during which the rest used > --clean cores is run again (up to --max-tries, the quietest
        kept). other_processes_cpu_cores in the JSON says how busy the rest of the machine was (0 quiet, 2 full).
"""
import argparse
import datetime
import json
import os
import platform
import selectors
import statistics
import subprocess
import sys
import time

THREADS = 2
PROMPT = 32
NEW = 128
BATCHES = [1, 8, 32]


# ----------------------------------------------------------------------------------------------------------------------
# Synthetic tokenizer
# ----------------------------------------------------------------------------------------------------------------------

def write_tokenizer(hf_dir):
    with open(os.path.join(hf_dir, "config.json")) as f:
        n_vocab = json.load(f)["vocab_size"]
    specials = ["<unk>", "<s>", "</s>"]
    pieces = specials + [f"<0x{b:02X}>" for b in range(256)] + ["▁"] + [chr(c) for c in range(0x21, 0x7F)]
    i = 0
    while len(pieces) < n_vocab:
        pieces.append(f"▁w{i}")
        i += 1
    assert len(pieces) == n_vocab and len(set(pieces)) == n_vocab
    tok = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, s in enumerate(specials)],
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False},
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": {s: i for i, s in enumerate(pieces)}, "merges": []},
    }
    with open(os.path.join(hf_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(hf_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
                   "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False,
                   "model_max_length": 262144}, f, indent=1)
    print(f"wrote a synthetic {n_vocab}-entry tokenizer to {hf_dir}")


# ----------------------------------------------------------------------------------------------------------------------
# Benchmarks
# ----------------------------------------------------------------------------------------------------------------------

def cpu_busy_s():
    """Seconds of CPU time the whole machine spent busy (all cores, from /proc/stat; idle and iowait excluded)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


MAX_WAIT = 60.0     # s to wait for a quiet machine before each process (--max-wait)
CLEAN = 0.3         # a run during which the rest of the machine used more cores than this is retried (--clean)
MAX_TRIES = 4       # ... at most this many times; the quietest attempt is kept (--max-tries)


def wait_quiet(threshold=0.25, window_s=3.0):
    """Waits (up to MAX_WAIT s) until other processes use < threshold cores over window_s; returns (waited s, use)."""
    t0 = time.time()
    while True:
        b0, w0 = cpu_busy_s(), time.time()
        time.sleep(window_s)
        use = (cpu_busy_s() - b0) / (time.time() - w0)
        if use < threshold or time.time() - t0 >= MAX_WAIT:
            return round(time.time() - t0, 1), round(use, 2)


def run_rss(cmd):
    """run_once, retried (up to MAX_TRIES) while the rest of the machine used more than CLEAN cores; keeps the
    quietest attempt. Same return value as run_once, info also has "attempts" and the other attempts' noise."""
    best, noise = None, []
    for _ in range(max(1, MAX_TRIES)):
        r = run_once(cmd)
        noise.append(r[4]["other_processes_cpu_cores"])
        if best is None or r[4]["other_processes_cpu_cores"] < best[4]["other_processes_cpu_cores"]:
            best = r
        if best[4]["other_processes_cpu_cores"] <= CLEAN:
            break
    best[4]["attempts"] = len(noise)
    best[4]["other_processes_cpu_cores_per_attempt"] = noise
    return best


def run_once(cmd):
    """Fresh process; returns (stdout, stderr, peak RSS KiB, wall s, info). Uses os.wait4 for the child's own rusage.
    info: waited_for_quiet_s, other_processes_cpu_cores (CPU used by everything else while it ran), load averages."""
    waited, use_before = wait_quiet() if MAX_WAIT > 0 else (0, None)
    la0, busy0 = os.getloadavg(), cpu_busy_s()
    t = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out_chunks, err_chunks = [], []
    # read both pipes without deadlocking, then reap with wait4 to get the child's own rusage
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ, out_chunks)
    sel.register(p.stderr, selectors.EVENT_READ, err_chunks)
    open_ = 2
    while open_:
        for key, _ in sel.select():
            data = key.fileobj.read1(65536)
            if not data:
                sel.unregister(key.fileobj)
                open_ -= 1
            else:
                key.data.append(data)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - t
    child_cpu = ru.ru_utime + ru.ru_stime
    info = {"waited_for_quiet_s": waited, "other_cpu_cores_before_start": use_before,
            "other_processes_cpu_cores": round((cpu_busy_s() - busy0 - child_cpu) / wall, 2),
            "own_cpu_cores": round(child_cpu / wall, 2),
            "load_avg_start_end": [[round(x, 2) for x in la0], [round(x, 2) for x in os.getloadavg()]]}
    out = b"".join(out_chunks).decode("utf-8", "replace")
    err = b"".join(err_chunks).decode("utf-8", "replace")
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{err[-3000:]}")
    return out, err, ru.ru_maxrss, wall, info


def llama_bench(binary, gguf, repeats):
    cmd = [binary, "-m", gguf, "-t", str(THREADS), "-p", "512", "-n", str(NEW), "-r", str(repeats), "-o", "json"]
    out, err, rss, wall, info = run_rss(cmd)
    rows = json.loads(out)
    res = {"command": " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd)),
           "peak_rss_kib": rss, "peak_rss_mib": round(rss / 1024, 1), "wall_s": round(wall, 1), **info}
    for r in rows:
        key = "pp512" if r["n_prompt"] == 512 and r["n_gen"] == 0 else f"tg{r['n_gen']}"
        res[key] = {"avg_tokens_per_s": r["avg_ts"], "stddev_tokens_per_s": r["stddev_ts"],
                    "samples_tokens_per_s": r.get("samples_ts"),
                    "median_tokens_per_s": statistics.median(r["samples_ts"]) if r.get("samples_ts") else r["avg_ts"],
                    "samples_ms": [x / 1e6 for x in r.get("samples_ns", [])]}
        for k in ["build_commit", "build_number", "cpu_info", "backends", "n_batch", "n_ubatch", "type_k",
                  "type_v", "flash_attn", "use_mmap", "model_type", "model_size", "model_n_params", "n_threads"]:
            if k in r:
                res.setdefault("llama_bench_info", {})[k] = r[k]
    return res


def batched_bench(binary, gguf, batch, repeats):
    cmd = [binary, "-m", gguf, "-t", str(THREADS), "-tb", str(THREADS), "-c", str(batch * (PROMPT + NEW) + 256),
           "-b", "2048", "-ub", "512", "-npp", str(PROMPT), "-ntg", str(NEW), "-npl", str(batch),
           "--output-format", "jsonl"]
    samples = []
    for _ in range(repeats):
        # On the Xeon VM (2026-12-05) one process in many exited 0 having printed nothing at all; run it again.
        for attempt in range(3):
            out, err, rss, wall, info = run_rss(cmd)
            line = [ln for ln in (out + "\n" + err).splitlines() if ln.startswith("{") and '"speed_tg"' in ln]
            if line:
                break
            print(f"[llama.cpp] no jsonl result (attempt {attempt + 1} of 3), stdout {len(out)} B, stderr {len(err)} B",
                  file=sys.stderr)
        if not line:
            sys.exit(f"no jsonl result from: {' '.join(cmd)}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}")
        r = json.loads(line[-1])
        samples.append({"t_pp_s": r["t_pp"], "speed_pp": r["speed_pp"], "t_tg_s": r["t_tg"],
                        "speed_tg": r["speed_tg"], "peak_rss_kib": rss, "wall_s": round(wall, 1),
                        "flash_attn": r.get("flash_attn"), "n_threads": r.get("n_threads"), **info})
    tps = [s["speed_tg"] for s in samples]
    return {"command": " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd)),
            "batch": batch, "prompt_tokens": PROMPT, "new_tokens": NEW, "processes": repeats,
            "samples_tokens_per_s": tps, "median_tokens_per_s": statistics.median(tps),
            "best_tokens_per_s": max(tps),
            "median_ms_per_step": 1000 * statistics.median(s["t_tg_s"] for s in samples) / NEW,
            "median_ttft_ms": 1000 * statistics.median(s["t_pp_s"] for s in samples),
            "peak_rss_mib": round(max(s["peak_rss_kib"] for s in samples) / 1024, 1),
            "other_processes_cpu_cores": [s["other_processes_cpu_cores"] for s in samples],
            "samples": samples}


def git_desc(d):
    try:
        return subprocess.run(["git", "-C", d, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def bench(args):
    started = time.time()
    res = {
        "what": "llama.cpp (CPU, 2 threads) on the bench model converted with convert_hf_to_gguf.py (f32, f16) and "
                "llama-quantize (q8_0 from f16). prefill512 and decode_b1 from llama-bench -p 512 -n 128 "
                "(tok/s per repetition, median; its TTFT = pp512 time). decode_bB from llama-batched-bench "
                "-npp 32 -ntg 128 -npl B, one process per repetition: tok/s = B*128/T_TG (random tokens, no "
                "sampling), ms_per_step = T_TG/128, TTFT = T_PP = prefill of B 32-token prompts (one batch). "
                "peak_rss = ru_maxrss of each process (mmapped weights included). "
                "Produced by tools/bench/run_llamacpp.sh + tools/bench/llamacpp_bench.py.",
        "engine": "llama.cpp",
        "source": args.source,
        "llama_cpp_commit": None,
        "threads": THREADS,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": {"cpu": cpu_model(), "nproc": os.cpu_count(), "platform": platform.platform()},
        "load_avg_at_start": list(os.getloadavg()),
        "dtypes": {},
    }
    for dt in args.dtypes:
        gguf = os.path.join(args.gguf_dir, f"bench-{dt}.gguf")
        entry = {"gguf_bytes": os.path.getsize(gguf), "date": datetime.datetime.now(datetime.timezone.utc)
                 .isoformat(timespec="seconds")}
        lb = llama_bench(os.path.join(args.bin, "llama-bench"), gguf, args.repeats)
        info = lb.get("llama_bench_info", {})
        res["llama_cpp_commit"] = res["llama_cpp_commit"] or info.get("build_commit")
        res.setdefault("build_number", info.get("build_number"))
        entry["llama_bench"] = lb
        print(f"[llama.cpp {dt}] pp512 {lb['pp512']['median_tokens_per_s']:.1f} tok/s, tg128 "
              f"{lb[f'tg{NEW}']['median_tokens_per_s']:.1f} tok/s, peak RSS {lb['peak_rss_mib']:.0f} MiB", flush=True)
        entry["batched"] = {}
        for b in BATCHES:
            bb = batched_bench(os.path.join(args.bin, "llama-batched-bench"), gguf, b, args.repeats)
            entry["batched"][f"decode_b{b}"] = bb
            print(f"[llama.cpp {dt}] decode_b{b}: {bb['median_tokens_per_s']:.1f} tok/s, TTFT "
                  f"{bb['median_ttft_ms']:.0f} ms, peak RSS {bb['peak_rss_mib']:.0f} MiB", flush=True)
        pp = lb["pp512"]
        entry["summary"] = {
            "prefill512": {"median_tokens_per_s": round(pp["median_tokens_per_s"], 2),
                           "median_ttft_ms": round(statistics.median(pp["samples_ms"]), 1) if pp["samples_ms"] else None,
                           "peak_rss_mib": lb["peak_rss_mib"], "tool": "llama-bench pp512",
                           "other_processes_cpu_cores": lb["other_processes_cpu_cores"]},
            "decode_b1_llama_bench": {"median_tokens_per_s": round(lb[f"tg{NEW}"]["median_tokens_per_s"], 2),
                                      "peak_rss_mib": lb["peak_rss_mib"], "tool": "llama-bench tg128",
                                      "other_processes_cpu_cores": lb["other_processes_cpu_cores"]},
        }
        for b in BATCHES:
            bb = entry["batched"][f"decode_b{b}"]
            entry["summary"][f"decode_b{b}"] = {
                "median_tokens_per_s": round(bb["median_tokens_per_s"], 2),
                "median_ttft_ms": round(bb["median_ttft_ms"], 1),
                "median_ms_per_step": round(bb["median_ms_per_step"], 2),
                "peak_rss_mib": bb["peak_rss_mib"], "tool": "llama-batched-bench",
                "other_processes_cpu_cores": bb["other_processes_cpu_cores"]}
        res["dtypes"][dt] = entry
    res["llama_cpp_commit"] = res["llama_cpp_commit"] or git_desc(args.llama_cpp_dir)
    res["load_avg_at_end"] = list(os.getloadavg())
    res["wall_s"] = round(time.time() - started, 1)
    if args.update and os.path.exists(args.out):
        # keep the other dtypes of an earlier run (e.g. re-running only a dtype whose run was disturbed)
        with open(args.out) as f:
            old = json.load(f)
        kept = {dt: e for dt, e in old.get("dtypes", {}).items() if dt not in res["dtypes"]}
        for e in kept.values():
            e.setdefault("date", old.get("date"))
        res["dtypes"] = {**kept, **res["dtypes"]}
        res["updated_dtypes"] = args.dtypes
    res["summary"] = {dt: e["summary"] for dt, e in res["dtypes"].items()}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out} ({res['wall_s']} s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tokenizer")
    t.add_argument("hf_dir")
    b = sub.add_parser("bench")
    b.add_argument("--bin", required=True)
    b.add_argument("--gguf-dir", required=True)
    b.add_argument("--dtypes", nargs="+", default=["f32", "f16", "q8_0"])
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--source", default="")
    b.add_argument("--llama-cpp-dir", default="")
    b.add_argument("--out", required=True)
    b.add_argument("--max-wait", type=float, default=60,
                   help="before each process wait up to this many seconds for the other processes to go quiet")
    b.add_argument("--clean", type=float, default=0.3,
                   help="retry a process during which the rest of the machine used more cores than this")
    b.add_argument("--max-tries", type=int, default=4)
    b.add_argument("--update", action="store_true",
                   help="keep the dtypes of an existing --out file that this run does not benchmark")
    args = ap.parse_args()
    if args.cmd == "tokenizer":
        write_tokenizer(args.hf_dir)
    else:
        global MAX_WAIT, CLEAN, MAX_TRIES
        MAX_WAIT, CLEAN, MAX_TRIES = args.max_wait, args.clean, args.max_tries
        bench(args)


if __name__ == "__main__":
    main()
