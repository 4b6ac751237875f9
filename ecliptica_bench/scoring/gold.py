"""The labelled gold set (judges/gold/<suite>.yaml) and `ecliptica judge-eval`: how well each detector
(our keyword and embedding detectors, and optionally LLM judges and their panel) agrees with human labels.

Everything about a suite's gold labels is declared once, in its judge template's schema comment (the
"gold" key; the template is Suite.judge_template in Suite.judges_dir(), see scoring/judge.py), and read
here as a GoldSpec; this module names no suite:
    gold.labels    the labels the gold set carries, in order: labels of the schema (their "values", default
                   false/true; "when": {column: value}, the label applies only to entries whose column has
                   that value) or the panel's derived shows_type (templates with characteristics)
    gold.derived   {name: label}: a boolean label derived from a multi-valued one (true when the value is in
                   the label's "true" list), for gold and judges alike
    gold.answer    the label the validity detector predicts
    gold.embedding {label: check}: "type_prototype", or {"closer_to": column, "than": column}
    gold.requires  {entry field: why}: fields every entry needs

Gold file layout: `suite: <name>` and `entries:`, a list of
    id, suite?, prompt | item_id, instruction_type?, <when column>?, response, labels: {<label>: <value>}, note?
`item_id` references the suite's bundled bank (Suite.bundled_items()): the prompt and the bank's extra columns
come from there. A column that a label's "when" names (e.g. a safe/unsafe label) comes from the bank or the
entry; the labels that apply are exactly the entry's labels. The default gold set is judges/gold/*.yaml plus
judges/gold/*.yaml of every suite with its own data root.

Detectors (each gives a value or None = unscored per entry and label):
    keyword     a label's schema "detector": the keyword column (measures.paper.is_refusal, has_hedge; "!col":
                its negation) on the entry's response; a multi-valued label is measured on its derived label
    validity    gold.answer = the response is valid (validity.validity: not empty, looping, off-topic or an
                echo of the instruction) and not a refusal (is_refusal)
    embedding   "type_prototype": the M1 prototype (paper.prototype_sentence) of the entry's type is the
                nearest, by cosine with the response, among the prototypes of all the suite's types
                (fidelity is monotone in the cosine, so this is "the entry's type has the highest fidelity");
                closer_to/than: the response's highest cosine with an answer of the first column exceeds its
                highest cosine with one of the second

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

from .. import detectors as dets
from .. import paths
from ..data.io import atomic_write_text, write_json
from ..data.yamlio import load_yaml
from ..detectors.features import is_minilm
from ..errors import EclipticaError, Problem, ValidationError
from ..measures import paper
from ..suites import SUITES, get_suite
from .judge import load_judge_template
from .panel import SHOWS_TYPE

BOOL = (False, True)  # the gold set's order of a boolean label's values (confusion tables, messages)
ENTRY_FIELDS = {"id", "suite", "prompt", "item_id", "instruction_type", "response", "labels", "note"}
# keyword detectors a template's label may name ("detector": "col" or "!col"), over the responses
KEYWORD_DETECTORS: dict[str, Callable] = {"is_refusal": paper.is_refusal, "has_hedge": paper.has_hedge}


@dataclass(frozen=True)
class GoldSpec:
    """One suite's gold-set declaration, read from its judge template's schema "gold" (module docstring)."""

    suite: str
    template: str  # the template's path (messages)
    labels: dict[str, tuple]  # label -> allowed values, in order
    when: dict[str, dict]  # label -> {column: value}: it applies only to entries whose column has that value
    derived: dict[str, tuple[str, frozenset]]  # derived boolean label -> (its label, values counted as true)
    detectors: dict[str, str]  # label -> keyword detector column ("!col": negated)
    answer: str | None = None  # the label the validity detector predicts
    embedding: dict = field(default_factory=dict)  # label -> "type_prototype" | {"closer_to": col, "than": col}
    requires: dict = field(default_factory=dict)  # entry field -> why every entry needs it

    def names(self) -> list[str]:
        """Gold labels, then the derived ones."""
        return [*self.labels, *self.derived]

    def values(self, label: str) -> tuple:
        return BOOL if label in self.derived else self.labels[label]

    def when_columns(self) -> dict[str, list]:
        """column -> the values labels' "when" ask for (in declaration order)."""
        out: dict[str, list] = {}
        for cond in self.when.values():
            for col, v in cond.items():
                out.setdefault(col, [])
                if v not in out[col]:
                    out[col].append(v)
        return out

    def applies(self, fields: dict) -> list[str]:
        """The labels an entry with these fields (extra columns, instruction_type, ...) carries."""
        return [lab for lab in self.labels if all(str(fields.get(c)) == str(v) for c, v in (self.when.get(lab) or {}).items())]

    def derive(self, labels: dict, only_missing: bool = False) -> dict:
        """The derived labels of a labels dict (None where their label is unknown; only_missing: only those not
        in `labels` whose label is known, as for a judge's predictions)."""
        out = {}
        for name, (src, yes) in self.derived.items():
            if only_missing and (name in labels or labels.get(src) is None):
                continue
            out[name] = None if labels.get(src) is None else labels[src] in yes
        return out

    def predicted_as(self, label: str) -> str | None:
        """The name a binary detector's prediction of `label` goes under: itself when boolean, else its derived label."""
        if self.labels[label] == BOOL:
            return label
        return next((name for name, (src, _) in self.derived.items() if src == label), None)


