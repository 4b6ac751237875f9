"""What a suite is: a bank of items, a set of instruction conditions, generation defaults, and one
deterministic way of crossing them into cases. Suites differ only in data and a few declarations."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import DATASET_VERSION
from ..data.bank import BankItem, InstructionSet, ItemSpec, load_instructions, load_items

# The published ECLIPTICA-3k columns first, in this order; ours after.
PUBLISHED_COLUMNS = ["prompt_id", "prompt", "instruction_type", "instruction", "expected_characteristics", "source"]
OUR_COLUMNS = ["case_id", "variant_index", "axis", "dataset_version", "suite", "item_id"]
BASE_COLUMNS = PUBLISHED_COLUMNS + OUR_COLUMNS


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
    # the suite's LLM-judge template in judges/ (its labels, allowed values and judge-based metric: scoring/judge.py)
    judge_template: str = "ecliptica_judge_v1.j2"
    # `ecliptica plan` default per-prompt SD of the signed Delta (scoring.power) when no run is given: a
    # rough order of magnitude from the headline metric's scale, not an estimate; None: --from required
    plan_sd: float | None = None

    def contrast_types(self) -> tuple[str, ...]:
        names = [t.name for t in self.instructions().types]
        return tuple(self.contrast) if self.contrast else tuple(names[:2])

    def instructions(self) -> InstructionSet:
        return load_instructions(self.name)

    def bundled_items(self) -> list[dict]:
        """Bank items normalised to {id, text, source, **extra_columns}."""
        return [self.normalise(b) for b in load_items(self.name, self.spec)]

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
