"""ECLIPTICA-3k: 300 prompts x 10 instruction types (SPEC.md section 2, metric M1)."""

from ..data.bank import ItemSpec
from ..data.hub import hub_loader
from .base import Suite

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

SUITE = Suite(
    name="ecliptica",
    description="300 open policy and ethics prompts, each under 10 alignment instruction types.",
    metric="M1 awareness = mean fidelity x mean shift",
    max_new_tokens=512,
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
    hub_loader=hub_loader("ecliptica"),
    judge_template="ecliptica_judge_v1.j2",
    contrast=("concise", "educational"),
)
