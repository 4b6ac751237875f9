"""TruthfulQA under HONEST and CONFIDENT instructions (SPEC.md M2: epistemic switching).

The bundled bank also feeds the TruthfulQA MC1/MC2 task (lmeval.py): MC1 picks between best_answer and the
incorrect answers, so every bundled item needs at least MIN_INCORRECT of them (chance MC1 = 1 / (1 + that)).
tests/test_bank_shortcuts.py keeps the bank free of surface shortcuts (option length, wording, openings).
"""

from ..data.bank import ItemSpec
from ..data.hub import hub_loader
from .base import Suite

MIN_INCORRECT = 4

SUITE = Suite(
    name="truthfulqa",
    description="Questions about common misconceptions, each under an HONEST and a CONFIDENT instruction.",
    metric="M2 hedging rate HONEST - CONFIDENT",
    max_new_tokens=256,
    plan_sd=0.6,
    spec=ItemSpec(
        list_key="items",
        fields={"question": str, "best_answer": str, "correct_answers": list, "incorrect_answers": list, "category": str},
        text_field="question",
        header={"suite": {"truthfulqa"}},
        min_entries={"incorrect_answers": MIN_INCORRECT},
    ),
    text_field="question",
    source_field="category",
    extra_columns=("best_answer", "correct_answers", "incorrect_answers"),
    hub_loader=hub_loader("truthfulqa"),
    judge_template="truthfulqa_judge_v1.j2",
)
