"""`ecliptica eval`: run + score + report + the leaderboard row, in one resumable command.

Each step is the stage function the single commands call (run.run, scoring.score.score_run,
report.html.write_report, report.leaderboard's board builder); nothing is recomputed that their caches hold: a
second `eval` with the same arguments finds every generation in the run's store and every verdict in its
judgment cache, so it generates nothing and judges nothing (it re-scores, which is cheap next to those).

The board: OUTPUT_DIR/leaderboard.csv and .md are rebuilt by report/leaderboard.py from the scored run
directories under OUTPUT_DIR (`board_runs`: per model, adapter and sampling seed the newest scoring of each
suite and condition wins, so evaluating a model again replaces its row; other seeds of it average into it).

`estimate_judging` is the judging part of `--dry-run` (score and eval): requests per judge and their tokens.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from .errors import EclipticaError
from .rundir import MANIFEST, METRICS

log = logging.getLogger(__name__)

BOARD_CSV = "leaderboard.csv"
BOARD_MD = "leaderboard.md"


# ------------------------------------------------------------------------------------------------ board
def board_runs(output_dir: Path) -> list[Path]:
    """The scored run directories under output_dir that make up its board: newest scoring first, a run is kept
    unless every (suite, condition) it holds is already held by a newer run of the same model, adapter and
    sampling seed (a re-evaluation replaces; other seeds and other suites add)."""
    from .report.leaderboard import load_run, run_seed

    found = []
    for d in sorted(p for p in Path(output_dir).iterdir() if p.is_dir()):
        if not ((d / METRICS).is_file() and (d / MANIFEST).is_file()):
            continue
        try:
            found.append(((d / METRICS).stat().st_mtime, load_run(d)))
        except EclipticaError as exc:  # an old or broken run must not block the board: say so, leave it off
            log.warning("%s: left off the leaderboard: %s", d, str(exc).splitlines()[0])
    held: dict[tuple, set] = {}
    keep = []
    for _, r in sorted(found, key=lambda t: (-t[0], str(t[1].run_dir))):
        pairs = {(s, c) for s, sd in r.suites().items() for c in sd["conditions"]}
        slot = held.setdefault((r.fingerprint or r.model, r.adapter, str(run_seed(r))), set())
        if pairs and pairs <= slot:
            continue
        if pairs & slot:  # partly replaced: the newer run's suites win, this one still adds its others
            log.info("%s: some suites were evaluated again later; the board uses the newer ones where both exist", r.run_dir)
            continue
        slot |= pairs
        keep.append(r.run_dir)
    return sorted(keep)


def update_board(output_dir: Path) -> tuple[list[Path], object]:
    """Rebuild OUTPUT_DIR/leaderboard.csv and .md over board_runs (the `leaderboard` command's builder)."""
    from .report.leaderboard import leaderboard_frame, load_methods, write_leaderboard

    runs = board_runs(output_dir)
    if not runs:
        raise EclipticaError(f"{output_dir}: no scored run directory to put on the leaderboard")
    methods = load_methods(runs)
    df = leaderboard_frame(methods)
    out = Path(output_dir)
    return write_leaderboard(df, csv=out / BOARD_CSV, markdown=out / BOARD_MD), df


# ------------------------------------------------------------------------------------------------ eval
def evaluate(
    opts,
    judges=None,
    *,
    embedder: str | None = None,
    n_boot: int = 10000,
    score_seed: int = 0,
    samples: int = 3,
    detectors: dict | None = None,
    detector_validation: dict | None = None,
) -> dict:
    """run -> score -> report -> board. Returns {"summary", "metrics", "report", "board", "row"}; metrics None
    when some generations failed (rerun to retry them: nothing is scored from a partial run)."""
    from .lock import run_dir_lock
    from .report.html import write_report
    from .run import run
    from .scoring.score import score_run

    summary = run(opts)
    out = {"summary": summary, "metrics": None, "report": None, "board": [], "row": None}
    if summary["unresolved"]:
        return out
    run_dir = Path(summary["run_dir"])
    with run_dir_lock(run_dir, wait=opts.wait):
        out["metrics"] = score_run(
            run_dir,
            judge=judges or None,
            embedder=embedder,
            n_boot=n_boot,
            seed=score_seed,
            detectors=detectors,
            detector_validation=detector_validation,
        )
        out["report"] = write_report(run_dir, samples)
    out["board"], df = update_board(Path(opts.out))
    rows = df[df["run_ids"].str.split(";").apply(lambda ids: summary["run_id"] in ids)]
    out["row"] = rows.iloc[0].to_dict() if len(rows) else None
    return out


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def _signal(block: dict | None, name: str):
    return (((block or {}).get("signals") or {}).get(name) or {}).get("value")


def judge_agreement(metrics: dict, suite: str) -> str:
    """Panel of 2+: the mean inter-judge agreement over the suite's labels (Cohen's kappa, Krippendorff's alpha);
    one judge: its agreement with the keyword detectors (1 - disagreement rate, instructed rows)."""
    panel = ((metrics.get("judge_panel") or {}).get("suites") or {}).get(suite) or {}
    agree = [a for a in (panel.get("agreement") or {}).values() if a.get("value") is not None]
    if agree:
        stat = {"cohen_kappa": "kappa", "krippendorff_alpha": "alpha"}.get(agree[0]["statistic"], agree[0]["statistic"])
        return f"{stat} {sum(a['value'] for a in agree) / len(agree):.2f}"
    ins = (metrics["suites"][suite]["conditions"].get("instructed") or {}).get("judge") or {}
    dis = (ins.get("detector_disagreement_rate") or {}).get("value")
    return "-" if dis is None else f"det {1 - dis:.2f}"


def eval_table(metrics: dict) -> str:
    """Per suite: the metric, instructed and uninstructed values, Delta with its 95% CI, valid %, truncation %
    (instructed), and judge columns when judged."""
    from .scoring.score import format_score

    judged = bool(metrics.get("judge"))
    head = (
        f"{'suite':<19} {'metric':<22} {'instructed':>10} {'uninstr.':>10} {'Delta [95% CI]':<26} {'valid%':>7} {'trunc%':>7}"
        + (f" {'judged%':>8} {'judge agr.':>11}" if judged else "")
    )
    lines = [head, "-" * len(head)]
    for suite, e in metrics["suites"].items():
        ins, unins = e["conditions"].get("instructed"), e["conditions"].get("uninstructed")

        def val(b):
            v = ((b or {}).get("headline") or (b or {}).get("paper") or {}).get("value")
            return "-" if v is None else f"{v:.3f}"

        valid = [v for v in (_signal(ins, "valid_rate"), _signal(unins, "valid_rate")) if v is not None]
        line = (
            f"{suite:<19} {(e.get('headline_metric') or e['metric'] or '')[:22]:<22} {val(ins):>10} {val(unins):>10} "
            f"{format_score(e.get('delta'), signed=True):<26} {_pct(min(valid) if valid else None):>7} {_pct(_signal(ins, 'truncation_rate')):>7}"
        )
        if judged:
            unscored = [_signal(b, "judge_unscored_rate") for b in (ins, unins) if b]
            unscored = [v for v in unscored if v is not None]
            line += f" {_pct(1 - max(unscored) if unscored else None):>8} {judge_agreement(metrics, suite):>11}"
        lines.append(line)
    jf = metrics.get("judge_faults")
    if jf:
        lines.append(
            f"judge: {jf['scored']}/{jf['cases']} verdicts scored ({jf['cached']} from the cache), {jf['unscored']} unscored"
            + (f" ({', '.join(f'{k} {v}' for k, v in jf['unscored_reasons'].items())})" if jf.get("unscored_reasons") else "")
            + f"; {jf['requests']} requests, {jf['retries']} retries"
            + (", endpoint died" if jf.get("endpoint_dead") else "")
        )
    lines.append(
        "valid%: the lower of the two conditions; trunc%: instructed outputs that hit max_new_tokens"
        + (
            "; judged%: the lower of the two conditions; judge agr.: kappa/alpha between judges, det = one judge vs the keyword detectors"
            if judged
            else ""
        )
    )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ dry run
def estimate_judging(
    suite_rows: dict[str, list[dict]], judges, store=None, response_tokens: dict[str, int] | None = None
) -> dict:
    """Per judge: requests and estimated tokens to judge these rows (per suite, generations columns; `store`:
    the run's, to leave out cached verdicts). `response_tokens` (per suite): where the responses do not exist yet
    (eval's dry run), each is counted at this many tokens (an upper bound). Tokens are chars/4: the judge's
    tokenizer is the server's. Contrastive requests (2 per prompt and condition, where the suite's template has
    one) are counted, their prompts estimated as the sum of the group's single-response prompts."""
    from .scoring.judge import Judge, load_judge_template
    from .scoring.panel import ORDER_SEEDS, _types, case_for
    from .suites import get_suite

    out = {}
    for cfg in judges or []:
        per = {"requests": 0, "cached": 0, "prompt_tokens": 0, "completion_tokens_max": 0, "contrastive_requests": 0}
        for suite, rows in suite_rows.items():
            s = get_suite(suite)
            judge = Judge(replace(cfg, template=str(s.judge_template_path())))
            types = _types(suite)
            extra = (response_tokens or {}).get(suite, 0)
            groups: dict = {}
            for r in rows:
                rendered = judge.render(case_for(r, types))
                tokens = max(1, round(len(rendered) / 4)) + extra
                if store is not None and store.get_judgment(judge.key(rendered)) is not None:
                    per["cached"] += 1
                else:
                    per["requests"] += 1
                    per["prompt_tokens"] += tokens
                    per["completion_tokens_max"] += cfg.max_tokens
                groups.setdefault((r.get("prompt_id"), r.get("condition")), []).append((r.get("instruction_type"), tokens))
            if load_judge_template(s.judge_template_path())[2].get("contrastive"):
                for members in groups.values():
                    names = [t for t, _ in members]
                    if len(members) >= 2 and len(set(names)) == len(names):
                        n = len(ORDER_SEEDS)
                        per["contrastive_requests"] += n
                        per["requests"] += n
                        per["prompt_tokens"] += n * sum(t for _, t in members)
                        per["completion_tokens_max"] += n * cfg.max_tokens
        out[cfg.label] = per
    return out


def format_judging(est: dict, note: str = "") -> str:
    if not est:
        return "  judging: no judge given"
    lines = []
    for name, e in est.items():
        lines.append(
            f"  judge {name}: {e['requests']} requests ({e['contrastive_requests']} of them contrastive, their cache not "
            f"checked), {e['cached']} cached; "
            f"~{e['prompt_tokens']} prompt tokens (chars/4{note}), at most {e['completion_tokens_max']} completion tokens"
        )
    return "\n".join(lines)
