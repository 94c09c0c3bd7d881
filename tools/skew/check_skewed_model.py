#!/usr/bin/env python3
"""check_skewed_model.py: verify a checkpoint written by make_skewed_model.py.

    nice -n 10 python3 tools/skew/check_skewed_model.py OUT_DIR [--src SRC_DIR] [--seed 1000] [--tokens 4096]

1. Files: every safetensors header (names, dtypes, shapes, offsets, metadata) equals the source's, every tensor
   except the routers is byte-identical, and the other top-level files are identical copies.
2. Routing on FRESH random tokens (seed differs from the fitting seed): loads OUT_DIR with transformers
   (float32, eager), runs the normal forward, records each MoE layer's top-k choices (hooks on the router
   modules, i.e. exactly what the model uses) and compares the usage with the targets in skew_report.json.
3. Loads and generates: greedy generation from a prompt (tokenizer text if the checkpoint has one).
Exit status 1 if a file check fails or generation produces non-finite logits.
"""
import argparse
import json
import os
import struct
import sys
import time

import numpy as np
import torch


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return n, json.loads(f.read(n))


def check_files(src, out, report):
    ok = True
    routers = {v["tensor"] for v in report["layers"].values()}
    files = sorted(f for f in os.listdir(src) if os.path.isfile(os.path.join(src, f)))
    for fn in files:
        a, b = os.path.join(src, fn), os.path.join(out, fn)
        if not os.path.exists(b):
            print(f"  MISSING {fn}")
            ok = False
            continue
        if not fn.endswith(".safetensors"):
            same = open(a, "rb").read() == open(b, "rb").read()
            print(f"  {fn}: {'identical' if same else 'DIFFERENT'}")
            ok &= same
            continue
        (na, ha), (nb, hb) = header(a), header(b)
        if na != nb or ha != hb:
            print(f"  {fn}: header DIFFERENT")
            ok = False
            continue
        changed, bad = [], []
        with open(a, "rb") as fa, open(b, "rb") as fb:
            for name, info in ha.items():
                if name == "__metadata__":
                    continue
                s, e = info["data_offsets"]
                fa.seek(8 + na + s)
                fb.seek(8 + nb + s)
                if fa.read(e - s) != fb.read(e - s):
                    (changed if name in routers else bad).append(name)
            fa.seek(0, 2)
            fb.seek(0, 2)
            if fa.tell() != fb.tell():
                bad.append("<file size>")
        n_t = len(ha) - ("__metadata__" in ha)
        print(f"  {fn}: header identical (metadata {ha.get('__metadata__')}), {n_t} tensors, "
              f"{n_t - len(changed) - len(bad)} byte-identical, {len(changed)} routers changed"
              + (f", UNEXPECTED differences: {bad}" if bad else ""))
        ok &= not bad
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--src", help="source checkpoint (default: 'source' in skew_report.json)")
    ap.add_argument("--seed", type=int, default=1000, help="seed of the fresh random tokens")
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--gen-tokens", type=int, default=12)
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    with open(os.path.join(out, "skew_report.json")) as f:
        report = json.load(f)
    src = os.path.abspath(args.src or report["source"])
    if args.seed == report["seed"]:
        print(f"warning: --seed {args.seed} is the fitting seed; the tokens are not fresh")

    print(f"1. files vs {src}")
    files_ok = check_files(src, out, report)

    from transformers import AutoTokenizer, JambaForCausalLM
    t0 = time.time()
    model = JambaForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager",
                                             experts_implementation="eager").eval()
    cfg = model.config
    E, k = cfg.num_experts, cfg.num_experts_per_tok
    moe = [i for i, l in enumerate(model.model.layers) if hasattr(l.feed_forward, "router")]
    counts = {i: torch.zeros(E, dtype=torch.long) for i in moe}
    def count_hook(i):
        def hook(module, inputs, output):  # output = (router_logits, top_k_weights, top_k_index)
            counts[i] += torch.bincount(output[2].reshape(-1), minlength=E)
        return hook

    for i in moe:
        model.model.layers[i].feed_forward.router.register_forward_hook(count_hook(i))
    nseq = max(1, -(-args.tokens // args.seq_len))
    ids = torch.randint(0, cfg.vocab_size, (nseq, args.seq_len), generator=torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        for j in range(0, nseq, args.batch):
            model(ids[j:j + args.batch], use_cache=False)
    print(f"\n2. routing on {nseq}x{args.seq_len} fresh random tokens (seed {args.seed}), "
          f"usage = fraction of (token, slot) pairs; forward {time.time() - t0:.1f}s; "
          f"report = usage in skew_report.json (the tool's own held-out tokens)")
    worst_abs, worst_rel = 0.0, 0.0
    for i in moe:
        L = report["layers"][str(i)]
        tgt = np.array(L["target"])
        u = counts[i].double().numpy() / counts[i].sum().item()
        order = np.argsort(L["expert_rank"])
        ea, er = np.abs(u - tgt).max(), np.abs(u / tgt - 1).max()
        worst_abs, worst_rel = max(worst_abs, ea), max(worst_rel, er)
        print(f"  layer {i}: max|u-t| {ea:.4f}, max rel {er:.3f}, max/mean load {u.max() * E:.2f} "
              f"(target {tgt.max() * E:.2f})")
        print("    expert " + " ".join(f"{e:6d}" for e in order))
        print("    target " + " ".join(f"{tgt[e]:6.3f}" for e in order))
        print("    fresh  " + " ".join(f"{u[e]:6.3f}" for e in order))
        print("    report " + " ".join(f"{L['usage'][e]:6.3f}" for e in order))
    print(f"  worst over layers: max|u-t| {worst_abs:.4f}, max rel {worst_rel:.3f}")

    print("\n3. generation")
    tok = None
    if os.path.exists(os.path.join(out, "tokenizer.json")):
        tok = AutoTokenizer.from_pretrained(out)
        prompt = tok("In the beginning God created the heaven and the earth.", return_tensors="pt").input_ids
    else:
        prompt = ids[:1, :8]
    with torch.no_grad():
        logits = model(prompt, use_cache=False).logits
        gen = model.generate(prompt, max_new_tokens=args.gen_tokens, do_sample=False,
                             pad_token_id=cfg.pad_token_id)
    finite = bool(torch.isfinite(logits).all())
    new = gen[0, prompt.shape[1]:].tolist()
    print(f"  prompt {prompt.shape[1]} tokens, logits finite: {finite}, generated ids {new}")
    if tok is not None:
        print(f"  text: {tok.decode(gen[0])!r}")
    ok = files_ok and finite and len(new) > 0
    print("\nOK" if ok else "\nFAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
