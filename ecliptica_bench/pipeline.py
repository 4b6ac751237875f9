"""The main job on the embedded defaults, offline: the paper in miniature.

    build -> build-prefs -> train DPO and CITA LoRA adapters -> run base, DPO and CITA on the five suites
    -> score -> leaderboard (three rows) -> paired comparisons -> one report with the three side by side

Each stage is the same function its CLI command calls and reads the previous stage's files, so any stage
can be rerun alone. A second demo reuses everything: adapters whose config, data and base model are
unchanged are not retrained (a stamp beside each), and generations come from each run's SQLite cache.
`--quick` keeps the base-model-only path (build -> run -> score -> leaderboard + report).

Evaluation is on held-out prompts by construction: the switch pairs are written over their own prompt
bank (prompts/preferences/), which tests/test_prefs_leakage.py keeps disjoint from every eval suite.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from .data.io import dumps, read_json, sha256_file, sha256_text, write_json
from .rundir import LIKELIHOOD
from .suites import SUITES

log = logging.getLogger(__name__)

# Greedy decoding keeps the demo reproducible (and lets the uninstructed control share one generation per
# prompt); the paper's sampling (0.7 / 0.9) is `ecliptica run`'s default.
DEMO_TEMPERATURE = 0.0
DEMO_BOOTSTRAP = 1000
METHODS = ("base", "dpo", "cita")
COMPARISONS = (("cita", "base"), ("cita", "dpo"), ("dpo", "base"))

# Cases per suite (whole prompts first) and new-token budgets, the same for every method. Chosen from
# measured lengths of the embedded model's answers (docs/measured.md, token budgets): the base model rambles,
# so any budget cuts some answers; these keep the run inside the demo's time while the length suite's
# detailed condition has room to be several times longer than a 50-word concise answer.


def demo_limits() -> dict[str, int]:
    """Cases per suite in the CPU demo (Suite.demo_limit)."""
    return {s.name: s.demo_limit for s in SUITES.values()}


def demo_budgets() -> dict[str, int]:
    """max_new_tokens per suite in the CPU demo (Suite.demo_tokens)."""
    return {s.name: s.demo_tokens for s in SUITES.values()}


@dataclass(frozen=True)
class DemoTraining:
    """The demo's training settings, shared by DPO and CITA except the KL anchor. Measured trade-off (docs/measured.md,
    at the earlier 24 steps): the anchor cuts the mean token KL to the base model 1.8x (0.078 vs 0.138) at a lower
    held-out preference accuracy (0.55 vs 0.61); without the SFT term 2.4x (0.058 vs 0.141) at a higher one
    (0.61 vs 0.58)."""

    lr: float = 2e-3
    # 64 steps x 4 preference rows = 256 rows: one epoch of the 252 training rows (126 switch pairs, each
    # a row per instruction); at 24 steps (the earlier default) 62% of them were never seen
    max_steps: int = 64
    batch_size: int = 4
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    max_length: int = 256
    beta: float = 0.1
    cita_kl_weight: float = 0.5
    # an NLL term on the chosen response, the same for both methods: at 24 steps the preference term alone
    # barely moves the refusal axis of this 135M model (measured: 0 refusals under STRICT either way)
    sft_weight: float = 1.0
    seed: int = 3407


LOG_NAME = "demo.log"


class Console:
    """The demo's console: one line per stage with its result and time; everything else (trainer logs, full
    tables, library warnings and progress bars) goes to OUT/demo.log, which the first line names. With
    `verbose` (`ecliptica -v demo`) everything goes to the console as well."""

    def __init__(self, log_path: Path, verbose: bool):
        self.log_path, self.verbose = log_path, verbose
        self.tty = sys.stderr.isatty()
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "Console":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = self._stack.enter_context(open(self.log_path, "a", encoding="utf-8", buffering=1))
        self.fh.write(f"\n===== ecliptica demo {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
        handler = logging.StreamHandler(self.fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        self._stack.callback(root.removeHandler, handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            old = root.level
            root.setLevel(logging.INFO)
            self._stack.callback(root.setLevel, old)
        logging.captureWarnings(True)  # FutureWarning & co: logged (file), not printed
        self._stack.callback(logging.captureWarnings, False)
        if not self.verbose:
            for h in root.handlers:  # the console's handlers (cli's basicConfig): errors only
                if type(h) is logging.StreamHandler and h is not handler:
                    self._stack.callback(h.setLevel, h.level)
                    h.setLevel(logging.ERROR)
            self._quiet_libraries()
        return self

    def _quiet_libraries(self) -> None:
        """transformers' own stderr handler and the "Loading weights" / "Map" progress bars: to the log."""
        with contextlib.suppress(ImportError):
            from transformers.utils import logging as hf_logging

            hf_logging.disable_default_handler()
            hf_logging.enable_propagation()
            hf_logging.disable_progress_bar()
            self._stack.callback(hf_logging.enable_progress_bar)
            self._stack.callback(hf_logging.disable_propagation)
            self._stack.callback(hf_logging.enable_default_handler)
        with contextlib.suppress(ImportError):
            import datasets

            datasets.disable_progress_bars()
            self._stack.callback(datasets.enable_progress_bars)

    def __exit__(self, *exc) -> None:
        self._stack.close()

    @contextlib.contextmanager
    def stage(self):
        """Inside a stage, what libraries print (the HF trainer's per-step dicts go to stdout) lands in the
        log; progress bars (stderr) stay on a terminal and go to the log when stderr is not one."""
        if self.verbose:
            yield
            return
        with contextlib.redirect_stdout(self.fh):
            if self.tty:
                yield
            else:
                with contextlib.redirect_stderr(self.fh):
                    yield

    def line(self, text: str) -> None:
        click.echo(text)
        self.fh.write(text + "\n")

    def detail(self, text: str) -> None:
        """Full tables: the log, and the console too with -v."""
        self.fh.write(text + "\n")
        if self.verbose:
            click.echo(text)


