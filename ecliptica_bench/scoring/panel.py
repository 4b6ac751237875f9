"""A panel of LLM judges over one suite's rows, majority verdicts, agreement, and judge-based scores.

Every judge of the panel (a JudgeConfig; `name` tells two judges on one model apart) judges every row with
the suite's own template (Suite.judge_template in Suite.judges_dir(); judge.py does transport, caching and
re-asks). Each judge's verdicts are kept. Per row and label the reported verdict is the STRICT majority of the parsed verdicts,
and only when at least a majority of the panel (floor(n/2) + 1 judges) parsed one: a tie, or too few parsed
verdicts, leaves the label unscored (None), never wrong. One judge is a panel of one (its verdict is the
majority).

Derived label: a template with per-characteristic verdicts adds `shows_type`, true when a strict majority
of the row's expected characteristics are true (2 of 3), computed per judge, then voted like any label.

Agreement per label (rows where at least two judges parsed a verdict): Cohen's kappa for two judges
(sklearn), Krippendorff's alpha (nominal; `krippendorff` package) for more; None when undefined (e.g.
every verdict the same). Parse-failure rate per judge = cases whose reply never parsed / cases.

Contrastive mode (templates whose schema names a "contrastive" template, a file beside it): the responses to one
prompt under the suite's instruction types (one condition) are shown in a seeded random order with the list
of types, and the judge assigns each response a type. Each prompt is judged in two orders (seeds 0 and 1:
the permutation is drawn by random.Random(f"{seed}|{group}"); if the second equals the first it is rotated
by one). Judge-based identifiability = share of (row, order) assignments equal to the row's true type
(chance 1/#types); order agreement = share of rows whose two assignments (both parsed) are equal.

Judge-based suite scores (template schema "metric"); a label's "rate" counts a verdict as yes when its
value is in the label's "true" list (default [true]; e.g. a refusal label's full and partial refusals);
each bundled template's schema comment (judges/*.j2) says which it uses and what it stands for:
  rate      mean of the label
  contrast  rate of the label under the suite's first contrast type (Suite.contrast_types()) - under its
            second
  safe      mean over the listed labels of (1 - rate over the rows where it was asked; a label's "when"
            says on which rows it is asked)
"""

from __future__ import annotations

import json
import math
import random
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from ..errors import EclipticaError
from ..measures.stats import Statistic, cluster_sums, difference, mean_statistic
from ..store import RunStore
from ..suites import get_suite
from .judge import ANSWERS_PROMPT, Judge, JudgeCase, JudgeConfig, load_judge_template

SHOWS_TYPE = "shows_type"
ORDER_SEEDS = (0, 1)


def majority(values: Sequence, panel_size: int):
    """The strict majority of the parsed (non-None) values, if at least a majority of the panel parsed one."""
    parsed = [v for v in values if v is not None]
    if not parsed or len(parsed) < panel_size // 2 + 1:
        return None
    ((top, count),) = Counter(parsed).most_common(1)
    return top if 2 * count > len(parsed) else None


def agreement(columns: Sequence[Sequence]) -> dict:
    """Inter-judge agreement on one label: columns = one list of values (None = unparsed) per judge."""
    k = len(columns)
    if k < 2:
        return {"statistic": None, "value": None, "n": 0}
    rows = [[c[i] for c in columns] for i in range(len(columns[0]))]
    if k == 2:
        pairs = [(a, b) for a, b in rows if a is not None and b is not None]
        value = None
        if len(pairs) >= 2 and len({str(x) for p in pairs for x in p}) >= 2:  # one value only: undefined
            from sklearn.metrics import cohen_kappa_score

            a, b = zip(*pairs)
            with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kappa = float(cohen_kappa_score([str(x) for x in a], [str(x) for x in b]))
            value = kappa if math.isfinite(kappa) else None
        return {"statistic": "cohen_kappa", "value": value, "n": len(pairs)}
    import krippendorff

    codes = {v: i for i, v in enumerate(sorted({str(v) for r in rows for v in r if v is not None}))}
    data = np.array([[np.nan if v is None else codes[str(v)] for v in c] for c in columns], dtype=float)
    n = int(((~np.isnan(data)).sum(axis=0) >= 2).sum())
    value = None
    if len(codes) >= 2 and n >= 1:
        try:
            alpha = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
            value = alpha if math.isfinite(alpha) else None
        except (ValueError, ZeroDivisionError):
            value = None
    return {"statistic": "krippendorff_alpha", "value": value, "n": n}