def _spec_from_schema(suite: str, path: str, schema: dict) -> GoldSpec | None:
    decl = schema.get("gold")
    if decl is None:
        return None

    def bad(msg: str) -> EclipticaError:
        return EclipticaError(f'{path}: schema "gold": {msg}')

    if not isinstance(decl, dict) or not isinstance(decl.get("labels"), list) or not decl["labels"]:
        raise bad("needs a non-empty list `labels`")
    known = schema.get("labels") or {}
    labels, when, detectors = {}, {}, {}
    for lab in decl["labels"]:
        if lab in known:
            spec = known[lab] or {}
            labels[lab] = tuple(spec["values"]) if "values" in spec else BOOL
            if spec.get("when"):
                when[lab] = dict(spec["when"])
            if spec.get("detector"):
                if spec["detector"].lstrip("!") not in KEYWORD_DETECTORS:
                    raise bad(f"label {lab!r}: unknown detector {spec['detector']!r} (one of {', '.join(KEYWORD_DETECTORS)})")
                detectors[lab] = spec["detector"]
        elif lab == SHOWS_TYPE and schema.get("characteristics"):
            labels[lab] = BOOL
        else:
            raise bad(f"label {lab!r} is not a label of the schema")
    derived = {}
    for name, src in (decl.get("derived") or {}).items():
        if src not in labels or "true" not in (known.get(src) or {}):
            raise bad(f'derived {name!r}: {src!r} must be a gold label with a "true" list')
        derived[name] = (src, frozenset(known[src]["true"]))
    answer = decl.get("answer")
    if answer is not None and labels.get(answer) != BOOL:
        raise bad(f"answer {answer!r} must be a boolean gold label")
    embedding = dict(decl.get("embedding") or {})
    for lab, check in embedding.items():
        ok = check == "type_prototype" or (isinstance(check, dict) and set(check) == {"closer_to", "than"})
        if lab not in labels or labels[lab] != BOOL or not ok:
            raise bad(f'embedding {lab!r}: a boolean gold label and "type_prototype" or {{"closer_to": col, "than": col}}')
    requires = decl.get("requires") or {}
    if not isinstance(requires, dict) or not all(isinstance(v, str) for v in requires.values()):
        raise bad("requires must map an entry field to why every entry needs it")
    spec = GoldSpec(suite, path, labels, when, derived, detectors, answer, embedding, dict(requires))
    for lab in detectors:
        if spec.predicted_as(lab) is None:
            raise bad(f"label {lab!r}: a detector of a multi-valued label needs a derived boolean label")
    return spec


