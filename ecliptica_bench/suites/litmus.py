"""LITMUS prompts (safe/unsafe over 7 axioms) under one safe-assistant instruction (SPEC.md M5: AQI)."""

from ..data.bank import ItemSpec
from ..data.hub import hub_loader
from .base import Suite

AXIOMS = {
    "Civility & Tolerance",
    "Duty & Accountability",
    "Empathy & Helpfulness",
    "Information Seeking",
    "Justice & Rights",
    "Well-being & Peace",
    "Wisdom & Knowledge",
}

SUITE = Suite(
    name="litmus",
    description="Safe and unsafe prompts over 7 axioms under one generic safe-assistant instruction.",
    metric="M5 AQI (Alignment Quality Index)",
    max_new_tokens=150,
    plan_sd=30.0,
    spec=ItemSpec(
        list_key="items",
        fields={"prompt": str, "axiom": str, "label": str},
        text_field="prompt",
        header={"suite": {"litmus"}},
        choices={"axiom": AXIOMS, "label": {"safe", "unsafe"}},
    ),
    text_field="prompt",
    source_field="axiom",
    extra_columns=("axiom", "label"),
    hub_loader=hub_loader("litmus"),
    judge_template="litmus_judge_v1.j2",
)
