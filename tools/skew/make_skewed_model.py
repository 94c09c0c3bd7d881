#!/usr/bin/env python3
"""make_skewed_model.py: copy a Jamba checkpoint, re-fitting its MoE routers so expert use follows a Zipf law.

What it does
------------
For a transformers `JambaForCausalLM` checkpoint in the original per-expert layout
(`model.layers.{i}.feed_forward.router.weight [E, H]`, `...experts.{e}.{gate,up,down}_proj.weight`) it writes a
copy in which only the router weights differ, so that on random token sequences the fraction of (token, top-k slot)
pairs routed to each expert of a MoE layer is close to

    p_e = (1 / rank_e**s) / sum_r (1 / r**s),   rank_e = 1..E,  s = --exponent,

with a different seeded random permutation (which expert is hottest, second, ...) per layer. Everything else is
byte-identical: the safetensors files are copied and only the bytes of the router tensors are overwritten in place
(same names, dtypes, shapes, offsets, header and {"format": "pt"} metadata; sharded checkpoints keep their shards
and index). Top-level non-weight files (config.json, generation_config.json, tokenizer files, ...) are copied;
sub-directories (e.g. golden/ test data of the source model) are not, since they no longer apply.
`OUT_DIR/skew_report.json` records the per-layer targets, the usage before and after, exponent, seed and source.

How the routers are fitted (math of shared/reference/jamba-math.md: p = softmax(router.weight @ x) over all
experts, top-k of p, x = pre_ff_layernorm output)
---------------------------------------------------------------------------------------------------------------
A Jamba router has no bias, and the router inputs x of random tokens are nearly zero-mean (|mean| is ~10% of the
per-token norm on tiny-b), so adding b_e * mu/|mu|^2 to the rows (a "bias" along the mean) shifts the logits of
~20% of the tokens the wrong way and does not reach the targets (checked on tiny-b). If x were symmetric about 0,
no linear router could put an expert in the top-k (k <= E/2) of more than half of the tokens (the order for -x
is the reverse of that for x), while Zipf s=1 with E=8, k=2 needs 74% for the hottest expert; so the construction uses the
asymmetry of x: a pseudo-bias direction d with d.x as constant as possible over tokens,
d = (S + a*tr(S)/H * I)^-1 mu (mu, S = mean and covariance of x; a -> inf is the mean direction), normalised so
that mean(d.x) = 1, and

    router'_e = exp(c_e) * router_e + b_e * d        (2E numbers per layer)

Honest split: the fitting sequences are halved; d and its shrinkage a (lowest held-out coefficient of variation
of d.x) come from half A, c and b are fitted on half B, so the fit sees the distribution of d.x that fresh tokens
will have (fitting d and b on the same 4096 tokens over-fitted d in H=1024: the hottest experts then came out
4-7 points low on fresh tokens). c, b: Adam on a smooth top-k usage surrogate (sigmoid of the logit minus the midpoint
of the k-th and (k+1)-th logit, annealed temperature) minimising sum_e log(usage_e / target_e)^2, then polished on
the exact top-k counts by b_e += 0.1 * log(target_e / usage_e) (best iterate kept; usage computed with the weights
rounded to the checkpoint dtype, float32 logits, softmax, torch.topk, as in transformers).
MoE layers are processed in order in one incremental pass over the layers (transformers' own modules, float32,
eager attention/experts): the router inputs of layer i are collected with all earlier routers already replaced,
so the targets hold for the final model. The reported usage ("measured") is then counted on --check-tokens further
random tokens that took no part in the fit. Targets above 1/k (impossible: an expert is picked at most once per
token) are capped at 1/k and the excess redistributed in proportion (reported as a note).

Accuracy and measurement noise
------------------------------
Usage measured on 64 random sequences of 64 tokens is itself noisy beyond binomial, because the tokens of one
sequence route alike (shared context): one standard deviation of such a measurement was 0.5-0.8 points on tiny-b
and 1-2.3 points on .bench-model (for the hottest expert). On 65k fresh tokens the tiny-b copy is within 0.8
points (<= 4.5% relative) of every target. More --tokens (more sequences) lowers the fitting noise.

Run (python under nice on the shared machine)
---------------------------------------------
    nice -n 10 python3 tools/skew/make_skewed_model.py Tests/Fixtures/tiny-b /tmp/tiny-b-skewed
    nice -n 10 python3 tools/skew/make_skewed_model.py .bench-model .bench-model-skewed
Options: --exponent S (1.0), --seed N (0: permutations and the random tokens), --tokens N (random fitting tokens,
16384), --check-tokens N (held-out tokens for the reported usage, 4096; 0 = report the fit), --seq-len (64),
--batch (sequences per forward chunk, 64). Runtime on the 2 shared cores: tiny-b 15-90 s, .bench-model
(hidden 1024) 4-9 min, depending on the load.
Then check on fresh tokens, file identity, and that the copy loads and generates:
    nice -n 10 python3 tools/skew/check_skewed_model.py /tmp/tiny-b-skewed [--tokens 16384]
Needs torch, transformers (5.x), safetensors, numpy. CPU only.
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys
import time

import numpy as np
import torch

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "F64": torch.float64}


# ----------------------------------------------------------------------------------------------- safetensors I/O
def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return n, json.loads(f.read(n))


def weight_files(src):
    idx = os.path.join(src, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            return sorted(set(json.load(f)["weight_map"].values()))
    if os.path.exists(os.path.join(src, "model.safetensors")):
        return ["model.safetensors"]
    raise SystemExit(f"{src}: no model.safetensors or model.safetensors.index.json")


def read_tensor(path, header_len, info):
    a, b = info["data_offsets"]
    with open(path, "rb") as f:
        f.seek(8 + header_len + a)
        raw = bytearray(f.read(b - a))
    return torch.frombuffer(raw, dtype=DTYPES[info["dtype"]]).reshape(info["shape"]).clone()


def tensor_bytes(t):
    return t.contiguous().view(torch.uint8).numpy().tobytes()


# ----------------------------------------------------------------------------------------------- targets
def zipf_targets(E, k, s):
    p = 1.0 / np.arange(1, E + 1) ** s
    p /= p.sum()
    cap = 1.0 / k  # an expert is chosen at most once per token
    capped = np.zeros(E, bool)
    for _ in range(E):
        over = (p > cap + 1e-12) & ~capped
        if not over.any():
            break
        capped |= over
        p[capped] = cap
        free = ~capped
        p[free] *= (1.0 - cap * capped.sum()) / p[free].sum()
    return p, bool(capped.any())


# ----------------------------------------------------------------------------------------------- routing helpers
def topk_usage(X, W, k, E):
    """Fraction of (token, slot) pairs per expert, computed as transformers does (float32 logits, softmax, topk)."""
    logits = torch.nn.functional.linear(X, W)
    idx = torch.topk(torch.softmax(logits, dim=-1, dtype=torch.float), k, dim=-1).indices
    return torch.bincount(idx.reshape(-1), minlength=E).double().numpy() / idx.numel()


def soft_usage(L, k, T):
    s = torch.topk(L, k + 1, dim=1).values
    tau = 0.5 * (s[:, k - 1] + s[:, k])
    return torch.sigmoid((L - tau[:, None]) / T).mean(0) / k


def bias_direction(Z, alpha):
    """d with mean(d.x) = 1 over Z and small variance of d.x: (S + alpha*tr(S)/H*I)^-1 mu; alpha None = mu."""
    mu = Z.mean(0)
    if alpha is None:
        d = mu.clone()
    else:
        S = torch.cov(Z.T)
        d = torch.linalg.solve(S + alpha * S.trace() / Z.shape[1] * torch.eye(Z.shape[1], dtype=Z.dtype), mu)
    return d / (d @ mu)


def fit_router(X, W0, target, k, store_dtype, seq_len):
    """Fit router' = exp(c) * router + b d^T so that top-k usage on X matches target.

    Honest split: the sequences are halved; d (and its shrinkage, by the held-out coefficient of variation of
    d.x) comes from half A only and c, b are fitted on half B, so the distribution of d.x during the fit is the
    one fresh tokens will see (fitting d and b on the same tokens over-fits d: with H=1024 and 16k tokens the
    hottest expert then got ~2 points less on fresh tokens). Returns (weight as float32 rounded through the
    checkpoint dtype, usage on half B, info)."""
    E, H = W0.shape
    nseq = X.shape[0] // seq_len
    half = max(1, nseq // 2) * seq_len
    A, B = X[:half].double(), X[half:].double()
    if B.shape[0] == 0:
        raise SystemExit("need at least 2 fitting sequences")
    best = None
    for alpha in [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, None]:
        sB = B @ bias_direction(A, alpha)
        cv = (sB.std() / sB.mean()).item() if sB.mean() > 0 else float("inf")
        if best is None or cv < best[0]:
            best = (cv, alpha)
    cv, alpha = best
    d = bias_direction(A, alpha)
    s = B @ d
    Bf = B.float()
    L0 = (B @ W0.double().T).float()
    sf = s.float()
    t = torch.tensor(target).float()
    T0 = L0.std().item()
    c = torch.zeros(E, requires_grad=True)
    b = torch.zeros(E, requires_grad=True)
    opt = torch.optim.Adam([c, b], lr=0.05)
    iters = 400
    for it in range(iters):
        T = T0 * max(0.02, 0.3 * (1 - it / (0.65 * iters)))
        opt.zero_grad()
        u = soft_usage(L0 * c.exp()[None, :] + sf[:, None] * b[None, :], k, T)
        loss = ((u / t).log() ** 2).sum()
        loss.backward()
        opt.step()
    c = c.detach().double()
    b = b.detach().double().numpy().copy()

    def make_w(bv):
        W = W0.double() * c.exp()[:, None] + torch.tensor(bv)[:, None] * d[None, :]
        return W.to(store_dtype).to(torch.float32)

    def err(u):
        return float(np.abs(np.log(np.maximum(u, 1e-9) / target)).max())

    best = None
    for it in range(150):
        W = make_w(b)
        u = topk_usage(Bf, W, k, E)
        e = err(u)
        if best is None or e < best[0]:
            best = (e, W, u, b.copy())
        if e < 0.005:
            break
        b += 0.1 * np.log(target / np.maximum(u, 0.2 / Bf.shape[0]))
    e, W, u, b = best
    info = {
        "direction_shrinkage": "mean" if alpha is None else alpha,
        "cv_of_d_dot_x_on_fit_half": cv,
        "P(d.x>0)_on_fit_half": (s > 0).double().mean().item(),
        "row_scale": c.exp().numpy().round(4).tolist(),
        "bias_along_d": np.round(b - b.mean(), 4).tolist(),
        "rel_weight_change": ((W.double() - W0.double()).norm() / W0.double().norm()).item(),
        "fit_max_abs_log_ratio": e,
    }
    return W, u, info


# ----------------------------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--exponent", type=float, default=1.0, help="Zipf exponent s (default 1.0)")
    ap.add_argument("--seed", type=int, default=0, help="seed for the per-layer permutations and fitting tokens")
    ap.add_argument("--tokens", type=int, default=16384, help="random tokens used for fitting (default 16384)")
    ap.add_argument("--check-tokens", type=int, default=4096,
                    help="further random tokens, not used for fitting, on which the reported usage is measured")
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--warn-error", type=float, default=0.02,
                    help="warn when a measured usage is further than this from its target (absolute, 0.02)")
    ap.add_argument("--batch", type=int, default=64, help="sequences per forward chunk")
    args = ap.parse_args()
    t_start = time.time()
    src, out = os.path.abspath(args.src), os.path.abspath(args.out)
    if src == out:
        raise SystemExit("OUT_DIR must differ from SRC_DIR")

    from transformers import JambaForCausalLM
    from transformers.models.jamba import modeling_jamba as mj

    # checkpoint tensors (only the routers are read)
    files = weight_files(src)
    headers = {fn: read_header(os.path.join(src, fn)) for fn in files}
    router_loc = {}
    for fn, (hl, h) in headers.items():
        for name, info in h.items():
            if name.endswith(".feed_forward.router.weight"):
                router_loc[int(name.split(".")[2])] = (fn, name, info)
    if not router_loc:
        raise SystemExit(f"{src}: no router tensors (model.layers.*.feed_forward.router.weight); nothing to skew")

    torch.manual_seed(args.seed)
    model = JambaForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager",
                                             experts_implementation="eager").eval()
    cfg = model.config
    E, k = cfg.num_experts, cfg.num_experts_per_tok
    layers = model.model.layers
    moe = [i for i, l in enumerate(layers) if hasattr(l.feed_forward, "router")]
    if sorted(moe) != sorted(router_loc):
        raise SystemExit(f"MoE layers of the config {moe} != router tensors in the checkpoint {sorted(router_loc)}")
    if k >= E:
        raise SystemExit(f"num_experts_per_tok={k} >= num_experts={E}: routing cannot be skewed")

    zipf, capped = zipf_targets(E, k, args.exponent)
    rng = np.random.default_rng(args.seed)
    perms = {i: rng.permutation(E) for i in moe}  # perms[i][r] = expert of rank r+1
    targets = {}
    for i in moe:
        tg = np.zeros(E)
        tg[perms[i]] = zipf
        targets[i] = tg
    if capped:
        print(f"note: Zipf share above 1/k={1 / k:.3f} is impossible; capped targets: {np.round(zipf, 4).tolist()}")

    nseq = max(2, math.ceil(args.tokens / args.seq_len))
    gen = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, cfg.vocab_size, (nseq, args.seq_len), generator=gen)
    ncheck = math.ceil(max(0, args.check_tokens) / args.seq_len)
    check_ids = torch.randint(0, cfg.vocab_size, (ncheck, args.seq_len), generator=gen)  # drawn after ids
    print(f"{src}: {len(layers)} layers, MoE layers {moe}, E={E}, top-{k}, hidden {cfg.hidden_size}; "
          f"fitting on {nseq}x{args.seq_len} random tokens (seed {args.seed}), measuring on {ncheck}x{args.seq_len} "
          f"other random tokens; exponent {args.exponent}", flush=True)

    # ---- one incremental pass over the layers, chunk by chunk (fit chunks first, then check chunks)
    chunks = [ids[j:j + args.batch] for j in range(0, nseq, args.batch)]
    n_fit_chunks = len(chunks)
    chunks += [check_ids[j:j + args.batch] for j in range(0, ncheck, args.batch)]
    pos = torch.arange(args.seq_len)[None, :]
    masks, hidden = [], []
    with torch.no_grad():
        for ch in chunks:
            emb = model.model.embed_tokens(ch)
            mk = dict(config=cfg, inputs_embeds=emb, attention_mask=None, cache=None, position_ids=pos)
            masks.append({"full_attention": mj.create_causal_mask(**mk),
                          "linear_attention": mj.create_recurrent_attention_mask(**mk)})
            hidden.append(emb)

    class _Stop(Exception):
        pass

    report_layers = {}
    last_moe = moe[-1]
    for i, layer in enumerate(layers):
        if i > last_moe:
            break  # later layers do not influence any router
        t0 = time.time()
        kw = lambda c: dict(attention_mask=masks[c][cfg.layer_types[i]], position_ids=pos, cache=None,
                            use_cache=False)
        with torch.no_grad():
            if i not in moe:
                hidden = [layer(h, **kw(c)) for c, h in enumerate(hidden)]
                continue
            # MoE layer: run up to the FFN, capture pre_ff_layernorm input (residual) and output (router input x)
            cap = {}
            hk1 = layer.pre_ff_layernorm.register_forward_hook(
                lambda m, a, o: cap.update(res=a[0].detach(), x=o.detach()))

            def stop(m, a):
                raise _Stop()
            hk2 = layer.feed_forward.register_forward_pre_hook(stop)
            res, xs = [], []
            try:
                for c, h in enumerate(hidden):
                    try:
                        layer(h, **kw(c))
                    except _Stop:
                        pass
                    res.append(cap["res"])
                    xs.append(cap["x"])
            finally:
                hk1.remove()
                hk2.remove()
        X = torch.cat([x.reshape(-1, x.shape[-1]) for x in xs[:n_fit_chunks]]).float()
        Xc = torch.cat([x.reshape(-1, x.shape[-1]) for x in xs[n_fit_chunks:]]).float() if ncheck else X
        fn, name, info = router_loc[i]
        hl = headers[fn][0]
        W_ckpt = read_tensor(os.path.join(src, fn), hl, info)
        router = layer.feed_forward.router
        if not torch.equal(router.weight.detach(), W_ckpt.float()):
            raise SystemExit(f"{name}: loaded weight differs from the checkpoint tensor")
        before = topk_usage(Xc, W_ckpt.float(), k, E)
        W_new, fit_u, finfo = fit_router(X, W_ckpt.float(), targets[i], k, W_ckpt.dtype, args.seq_len)
        after = topk_usage(Xc, W_new, k, E)
        with torch.no_grad():
            router.weight.copy_(W_new)
            if i != last_moe:
                hidden = [r + layer.feed_forward(x) for r, x in zip(res, xs)]
        ranks = np.empty(E, int)
        ranks[perms[i]] = np.arange(1, E + 1)
        report_layers[i] = {
            "tensor": name, "file": fn, "expert_rank": ranks.tolist(),
            "target": np.round(targets[i], 6).tolist(), "usage_before": np.round(before, 6).tolist(),
            "usage": np.round(after, 6).tolist(), "usage_fit_tokens": np.round(fit_u, 6).tolist(),
            "max_abs_error": float(np.abs(after - targets[i]).max()),
            "max_rel_error": float(np.abs(after / targets[i] - 1).max()),
            "max_over_mean_load": float(after.max() * E), "max_over_mean_load_target": float(targets[i].max() * E),
            "max_over_mean_load_before": float(before.max() * E), "new_weight": W_new, "fit": finfo,
        }
        print(f"layer {i}: fitted in {time.time() - t0:.1f}s, max |usage - target| = "
              f"{report_layers[i]['max_abs_error']:.4f} ({'held-out' if ncheck else 'fit'} tokens), "
              f"P(d.x>0) = {finfo['P(d.x>0)_on_fit_half']:.3f}, |dW|/|W| = {finfo['rel_weight_change']:.2f}",
              flush=True)

    # ---- write the copy
    os.makedirs(out, exist_ok=True)
    for fn in sorted(os.listdir(src)):
        p = os.path.join(src, fn)
        if os.path.isfile(p) and not fn.endswith(".safetensors") and fn != "skew_report.json":
            shutil.copy2(p, os.path.join(out, fn))
    for fn in files:
        tmp = os.path.join(out, fn + ".tmp")
        shutil.copyfile(os.path.join(src, fn), tmp)
        hl = headers[fn][0]
        with open(tmp, "r+b") as f:
            for i, (rfn, name, info) in router_loc.items():
                if rfn != fn:
                    continue
                data = tensor_bytes(report_layers[i]["new_weight"].to(DTYPES[info["dtype"]]))
                a, b = info["data_offsets"]
                assert len(data) == b - a, (name, len(data), b - a)
                f.seek(8 + hl + a)
                f.write(data)
        os.replace(tmp, os.path.join(out, fn))

    # ---- report
    runtime = time.time() - t_start
    where = f"{ncheck * args.seq_len} held-out random tokens" if ncheck else "the fitting tokens"
    print(f"\nZipf exponent {args.exponent}, seed {args.seed}: usage = fraction of (token, slot) pairs, measured on "
          f"{where} ('fit' = on the fitting tokens; 'before' = original routers, same tokens as 'measured')")
    for i in moe:
        r = report_layers[i]
        print(f"\nlayer {i}  (max/mean load: target {r['max_over_mean_load_target']:.2f}, measured "
              f"{r['max_over_mean_load']:.2f}, before {r['max_over_mean_load_before']:.2f})")
        print("  expert  rank   target  measured      fit   before")
        for e in np.argsort(r["expert_rank"]):
            print(f"  {e:6d}  {r['expert_rank'][e]:4d}  {r['target'][e]:7.4f}  {r['usage'][e]:8.4f}  "
                  f"{r['usage_fit_tokens'][e]:7.4f}  {r['usage_before'][e]:7.4f}")
        print(f"  max |measured - target| {r['max_abs_error']:.4f}, max relative error {r['max_rel_error']:.3f}")
    missed = [i for i in moe if report_layers[i]["max_abs_error"] > args.warn_error]
    if missed:
        print(f"\nWARNING: layers {missed} miss a target by more than {args.warn_error} (absolute). The hottest expert "
              f"needs {k * zipf[0]:.0%} of the tokens; a linear router gets at most about the share of router inputs "
              f"with d.x > 0 (P(d.x>0) above; see the docstring). Lower --exponent, or more --tokens if the "
              f"misses are small.")
    rep = {
        "source": src, "output": out, "exponent": args.exponent, "seed": args.seed,
        "num_experts": E, "num_experts_per_tok": k, "zipf_targets_by_rank": np.round(zipf, 6).tolist(),
        "targets_capped_at_1_over_k": capped,
        "layers_missing_targets": missed, "miss_threshold_abs": args.warn_error,
        "usage_definition": "fraction of (token, top-k slot) pairs routed to each expert",
        "fit_tokens": {"sequences": nseq, "seq_len": args.seq_len, "token_ids": "uniform in [0, vocab_size)",
                       "generator": f"torch.Generator().manual_seed({args.seed}); torch.randint"},
        "usage_measured_on": (f"{ncheck} x {args.seq_len} held-out random tokens (same generator, drawn after the "
                              f"fitting tokens)") if ncheck else "the fitting tokens",
        "usage_fit_tokens_note": "usage_fit_tokens is on the half of the fitting sequences used to fit c, b",
        "method": "router'_e = exp(c_e) * router_e + b_e * d (pseudo-bias direction d, see script docstring)",
        "runtime_seconds": round(runtime, 1),
        "layers": {str(i): {kk: v for kk, v in report_layers[i].items() if kk != "new_weight"} for i in moe},
    }
    with open(os.path.join(out, "skew_report.json"), "w") as f:
        json.dump(rep, f, indent=1)
    print(f"\nwrote {out} ({', '.join(files)} + skew_report.json) in {runtime:.1f}s")


if __name__ == "__main__":
    main()