def _secs(t0: float) -> str:
    return f"({time.time() - t0:.0f}s)"


# ------------------------------------------------------------------------------------------- training
def _train_config(method: str, prefs_dir: Path, out: Path, t: DemoTraining):
    from .train.trainer import TrainConfig

    return TrainConfig(
        method=method,
        model="smollm2-135m",
        data=str(prefs_dir),
        out=str(out),
        lora_r=t.lora_r,
        lora_alpha=t.lora_alpha,
        lora_targets=t.lora_targets,
        beta=t.beta,
        lr=t.lr,
        max_steps=t.max_steps,
        batch_size=t.batch_size,
        max_length=t.max_length,
        seed=t.seed,
        kl_weight=t.cita_kl_weight if method == "cita" else None,
        sft_weight=t.sft_weight,
        eval_heldout=True,
    )


def train_or_reuse(method: str, prefs_dir: Path, out: Path, t: DemoTraining) -> dict:
    """Train one adapter, or reuse OUT when it was trained with the same config, data and base model."""
    from .models import resolve_model
    from .train.prefs import MANIFEST as PREFS_MANIFEST
    from .train.trainer import train

    cfg = _train_config(method, prefs_dir, out, t)
    stamp = sha256_text(
        dumps(
            {
                "config": {k: v for k, v in asdict(cfg).items() if k not in ("out", "data")},
                "data": sha256_file(prefs_dir / PREFS_MANIFEST),
                "model": resolve_model(cfg.model),
            }
        )
    )
    stamp_file = out / "demo_stamp.json"
    summary_file = out / "summary.json"
    if stamp_file.exists() and summary_file.exists() and (out / "adapter" / "adapter_config.json").exists():
        if read_json(stamp_file).get("stamp") == stamp:
            summary = read_json(summary_file)
            log.info("[train %s] reusing %s (same config, data and base model)", method, out)
            return {**summary, "reused": True}
    if out.exists():
        shutil.rmtree(out)  # a different config or an unfinished run: start clean
    summary = train(cfg)
    write_json(stamp_file, {"stamp": stamp})
    return {**summary, "reused": False}


