"""Running lm-eval in-process on exported tasks, for the tests (users run the `lm_eval` command that
`ecliptica export-lm-eval` prints, then `ecliptica import-lm-eval`)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from ecliptica_bench import __version__
from ecliptica_bench.data.io import staged_dir, write_json
from ecliptica_bench.errors import EclipticaError
from ecliptica_bench.lmeval import EXPORT_MARKER, _write_mc, mc_suites, mc_task_name
from ecliptica_bench.suites import Suite, get_suite


def evaluate(
    model_path: str,
    tasks_dir: Path,
    tasks: list[str],
    *,
    limit: int | float | None = None,
    output_path: Path | None = None,
    apply_chat_template: bool = True,
    gen_kwargs: dict | None = None,
    batch_size: int = 8,
    dtype: str = "auto",
    device: str | None = None,
) -> dict:
    """lm_eval.simple_evaluate on exported tasks (built-in tasks not indexed: faster, and no name clashes).

    With output_path, results and samples are written exactly as `lm-eval run --log_samples --output_path`
    writes them (OUTPUT/<model>/results_<date>.json + samples_<task>_<date>.jsonl).
    """
    import lm_eval
    import torch
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    from ecliptica_bench.models import resolve_model

    model_path = resolve_model(model_path)  # "smollm2-135m" -> the embedded model's folder
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")  # lm-eval's default is cuda
    tracker = EvaluationTracker(output_path=str(output_path)) if output_path else None
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_path},dtype={dtype}",
        tasks=list(tasks),
        limit=limit,
        batch_size=batch_size,
        device=device,
        log_samples=output_path is not None,
        evaluation_tracker=tracker,
        apply_chat_template=apply_chat_template,
        gen_kwargs=gen_kwargs,
        task_manager=TaskManager(include_path=str(tasks_dir), include_defaults=False),
    )
    if results is None:  # non-zero ranks only
        raise EclipticaError("lm-eval returned no results")
    if tracker is not None:
        samples = results.pop("samples")
        tracker.save_results_aggregated(results=results, samples=samples)
        for name in results["configs"]:
            tracker.save_results_samples(task_name=name, samples=samples[name])
    return results


def run_mc(
    model_path: str,
    suite: str | None = None,
    limit: int | None = None,
    items: list[dict] | None = None,
    batch_size: int = 8,
    dtype: str = "auto",
    device: str | None = None,
) -> dict:
    """A suite's MC1/MC2 task (Suite.lmeval_mc; default: the first suite with one, TruthfulQA) through lm-eval,
    on its bundled questions (or `items`).

    Returns {"mc1", "mc2", "mc1_norm", "mc1_stderr", "mc2_stderr", "n", "lm_eval_version"}. Standard mc1/mc2 sum
    token loglikelihoods, so where correct answers are longer than incorrect ones they are penalised (the bundled
    questions keep true and false options of similar length); mc1_norm (per character) is reported beside them.
    """
    import lm_eval

    with tempfile.TemporaryDirectory(prefix="ecliptica-mc-") as tmp:
        task = mc_task_name(_mc_suite(suite).name)
        tasks_dir = export_mc(Path(tmp) / "tasks", suite, items)
        res = evaluate(
            model_path,
            tasks_dir,
            [task],
            limit=limit,
            apply_chat_template=False,
            batch_size=batch_size,
            dtype=dtype,
            device=device,
        )
    r = res["results"][task]

    def stderr(name):
        v = r.get(f"{name}_stderr,none")
        return float(v) if isinstance(v, (int, float)) and not math.isnan(v) else None

    return {
        "mc1": float(r["mc1,none"]),
        "mc2": float(r["mc2,none"]),
        "mc1_norm": float(r["mc1_norm,none"]),
        "mc1_stderr": stderr("mc1"),
        "mc2_stderr": stderr("mc2"),
        "n": int(res["n-samples"][task]["effective"]),
        "lm_eval_version": getattr(lm_eval, "__version__", None),
    }


def _mc_suite(suite: str | None) -> Suite:
    """The named suite, which must have an MC task; default: the registry's first suite with one."""
    if suite is None:
        found = mc_suites()
        if not found:
            raise EclipticaError("no suite has a multiple-choice task (Suite.lmeval_mc)")
        return found[0]
    s = get_suite(suite)
    if s.lmeval_mc is None:
        raise EclipticaError(f"suite {suite!r} has no multiple-choice task")
    return s


def export_mc(out: Path, suite: str | None = None, items: list[dict] | None = None) -> Path:
    """Only a suite's MC task (default: the first suite with one), over `items` (default: its bundled bank).
    Returns OUT."""
    out = Path(out).resolve()
    s = _mc_suite(suite)
    with staged_dir(out, EXPORT_MARKER) as tmp:
        mc = _write_mc(tmp, s, items if items is not None else s.bundled_items(), out)
        write_json(tmp / EXPORT_MARKER, {"mc_tasks": {mc["task"]: mc}, "package_version": __version__})
    return out
