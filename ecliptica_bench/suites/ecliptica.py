"""ECLIPTICA-3k: 300 prompts x 10 instruction types (docs/metrics.md: the suites, metric M1)."""

import collections

from .. import DATASET_VERSION
from ..data.bank import ItemSpec
from ..data.hub import hub_loader, need_columns
from ..errors import EclipticaError
from ..measures import paper
from ..measures.paper import ScoredRows, SuiteStats
from .base import PUBLISHED_COLUMNS, PaperMetric, Suite

CATEGORIES = {
    "business",
    "culture",
    "economics",
    "education",
    "environment",
    "ethics",
    "governance",
    "healthcare",
    "personal",
    "science",
    "social_issues",
    "technology",
}


def awareness(rows: ScoredRows) -> SuiteStats:
    """M1: mean prototype fidelity x mean pairwise shift of each prompt's responses."""
    return paper.awareness(rows.keys, rows.fidelity, rows.emb)


def _hub_id(prompt_id: int) -> str:
    return f"hub-{prompt_id:04d}"


def hub_items(rows: list[dict], where: str, spec: dict | None = None) -> list[dict]:
    """ECLIPTICA-3k rows -> its distinct prompts (id from prompt_id, category as source)."""
    need_columns(rows, ["prompt_id", "prompt", "source"], where)
    prompts: dict[int, dict] = {}
    for r in rows:
        pid = int(r["prompt_id"])
        item = {"id": _hub_id(pid), "text": str(r["prompt"]).strip(), "source": str(r["source"])}
        if prompts.setdefault(pid, item)["text"] != item["text"]:
            raise EclipticaError(f"{where}: prompt_id {pid} has two different prompts")
    return [prompts[k] for k in sorted(prompts)]


def published_rows(records: list[dict], where: str) -> list[dict]:
    """Published ECLIPTICA rows (prompt_id, prompt, instruction_type, instruction, expected_characteristics,
    source [, axis]) -> our row schema, keeping the published values verbatim (build-dataset --from-hub).

    variant_index: the index among our variants when the text is one of ours, else the phrasing's rank
    among that type's distinct published texts in prompt_id order (so 0..2 for a 3-variant type).
    """
    need_columns(records, PUBLISHED_COLUMNS, where)
    try:
        ours = {t.name: t for t in SUITE.instructions().types}
    except EclipticaError:
        ours = {}
    records = sorted(records, key=lambda r: int(r["prompt_id"]))  # stable: keeps the published type order
    seen_texts: dict[str, list[str]] = collections.defaultdict(list)
    seen_cases: set[tuple[int, str]] = set()
    rows = []
    for r in records:
        pid, itype, text = int(r["prompt_id"]), str(r["instruction_type"]), str(r["instruction"])
        if (pid, itype) in seen_cases:
            raise EclipticaError(f"{where}: prompt_id {pid} has instruction_type {itype!r} twice")
        seen_cases.add((pid, itype))
        t = ours.get(itype)
        if t is not None and text in t.variants:
            variant = t.variants.index(text)
        else:
            if text not in seen_texts[itype]:
                seen_texts[itype].append(text)
            variant = seen_texts[itype].index(text)
        item_id = _hub_id(pid)
        rows.append(
            {
                "prompt_id": pid,
                "prompt": r["prompt"],
                "instruction_type": itype,
                "instruction": text,
                "expected_characteristics": list(r["expected_characteristics"]),
                "source": r["source"],
                "case_id": f"{SUITE.name}/{item_id}/{itype}",
                "variant_index": variant,
                "axis": r.get("axis") or (t.axis if t is not None else "unknown"),
                "dataset_version": DATASET_VERSION,
                "suite": SUITE.name,
                "item_id": item_id,
            }
        )
    return rows


SUITE = Suite(
    name="ecliptica",
    description="300 open policy and ethics prompts, each under 10 alignment instruction types.",
    metric="M1 awareness = mean fidelity x mean shift",
    max_new_tokens=512,
    paper=PaperMetric(
        name="awareness",
        label="M1 awareness",
        compute=awareness,
        # an ideal switch: fidelity stays near 0.55-0.6 for MiniLM, so awareness moves through shift: 0.15 is
        # the shift rising by about 0.25 (e.g. 0.15 -> 0.40, responses to one prompt going from paraphrases
        # to clearly different answers)
        scale=(0.0, 0.15),
        headline_doc="M1 awareness, the same as the paper's",
        embeddings=True,
        fidelity=True,
        per_type={"fidelity": "fidelity"},
        plot_signals=("fidelity", "judge_adherence", "valid_rate"),
    ),
    demo_limit=60,
    demo_tokens=48,
    plan_sd=0.05,
    spec=ItemSpec(
        list_key="prompts",
        fields={"text": str},
        text_field="text",
        header={"category": CATEGORIES},
        header_matches_stem="category",
    ),
    text_field="text",
    source_field="category",
    hub_loader=hub_loader("ecliptica", hub_items),
    published_rows=published_rows,
    lmeval_task="ecliptica",  # `--tasks ecliptica` runs the core suite
    judge_template="ecliptica_judge_v1.j2",
    contrast=("concise", "educational"),
)
