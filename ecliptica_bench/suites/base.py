"""What a suite is: a bank of items, a set of instruction conditions, generation defaults, one
deterministic way of crossing them into cases, and everything the rest of the package asks about it: its
paper metric (PaperMetric: the function over its scored rows, id, label, direction, absolute scale, plot
signals), judge template, hub source, card column docs and lm-eval task. Scoring, reports, the hub and the
lm-eval integration ask the suite; none of them names a suite or an instruction type."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from .. import DATASET_VERSION, paths
from ..data.bank import BankItem, InstructionSet, ItemSpec, load_instructions, load_items
from ..measures.paper import ScoredRows, SuiteStats

# The published ECLIPTICA-3k columns first, in this order; ours after.
PUBLISHED_COLUMNS = ["prompt_id", "prompt", "instruction_type", "instruction", "expected_characteristics", "source"]
OUR_COLUMNS = ["case_id", "variant_index", "axis", "dataset_version", "suite", "item_id"]
BASE_COLUMNS = PUBLISHED_COLUMNS + OUR_COLUMNS


@dataclass(frozen=True)
class DetectorRate:
    """A rate of detector flags that metrics.json reports per condition raw and corrected for the detector's
    error (scoring/detect.py, measures/correction.py), and its Delta instructed - uninstructed."""

    name: str  # e.g. "over_refusal"
    kind: str  # detector kind: "refusal" | "hedging"
    doc: str  # one line: what the rate is
    where: tuple[str, str] | None = None  # (suite column, value): only these rows (None: all of the condition's)
    # the detector's validation set that matches these rows (e.g. "xstest-safe"); None or not measured: its pooled set
    validation_set: str | None = None
    negate: bool = False  # the share NOT flagged (harmful compliance: no refusal on unsafe prompts)


@dataclass(frozen=True)
class PaperMetric:
    """A suite's paper-compatible metric and how reports show it.

    compute(rows) scores one condition's rows (measures.paper.ScoredRows) and returns a SuiteStats whose
    `paper` statistic is the published one and whose `headline` is direction-aware (higher = switching the
    intended way) on a fixed scale: the Delta = headline(instructed) - headline(uninstructed) that metrics.json
    `delta` and the absolute IAE use. It raises measures.paper.MissingType when the rows lack a condition
    or a column it needs (the metric is then unscored, with that reason)."""

    name: str  # metric id in metrics.json (`metric`), e.g. "awareness"
    label: str  # short label on plots and boards, e.g. "M1 awareness"
    compute: Callable[[ScoredRows], SuiteStats] = field(compare=False)
    scale: tuple[float, float]  # (lo, hi) of the headline Delta for the absolute IAE (metrics.iae_absolute)
    headline: str | None = None  # id of the headline statistic when it is not the paper one
    headline_doc: str = ""  # what the headline Delta is, next to the paper's (leaderboard notes)
    paper_is_absolute: bool = False  # the paper value is |headline| (metrics.read_gains: |Delta| stands in)
    embeddings: bool = False  # compute reads rows.emb (response embeddings)
    fidelity: bool = False  # compute reads rows.fidelity (per-row M1 prototype fidelity and prompt shift)
    # extra per-instruction-type rates in metrics.json: name -> per-row score column (scores.parquet)
    per_type: Mapping[str, str] = field(default_factory=dict)
    plot_signals: tuple[str, ...] = ()  # per-type signals a bar chart prefers, in order
    # the detector kind ("refusal" | "hedging") whose flags compute() reads through rows.detected(kind); its
    # components are then rates of the flags and its headline a zero-sum combination of them
    # (paper.rate_difference), which scoring re-computes per detector and corrects for detector error
    detector: str | None = None
    # further detector rates reported raw and corrected per condition (metrics.json detector_scores)
    detector_rates: tuple[DetectorRate, ...] = ()

    @property
    def headline_name(self) -> str:
        return self.headline or self.name


@dataclass(frozen=True)
class McTask:
    """A suite's lm-eval multiple-choice task (MC1 / MC2 as lm-eval's truthfulqa_mc1/mc2, scored by lm-eval itself;
    lmeval.py writes it as <task>_mc beside the suite's generation task)."""

    # the suite's items (bank items or built rows, one row per instruction type) -> one document per item:
    # {item_id, question, choices, labels}; choices[0] is the best answer, labels mark the correct choices
    docs: Callable[[list[dict]], list[dict]]
    primer: str  # few-shot text before each "Q: <question>\nA:" ("" for none)
    title: str  # what the task is (the task YAML's first comment line)
    notes: tuple[str, ...] = ()  # further comment lines of the task YAML


