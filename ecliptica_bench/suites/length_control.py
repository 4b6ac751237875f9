"""Open instructions under CONCISE and DETAILED length targets (docs/metrics.md M4: length ratio)."""

from ..data.bank import ItemSpec
from ..data.hub import hub_loader, need_columns
from ..measures import paper
from ..measures.paper import ScoredRows, SuiteStats
from .base import PaperMetric, PreferenceAxis, Suite


def length_ratio(rows: ScoredRows) -> SuiteStats:
    """M4: mean words DETAILED / max(mean words CONCISE, 1), words = whitespace split."""
    return paper.ratio_of_means(
        rows, paper.word_counts(rows.texts), "detailed", "concise", ("mean_words_detailed", "mean_words_concise")
    )


def hub_items(rows: list[dict], where: str, spec: dict | None = None) -> list[dict]:
    """AlpacaEval rows -> items (the instruction; its dataset as source)."""
    need_columns(rows, ["instruction"], where)
    return [
        {"id": f"hub-alpaca-{i:03d}", "text": r["instruction"].strip(), "source": r.get("dataset") or "alpaca_eval"}
        for i, r in enumerate(rows)
    ]


SUITE = Suite(
    name="length_control",
    description="Open instructions, each under a CONCISE (<=50 words) and a DETAILED (>=200 words) target.",
    metric="M4 mean words DETAILED / CONCISE",
    max_new_tokens=512,
    paper=PaperMetric(
        name="length_ratio",
        label="M4 length ratio",
        compute=length_ratio,
        # an ideal switch: >=200 vs <=50 words gives a ratio of 4, up from 1 uninstructed
        scale=(0.0, 3.0),
        headline_doc="M4 ratio DETAILED / CONCISE, the same as the paper's",
        plot_signals=("mean_words", "words", "judge_adherence"),
    ),
    preference=PreferenceAxis(
        kind="length",
        types={"concise": ("concise", "detailed"), "detailed": ("detailed", "concise")},
        words={"concise": (12, 50), "detailed": (200, None)},  # the suite's own targets: <= 50, >= 200
    ),
    demo_limit=32,
    demo_tokens=160,
    plan_sd=1.5,
    spec=ItemSpec(
        list_key="items",
        fields={"prompt": str, "kind": str},
        text_field="prompt",
        header={"suite": {"length_control"}},
        choices={"kind": {"explain", "compare", "plan", "write"}},
    ),
    text_field="prompt",
    source_field="kind",
    hub_loader=hub_loader("length_control", hub_items),
    judge_template="length_control_judge_v1.j2",
)