@dataclass
class PanelResult:
    suite: str
    template_version: str
    schema: dict
    judges: list[str]
    labels: list[str]  # every label seen, in first-asked order (shows_type last)
    majority: list[dict]  # per row {label: value or None}
    per_judge: dict[str, list[dict]]  # judge -> per row {label: value or None}
    raw: dict[str, list]  # judge -> per row raw reply (None when no reply)
    status: list[str]  # "ok" when every asked label has a majority, else "unscored"
    reason: list  # why unscored
    chars: list[tuple]  # per row: the characteristic labels
    faults: dict = field(default_factory=dict)  # judge -> JudgeFaults dict

    def adherence(self) -> np.ndarray:
        """Share of the row's characteristics with a true majority verdict (NaN when none is scored)."""
        out = []
        for m, chars in zip(self.majority, self.chars):
            vals = [m[c] for c in chars if m.get(c) is not None]
            out.append(sum(vals) / len(vals) if vals else math.nan)
        return np.array(out, dtype=float)

    def truth(self, label: str) -> np.ndarray:
        """Per row 1.0 / 0.0 when the majority value of `label` counts as yes / no; NaN when unscored or not asked."""
        yes = set(map(_norm, ((self.schema.get("labels") or {}).get(label) or {}).get("true", [True])))
        return np.array([math.nan if m.get(label) is None else float(_norm(m[label]) in yes) for m in self.majority])

    def agreement(self) -> dict:
        return {lab: agreement([[r.get(lab) for r in self.per_judge[j]] for j in self.judges]) for lab in self.labels}

    def parse_failure_rates(self) -> dict:
        return {
            j: (f["unscored_reasons"].get("unparseable", 0) / f["cases"] if f["cases"] else None) for j, f in self.faults.items()
        }

    def detector_disagreement(self, detectors: dict[str, np.ndarray]) -> np.ndarray:
        """Per row 1.0 when a label with a keyword detector ("detector" in the schema) disagrees with it, 0.0
        when every scored one agrees, NaN when none is scored. `detectors`: column name -> per-row bools."""
        out = np.full(len(self.majority), np.nan)
        for label, spec in (self.schema.get("labels") or {}).items():
            col = spec.get("detector")
            if not col or col.lstrip("!") not in detectors:
                continue
            det = np.asarray(detectors[col.lstrip("!")], dtype=float)
            if col.startswith("!"):
                det = 1.0 - det
            t = self.truth(label)
            ok = np.isfinite(t)
            out[ok] = np.fmax(np.nan_to_num(out[ok], nan=0.0), (t[ok] != det[ok]).astype(float))
        return out


def _norm(v):
    return str(v).lower() if isinstance(v, bool) else v


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _types(suite: str) -> dict:
    try:
        return {t.name: t for t in get_suite(suite).instructions().types}
    except EclipticaError:
        return {}


def case_for(row: dict, types: dict) -> JudgeCase:
    """A row (generations columns) -> its JudgeCase: characteristics from the suite's type (else the row's
    expected_characteristics, described by their names); every other column is a template variable."""
    itype = types.get(row.get("instruction_type"))
    if itype is not None:
        chars = tuple((c.name, c.description) for c in itype.characteristics)
    else:
        exp = row.get("expected_characteristics")
        chars = tuple((str(c), str(c).replace("_", " ")) for c in (list(exp) if exp is not None else []))
    extra = {k: _jsonable(v) for k, v in row.items() if k not in ("prompt", "response")}
    return JudgeCase(str(row.get("prompt") or ""), str(row.get("response") or ""), chars, row=extra)


def _check_names(judges: Sequence[JudgeConfig]) -> None:
    names = [j.label for j in judges]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise EclipticaError(f"--judge: judge name {dup[0]!r} given twice (name each judge: URL,MODEL,KEY_ENV,NAME)")


def _run(judges, template: str, cases: list[JudgeCase], store):
    """Each judge's verdicts on the cases with the given template: {name: (verdicts, faults dict, version, schema)}."""
    out = {}
    for cfg in judges:
        j = Judge(replace(cfg, template=template), store)
        out[cfg.label] = (j.judge(cases), j.faults.to_dict(), j.version, j.schema, j)
    return out