# ------------------------------------------------------------------------------------------------ demo
def demo(
    out: Path,
    quick: bool = False,
    limits: dict | None = None,
    budgets: dict | None = None,
    training: DemoTraining | None = None,
    bootstrap: int = DEMO_BOOTSTRAP,
    verbose: bool | None = None,
) -> dict:
    """The main job (module docstring). `verbose` None: as `ecliptica -v` set the root logger (DEBUG)."""
    out = Path(out)
    if verbose is None:
        verbose = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    with Console(out / LOG_NAME, verbose) as con:
        con.line(f"ecliptica demo -> {out}  (trainer logs, full tables and library warnings: {out / LOG_NAME}; -v prints them)")
        return _demo(con, out, quick, limits, budgets, training, bootstrap)


def _demo(con: Console, out: Path, quick, limits, budgets, training, bootstrap) -> dict:
    from .data.build import build_dataset
    from .run import RunOptions, format_summary, run
    from .scoring.score import score_run, summary_table

    t_all = time.time()
    limits = limits or demo_limits()
    budgets = budgets or demo_budgets()
    training = training or DemoTraining()

    t0 = time.time()
    data_dir = out / "data"
    with con.stage():
        manifest = build_dataset(data_dir)
    con.line(
        f"[build] {data_dir}: " + ", ".join(f"{n} {s['rows']}" for n, s in manifest["suites"].items()) + f" rows {_secs(t0)}"
    )

    adapters: dict[str, Path | None] = {"base": None}
    train_summaries: dict[str, dict] = {}
    prefs_dir = None
    if not quick:
        from .train.prefs import build_prefs

        t0 = time.time()
        prefs_dir = out / "prefs"
        with con.stage():
            pm = build_prefs(prefs_dir)
        con.line(
            f"[prefs] {prefs_dir}: "
            + "; ".join(
                f"{name} {sp['rows']} rows / {sp['pairs']} switch pairs ({', '.join(f'{k} {n}' for k, n in sp['per_kind'].items())})"
                for name, sp in pm["splits"].items()
            )
            + f" {_secs(t0)}"
        )
        train_rows = int(pm["splits"]["train"]["rows"])
        for method in ("dpo", "cita"):
            t0 = time.time()
            with con.stage():
                s = train_or_reuse(method, prefs_dir, out / "adapters" / method, training)
            train_summaries[method] = s
            adapters[method] = out / "adapters" / method
            con.line(train_line(method, s, train_rows) + f" {_secs(t0)}")

    run_dirs: dict[str, Path] = {}
    for method, adapter in adapters.items():
        t0 = time.time()
        with con.stage():
            summary = run(
                RunOptions(
                    out=out / "runs",
                    data=data_dir,
                    limit=limits,
                    condition="both",
                    temperature=DEMO_TEMPERATURE,
                    max_new_tokens=budgets,
                    backend="hf",
                    adapter=str(adapter) if adapter else None,
                    progress=con.verbose or con.tty,
                )
            )
        con.detail(format_summary(summary))
        run_dirs[method] = Path(summary["run_dir"])
        con.line(run_line(method, summary) + f" {_secs(t0)}")

    for method, run_dir in run_dirs.items():
        t0 = time.time()
        with con.stage():
            metrics = score_run(run_dir, n_boot=bootstrap)
        con.detail(f"[score {method}]\n" + summary_table(metrics))
        con.line(score_line(method, metrics) + f" {_secs(t0)}")

    if prefs_dir is not None:
        from .likelihood import format_likelihood

        for method, run_dir in run_dirs.items():
            t0 = time.time()
            with con.stage():
                res, reused = likelihood_or_reuse(run_dir, adapters[method], prefs_dir, bootstrap)
            con.detail(f"[likelihood {method}]\n" + format_likelihood(res))
            con.line(likelihood_line(method, res, reused) + f" {_secs(t0)}")

    return _board(con, out, run_dirs, train_summaries, bootstrap, t_all)


