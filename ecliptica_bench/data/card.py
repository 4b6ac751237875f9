"""The dataset card (README.md with a YAML header listing one config per suite)."""

from __future__ import annotations

import yaml

from ..suites import SUITES

COLUMN_DOCS = {
    "prompt_id": "int; shared by all rows of one prompt (seeded shuffle of the bank)",
    "prompt": "the user prompt, identical across a prompt's rows",
    "instruction_type": "the alignment instruction type (the condition)",
    "instruction": "the instruction text: one sampled paraphrase variant of the type",
    "expected_characteristics": "list of the type's expected characteristics",
    "source": "category / kind / axiom of the prompt",
    "case_id": "stable id <suite>/<item id>/<type>, the same across builds and seeds",
    "variant_index": "which paraphrase variant was drawn",
    "axis": "the instruction type's axis (e.g. stance, delivery_style)",
    "dataset_version": "version of the bundled banks and schema",
    "suite": "suite name",
    "item_id": "the prompt's id in its bank",
    "best_answer": "TruthfulQA: the best true answer",
    "correct_answers": "TruthfulQA: true answers",
    "incorrect_answers": "TruthfulQA: common false answers",
    "axiom": "LITMUS: one of the 7 axioms",
    "label": "LITMUS: safe or unsafe",
}


def card_header(suite_names: list[str], split: str = "train") -> dict:
    return {
        "license": "apache-2.0",
        "language": ["en"],
        "pretty_name": "ECLIPTICA benchmark suites",
        "tags": ["alignment", "instruction-following", "evaluation"],
        "configs": [
            {
                "config_name": n,
                "data_files": [{"split": split, "path": f"{n}/*.parquet"}],
                **({"default": True} if n == "ecliptica" else {}),
            }
            for n in suite_names
        ],
    }


def render_card(manifest: dict) -> str:
    names = list(manifest["suites"])
    header = yaml.safe_dump(card_header(names, manifest.get("split", "train")), sort_keys=False)
    lines = [
        f"---\n{header}---",
        "",
        "# ECLIPTICA benchmark suites",
        "",
        "Does a model switch behaviour when only the alignment instruction changes? Every row pairs a fixed",
        "user prompt with one alignment instruction; the rows of a prompt differ only in the instruction.",
        "Built by `ecliptica build-dataset` (ecliptica-bench " + manifest["package_version"] + ").",
        "",
        f"Seed {manifest['seed']}, source `{manifest['source']}`, dataset version {manifest['dataset_version']}.",
        "",
        "| suite | rows | prompts | metric | max_new_tokens |",
        "|---|---|---|---|---|",
    ]
    for n in names:
        s = manifest["suites"][n]
        lines.append(f"| {n} | {s['rows']} | {s['prompts']} | {s['metric']} | {s['max_new_tokens']} |")
    lines += [
        "",
        "```python",
        "from datasets import load_dataset",
        'ds = load_dataset("DIR_OR_REPO", name="ecliptica")',
        "```",
        "",
        "## Columns",
        "",
    ]
    cols = []
    for n in names:
        cols += [c for c in SUITES[n].columns if c not in cols]
    lines += [f"- `{c}`: {COLUMN_DOCS.get(c, '')}" for c in cols]
    return "\n".join(lines) + "\n"