def judge_rows(suite_name: str, rows: list[dict], judges: list[JudgeConfig], store: RunStore | None = None) -> PanelResult:
    """Judge the rows of one suite with every judge of the panel; see the module docstring."""
    if not judges:
        raise EclipticaError("judge_rows: no judge given")
    _check_names(judges)
    template = str(get_suite(suite_name).judge_template_path())
    types = _types(suite_name)
    cases = [case_for(r, types) for r in rows]
    runs = _run(judges, template, cases, store)
    first = next(iter(runs.values()))
    schema, version, judge0 = first[3], first[2], first[4]
    names = [c.label for c in judges]
    asked = [judge0.labels(c) for c in cases]
    chars = [tuple(n for n, _ in c.characteristics if n in a) for c, a in zip(cases, asked)]
    derive = bool(schema.get("characteristics"))
    per_judge, raw = {}, {}
    for name in names:
        verdicts = runs[name][0]
        rows_out = []
        for v, a, ch in zip(verdicts, asked, chars):
            d = {lab: (v.verdict.get(lab) if v.status == "ok" and v.verdict else None) for lab in a}
            if derive and ch:
                vals = [d[c] for c in ch]
                d[SHOWS_TYPE] = None if any(x is None for x in vals) else 2 * sum(vals) > len(vals)
            rows_out.append(d)
        per_judge[name] = rows_out
        raw[name] = [v.raw for v in verdicts]
    labels = list(dict.fromkeys(lab for a in asked for lab in a))
    if derive and any(chars):
        labels.append(SHOWS_TYPE)
    maj, status, reason = [], [], []
    for i in range(len(cases)):
        m = {lab: majority([per_judge[n][i][lab] for n in names], len(names)) for lab in per_judge[names[0]][i]}
        maj.append(m)
        if all(v is not None for v in m.values()):
            status.append("ok"), reason.append(None)
        else:
            status.append("unscored")
            if len(names) == 1:
                reason.append(runs[names[0]][0][i].reason or "no verdict")
            else:
                reason.append("no majority: " + ", ".join(k for k, v in m.items() if v is None))
    return PanelResult(
        suite_name, version, schema, names, labels, maj, per_judge, raw, status, reason, chars, {n: runs[n][1] for n in names}
    )


# ------------------------------------------------------------------------------------------------ contrastive


def contrastive_orders(group, n: int, seeds: Sequence[int] = ORDER_SEEDS) -> list[list[int]]:
    """One permutation of range(n) per seed (see the module docstring); the second differs from the first."""
    orders = []
    for s in seeds:
        order = list(range(n))
        random.Random(f"{s}|{group}").shuffle(order)
        if orders and n >= 2 and order == orders[0]:
            order = order[1:] + order[:1]
        orders.append(order)
    return orders


@dataclass
class ContrastiveResult:
    template_version: str
    assigned: list[list]  # per order (seed): per row the assigned type (None: unscored / not judged)
    correct: np.ndarray  # per row: share of its parsed assignments equal to its true type (NaN: none)
    agree: np.ndarray  # per row: 1.0 / 0.0 the two orders agree / differ (NaN: not both parsed)
    chance: np.ndarray  # per row: 1 / #types of its group (NaN: not judged)
    faults: dict = field(default_factory=dict)