def likelihood_or_reuse(run_dir: Path, adapter: Path | None, prefs_dir: Path, n_boot: int) -> tuple[dict, bool]:
    """`ecliptica likelihood` of the run's model on the held-out switch pairs, into RUN_DIR/likelihood.json;
    reused when the file there is of the same model, preference set, bootstrap and package version."""
    from . import __version__
    from .likelihood import FILENAME, evaluate_likelihood, write_likelihood
    from .rundir import read_manifest
    from .train.prefs import MANIFEST as PREFS_MANIFEST

    path = run_dir / FILENAME
    if path.is_file():
        old = read_json(path)
        if (
            old.get("model_fingerprint") == read_manifest(run_dir).model.fingerprint
            and (old.get("prefs") or {}).get("manifest_sha256") == sha256_file(prefs_dir / PREFS_MANIFEST)
            and (old.get("bootstrap") or {}).get("n_boot") == n_boot
            and old.get("package_version") == __version__
        ):
            return old, True
    res = evaluate_likelihood("smollm2-135m", str(adapter) if adapter else None, prefs_dir, n_boot=n_boot)
    write_likelihood(res, run_dir)
    return res, False


def _ci(sc: dict | None, digits: int = 2, sign: bool = True) -> str:
    if not sc or sc.get("value") is None:
        return "n/a"
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    v = f.format(sc["value"])
    if sc.get("ci_low") is None or sc.get("ci_high") is None:
        return v
    return v + f" [{f.format(sc['ci_low'])}, {f.format(sc['ci_high'])}]"


def run_line(method: str, s: dict) -> str:
    cut = ", ".join(f"{n} {c['truncation_rate']:.0%}" for n, c in s["suites"].items() if c["truncation_rate"])
    return (
        f"[run {method}] {s['cases']} cases, {s['rows']} rows: {s['generated']} generated now, {s['cached']} cached, "
        f"{s['errors']} errors" + (f"; cut at the token budget: {cut}" if cut else "")
    )


def score_line(method: str, metrics: dict) -> str:
    """The signed Δ (instructed - uninstructed headline) per suite with its 95% CI."""
    from .report.leaderboard import suite_order_items

    parts = [f"{s} {_ci(sd.get('delta'))}" for s, sd in suite_order_items(metrics["suites"])]
    return f"[score {method}] Δ " + "; ".join(parts)


def likelihood_line(method: str, res: dict, reused: bool) -> str:
    parts = [f"{k} {_ci(v.get('margin'), 1)}" for k, v in res["per_kind"].items()]
    return (
        f"[likelihood {method}] held-out margin (nats), {res['overall']['pairs']} pairs: "
        + "; ".join(parts)
        + (" (reused)" if reused else "")
    )


def train_line(method: str, s: dict, train_rows: int | None = None) -> str:
    """One line per adapter: steps x pairs per step and the epochs that makes, time, drift from the base
    model and held-out preference accuracy (the same figures as the report's training table)."""
    from .report.board import training_rows

    r = training_rows({method: s})[0]
    batch = s.get("effective_batch") or (s.get("config") or {}).get("batch_size")
    seen = f"{r['steps']} steps x {batch} rows" if batch else f"{r['steps']} steps"
    if batch and r["steps"] and train_rows:
        seen += f" = {r['steps'] * batch / train_rows:.2f} epochs of {train_rows} rows"
    parts = [f"[train {method}] " + ("reused: " if s.get("reused") else "") + f"{seen}, {r['s_per_step']} s/step"]
    if r["kl_final"]:
        parts.append(f"KL to base: final {r['kl_final']}, mean {r['kl_mean']}")
    if r["acc_after"]:
        parts.append(f"held-out preference accuracy {r['acc_before']} -> {r['acc_after']} ({r['per_kind']})")
    return "; ".join(parts)


