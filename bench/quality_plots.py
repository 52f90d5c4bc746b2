"""Plots of the quality study: one PNG per data set, one row per comparison, the paired differences per seed with the
mean and its 95% bootstrap interval. Called by bench/quality-study.ts after it writes its JSON; runs alone as well:

    .venv/bin/python bench/quality_plots.py bench/results/quality-study.json docs/img

Writes <out>/<name>-<data>.png (name: the JSON's meta.name). matplotlib only (the project's .venv has it for
LLaMA-Factory's plot_loss); the files carry no timestamp or version, so the same JSON draws the same bytes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"lower": "tab:green", "higher": "tab:red", "none": "tab:gray", "too few seeds": "tab:gray"}


def plot_data_set(meta: dict, data: str, comparisons: list[dict], out: Path) -> Path:
    rows = [c for c in comparisons if c["data"] == data]
    height = 1.4 + 0.55 * max(1, len(rows))
    fig, ax = plt.subplots(figsize=(9.5, height))
    if not rows:
        ax.text(0.5, 0.5, "no comparison with runs on both sides", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    for i, c in enumerate(rows):
        y = len(rows) - 1 - i
        colour = COLOURS[c["detected"]]
        n = len(c["diffs"])
        # Seeds spread evenly over the row, in seed order, so a seed sits at the same height in every row.
        offsets = [(-0.22 + 0.44 * k / (n - 1)) if n > 1 else 0.0 for k in range(n)]
        outliers = {o["seed"] for o in c["outliers"]}
        for seed, d, dy in zip(c["seeds"], c["diffs"], offsets):
            ax.plot(d, y + dy, "o", ms=3.5, color=colour, alpha=0.55, mec="none")
            if seed in outliers:
                ax.annotate(f"seed {seed}", (d, y + dy), xytext=(4, 2), textcoords="offset points", fontsize=7)
        lo, hi = c["ci"]["lo"], c["ci"]["hi"]
        ax.plot([lo, hi], [y, y], "-", lw=3, color=colour, solid_capstyle="butt")
        ax.plot(c["meanDiff"], y, "D", ms=6, color=colour, mec="black", mew=0.6)
    if rows:
        ax.axvline(0.0, color="black", lw=0.8)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([f"{c['family']}: {c['method']} − {c['baseline']}" for c in reversed(rows)], fontsize=8)
        right = ax.secondary_yaxis("right")
        right.set_yticks(range(len(rows)))
        right.set_yticklabels([f"p={c['wilcoxon']['p']:.3f}" for c in reversed(rows)], fontsize=7)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_xlabel("Δ held-out loss, method − baseline at the same seed (negative: the method is better)", fontsize=8)
        ax.grid(axis="x", lw=0.3, alpha=0.5)
    smoke = " — SMOKE RUN, numbers meaningless" if meta["smoke"] else ""
    ax.set_title(
        f"{data} data: paired differences over {len(meta['seeds'])} seeds ({meta['model'].split(' ')[0]} model){smoke}\n"
        "dots: seeds; diamond: mean; bar: 95% bootstrap CI; green/red: CI below/above 0, grey: no effect detected",
        fontsize=9,
    )
    fig.tight_layout()
    path = out / f"{meta['name']}-{data}.png"
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: quality_plots.py <study.json> <out dir>")
    study = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for data in study["meta"]["data"]:
        print(plot_data_set(study["meta"], data, study["comparisons"], out))


if __name__ == "__main__":
    main()
