"""Every benchmark of the library, one command, results written to benchmarks/RESULTS.md.

    python benchmarks/run_all.py                    # CPU, one thread each (about 10 minutes on a busy 2-core machine)
    python benchmarks/run_all.py --quick --output /tmp/RESULTS.md   # tiny sizes: checks the suite runs
    python benchmarks/run_all.py --only sampler likelihood          # some of them (the others' sections are dropped)

Each benchmark runs in its own process (so that its memory probe sees only itself) and measures its
figures as ratios side by side in that one run; this script only collects them. RESULTS.md gets the
machine, the versions, the date and the command, then one section per benchmark with the command
that reproduces it. A section headed ``## Study: does LIFT help?`` already in RESULTS.md is kept
as it is (another script writes it).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
STUDY = "## Study: does LIFT help?"

# name: (script, arguments, quick arguments)
BENCHMARKS = {
    "trainer": ("bench_trainer.py", [], ["--hidden", "128", "--layers", "2", "--intermediate", "256", "--seq-len", "64",
                                         "--rounds", "2", "--warmup", "1"]),
    "lift": ("bench_lift.py", [], ["--hidden", "128", "--layers", "2", "--intermediate", "256", "--seq-len", "64",
                                   "--rounds", "2", "--warmup", "1"]),
    "packing": ("bench_packing.py", [], ["--examples", "16", "--max-length", "64", "--epochs", "1"]),
    "sampler": ("bench_sampler.py", [], ["--layers", "2", "--prompt-length", "32", "--gen-length", "32",
                                         "--block-length", "8"]),
    "likelihood": ("bench_likelihood.py", [], ["--requests", "2", "--context", "16", "--mc-num", "8", "32"]),
    "loss_memory": ("bench_loss_memory.py", [], ["--tokens", "512", "--vocab", "8192"]),
}


def _run(name, quick, tmp):
    script, args, quick_args = BENCHMARKS[name]
    path = os.path.join(HERE, script)
    command = ["python", f"benchmarks/{script}", *(quick_args if quick else args)]
    if not os.path.exists(path):
        return {"command": " ".join(command), "missing": True}
    out = os.path.join(tmp, f"{name}.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    print(f"[run_all] {' '.join(command)}", flush=True)
    with open(path) as f:
        takes_json = '"--json"' in f.read()
    proc = subprocess.run([sys.executable, path, *command[2:], *(["--json", out] if takes_json else [])],
                          capture_output=True, text=True,
                          env=env, cwd=os.path.dirname(HERE), check=False)
    figures = None
    if proc.returncode == 0 and os.path.exists(out):
        with open(out) as f:
            figures = json.load(f)
    return {"command": " ".join(command), "returncode": proc.returncode, "figures": figures,
            "table": [line for line in proc.stdout.splitlines() if line.startswith("|")],
            "summary": [line for line in proc.stdout.splitlines() if line and not line.startswith(("|", " ", "{", "}"))],
            "error": proc.stderr[-2000:] if proc.returncode else ""}


def _machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    versions = {p: _version(p) for p in ("torch", "transformers", "trl", "accelerate", "peft", "trl-lift")}
    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name()
    except ImportError:
        pass
    return cpu, versions, gpu


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _f(x, fmt="{:.2f}x"):
    return "-" if x is None else fmt.format(x)


def _sections(results):
    """Markdown sections, one per benchmark, each with its command and figures."""
    out = []
    r = results.get("trainer")
    if r:
        out.append("## DiffusionSFTTrainer vs a bare PyTorch loop of the same objective")
        out += _body(r, "Each method's step (the trainer's `training_step` + AdamW) over the bare loop's step "
                        "(full logits, per-sequence normalisation, same model, batches and optimizer), interleaved. "
                        "Targets: vanilla <= 1.05x time; LIFT <= 1.25x time, <= 1.1x memory.")
    r = results.get("lift")
    if r:
        out.append("## LIFT vs vanilla")
        figures = r.get("figures") or {}
        extra = ""
        if figures:
            extra = (f" Measured: time {figures['time_ratio']:.2f}x (median; best-of {figures['min_time_ratio']:.2f}x, "
                     f"paired {figures['paired_median_ratio']:.2f}x), peak memory {figures['peak_memory_ratio']:.2f}x, "
                     f"{figures['params'] / 1e6:.1f}M parameters, batch {figures['batch']}, gradient checkpointing "
                     f"{figures['gradient_checkpointing']}.")
        out += _body(r, "The trainer's step with LIFT over its step with vanilla masking (same model and batches, "
                        "ABBA order). Targets: time <= 1.25x, peak memory <= 1.1x." + extra)
    r = results.get("packing")
    if r:
        out.append("## Packing vs padding")
        out += _body(r, "Tokens/s of packed rows (per-document bidirectional attention) over padded rows on a "
                        "length-skewed data set, same documents, equal loss. Target >= 1.5x.")
    r = results.get("sampler")
    if r:
        out.append("## Sampler: exact and fast paths vs LLaDA's published `generate`")
        figures = r.get("figures") or {}
        extra = ""
        if figures.get("reference"):
            ref, exact = figures["reference"], figures["modes"]["a exact"]
            fast = {k: v["speed_vs_reference"] for k, v in figures["modes"].items() if k != "a exact"}
            extra = (f" Measured: the exact path gives {ref['exact_agreement']:.1%} of (r)'s tokens at "
                     f"{exact['speed_vs_reference']:.2f}x its speed; the fast paths "
                     + ", ".join(f"{k[2:]} {v:.1f}x" for k, v in fast.items()) + ".")
        out += _body(r, "(r) is LLaDA's `generate` as its repository writes it, re-implemented in the benchmark; "
                        "(a) the library's exact path. Targets: (a) >= 2x (r) at identical tokens, fast paths >= 8x."
                        + extra)
    r = results.get("likelihood")
    if r:
        out.append("## Likelihood evaluation throughput")
        out += _body(r, "`estimate_elbo` requests/s at `mc_num` 32 and 128, beside a plain per-request loop "
                        "written as LLaDA's `get_log_likelihood` (full logits), same model and requests.")
    r = results.get("loss_memory")
    if r:
        out.append("## Peak memory of the loss at 4k tokens")
        out += _body(r, "Forward + backward of the loss on one 4,096-token row with LLaDA's vocabulary: the "
                        "trainer's gold-token scores (TRL's chunked head) vs full logits and cross-entropy.")
    return out


def _body(r, what):
    lines = ["", what, "", f"Command: `{r['command']}`", ""]
    if r.get("missing"):
        return [*lines, "Not run: the script is not in this checkout yet.", ""]
    if r["returncode"]:
        return [*lines, f"Failed (exit {r['returncode']}):", "", "```", r["error"].strip(), "```", ""]
    lines += r["table"] + ([""] if r["table"] else [])
    lines += [f"    {line}" for line in r["summary"][-4:]]
    return [*lines, ""]


def _kept_study(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        text = f.read()
    match = re.search(rf"^{re.escape(STUDY)}.*?(?=^## |\Z)", text, flags=re.DOTALL | re.MULTILINE)
    return match.group(0).rstrip() + "\n" if match else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of the suite, not figures")
    p.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    a = p.parse_args(argv)
    study = _kept_study(a.output)
    with tempfile.TemporaryDirectory(prefix="run_all_") as tmp:
        results = {name: _run(name, a.quick, tmp) for name in a.only}
    cpu, versions, gpu = _machine()
    command = "python benchmarks/run_all.py" + (" --quick" if a.quick else "") + (
        f" --only {' '.join(a.only)}" if a.only != list(BENCHMARKS) else "")
    lines = [
        "# Benchmark results", "",
        ("Written by `benchmarks/run_all.py` (every figure a ratio measured side by side in one run of its script); "
         "the GPU figures come from `benchmarks/run_gpu.sh`."), "",
        "## Machine, versions, date", "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- command: `{command}` (each benchmark one CPU thread)",
        f"- machine: {cpu}, {os.cpu_count()} cores, GPU {gpu}; {platform.platform()}",
        f"- python {platform.python_version()}, " + ", ".join(f"{k} {v}" for k, v in versions.items()), "",
        *_sections(results),
    ]
    if study:
        lines += [study]
    with open(a.output, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    print(f"[run_all] wrote {a.output}")
    failed = [n for n, r in results.items() if r.get("returncode")]
    if failed:
        print(f"[run_all] failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