def _board(con: Console, out: Path, run_dirs: dict[str, Path], train_summaries: dict, bootstrap: int, t_all: float) -> dict:
    from .report import build_leaderboard, write_leaderboard, write_report
    from .scoring.compare import compare_runs, format_compare, write_compare

    t0 = time.time()
    results = out / "results"
    names = {str(d): m for m, d in run_dirs.items()}
    compares = {}
    with con.stage():
        df = build_leaderboard(list(run_dirs.values()), names=names)
        written = write_leaderboard(df, csv=results / "leaderboard.csv", markdown=results / "leaderboard.md", plots=results)
        for a, b in COMPARISONS:
            if a in run_dirs and b in run_dirs:
                res = compare_runs(run_dirs[a], run_dirs[b], n_boot=bootstrap)
                write_compare(res, results / f"compare_{a}_vs_{b}.json")
                compares[f"{a} vs {b}"] = res
        if train_summaries:
            write_json(results / "training.json", train_summaries)
        reports = [write_report(d) for d in run_dirs.values()]
        board_report = None
        if len(run_dirs) > 1:
            from .report.board import write_board_report

            board_report = write_board_report(results / "report.html", run_dirs, df, compares, train_summaries)
    for label, res in compares.items():
        con.detail(f"\n[compare] {label}\n" + format_compare(res))
    con.line(f"[report] {results}: leaderboard, {len(compares)} paired comparisons, {len(written) - 2} plots, report {_secs(t0)}")

    con.line("\n" + (results / "leaderboard.md").read_text(encoding="utf-8").rstrip())
    if compares:
        con.line("")
    for label, res in compares.items():
        con.line(compare_lines(label, res, run_dirs))

    con.line(f"\noutputs (total {time.time() - t_all:.0f}s):")
    con.line(f"  dataset      {out / 'data'}")
    for m, d in run_dirs.items():
        con.line(f"  run {m:<8} {d}  (generations, scores, metrics.json, report.html)")
    con.line(f"  results      {results}  (leaderboard.csv/.md, {len(written) - 2} plots, compare_*.json)")
    if board_report:
        con.line(f"  report       {board_report}")
    con.line(f"  log          {con.log_path}")
    return {
        "run_dirs": run_dirs,
        "reports": reports,
        "board_report": board_report,
        "leaderboard": results / "leaderboard.csv",
        "compares": compares,
        "training": train_summaries,
    }


def compare_lines(label: str, res: dict, run_dirs: dict[str, Path]) -> str:
    """One comparison A vs B in two lines: the difference of the signed Δ per suite (paired bootstrap,
    95% CI, * where it excludes 0) and, when both ran `ecliptica likelihood`, of the per-axis margins."""
    from .report.leaderboard import margin_difference_p, suite_order_items

    def star(sc: dict | None) -> str:
        lo, hi = (sc or {}).get("ci_low"), (sc or {}).get("ci_high")
        return "*" if lo is not None and hi is not None and (lo > 0 or hi < 0) else ""

    a, b = (x.strip() for x in label.split(" vs "))
    lines = [
        f"[compare] {label} (A - B; * = 95% CI excludes 0)",
        "  Δ: "
        + "; ".join(
            f"{s} {_ci(e.get('delta_difference'))}{star(e.get('delta_difference'))}" for s, e in suite_order_items(res["suites"])
        ),
    ]
    pa, pb = run_dirs[a] / LIKELIHOOD, run_dirs[b] / LIKELIHOOD
    if pa.is_file() and pb.is_file():
        la, lb = read_json(pa), read_json(pb)
        parts = []
        for k in la.get("per_kind", {}):
            va, vb = (
                la["per_kind"][k]["margin"].get("value"),
                (lb.get("per_kind", {}).get(k) or {}).get("margin", {}).get("value"),
            )
            if va is None or vb is None:
                continue
            p = margin_difference_p(la, lb, k)
            parts.append(f"{k} {va - vb:+.1f}" + ("" if p is None else f" (p {p:.3f})"))
        if parts:
            lines.append("  likelihood margin (nats, paired bootstrap p): " + "; ".join(parts))
    return "\n".join(lines)
