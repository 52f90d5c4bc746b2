"""Per-sample gradient features: our `gradients` op (batched per-sample gradients + Adam + seeded projection) against a re-implementation of
DataFlex's method (DataFlex 1.1's `train/selector/less_selector.py`: batch-size-1 forward/backward loop, hard-coded
Adam transform, fp16 buffer of 16 rows, trak-BasicProjector-style dense Rademacher projection regenerated from
torch's RNG in 128-column blocks at every flush). Written from that description; no trak code.

Every (model, method, d) runs in its own process so peak RSS is its own. The run is a LoRA r=8 SFT run on the
demo data, trained 3 optimizer steps first (LoRA B ≠ 0, live Adam moments), lora_dropout 0 so DataFlex's train
mode and our eval mode compute the same gradients and the accuracy columns compare like with like.

usage: PYTHONPATH=python_bridge python bench/gradients.py [--models tiny=models/tiny-qwen2,small=/tmp/small-qwen2]
       [--dims 4096,8192] [--samples 64] [--baseline-samples tiny=64,small=16] [--out bench/results/gradients.md]
(the small model: python -m dataflex_bridge.tools.make_tiny_model --size small --out /tmp/small-qwen2 --data data/demo)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python_bridge"))


def proc_status(key: str) -> float:
    """VmRSS / VmHWM of this process in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    # Linux ≥ 4.0: writing 5 resets VmHWM, so the peak we read is the measured section's own.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def build(model_dir: str, samples: int):
    import numpy as np

    from dataflex_bridge.executor import step_loop
    from dataflex_bridge.executor.build import build_run

    out = tempfile.mkdtemp(prefix="bench-grad-")
    run = build_run({
        "model_name_or_path": model_dir, "stage": "sft", "do_train": True, "finetuning_type": "lora",
        "lora_rank": 8, "lora_alpha": 16, "lora_target": "all", "lora_dropout": 0.0,
        "disable_gradient_checkpointing": True, "dataset_dir": str(REPO / "data" / "demo"),
        "dataset": "arith_clean,facts,string_ops", "template": "qwen", "cutoff_len": 256,
        "max_samples": max(32, samples), "overwrite_cache": True, "preprocessing_num_workers": 1,
        "dataloader_num_workers": 0, "output_dir": out, "overwrite_output_dir": True, "report_to": "none",
        "plot_loss": False, "save_strategy": "no", "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1, "learning_rate": 5e-3, "bf16": False, "seed": 42,
    })
    step_loop.begin(run, total_steps=4)
    step_loop.begin_pass(run, epoch=0, indices=np.arange(12), micro_sizes=np.full(3, 4), step_sizes=np.ones(3, int),
                         micro_in_epoch=None, micro_done=0, weights=None)
    flags = np.zeros(3, dtype=np.uint8)
    step_loop.train_steps(run, 3, log=flags, evaluate=flags, save=flags)
    return run


# ------------------------------------------------------------------------------------------ DataFlex-like