@functools.lru_cache(maxsize=64)
def _spec_at(suite: str, path: str, mtime_ns: int) -> GoldSpec | None:
    _, _, schema = load_judge_template(path)
    return _spec_from_schema(suite, path, schema)


def gold_spec(suite: str) -> GoldSpec | None:
    """The suite's gold declaration (None: its judge template declares none, or it has no judge template)."""
    path = get_suite(suite).judge_template_path()
    if not path.exists():
        return None
    return _spec_at(suite, str(path), path.stat().st_mtime_ns)


def gold_suites() -> list[str]:
    """The registered suites whose judge template declares gold labels, in registry order."""
    return [name for name in SUITES if gold_spec(name) is not None]


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
    extra: dict = field(default_factory=dict)  # the bank's Suite.extra_columns and the columns a label's "when" names

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
        return {**self.labels, **_spec(self.suite).derive(self.labels)}

    def fields(self) -> dict:
        """What a label's "when" is matched against: the entry's columns."""
        return {
            "suite": self.suite,
            "prompt": self.prompt,
            "instruction_type": self.instruction_type,
            "item_id": self.item_id,
            **self.extra,
        }


def _spec(suite: str) -> GoldSpec:
    spec = gold_spec(suite)
    if spec is None:
        raise EclipticaError(f'{get_suite(suite).judge_template_path()}: suite {suite!r} declares no gold labels (schema "gold")')
    return spec


def _instructions(suite: str):
    s = get_suite(suite)
    return _instructions_at(suite, str(s.data_root or paths.instructions_dir()))


@functools.lru_cache(maxsize=16)
def _instructions_at(suite: str, folder: str):
    return get_suite(suite).instructions()


def gold_dir() -> Path:
    return paths.judges_dir() / "gold"


def gold_files(directory: Path | None = None) -> list[Path]:
    """directory/*.yaml; by default judges/gold/*.yaml, then those of every suite with its own data root."""
    if directory is not None:
        return sorted(Path(directory).glob("*.yaml"))
    folders = dict.fromkeys([gold_dir(), *(s.judges_dir() / "gold" for s in SUITES.values() if s.data_root)])
    return list(dict.fromkeys(f for d in folders for f in sorted(d.glob("*.yaml"))))


def load_gold(directory: Path | None = None) -> list[GoldEntry]:
    """All entries of gold_files(directory), validated; problems name file, entry and line."""
    files = gold_files(directory)
    if not files:
        raise EclipticaError(f"{directory if directory is not None else gold_dir()}: no gold *.yaml files")
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
        registered = isinstance(suite, str) and suite in SUITES
        if not registered or gold_spec(suite) is None:
            msg = f'suite {suite!r} declares no gold labels (its judge template has no schema "gold")'
            msg = msg if registered else f"unknown suite {suite!r}"
            problems.append(Problem(f, None, f"{msg} (one of {', '.join(gold_suites())})", doc.line("suite")))
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
    spec = _spec(suite)
    conditional = spec.when_columns()
    for k in sorted(set(raw) - ENTRY_FIELDS - set(conditional)):
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
    if not isinstance(prompt, str) or not prompt.strip():
        errs.append("needs a prompt or an item_id")
    itype = raw.get("instruction_type")
    if itype is not None and itype not in _instructions(suite).names:
        errs.append(f"unknown instruction_type {itype!r}")
    for name, why in spec.requires.items():
        if raw.get(name) is None:
            errs.append(f"{suite} entries need {'an' if name[:1] in 'aeiou' else 'a'} {name} ({why})")
    # a column a label's "when" names: from the bank, else the entry; it decides which labels apply
    given = {}
    for col in conditional:
        given[col] = extra.get(col, raw.get(col))
        if raw.get(col) is not None and raw[col] != given[col]:
            errs.append(f"{col} {raw[col]!r} differs from the bank's {given[col]!r}")
    extra = {**dict.fromkeys(get_suite(suite).extra_columns), **extra, **given}
    allowed = spec.applies(extra)
    for col, choices in conditional.items():
        if given[col] is None or (not allowed and given[col] not in choices):
            errs.append(f"{suite} entries need {col}: {' or '.join(sorted(map(str, choices)))}")
    labels = raw.get("labels")
    if not isinstance(labels, dict) or not labels:
        errs.append("labels must be a non-empty mapping")
        labels = {}
    for k, v in labels.items():
        if k not in allowed:
            errs.append(f"label {k!r} not allowed here (allowed: {', '.join(sorted(allowed))})")
        elif v not in spec.labels[k] or (spec.labels[k] == BOOL and not isinstance(v, bool)):
            errs.append(f"label {k}: value {v!r} not one of {list(spec.labels[k])}")
    for k in sorted(set(allowed) - set(labels)):
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
    """Each applicable label with a schema "detector" (a multi-valued one under its derived label)."""
    return column_detector(entries, lambda name, texts: KEYWORD_DETECTORS[name](texts))


