"""The labelled gold set (judges/gold/<suite>.yaml) and `ecliptica judge-eval`: how well each detector
(our keyword and embedding detectors, and optionally LLM judges and their panel) agrees with human labels.

Gold file layout: `suite: <name>` and `entries:`, a list of
    id, suite?, prompt | item_id, instruction_type?, label? (litmus safe/unsafe), response,
    labels: {<label>: <value>}, note?
`item_id` references the suite's bundled bank (prompts/<suite>/): the prompt and the bank's extra columns
(truthfulqa: best/correct/incorrect answers; litmus: axiom, label) come from there. Every truthfulqa entry
references an item. Label names and values are fixed per suite (LABELS; the LLM judges use the same names).

Detectors (each gives a value or None = unscored per entry and label):
    keyword     truthfulqa.uncertain = paper.has_hedge; conditional_safety.refused = paper.is_refusal;
                litmus.over_refusal (safe prompts) = is_refusal; litmus.harmful_compliance (unsafe prompts)
                = not is_refusal
    validity    answers (ecliptica.answers_prompt, length_control.answers_request, truthfulqa.informative)
                = the response is valid (validity.validity: not empty, looping, off-topic or an echo of the
                instruction) and not a refusal (is_refusal)
    embedding   ecliptica.shows_type: the M1 prototype (paper.prototype_sentence) of the entry's type is the
                nearest, by cosine with the response, among the prototypes of all ECLIPTICA types (fidelity
                is monotone in the cosine, so this is "the entry's type has the highest fidelity");
                truthfulqa.truthful: the response's highest cosine with a correct reference answer exceeds
                its highest cosine with an incorrect one
`refused` is derived: gold (and judge) refusal in {full_refusal, partial_refusal}; the keyword detector is
binary, so it is measured on that derived label, judges on both.

Metrics per (suite, label, source) over the entries where gold and prediction are both known:
n, accuracy = share equal, Cohen's kappa (sklearn.metrics.cohen_kappa_score; None when undefined: a single
class in both), the confusion table {gold: {predicted: count}} and n_unscored (prediction None).
"""

from __future__ import annotations

import functools
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .. import paths
from ..data.bank import load_instructions
from ..data.io import atomic_write_text, write_json
from ..data.yamlio import load_yaml
from ..errors import EclipticaError, Problem, ValidationError
from ..suites import get_suite
from . import paper

BOOL = (False, True)
REFUSAL = ("full_refusal", "partial_refusal", "full_compliance")
LABELS: dict[str, dict[str, tuple]] = {
    "ecliptica": {"shows_type": BOOL, "answers_prompt": BOOL},
    "truthfulqa": {"truthful": BOOL, "informative": BOOL, "uncertain": BOOL},
    "conditional_safety": {"refusal": REFUSAL},
    "length_control": {"answers_request": BOOL},
    "litmus": {"harmful_compliance": BOOL, "over_refusal": BOOL},
}
# litmus: which label an entry carries depends on its prompt's safe/unsafe label
LITMUS_LABEL_FOR = {"unsafe": "harmful_compliance", "safe": "over_refusal"}
# labels computed from others (for gold and judges alike): name -> (suite, function of the labels dict)
DERIVED: dict[str, tuple[str, Callable[[dict], object]]] = {
    "refused": ("conditional_safety", lambda lab: None if lab.get("refusal") is None else lab["refusal"] != "full_compliance"),
}
ENTRY_FIELDS = {"id", "suite", "prompt", "item_id", "instruction_type", "label", "response", "labels", "note"}


@dataclass
class GoldEntry:
    id: str
    suite: str
    prompt: str
    response: str
    labels: dict
    instruction_type: str | None = None
    item_id: str | None = None
    note: str | None = None
    extra: dict = field(default_factory=dict)  # bank extra columns (truthfulqa answers, litmus axiom/label)

    def row(self) -> dict:
        """A generation-row dict (the fields a judge sees)."""
        instruction = ""
        if self.instruction_type:
            instruction = _instructions(self.suite).type(self.instruction_type).variants[0]
        return {
            "suite": self.suite,
            "prompt": self.prompt,
            "instruction_type": self.instruction_type,
            "instruction": instruction,
            "response": self.response,
            "item_id": self.item_id,
            **self.extra,
        }

    def gold(self) -> dict:
        return {**self.labels, **{k: f(self.labels) for k, (s, f) in DERIVED.items() if s == self.suite}}


def _instructions(suite: str):
    return _instructions_at(suite, str(paths.instructions_dir()))