def dataflex_like(run, indices, dim: int, seed: int = 0, save_interval: int = 16, block: int = 128):
    """Batch-1 loop + fp16 buffer + dense Rademacher regenerated per flush; returns (features, loop s, proj s)."""
    import torch

    from dataflex_bridge.executor.model_ops import collate

    model = run.trainer.model
    model.train()  # DataFlex's mode (dropout is 0 here)
    params = [p for p in model.parameters() if p.requires_grad]
    total = sum(p.numel() for p in params)
    opt = run.trainer.optimizer
    m = torch.cat([opt.state[p]["exp_avg"].reshape(-1) for p in params])
    v = torch.cat([opt.state[p]["exp_avg_sq"].reshape(-1) for p in params])
    buffer = torch.zeros(save_interval, total, dtype=torch.float16)
    rows, t_loop, t_proj, filled = [], 0.0, 0.0, 0

    def flush(n: int) -> None:
        nonlocal t_proj
        t0 = time.perf_counter()
        out = torch.empty(n, dim, dtype=torch.float16)
        for b in range(math.ceil(dim / block)):
            gen = torch.Generator().manual_seed(seed + 1000 * b)
            cols = min(block, dim - b * block)
            r = torch.empty(total, cols, dtype=torch.float16).bernoulli_(0.5, generator=gen).mul_(2).sub_(1)
            out[:, b * block : b * block + cols] = buffer[:n] @ r
        rows.append(out.float())
        t_proj += time.perf_counter() - t0

    for k, i in enumerate(indices.tolist()):
        t0 = time.perf_counter()
        batch = collate(run, run.train_dataset, [i])
        model(**batch).loss.backward()
        g = torch.cat([p.grad.reshape(-1) for p in params if p.grad is not None])
        g = (0.9 * m + 0.1 * g) / (torch.sqrt(0.999 * v + 0.001 * g * g) + 1e-8)
        model.zero_grad()
        buffer[filled] = g.half()
        filled += 1
        t_loop += time.perf_counter() - t0
        if filled == save_interval or k == len(indices) - 1:
            flush(filled)
            filled = 0
    feats = torch.cat(rows)
    feats = feats / feats.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return feats.numpy(), t_loop, t_proj


# ------------------------------------------------------------------------------------------------- child


def cos_error(a, b) -> float:
    import numpy as np

    def cos(x):
        x = x.astype(np.float64)
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return x @ x.T

    off = ~np.eye(a.shape[0], dtype=bool)
    return float(np.abs(cos(a) - cos(b))[off].mean())


def child(spec: dict) -> dict:
    import warnings

    import numpy as np
    import torch

    warnings.filterwarnings("ignore")
    from dataflex_bridge.executor import gradients as G

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])

    run = build(spec["model"], spec["samples"])
    idx = np.arange(spec["samples"], dtype=np.int64)
    p_total = sum(p.numel() for _, p in G.trainable_parameters(run.trainer.model))
    res = {**spec, "P": p_total, "threads": torch.get_num_threads(),
           "mean_tokens": float(G.sample_lengths(run, "train")[idx].mean())}
    base_rss = proc_status("VmRSS")
    reset_peak()
    if spec["method"] == "ours":
        args = G.GradientArgs(proj_dim=spec["dim"], seed=0, precondition="adam", normalize=True,
                              projector=spec.get("projector", "sparse"), method=spec.get("grad_method", "auto"))
        t0 = time.perf_counter()
        G.sample_gradients(run, "train", idx, args)
        res["cold_s"] = time.perf_counter() - t0
        warm = []
        for _ in range(2):
            t0, c0 = time.perf_counter(), time.process_time()
            feats, _ = G.sample_gradients(run, "train", idx, args)
            warm.append((time.perf_counter() - t0, time.process_time() - c0))
        res["warm_s"], res["cpu_s"] = min(warm)
    else:
        dataflex_like(run, idx[:2], spec["dim"])  # warm-up: first-iteration costs
        reset_peak()
        t0, c0 = time.perf_counter(), time.process_time()
        feats, t_loop, t_proj = dataflex_like(run, idx, spec["dim"])
        res.update(cold_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0, loop_s=t_loop, proj_s=t_proj)
        res["warm_s"] = res["cold_s"]
    res["peak_rss_mib"] = proc_status("VmHWM")
    res["base_rss_mib"] = base_rss
    # Reference: the same op unprojected (its time is the gradient pass alone, without projection).
    t0 = time.perf_counter()
    raw, _ = G.sample_gradients(run, "train", idx, G.GradientArgs(proj_dim=0, precondition="adam"))
    res["raw_s"] = time.perf_counter() - t0
    res["cos_err"] = cos_error(raw, feats)
    res["samples_per_s"] = spec["samples"] / res["warm_s"]
    res["load"] = os.getloadavg()[0]
    return res