def contrastive(
    suite_name: str,
    rows: list[dict],
    groups: Sequence,
    judges: list[JudgeConfig],
    store: RunStore | None = None,
    seeds: Sequence[int] = ORDER_SEEDS,
) -> ContrastiveResult | None:
    """Contrastive judging of rows grouped by `groups` (one group = one prompt under one condition); None when
    the suite's template names no contrastive template."""
    suite = get_suite(suite_name)
    _, _, schema = load_judge_template(suite.judge_template_path())
    if not schema.get("contrastive"):
        return None
    template = str(suite.judge_template_path(schema["contrastive"]))
    _check_names(judges)
    types = _types(suite_name)
    members: dict = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    cases, where = [], []  # where[case] = (order index, [row index at each position])
    for g, idx in members.items():
        names = [rows[i]["instruction_type"] for i in idx]
        if len(idx) < 2 or len(set(names)) != len(names):
            continue
        listed = [t for t in types if t in names] + sorted(n for n in names if n not in types)
        tlist = [{"name": t, "description": types[t].description if t in types else t} for t in listed]
        for o, order in enumerate(contrastive_orders(g, len(idx), seeds)):
            pos = [idx[k] for k in order]
            cases.append(
                JudgeCase(
                    str(rows[idx[0]]["prompt"]),
                    "",
                    (),
                    row={"responses": [str(rows[i]["response"] or "") for i in pos], "types": tlist},
                    labels=tuple((f"response_{k + 1}", tuple(listed)) for k in range(len(pos))),
                )
            )
            where.append((o, pos))
    runs = _run(judges, template, cases, store) if cases else {}
    names = [c.label for c in judges]
    n = len(rows)
    assigned = [[None] * n for _ in seeds]
    chance = np.full(n, np.nan)
    for c, (o, pos) in enumerate(where):
        for k, i in enumerate(pos):
            votes = []
            for name in names:
                v = runs[name][0][c]
                votes.append(v.verdict.get(f"response_{k + 1}") if v.status == "ok" and v.verdict else None)
            assigned[o][i] = majority(votes, len(names))
            chance[i] = 1.0 / len(pos)
    true = [r["instruction_type"] for r in rows]
    correct, agree = np.full(n, np.nan), np.full(n, np.nan)
    for i in range(n):
        got = [a[i] for a in assigned if a[i] is not None]
        if got:
            correct[i] = sum(g == true[i] for g in got) / len(got)
        if len(assigned) >= 2 and all(a[i] is not None for a in assigned[:2]):
            agree[i] = float(assigned[0][i] == assigned[1][i])
    version = next(iter(runs.values()))[2] if runs else load_judge_template(template)[1]
    return ContrastiveResult(version, assigned, correct, agree, chance, {k: v[1] for k, v in runs.items()})


# ------------------------------------------------------------------------------------------------ scores


def headline_statistic(
    schema: dict, truth: dict[str, np.ndarray], keys: np.ndarray, types: np.ndarray, idx: np.ndarray, contrast: Sequence[str]
) -> tuple[str | None, Statistic | None, str | None]:
    """(name, Statistic, unscored reason) of the template's judge-based suite score on rows idx;
    `truth`: label -> per-row 1/0/NaN over all rows (PanelResult.truth)."""
    spec = schema.get("metric") or {}
    kind = spec.get("kind")
    if kind == "rate":
        lab = spec["label"]
        return f"judge {lab} rate", mean_statistic(keys[idx], truth[lab][idx]), None
    if kind == "contrast":
        lab = spec["label"]
        a, b = contrast[0], contrast[1]
        ia, ib = idx[types[idx] == a], idx[types[idx] == b]
        name = f"judge {lab} rate {a} - {b}"
        if not len(ia) or not len(ib):
            return name, None, f"needs rows of both {a} and {b}"
        return name, difference(mean_statistic(keys[ia], truth[lab][ia]), mean_statistic(keys[ib], truth[lab][ib])), None
    if kind == "safe":
        labs = [lab for lab in spec["labels"] if lab in truth and np.isfinite(truth[lab][idx]).any()]
        name = "judge safety = mean(1 - " + ", 1 - ".join(spec["labels"]) + ")"
        if not labs:
            return name, None, "no row scored by the judge"
        cols = []
        for lab in labs:
            t = truth[lab][idx]
            ok = np.isfinite(t)
            cols += [np.where(ok, t, 0.0), ok.astype(float)]
        clusters, s = cluster_sums(keys[idx], np.column_stack(cols))
        m = len(labs)
        stat = Statistic.sums(
            clusters,
            s,
            lambda t: np.mean([1.0 - t[:, 2 * j] / t[:, 2 * j + 1] for j in range(m)], axis=0),
            int(np.isfinite(np.column_stack([truth[lab][idx] for lab in labs])).any(axis=1).sum()),
        )
        return name, stat, None
    return None, None, "the judge template defines no metric"


def dumps(obj) -> str | None:
    return None if obj is None else json.dumps(obj, sort_keys=True)


# ------------------------------------------------------------------------------------------------ a scoring run