@dataclass(frozen=True)
class PreferenceAxis:
    """The suite's switching axis in the bundled switch pairs (prompts/preferences/<kind>.yaml), which
    `ecliptica build-prefs` turns into preference rows with this suite's own instruction texts (train/prefs.py).

    A pair gives a prompt and one response per field; each instruction type in `types` makes one row, with
    (chosen field, rejected field), so every response is chosen in one row and rejected in the other."""

    kind: str  # the pairs' kind (its file name and `kind:` header)
    types: Mapping[str, tuple[str, str]]  # instruction type -> (chosen field, rejected field)
    words: Mapping[str, tuple[int | None, int | None]]  # field -> inclusive (min, max) words, str.split
    markers: Mapping[str, tuple[str, bool]] = field(default_factory=dict)  # field -> (judges/markers list, must match)
    max_length_ratio: float | None = None  # longer / shorter response, in words
    # the instruction type whose policy the suite's hub preference source follows (build-prefs --source hub:
    # PKU-SafeRLHF's safe responses are what a STRICT policy prefers); None: the suite has no hub preference set
    hub_type: str | None = None
    suite: str = ""  # filled in by the registry's owner (train.prefs.kinds) with the declaring suite's name

    @property
    def fields(self) -> tuple[str, str]:
        return next(iter(self.types.values()))


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    metric: str  # the paper-compatible headline metric, e.g. "M1 awareness"
    max_new_tokens: int  # the paper's generation budget for this suite
    spec: ItemSpec  # shape of prompts/<name>/*.yaml
    text_field: str  # bank field holding the user prompt
    source_field: str | None  # bank field (or header key) copied into the `source` column
    extra_columns: tuple[str, ...] = ()  # suite-specific columns carried into every row
    hub_loader: Callable[[Path | None], list[dict]] | None = field(default=None, compare=False)
    # two opposite instruction types that reports show side by side (default: the first two types)
    contrast: tuple[str, str] | None = None
    # the suite's LLM-judge template, a file in judges_dir(): its labels, allowed values and judge-based metric
    # (scoring/judge.py), and its gold-set declaration (labels, entry rules, detectors: scoring/gold.py)
    judge_template: str = "ecliptica_judge_v1.j2"
    paper: PaperMetric | None = field(default=None, compare=False)  # required; None only to keep field order
    # bundled data of a suite that lives outside the package (a plugin): its own prompts/<name>/,
    # instructions/<name>.yaml and judges/ under this root; None: the package's data root
    data_root: Path | None = None
    preference: PreferenceAxis | None = None  # its axis in the bundled switch pairs (build-prefs), if any
    # the CPU demo's cases and token budget for this suite (`ecliptica demo`)
    demo_limit: int = 32
    demo_tokens: int = 64
    # `ecliptica plan` default per-prompt SD of the signed Delta (scoring.power) when no run is given: a
    # rough order of magnitude from the headline metric's scale, not an estimate; None: --from required
    plan_sd: float | None = None
    # hub, card and lm-eval (data/hub.py, data/card.py, hub_publish.py and lmeval.py ask these):
    # dataset-card docs of the suite's own columns (column -> one line; the base columns are documented in data/card.py)
    card_columns: Mapping[str, str] = field(default_factory=dict, compare=False)
    # the suite's published dataset (build-dataset --from-hub): its records -> our rows, verbatim; None: none published
    published_rows: Callable[[list[dict], str], list[dict]] | None = field(default=None, compare=False)
    # the lm-eval generation task's name (default ecliptica_<name>) and the suite's multiple-choice task, if any
    lmeval_task: str | None = None
    lmeval_mc: McTask | None = field(default=None, compare=False)

    def __post_init__(self):
        if self.paper is None:
            raise TypeError(f"suite {self.name!r}: paper (its PaperMetric) is required")

    def contrast_types(self) -> tuple[str, ...]:
        names = [t.name for t in self.instructions().types]
        return tuple(self.contrast) if self.contrast else tuple(names[:2])

    def instructions(self) -> InstructionSet:
        return load_instructions(self.name, self.data_root / "instructions" if self.data_root else None)

    def bundled_items(self) -> list[dict]:
        """Bank items normalised to {id, text, source, **extra_columns}."""
        folder = self.data_root / "prompts" / self.name if self.data_root else None
        return [self.normalise(b) for b in load_items(self.name, self.spec, folder)]

    def root(self) -> Path:
        """The folder holding this suite's prompts/, instructions/ and judges/: data_root (a plugin), else the
        package's data root (paths.data_root())."""
        return self.data_root if self.data_root is not None else paths.data_root()

    def input_files(self) -> list[Path]:
        """The files a bundled build reads: instructions/<name>.yaml, then prompts/<name>/*.yaml, sorted."""
        root = self.root()
        return [root / "instructions" / f"{self.name}.yaml", *sorted((root / "prompts" / self.name).glob("*.yaml"))]

    def judges_dir(self) -> Path:
        """Where this suite's judge templates live (judges/ of its data root)."""
        return self.root() / "judges"

    def judge_template_path(self, name: str | None = None) -> Path:
        """Path of the suite's judge template (or of another template of its, e.g. the contrastive one the
        main template's schema names) in judges_dir(); a plugin suite that ships no file of that name gets
        the package's (e.g. the default judge_template)."""
        name = name or self.judge_template
        path = self.judges_dir() / name
        if self.data_root and not path.exists() and (paths.judges_dir() / name).exists():
            return paths.judges_dir() / name
        return path

    @property
    def lmeval_task_name(self) -> str:
        """The suite's lm-eval generation task (`ecliptica_<name>` unless the suite names it)."""
        return self.lmeval_task or f"ecliptica_{self.name}"

    def normalise(self, b: BankItem) -> dict:
        d = {**b.header, **b.data}
        return {
            "id": d["id"],
            "text": d[self.text_field].strip(),
            "source": d.get(self.source_field, "") if self.source_field else "",
            **{c: d[c] for c in self.extra_columns},
        }

    def items(self, source: str = "bundled", data_dir: Path | None = None) -> list[dict]:
        if source == "bundled":
            return self.bundled_items()
        if self.hub_loader is None:
            from ..errors import EclipticaError

            raise EclipticaError(f"suite {self.name!r} has no hub source")
        return self.hub_loader(data_dir)

    def build_rows(self, items: list[dict], seed: int = 42) -> list[dict]:
        """Cross items with instruction types: seeded prompt-id shuffle, seeded variant draw.

        Same items and seed give the same rows in the same order; case_id depends only on the item
        id and the type, so it is stable across seeds and builds.
        """
        inst = self.instructions()
        rng = random.Random(seed)
        order = sorted(items, key=lambda it: it["id"])
        rng.shuffle(order)
        rows = []
        for prompt_id, item in enumerate(order):
            for t in inst.types:
                v = rng.randrange(len(t.variants))
                rows.append(
                    {
                        "prompt_id": prompt_id,
                        "prompt": item["text"],
                        "instruction_type": t.name,
                        "instruction": t.variants[v],
                        "expected_characteristics": [c.name for c in t.characteristics],
                        "source": item["source"],
                        "case_id": f"{self.name}/{item['id']}/{t.name}",
                        "variant_index": v,
                        "axis": t.axis,
                        "dataset_version": DATASET_VERSION,
                        "suite": self.name,
                        "item_id": item["id"],
                        **{c: item[c] for c in self.extra_columns},
                    }
                )
        return rows

    @property
    def columns(self) -> list[str]:
        return BASE_COLUMNS + list(self.extra_columns)