# ------------------------------------------------------------------------------------------------ parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--models", default=f"tiny={REPO / 'models' / 'tiny-qwen2'},small=/tmp/small-qwen2")
    ap.add_argument("--dims", default="4096,8192")
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--baseline-samples", default="tiny=64,small=16")
    ap.add_argument("--projectors", default="sparse,dense")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (0: torch's default); 1 keeps timings stable on a shared machine")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "gradients.md"))
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--from-json", help="only render the markdown from a --json file")
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return
    if args.from_json:
        write(args, json.loads(Path(args.from_json).read_text()))
        return

    models = dict(kv.split("=", 1) for kv in args.models.split(","))
    base_n = dict(kv.split("=", 1) for kv in args.baseline_samples.split(","))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "python_bridge"), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    results = []
    for name, path in models.items():
        for dim in [int(d) for d in args.dims.split(",")]:
            specs = [{"name": name, "model": path, "dim": dim, "method": "ours", "projector": p,
                      "samples": args.samples, "threads": args.threads} for p in args.projectors.split(",")]
            specs.append({**specs[0], "projector": "sparse", "grad_method": "vmap"})
            specs.append({"name": name, "model": path, "dim": dim, "method": "dataflex",
                          "samples": int(base_n.get(name, args.samples)), "threads": args.threads})
            for spec in specs:
                proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env,
                                      capture_output=True, text=True, cwd=REPO)
                line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
                if line is None:
                    sys.exit(f"child failed ({spec}):\n{proc.stderr[-3000:]}")
                r = json.loads(line[len("RESULT "):])
                results.append(r)
                print({k: r[k] for k in ("name", "dim", "method", "samples", "warm_s", "cpu_s", "samples_per_s",
                                         "peak_rss_mib", "cos_err", "mean_tokens")}, flush=True)
        if args.json:  # raw results so far, to re-render with --from-json
            Path(args.json).write_text(json.dumps(results, indent=1))
    write(args, results)


def gradient_pass_lines(results: list[dict]) -> list[str]:
    """The gradient pass alone, without projection: vmap (ours, proj_dim 0) vs the batch-1 loop."""
    out = []
    for name in dict.fromkeys(r["name"] for r in results):
        ours = [r["raw_s"] / r["samples"] for r in results if r["name"] == name and r["method"] == "ours"
                and r.get("grad_method") != "vmap"]
        loop = [r["loop_s"] / r["samples"] for r in results if r["name"] == name and r["method"] == "dataflex"]
        if ours and loop:
            o, b = min(ours), min(loop)
            out.append(f"* Gradient pass alone, {name}: {1000 * o:.1f} ms/sample (batched, passes of 4 rows) vs "
                       f"{1000 * b:.1f} ms/sample (batch-1 loop, incl. its fp16 copy): {b / o:.1f}×.")
    return out