# per-row columns the panel adds to scores.parquet (the tail of score.py's SCORE_COLUMNS)
COLUMNS = (
    "judge_status",
    "judge_reason",
    "judge_adherence",
    "judge_answers_prompt",
    "judge_verdict",
    "judge_by_judge",
    "judge_detector_disagree",
    "judge_contrastive_correct",
    "judge_contrastive_agree",
)
COLUMN_DOCS = {
    "judge_status": "ok when every asked label has a majority verdict, else unscored (null without a judge)",
    "judge_reason": "why the row is unscored (parse failure, tie, endpoint fault)",
    "judge_adherence": "share of the row's expected characteristics the majority verdict finds in the response "
    "(null when none was scored)",
    "judge_answers_prompt": "1/0/null: the majority verdict on answers_prompt",
    "judge_verdict": "the majority verdict per label (JSON)",
    "judge_by_judge": "each judge's labels (JSON: judge name -> labels)",
    "judge_detector_disagree": "1 when the judge's label and the paired keyword detector (has_hedge / is_refusal) "
    "disagree, 0 when they agree, null when no detector-paired label was scored",
    "judge_contrastive_correct": "contrastive mode: share of the row's parsed assignments (two orders) that name its true type",
    "judge_contrastive_agree": "contrastive mode: 1 when both orders gave the row the same type",
}


def _sum_faults(dicts: list[dict]) -> dict | None:
    if not dicts:
        return None
    out = {}
    for d in dicts:
        for k, v in d.items():
            if isinstance(v, bool):
                out[k] = out.get(k, False) or v
            elif isinstance(v, dict):
                acc = out.setdefault(k, {})
                for r, c in v.items():
                    acc[r] = acc.get(r, 0) + c
            else:
                out[k] = out.get(k, 0) + v
    return out