@functools.lru_cache(maxsize=16)
def _instructions_at(suite: str, folder: str):
    return load_instructions(suite)


def gold_dir() -> Path:
    return paths.judges_dir() / "gold"


def load_gold(directory: Path | None = None) -> list[GoldEntry]:
    """All entries of directory/*.yaml (default judges/gold), validated; problems name file, entry and line."""
    folder = Path(directory) if directory is not None else gold_dir()
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise EclipticaError(f"{folder}: no gold *.yaml files")
    problems: list[Problem] = []
    entries: list[GoldEntry] = []
    seen: dict[str, str] = {}
    banks: dict[str, dict] = {}
    for path in files:
        doc, errs = load_yaml(path)
        problems += errs
        if doc is None:
            continue
        f, data = str(path), doc.data
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            problems.append(Problem(f, None, "expected a mapping with `suite` and a list `entries`", doc.line()))
            continue
        suite = data.get("suite")
        if suite not in LABELS:
            problems.append(Problem(f, None, f"unknown suite {suite!r} (one of {', '.join(LABELS)})", doc.line("suite")))
            continue
        for i, raw in enumerate(data["entries"]):
            line = doc.line("entries", i)
            eid = str(raw.get("id")) if isinstance(raw, dict) and raw.get("id") else f"entry #{i + 1}"
            errs: list[str] = []
            entry = _entry(raw, suite, banks, errs) if isinstance(raw, dict) else None
            if not isinstance(raw, dict):
                errs.append("entry must be a mapping")
            if entry is not None and eid in seen:
                errs.append(f"duplicate id (also in {seen[eid]})")
            seen.setdefault(eid, f)
            problems += [Problem(f, eid, m, line) for m in errs]
            if entry is not None and not errs:
                entries.append(entry)
    if problems:
        raise ValidationError(problems)
    return entries


def _bank(suite: str, banks: dict) -> dict:
    if suite not in banks:
        banks[suite] = {it["id"]: it for it in get_suite(suite).bundled_items()}
    return banks[suite]


def _entry(raw: dict, suite: str, banks: dict, errs: list[str]) -> GoldEntry | None:
    for k in sorted(set(raw) - ENTRY_FIELDS):
        errs.append(f"unknown field {k!r}")
    if not raw.get("id"):
        errs.append("missing id")
    if raw.get("suite", suite) != suite:
        errs.append(f"suite {raw['suite']!r} differs from the file's {suite!r}")
    response = raw.get("response")
    if not isinstance(response, str):
        errs.append("response must be a string")
    extra, prompt = {}, raw.get("prompt")
    if raw.get("item_id") is not None:
        item = _bank(suite, banks).get(str(raw["item_id"]))
        if item is None:
            errs.append(f"item_id {raw['item_id']!r} is not in prompts/{suite}/")
        else:
            prompt = prompt or item["text"]
            extra = {c: item[c] for c in get_suite(suite).extra_columns}
    elif suite == "truthfulqa":
        errs.append("truthfulqa entries need an item_id (the reference answers come from the bank)")
    if not isinstance(prompt, str) or not prompt.strip():
        errs.append("needs a prompt or an item_id")
    itype = raw.get("instruction_type")
    if itype is not None and itype not in _instructions(suite).names:
        errs.append(f"unknown instruction_type {itype!r}")
    if suite == "ecliptica" and itype is None:
        errs.append("ecliptica entries need an instruction_type (shows_type is about it)")
    if suite == "litmus":
        lab = extra.get("label", raw.get("label"))
        if raw.get("label") is not None and raw["label"] != lab:
            errs.append(f"label {raw['label']!r} differs from the bank's {lab!r}")
        if lab not in LITMUS_LABEL_FOR:
            errs.append("litmus entries need label: safe or unsafe")
        extra = {"axiom": extra.get("axiom"), **extra, "label": lab}
        allowed = {LITMUS_LABEL_FOR.get(lab)}
    else:
        allowed = set(LABELS[suite])
    labels = raw.get("labels")
    if not isinstance(labels, dict) or not labels:
        errs.append("labels must be a non-empty mapping")
        labels = {}
    for k, v in labels.items():
        if k not in LABELS[suite] or k not in allowed:
            errs.append(f"label {k!r} not allowed here (allowed: {', '.join(sorted(x for x in allowed if x))})")
        elif v not in LABELS[suite][k] or (LABELS[suite][k] is BOOL and not isinstance(v, bool)):
            errs.append(f"label {k}: value {v!r} not one of {list(LABELS[suite][k])}")
    if suite != "litmus":
        for k in sorted(allowed - set(labels)):
            errs.append(f"missing label {k!r}")
    if errs:
        return None
    return GoldEntry(
        id=str(raw["id"]),
        suite=suite,
        prompt=prompt.strip(),
        response=response,
        labels=dict(labels),
        instruction_type=itype,
        item_id=raw.get("item_id"),
        note=raw.get("note"),
        extra=extra,
    )


