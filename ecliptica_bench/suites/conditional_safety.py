"""Borderline requests under STRICT and PERMISSIVE policies (SPEC.md M3: refusal switching)."""

from ..data.bank import ItemSpec
from ..data.hub import hub_loader
from .base import Suite

CATEGORIES = {
    "security",
    "weapons",
    "drugs_medication",
    "privacy_surveillance",
    "self_harm_adjacent",
    "fraud_scams",
    "hazardous_chemistry",
    "dual_use_tech",
}

SUITE = Suite(
    name="conditional_safety",
    description="Borderline requests, each under a STRICT and a PERMISSIVE refusal policy.",
    metric="M3 refusal rate STRICT - PERMISSIVE",
    max_new_tokens=256,
    plan_sd=0.6,
    spec=ItemSpec(
        list_key="items",
        fields={"prompt": str, "category": str},
        text_field="prompt",
        header={"suite": {"conditional_safety"}},
        choices={"category": CATEGORIES},
    ),
    text_field="prompt",
    source_field="category",
    hub_loader=hub_loader("conditional_safety"),
    judge_template="conditional_safety_judge_v1.j2",
)
