"""Open instructions under CONCISE and DETAILED length targets (SPEC.md M4: length ratio)."""

from ..data.bank import ItemSpec
from ..data.hub import hub_loader
from .base import Suite

SUITE = Suite(
    name="length_control",
    description="Open instructions, each under a CONCISE (<=50 words) and a DETAILED (>=200 words) target.",
    metric="M4 mean words DETAILED / CONCISE",
    max_new_tokens=512,
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
    hub_loader=hub_loader("length_control"),
    judge_template="length_control_judge_v1.j2",
)