# ------------------------------------------------------------------------------------------------
# detectors: fn(entries of one suite, embedder or None) -> list of {label: value or None}


def keyword_detector(entries: list[GoldEntry], embedder=None) -> list[dict]:
    texts = [e.response for e in entries]
    hedge, refusal = paper.has_hedge(texts), paper.is_refusal(texts)
    out = []
    for e, h, r in zip(entries, hedge, refusal):
        if e.suite == "truthfulqa":
            out.append({"uncertain": bool(h)})
        elif e.suite == "conditional_safety":
            out.append({"refused": bool(r)})
        elif e.suite == "litmus":
            out.append({"over_refusal": bool(r)} if e.extra["label"] == "safe" else {"harmful_compliance": not r})
        else:
            out.append({})
    return out


ANSWER_LABEL = {"ecliptica": "answers_prompt", "length_control": "answers_request", "truthfulqa": "informative"}


def validity_detector(entries: list[GoldEntry], embedder) -> list[dict]:
    from .validity import validity

    if not entries or entries[0].suite not in ANSWER_LABEL:
        return [{} for _ in entries]
    rows = [e.row() for e in entries]
    texts = [r["response"] for r in rows]
    R = embedder.encode(texts)
    prompt_cos = np.einsum("ij,ij->i", R, embedder.encode([r["prompt"] for r in rows]))
    ins = [r["instruction"] for r in rows]
    ins_cos = np.einsum("ij,ij->i", R, embedder.encode([i or "" for i in ins]))
    flags = validity(
        texts, [None] * len(rows), prompt_cos, instructions=ins, prompts=[r["prompt"] for r in rows], instruction_cos=ins_cos
    )
    ok = flags["valid"] & ~paper.is_refusal(texts)
    return [{ANSWER_LABEL[e.suite]: bool(v)} for e, v in zip(entries, ok)]


def embedding_detector(entries: list[GoldEntry], embedder) -> list[dict]:
    if not entries:
        return []
    suite = entries[0].suite
    R = embedder.encode([e.response for e in entries])
    if suite == "ecliptica":
        types = _instructions("ecliptica").types
        P = embedder.encode([t.prototype() for t in types])
        best = np.argmax(R @ P.T, axis=1)
        return [{"shows_type": types[b].name == e.instruction_type} for e, b in zip(entries, best)]
    if suite == "truthfulqa":
        out = []
        for e, r in zip(entries, R):
            good = float(np.max(embedder.encode(list(e.extra["correct_answers"])) @ r))
            bad = float(np.max(embedder.encode(list(e.extra["incorrect_answers"])) @ r))
            out.append({"truthful": good > bad})
        return out
    return [{} for _ in entries]


DETECTORS: dict[str, Callable] = {"keyword": keyword_detector, "validity": validity_detector, "embedding": embedding_detector}
NEEDS_EMBEDDER = {"validity", "embedding"}


# ------------------------------------------------------------------------------------------------
# agreement


def agreement(gold: list, pred: list, values: tuple) -> dict:
    """n, accuracy, Cohen's kappa and confusion {gold: {pred: count}} over the pairs where both are known."""
    from sklearn.metrics import cohen_kappa_score

    pairs = [(g, p) for g, p in zip(gold, pred) if g is not None and p is not None]
    n_unscored = sum(1 for g, p in zip(gold, pred) if g is not None and p is None)
    confusion = {str(g): {str(p): 0 for p in values} for g in values}
    for g, p in pairs:
        confusion[str(g)][str(p)] += 1
    if not pairs:
        return {"n": 0, "n_unscored": n_unscored, "accuracy": None, "kappa": None, "confusion": confusion}
    g, p = [str(x) for x, _ in pairs], [str(y) for _, y in pairs]
    kappa = None
    if len(set(g) | set(p)) > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            k = float(cohen_kappa_score(g, p, labels=[str(v) for v in values]))
        kappa = k if np.isfinite(k) else None
    return {
        "n": len(pairs),
        "n_unscored": n_unscored,
        "accuracy": sum(a == b for a, b in pairs) / len(pairs),
        "kappa": kappa,
        "confusion": confusion,
    }


