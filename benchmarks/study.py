"""Does LIFT help? Every method over several seeds on the CPU testbed, scored by lm-eval.

    python benchmarks/study.py            # the reported study (10 methods x 3 seeds; about 45 min on 2 cores)
    python benchmarks/study.py --quick    # a reduced size for CI (a few minutes): same code, tiny budgets

One pretrained base (trl_lift.testbed, cached), then per seed and method the same data, steps and
batch; held-out scores through lm-eval (``lift_dlm`` on ``lift_testbed``, all 256 problems per task,
greedy). Reported per method: mean and standard deviation over seeds, and the paired difference to
vanilla (same seed) with how many seeds it is positive. Then the seed-0 LIFT model decoded with every
sampler path (exact, prefix cache, dual cache, threshold, cache + threshold): accuracy and tokens/s.
Writes ``## Study: does LIFT help?`` into benchmarks/RESULTS.md (replacing an earlier one) and
benchmarks/study.png; ``--out DIR`` writes both there instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from trl_lift.testbed import domain
from trl_lift.testbed.base_model import BaseSpec, build_base
from trl_lift.testbed.experiment import METHODS, FineTuneSpec, fine_tune, score
from trl_lift.testbed.report import METRICS, _pyplot

HERE = Path(__file__).resolve().parent
SECTION = "## Study: does LIFT help?"
SAMPLER_PATHS = {  # blocks of 8 (three per answer) so that the caches have finished blocks to reuse
    "exact": {"block_length": 8, "steps": 24},
    "prefix cache": {"block_length": 8, "steps": 24, "cache": "prefix"},
    "dual cache": {"block_length": 8, "steps": 24, "cache": "dual"},
    "threshold 0.9": {"block_length": 8, "steps": 24, "threshold": 0.9},
    "dual cache + threshold 0.9": {"block_length": 8, "steps": 24, "cache": "dual", "threshold": 0.9},
}


def summarise(runs: dict, methods: list[str], seeds: list[int]) -> list[dict]:
    """Per method and metric: mean, sd over seeds, paired difference to vanilla and its sign count."""
    rows = []
    for method in methods:
        row = {"method": method}
        for task, metric in METRICS:
            values = [runs[(method, s)]["scores"][task][metric][0] for s in seeds]
            base = [runs[("vanilla", s)]["scores"][task][metric][0] for s in seeds]
            diffs = [v - b for v, b in zip(values, base)]
            row[f"{task} {metric}"] = {
                "mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                "diff": statistics.fmean(diffs), "wins": sum(d > 0 for d in diffs), "losses": sum(d < 0 for d in diffs),
            }
        row["eval loss"] = statistics.fmean(runs[(method, s)]["eval_loss"] for s in seeds)
        row["train s"] = statistics.fmean(runs[(method, s)]["train_seconds"] for s in seeds)
        rows.append(row)
    return rows


def markdown(rows: list[dict], paths: list[dict], seeds: list[int], header: dict) -> str:
    lines = [SECTION, "", f"Command: `{header['command']}`  ", f"Machine: {header['machine']}  ",
             f"Versions: {header['versions']}  ", f"Date: {header['date']}; total {header['minutes']:.0f} min.", "",
             f"Base: {header['base']}. Fine-tuning: {header['finetune']}. Seeds {seeds} (the fine-tuning seed: "
             "noise, order, dropout; the base and data are shared). Scores: lm-eval `lift_dlm` on `lift_testbed`, "
             f"{header['problems']} held-out problems per task, greedy, one token per step.", "",
             "Mean ± sd over seeds; Δ = paired mean difference to vanilla (same seed); w/l = seeds above/below vanilla.",
             ""]
    names = [f"{task} {metric}" for task, metric in METRICS]
    lines.append("| method | " + " | ".join(f"{n} | Δ (w/l)" for n in names) + " | eval loss | train s |")
    lines.append("| --- " * (2 * len(names) + 3) + "|")
    for row in rows:
        cells = []
        for n in names:
            c = row[n]
            cells += [f"{c['mean']:.3f} ± {c['sd']:.3f}",
                      "—" if row["method"] == "vanilla" else f"{c['diff']:+.3f} ({c['wins']}/{c['losses']})"]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + f" | {row['eval loss']:.4f} | {row['train s']:.0f} |")
    lines += ["", f"Sampler paths on the seed-{seeds[0]} LIFT model (same requests, lm-eval; tokens/s from `lift_dlm`'s "
              "record, generated positions per second of sampler time). Every path decodes in blocks of 8 tokens (the caches "
              "work per block), so its exact row differs from the table above, which decodes the 24 tokens as one "
              "block:", "",
              "| sampler | " + " | ".join(names) + " | forward passes | tokens/s | speed-up |",
              "| --- " * (len(names) + 4) + "|"]
    exact = paths[0]["tokens_per_second"]
    for p in paths:
        cells = [f"{p['scores'][task][metric][0]:.3f}" for task, metric in METRICS]
        lines.append(f"| {p['name']} | " + " | ".join(cells) +
                     f" | {p['nfe']} | {p['tokens_per_second']:,.0f} | {p['tokens_per_second'] / exact:.2f}x |")
    return "\n".join(lines) + "\n"


def verdict(rows: list[dict], seeds: list[int]) -> str:
    """LIFT and its two controls against vanilla, in words, from the table's numbers."""
    by = {r["method"]: r for r in rows}
    lines = ["", "Outcome (paired over seeds, against vanilla):"]
    for method in ("lift", "lift_random", "lift_reversed"):
        if method not in by:
            continue
        parts = []
        for task, metric in METRICS:
            c = by[method][f"{task} {metric}"]
            parts.append(f"{task} {metric} {c['diff']:+.3f} ({c['wins']} of {len(seeds)} seeds above, {c['losses']} below)")
        lines.append(f"- {method}: " + "; ".join(parts) + ".")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    names = [r["method"] for r in rows]
    for i, (task, metric) in enumerate(METRICS):  # Sudoku: empty cells right, puzzles solved
        key = f"{task} {metric}"
        ax.bar([j + 0.4 * i for j in range(len(rows))], [r[key]["mean"] for r in rows], 0.4,
               yerr=[r[key]["sd"] for r in rows], capsize=3, label=key)
    ax.axhline(domain.CHANCE_CELL_ACC, color="grey", linestyle=":", linewidth=1, label="chance (Sudoku cells)")
    ax.set_xticks([j + 0.2 for j in range(len(rows))])
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set(ylabel="held-out accuracy (mean ± sd over seeds)", ylim=(0, 1.15), title="Does LIFT help? (CPU testbed)")
    ax.legend(loc="upper center", ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_section(results_md: Path, text: str) -> None:
    old = results_md.read_text() if results_md.exists() else "# Benchmark results\n"
    head, _, rest = old.partition(SECTION)
    tail = rest[rest.find("\n## ") + 1:] if "\n## " in rest else ""
    results_md.write_text(head.rstrip() + "\n\n" + text + ("\n" + tail if tail else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI size: 2 seeds, 8 pretraining / 6 fine-tuning steps")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="fine-tuning steps per run (default FineTuneSpec.steps, the quickstart's)")
    parser.add_argument("--limit", type=int, default=None, help="held-out problems per task (default: all 256)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", default=None, help="folder for RESULTS.md and study.png (default: benchmarks/)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    quick = args.quick
    seeds = list(range(args.seeds or (2 if quick else 3)))
    base_spec = BaseSpec(steps=8, documents=256) if quick else BaseSpec()
    spec = FineTuneSpec(steps=6, train_problems=64, eval_problems=8, logging_steps=2) if quick else FineTuneSpec()
    if args.steps:
        spec = dataclasses.replace(spec, steps=args.steps)
    limit = args.limit or (8 if quick else None)
    methods = args.methods.split(",")
    if "vanilla" not in methods:
        methods.insert(0, "vanilla")
    base = build_base(base_spec)
    work = Path(tempfile.mkdtemp(prefix="trl-lift-study-"))
    runs = {}
    for seed in seeds:
        for method in methods:
            print(f"== seed {seed}, {method}", flush=True)
            run = fine_tune(base, method, work / f"{method}-{seed}", seed=seed, spec=spec, progress=False)
            run.scores, _ = score(run.path, limit=limit)
            runs[(method, seed)] = {"scores": run.scores, "eval_loss": run.eval_loss, "train_seconds": run.train_seconds,
                                    "path": str(run.path)}
            print(f"   {json.dumps(run.scores)}  eval loss {run.eval_loss:.4f}  {run.train_seconds:.0f} s", flush=True)
    rows = summarise(runs, methods, seeds)
    lift_path = Path(runs[("lift" if "lift" in methods else methods[-1], seeds[0])]["path"])
    paths = []
    for name, sampler in SAMPLER_PATHS.items():
        scores, record = score(lift_path, limit=limit, sampler=sampler)
        paths.append({"name": name, "scores": scores, "nfe": record.get("nfe"),
                      "tokens_per_second": record.get("tokens_per_second")})
        print(f"== sampler {name}: {json.dumps(scores)} {record.get('tokens_per_second'):.0f} tokens/s", flush=True)
    import lm_eval
    import transformers
    import trl

    header = {
        "command": " ".join(["python benchmarks/study.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, no GPU",
        "versions": f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, "
                    f"lm-eval {lm_eval.__version__}",
        "date": datetime.date.today().isoformat(), "minutes": (time.perf_counter() - started) / 60,
        "base": f"{base_spec.layers} layers x {base_spec.hidden_size}, pretrained {base_spec.steps} steps",
        "finetune": f"{spec.steps} steps, batch {spec.batch_size}, lr {spec.learning_rate}, "
                    f"{spec.train_problems} problems per task",
        "problems": limit or 256,
    }
    text = markdown(rows, paths, seeds, header) + ("" if "lift" not in methods else verdict(rows, seeds))
    out = Path(args.out) if args.out else HERE
    out.mkdir(parents=True, exist_ok=True)
    write_section(out / "RESULTS.md", text)
    plot(rows, out / "study.png")
    (out / "study.json").write_text(json.dumps({"rows": rows, "paths": paths, "header": header}, indent=1))
    print(text)
    print(f"Wrote {out / 'RESULTS.md'} ({SECTION!r}), {out / 'study.png'} and {out / 'study.json'}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