def write(args, results: list[dict]) -> None:
    import torch

    md = [
        "# Per-sample gradient features: our op vs DataFlex's method",
        "",
        f"Run: `PYTHONPATH=python_bridge python bench/gradients.py --dims {args.dims} --samples {args.samples} "
        f"--baseline-samples {args.baseline_samples} --threads {args.threads}` on {time.strftime('%Y-%m-%d')}; "
        f"{os.cpu_count()} CPU(s) ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
        f"{args.threads or 'default'} torch thread(s), fp32 model, CPU only; mean sample length "
        f"{results[0]['mean_tokens']:.0f} tokens.",
        "Models: LoRA r=8 on all linear layers of the tiny (hidden 64, 2 layers) and small (hidden 256, 4 layers) "
        "Qwen2 test models; samples from the demo data, trained 3 optimizer steps first; Adam-preconditioned, "
        "L2-normalised features in both methods.",
        "",
        "* **ours**: `gradients` op: length-sorted passes of at most the run's micro-batch (4 rows here), projected `chunk_size` = 16 rows at a time, per-sample gradients of the LoRA layers from one "
        "batched forward + backward (outer products of inputs and output gradients, docs/executor.md) in eval mode, "
        "Adam from the live optimizer, per-block projection. *cold* = first call (projector generation), *warm* = "
        "best of 2 more. *vmap* = the same op with `method='vmap'` (torch.func), for comparison.",
        "* **DataFlex-like**: batch-1 forward/backward in train mode, fp16 buffer of 16 rows, projection "
        "regenerating the P × d Rademacher matrix (128-column blocks, torch RNG) at every flush. Fewer samples "
        "on the small model (its cost is linear in the sample count: one flush per 16 samples).",
        "* **peak RSS**: the process's VmHWM during the measured calls, over its RSS before them (model and data "
        "loaded, 3 steps trained).",
        "* **cos err**: mean over sample pairs of |cos(features) − cos(unprojected Adam gradients)|.",
        "* Load average in the last column (other jobs share the machine at times; under load, OpenMP barrier spinning "
        "with 2 torch threads slowed every method 3–10× at random, hence `--threads 1` for such runs); **CPU** is the "
        "measured call's process CPU time, steadier than wall time.",
        "",
        "| model | P | d | method | samples | cold (s) | warm (s) | CPU (s) | samples/s | samples/CPU-s | "
        "speedup wall / CPU | peak RSS (MiB) | +RSS (MiB) | cos err | load |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        base = next((b for b in results if b["method"] == "dataflex" and b["name"] == r["name"]
                     and b["dim"] == r["dim"]), None)
        per_cpu = r["samples"] / r["cpu_s"]
        if base and r is not base:
            speed = (f"{r['samples_per_s'] / base['samples_per_s']:.0f}× / "
                     f"{per_cpu / (base['samples'] / base['cpu_s']):.0f}×")
        else:
            speed = "1×"
        vmap = ", vmap" if r.get("grad_method") == "vmap" else ""
        method = f"ours ({r['projector']}{vmap})" if r["method"] == "ours" else "DataFlex-like"
        extra = ""
        if r["method"] == "dataflex":
            extra = f" (loop {r['loop_s']:.1f} s + projection {r['proj_s']:.1f} s)"
        else:
            extra = f" (unprojected: {r['raw_s']:.2f} s)"
        md.append(
            f"| {r['name']} | {r['P']:,} | {r['dim']} | {method} | {r['samples']} | {r['cold_s']:.2f} | "
            f"{r['warm_s']:.2f}{extra} | {r['cpu_s']:.2f} | {r['samples_per_s']:.1f} | {per_cpu:.1f} | {speed} | {r['peak_rss_mib']:.0f} | "
            f"{r['peak_rss_mib'] - r['base_rss_mib']:.0f} | {r['cos_err']:.4f} | {r['load']:.1f} |"
        )
    md += [
        "",
        "Reading the table:",
        "* DataFlex-like time is mostly the projection: the P × d sign matrix is regenerated for every 16 rows "
        "(its split is in the warm column). torch's CPU Bernoulli generation is slow, so on a GPU the gap is "
        "smaller, but the cost stays O(P·d) per 16 samples against ours: O(P·s) per sample once the sparse "
        "structure is cached.",
        "* Ours is mostly the gradient pass itself (the *unprojected* time: the same op with proj_dim 0); the "
        "sparse projection adds little, the dense one a GEMM of n·P·d.",
        *gradient_pass_lines(results),
        "* Memory: the batched pass holds one pass's activations and per-sample gradients (rows per pass are "
        "`chunk_size`, at most the training micro-batch: 4 here, 4·P floats). The dense projector also keeps its "
        "packed signs (P·d/4 bytes, up to 512 MiB).",
        "* Accuracy is the same for all methods at a given d (cos err column). DataFlex's fp16 buffer is harmless "
        "for these O(1) Adam-preconditioned entries; it is raw SGD gradients (the eval side) that it underflows.",
        "",
    ]
    Path(args.out).write_text("\n".join(md))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