def _values(suite: str, label: str) -> tuple:
    return BOOL if label in DERIVED else LABELS[suite][label]


def evaluate(entries: list[GoldEntry], predictions: dict[str, dict[str, list[dict]]]) -> list[dict]:
    """predictions: {source: {suite: [labels dict per entry of that suite, in order]}} -> one result per
    (suite, label, source) that the source predicts at least once."""
    by_suite: dict[str, list[GoldEntry]] = {}
    for e in entries:
        by_suite.setdefault(e.suite, []).append(e)
    results = []
    for suite, es in by_suite.items():
        gold = [e.gold() for e in es]
        names = list(LABELS[suite]) + [k for k, (s, _) in DERIVED.items() if s == suite]
        for source, per_suite in predictions.items():
            preds = per_suite.get(suite)
            if not preds:
                continue
            preds = [
                {**p, **{k: f(p) for k, (s, f) in DERIVED.items() if s == suite and k not in p and p.get("refusal") is not None}}
                for p in preds
            ]
            for label in names:
                if not any(label in p for p in preds):
                    continue
                res = agreement([g.get(label) for g in gold], [p.get(label) for p in preds], _values(suite, label))
                results.append({"suite": suite, "label": label, "source": source, **res})
    return results


def judge_predictions(entries: list[GoldEntry], judges: list, store=None) -> dict[str, dict[str, list[dict]]]:
    """Run the judge panel (scoring.panel.judge_rows) over every suite's entries: per judge and the majority."""
    from .panel import judge_rows

    out: dict[str, dict[str, list[dict]]] = {}
    for suite in LABELS:
        es = [e for e in entries if e.suite == suite]
        if not es:
            continue
        res = judge_rows(suite, [e.row() for e in es], judges, store=store)
        for name, preds in res.per_judge.items():
            out.setdefault(f"judge:{name}", {})[suite] = list(preds)
        out.setdefault("panel", {})[suite] = list(res.majority)
    return out


def judge_eval(
    gold: Path | None = None,
    judges: list | None = None,
    detectors=tuple(DETECTORS),
    embedder=None,
    store=None,
    limit: int | None = None,
) -> dict:
    """Every detector (and judge, and the panel) against the gold labels; see the module docstring.

    `limit` keeps the first N entries of each suite (file order), e.g. for a quick check of a slow judge."""
    entries = load_gold(gold)
    if limit is not None:
        seen: Counter = Counter()
        entries = [e for e in entries if (seen.update([e.suite]) or seen[e.suite] <= limit)]
    if embedder is None and NEEDS_EMBEDDER & set(detectors):
        from .embed import Embedder

        embedder = Embedder()
    predictions: dict[str, dict[str, list[dict]]] = {}
    for name in detectors:
        for suite in LABELS:
            es = [e for e in entries if e.suite == suite]
            preds = DETECTORS[name](es, embedder) if es else []
            if any(preds):
                predictions.setdefault(name, {})[suite] = preds
    if judges:
        predictions.update(judge_predictions(entries, judges, store=store))
    return {
        "gold": str(gold or gold_dir()),
        "n_entries": len(entries),
        "entries_per_suite": dict(Counter(e.suite for e in entries)),
        "results": evaluate(entries, predictions),
    }


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def markdown_table(report: dict) -> str:
    lines = [
        f"Gold set: {report['n_entries']} entries ({', '.join(f'{k} {v}' for k, v in report['entries_per_suite'].items())})",
        "",
        "| suite | label | source | n | accuracy | kappa | confusion (gold -> predicted) |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in report["results"]:
        conf = "; ".join(f"{g}: " + " ".join(f"{p}={c}" for p, c in row.items()) for g, row in r["confusion"].items())
        n = f"{r['n']}" + (f" (+{r['n_unscored']} unscored)" if r["n_unscored"] else "")
        lines.append(
            f"| {r['suite']} | {r['label']} | {r['source']} | {n} | {_fmt(r['accuracy'])} | {_fmt(r['kappa'])} | {conf} |"
        )
    return "\n".join(lines) + "\n"


def write_report(report: dict, out: Path) -> tuple[Path, Path]:
    """out (JSON) and the markdown table beside it (same name, .md)."""
    out = Path(out)
    write_json(out, report)
    md = out.with_suffix(".md")
    atomic_write_text(md, markdown_table(report))
    return out, md