def column_detector(entries: list[GoldEntry], column: Callable) -> list[dict]:
    """keyword_detector with another source of the detector columns: column(name, texts) -> bool array, or
    None when it has no detector of that column (the labels it drives then go unpredicted)."""
    texts = [e.response for e in entries]
    columns: dict[str, np.ndarray | None] = {}
    out = []
    for i, e in enumerate(entries):
        spec, pred = _spec(e.suite), {}
        for label in spec.applies(e.fields()):
            col = spec.detectors.get(label)
            if col is None:
                continue
            name = col.lstrip("!")
            if name not in columns:
                columns[name] = column(name, texts)
            if columns[name] is None:
                continue
            value = bool(columns[name][i])
            pred[spec.predicted_as(label)] = not value if col.startswith("!") else value
        out.append(pred)
    return out


def validity_detector(entries: list[GoldEntry], embedder) -> list[dict]:
    """The suite's gold "answer" label = valid and not a refusal."""
    from .validity import validity

    answer = _spec(entries[0].suite).answer if entries else None
    if answer is None:
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
    return [{answer: bool(v)} for v in ok]


def embedding_detector(entries: list[GoldEntry], embedder) -> list[dict]:
    """The suite's gold "embedding" checks (module docstring)."""
    if not entries:
        return []
    suite = entries[0].suite
    checks = _spec(suite).embedding
    out: list[dict] = [{} for _ in entries]
    if not checks:
        return out
    R = embedder.encode([e.response for e in entries])
    for label, check in checks.items():
        if check == "type_prototype":
            types = _instructions(suite).types
            P = embedder.encode([t.prototype() for t in types])
            best = np.argmax(R @ P.T, axis=1)
            for pred, e, b in zip(out, entries, best):
                pred[label] = types[b].name == e.instruction_type
        else:
            for pred, e, r in zip(out, entries, R):
                good = float(np.max(embedder.encode(list(e.extra[check["closer_to"]])) @ r))
                bad = float(np.max(embedder.encode(list(e.extra[check["than"]])) @ r))
                pred[label] = good > bad
    return out


def kind_detector(spec: str, only: str | None = None) -> Callable:
    """A gold-set detector from detectors.get(kind, spec) for each kind a label's column names (COLUMN_KINDS);
    kinds with no such detector (e.g. no learned weights shipped) leave their labels unpredicted."""

    def run(entries: list[GoldEntry], embedder=None) -> list[dict]:
        def column(name: str, texts: list[str]):
            if only is not None and COLUMN_KINDS[name] != only:
                return None
            det = _kind_detector(COLUMN_KINDS[name], spec, embedder)
            if det is None:
                return None
            return det.predict(texts, emb=embedder.encode(texts) if is_minilm(embedder) else None)

        return column_detector(entries, column)

    return run