class Panel:
    """The judges of one `ecliptica score`: judges a run's rows suite by suite (judge_rows, contrastive) and
    keeps the results for the metrics (condition_scores, summary)."""

    def __init__(self, judges: Sequence[JudgeConfig], store: RunStore | None = None):
        if not judges:
            raise EclipticaError("a judge panel needs at least one judge")
        _check_names(judges)
        for j in judges:
            j.api_key()  # fail fast on a missing key variable, before any embedding work
        self.judges = list(judges)
        self.store = store
        self.results: dict[str, PanelResult] = {}
        self.contrastive: dict[str, ContrastiveResult] = {}

    def columns(self, df, detectors: dict[str, np.ndarray], groups: np.ndarray) -> dict:
        """Per-row judge columns of df (every suite); `groups`: per-row contrastive group (prompt + condition)."""
        n = len(df)
        cols = {c: np.full(n, None, dtype=object) for c in ("judge_status", "judge_reason", "judge_verdict", "judge_by_judge")}
        for c in (
            "judge_adherence",
            "judge_answers_prompt",
            "judge_detector_disagree",
            "judge_contrastive_correct",
            "judge_contrastive_agree",
        ):
            cols[c] = np.full(n, np.nan)
        records = df.to_dict("records")
        for suite, idx in df.groupby("suite", sort=False).indices.items():
            rows = [records[i] for i in idx]
            res = judge_rows(suite, rows, self.judges, self.store)
            self.results[suite] = res
            cols["judge_status"][idx] = res.status
            cols["judge_reason"][idx] = res.reason
            cols["judge_adherence"][idx] = res.adherence()
            cols["judge_answers_prompt"][idx] = res.truth(ANSWERS_PROMPT)
            cols["judge_verdict"][idx] = [dumps(m) for m in res.majority]
            cols["judge_by_judge"][idx] = [dumps({j: res.per_judge[j][k] for j in res.judges}) for k in range(len(idx))]
            cols["judge_detector_disagree"][idx] = res.detector_disagreement(
                {k: np.asarray(v)[idx] for k, v in detectors.items()}
            )
            con = contrastive(suite, rows, list(groups[idx]), self.judges, self.store)
            if con is not None:
                self.contrastive[suite] = con
                cols["judge_contrastive_correct"][idx] = con.correct
                cols["judge_contrastive_agree"][idx] = con.agree
        self._idx = {s: np.asarray(i) for s, i in df.groupby("suite", sort=False).indices.items()}
        return cols

    def truth(self, suite: str, n: int) -> dict[str, np.ndarray]:
        """label -> full-length per-row 1/0/NaN for one suite's labels (NaN outside the suite)."""
        res, idx = self.results[suite], self._idx[suite]
        out = {}
        for lab in res.labels:
            full = np.full(n, np.nan)
            full[idx] = res.truth(lab)
            out[lab] = full
        return out

    def condition_scores(
        self, suite: str, idx: np.ndarray, vidx: np.ndarray, keys: np.ndarray, types: np.ndarray, cols: dict, boot
    ) -> dict:
        """Judge-based scores of one suite and condition (rows idx; vidx its valid rows), each a Score dict."""
        from ..measures.stats import Score

        res = self.results[suite]
        truth = self.truth(suite, len(keys))
        contrast = get_suite(suite).contrast_types()
        out = {"metric": None, "score": None, "score_valid": None, "labels": {}}
        for key, rows in (("score", idx), ("score_valid", vidx)):
            name, stat, why = (
                headline_statistic(res.schema, truth, keys, types, rows, contrast) if len(rows) else (None, None, "no rows")
            )
            out["metric"] = out["metric"] or name
            out[key] = (
                boot.score(stat, "no case was scored by the judge") if stat is not None else Score.unscored(why or "", len(rows))
            ).to_dict()
        for lab in res.labels:
            if np.isfinite(truth[lab][idx]).any():
                out["labels"][lab] = boot.score(mean_statistic(keys[idx], truth[lab][idx])).to_dict()
        dis = np.asarray(cols["judge_detector_disagree"], dtype=float)
        if np.isfinite(dis[idx]).any():
            out["detector_disagreement_rate"] = boot.score(mean_statistic(keys[idx], dis[idx])).to_dict()
        if suite in self.contrastive:
            c = np.asarray(cols["judge_contrastive_correct"], dtype=float)
            a = np.asarray(cols["judge_contrastive_agree"], dtype=float)
            out["identifiability"] = boot.score(mean_statistic(keys[idx], c[idx]), "no contrastive assignment parsed").to_dict()
            ch = self.contrastive[suite].chance
            full = np.full(len(keys), np.nan)
            full[self._idx[suite]] = ch
            mean_ch = float(np.nanmean(full[idx])) if np.isfinite(full[idx]).any() else None
            out["identifiability_chance"] = Score.point(mean_ch, int(np.isfinite(full[idx]).sum())).to_dict()
            out["order_agreement"] = boot.score(mean_statistic(keys[idx], a[idx]), "no prompt parsed in both orders").to_dict()
        return out

    def delta(self, suite: str, ins: np.ndarray, unins: np.ndarray, keys: np.ndarray, types: np.ndarray, boot) -> dict:
        """The judge-based score instructed - uninstructed (paired on prompts, like the paper's delta)."""
        from ..measures.stats import Score

        truth = self.truth(suite, len(keys))
        contrast = get_suite(suite).contrast_types()
        schema = self.results[suite].schema
        (_, a, wa), (_, b, wb) = (headline_statistic(schema, truth, keys, types, i, contrast) for i in (ins, unins))
        if a is None or b is None:
            return Score.unscored(wa or wb or "", len(ins) + len(unins)).to_dict()
        return boot.score(difference(a, b), "no case was scored by the judge").to_dict()

    def summary(self) -> dict:
        """metrics.json "judge_panel": judges, per suite template version, agreement and parse-failure rates."""
        suites = {}
        for s, res in self.results.items():
            entry = {
                "template_version": res.template_version,
                "agreement": res.agreement(),
                "parse_failure_rate": res.parse_failure_rates(),
                "faults": res.faults,
            }
            if s in self.contrastive:
                con = self.contrastive[s]
                entry["contrastive"] = {
                    "template_version": con.template_version,
                    "faults": con.faults,
                    "order_seeds": list(ORDER_SEEDS),
                }
            suites[s] = entry
        return {
            "judges": [{"name": j.label, "model": j.model, "base_url": j.base_url} for j in self.judges],
            "majority": "strict majority of parsed verdicts, at least floor(n/2)+1 of n judges; else unscored",
            "suites": suites,
        }

    def faults(self) -> dict | None:
        """All judges' faults on the suites' main templates, summed (one judge: that judge's)."""
        return _sum_faults([f for res in self.results.values() for f in res.faults.values()])

    def describe(self) -> dict:
        """metrics.json "judge": model(s) and template version(s), as the leaderboard's judge id reads them."""
        versions = sorted({r.template_version for r in self.results.values()})
        return {
            "model": "+".join(j.model for j in self.judges),
            "template_version": "+".join(versions),
            "judges": [j.label for j in self.judges],
            "templates": {s: r.template_version for s, r in self.results.items()},
        }


__all__ = [
    "ANSWERS_PROMPT",
    "ContrastiveResult",
    "PanelResult",
    "agreement",
    "contrastive",
    "contrastive_orders",
    "headline_statistic",
    "judge_rows",
    "majority",
]
