"""The dataset card (README.md: a YAML header listing one config per suite, then the body), written with
huggingface_hub's DatasetCard. The columns every suite has are documented here; each suite documents its own
columns (Suite.card_columns). The default config is the registry's first suite."""

from __future__ import annotations

from ..suites import SUITES, default_suite

# The columns every suite has (suites.base.BASE_COLUMNS).
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
}


def default_config(suite_names) -> str | None:
    """The dataset's default config: the registry's first suite, when the dataset has it."""
    first = default_suite().name
    return first if first in suite_names else None


def column_doc(column: str, suite_names) -> str:
    """A column's doc: the first of these suites that documents it (Suite.card_columns), else the base docs."""
    for n in suite_names:
        doc = SUITES[n].card_columns.get(column)
        if doc:
            return doc
    return COLUMN_DOCS.get(column, "")


def card_data(suite_names: list[str], split: str = "train"):
    """The card's YAML header (huggingface_hub.DatasetCardData): license, tags and one config per suite."""
    from huggingface_hub import DatasetCardData

    default = default_config(suite_names)
    return DatasetCardData(
        license="apache-2.0",
        language=["en"],
        pretty_name="ECLIPTICA benchmark suites",
        tags=["alignment", "instruction-following", "evaluation"],
        configs=[
            {
                "config_name": n,
                "data_files": [{"split": split, "path": f"{n}/*.parquet"}],
                **({"default": True} if n == default else {}),
            }
            for n in suite_names
        ],
    )


def render_card(manifest: dict) -> str:
    from huggingface_hub import DatasetCard

    names = list(manifest["suites"])
    lines = [
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
        f'ds = load_dataset("DIR_OR_REPO", name="{default_config(names) or names[0]}")',
        "```",
        "",
        "## Columns",
        "",
    ]
    cols = []
    for n in names:
        cols += [c for c in SUITES[n].columns if c not in cols]
    lines += [f"- `{c}`: {column_doc(c, names)}" for c in cols]
    body = "\n".join(lines) + "\n"
    data = card_data(names, manifest.get("split", "train"))
    yaml_header = data.to_yaml(original_order=["license", "language", "pretty_name", "tags", "configs"])
    return str(DatasetCard(f"---\n{yaml_header}\n---\n{body}"))