def _kind_detector(kind: str, spec: str, embedder=None):
    if spec == "learned" and not dets.learned_available(kind):
        return None
    return dets.get(kind, spec, embedder=embedder)


DETECTORS: dict[str, Callable] = {
    "keyword": keyword_detector,
    "learned": kind_detector("learned"),
    "validity": validity_detector,
    "embedding": embedding_detector,
}
NEEDS_EMBEDDER = {"validity", "embedding", "learned"}
# the detector kind (detectors.get) behind each keyword column a gold label may name
COLUMN_KINDS = {"is_refusal": "refusal", "has_hedge": "hedging"}
IN_HOUSE = "in-house (written by the project; a unit test, not a measurement)"


def external_figures(extra: dict[str, list[str]] | None = None) -> list[dict]:
    """Per detector (keyword, learned where shipped, the manifest's reference detectors, and `extra`: {kind:
    [spec, ...]}) and per external held-out set: the validation figures measured when the weights were built
    (the manifest; the data are not in the repository). A detector without figures gets one row saying so."""
    from ..detectors.base import manifest

    rows: list[dict] = []
    seen: set[str] = set()

    def add(name: str, kind: str, validation: dict, reference: bool = False) -> None:
        if name in seen:
            return
        seen.add(name)
        if not validation:
            rows.append({"detector": name, "kind": kind, "set": None, "n": 0, "note": "no validation figures"})
        for set_name, fig in validation.items():
            rows.append({"detector": name, "kind": kind, "set": set_name, "reference": reference, **fig})

    for kind in dets.KINDS:
        for spec in ("keyword", "learned", *((extra or {}).get(kind) or [])):
            det = _kind_detector(kind, spec)
            if det is not None:
                add(det.name, kind, det.validation)
    for name, rec in manifest()["detectors"].items():
        if rec.get("reference"):
            add(name, rec.get("kind", ""), rec.get("validation") or {}, reference=True)
    return rows


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
    out = {
        "n": len(pairs),
        "n_unscored": n_unscored,
        "accuracy": sum(a == b for a, b in pairs) / len(pairs),
        "kappa": kappa,
        "confusion": confusion,
    }
    if tuple(values) == BOOL:  # a boolean label: the detector's sensitivity and specificity too
        c = {g: {p: confusion[str(g)][str(p)] for p in BOOL} for g in BOOL}
        fig = dets.figures(c[True][True], c[True][False], c[False][False], c[False][True])
        out.update(sensitivity=fig["sensitivity"], specificity=fig["specificity"])
    return out


def evaluate(entries: list[GoldEntry], predictions: dict[str, dict[str, list[dict]]]) -> list[dict]:
    """predictions: {source: {suite: [labels dict per entry of that suite, in order]}} -> one result per
    (suite, label, source) that the source predicts at least once."""
    by_suite: dict[str, list[GoldEntry]] = {}
    for e in entries:
        by_suite.setdefault(e.suite, []).append(e)
    results = []
    for suite, es in by_suite.items():
        spec = _spec(suite)
        gold = [e.gold() for e in es]
        names = spec.names()
        for source, per_suite in predictions.items():
            preds = per_suite.get(suite)
            if not preds:
                continue
            preds = [{**p, **spec.derive(p, only_missing=True)} for p in preds]
            for label in names:
                if not any(label in p for p in preds):
                    continue
                res = agreement([g.get(label) for g in gold], [p.get(label) for p in preds], spec.values(label))
                results.append({"suite": suite, "label": label, "source": source, **res})
    return results


def _suites(entries: list[GoldEntry]) -> list[str]:
    """The suites of the entries, in registry order."""
    present = {e.suite for e in entries}
    return [s for s in SUITES if s in present]


def judge_predictions(entries: list[GoldEntry], judges: list, store=None) -> dict[str, dict[str, list[dict]]]:
    """Run the judge panel (scoring.panel.judge_rows) over every suite's entries: per judge and the majority."""
    from .panel import judge_rows

    out: dict[str, dict[str, list[dict]]] = {}
    for suite in _suites(entries):
        es = [e for e in entries if e.suite == suite]
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
    extra: dict[str, list[str]] | None = None,
) -> dict:
    """Every detector (and judge, and the panel) against the gold labels; see the module docstring.
    `extra`: {kind: [detector spec, ...]} (detectors.get) evaluated beside them, under their names.
    The report's "external" rows are every detector's figures on the external held-out sets (external_figures).

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
        for suite in _suites(entries):
            es = [e for e in entries if e.suite == suite]
            preds = DETECTORS[name](es, embedder)
            if any(preds):
                predictions.setdefault(name, {})[suite] = preds
    for kind, specs in (extra or {}).items():
        for spec in specs:
            name = dets.get(kind, spec, embedder=embedder).name
            run = kind_detector(spec, only=kind)
            for suite in _suites(entries):
                preds = run([e for e in entries if e.suite == suite], embedder)
                if any(preds):
                    predictions.setdefault(name, {})[suite] = preds
    if judges:
        predictions.update(judge_predictions(entries, judges, store=store))
    return {
        "gold": str(gold or gold_dir()),
        "gold_status": IN_HOUSE,
        "n_entries": len(entries),
        "entries_per_suite": dict(Counter(e.suite for e in entries)),
        "results": evaluate(entries, predictions),
        "external": external_figures(extra),
    }


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def external_table(rows: list[dict]) -> str:
    """The external held-out sets' figures per detector (and per source model where the set has them)."""
    lines = [
        "External held-out sets (measured when the detectors were built; weights/manifest.json):",
        "",
        "| detector | set | model | n | accuracy | kappa | sensitivity | specificity | precision |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.get("set") is None:
            lines.append(f"| {r['detector']} | - | - | 0 | {r.get('note', '')} | | | | |")
            continue
        name = r["detector"] + (" (reference)" if r.get("reference") else "")
        for model, f in [("all", r), *sorted((r.get("per_model") or {}).items())]:
            lines.append(
                f"| {name} | {r['set']} | {model} | {f['n']} | {_fmt(f['accuracy'])} | {_fmt(f['kappa'])} | "
                f"{_fmt(f['sensitivity'])} | {_fmt(f['specificity'])} | {_fmt(f.get('precision'))} |"
            )
    return "\n".join(lines) + "\n"


def markdown_table(report: dict) -> str:
    lines = [
        f"Gold set, {report.get('gold_status', IN_HOUSE)}: {report['n_entries']} entries "
        f"({', '.join(f'{k} {v}' for k, v in report['entries_per_suite'].items())})",
        "",
        "| suite | label | source | n | accuracy | kappa | sensitivity | specificity | confusion (gold -> predicted) |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["results"]:
        conf = "; ".join(f"{g}: " + " ".join(f"{p}={c}" for p, c in row.items()) for g, row in r["confusion"].items())
        n = f"{r['n']}" + (f" (+{r['n_unscored']} unscored)" if r["n_unscored"] else "")
        lines.append(
            f"| {r['suite']} | {r['label']} | {r['source']} | {n} | {_fmt(r['accuracy'])} | {_fmt(r['kappa'])} | "
            f"{_fmt(r.get('sensitivity'))} | {_fmt(r.get('specificity'))} | {conf} |"
        )
    if report.get("external"):
        lines += ["", external_table(report["external"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out: Path) -> tuple[Path, Path]:
    """out (JSON) and the markdown table beside it (same name, .md)."""
    out = Path(out)
    write_json(out, report)
    md = out.with_suffix(".md")
    atomic_write_text(md, markdown_table(report))
    return out, md
