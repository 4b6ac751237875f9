"""Reading and validating the bundled banks: prompts/<suite>/*.yaml and instructions/<suite>.yaml.

Every check reports file, entry and line; nothing is built from a bank with any problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .. import paths
from ..errors import Problem, ValidationError
from .yamlio import load_yaml

MAX_PROMPT_WORDS = 60
MAX_PROMPT_CHARS = 400

# What the side-effect diagnostic (scoring/diagnostics.py) measures, and so what an instruction type's
# `targets` may name: the attributes the instruction means to change. "drift:<type>" is movement of the
# response toward another type's prototype (same file). Every other attribute is a side effect.
SIDE_EFFECT_ATTRIBUTES = ("length", "hedging", "refusal", "readability")
DRIFT_PREFIX = "drift:"


def prototype_sentence(characteristics: Sequence[str]) -> str:
    """docs/metrics.md M1: "A response that is <char 1>, <char 2>, <char 3>", each characteristic as the
    published dataset names it (expected_characteristics), underscores read as spaces:
    ["balanced", "multiple_perspectives", "no_advocacy"] -> "A response that is balanced, multiple
    perspectives, no advocacy". Built from the row's own expected_characteristics, so it works for any
    instruction type of a hub dataset too."""
    words = [str(c).replace("_", " ").strip() for c in characteristics if str(c).strip()]
    if not words:
        raise ValueError("a prototype needs at least one characteristic")
    return "A response that is " + ", ".join(words)


# ----------------------------------------------------------------------------------------------
# instruction types


@dataclass(frozen=True)
class Characteristic:
    name: str
    description: str


@dataclass(frozen=True)
class InstructionType:
    name: str
    axis: str
    description: str
    characteristics: tuple[Characteristic, ...]
    variants: tuple[str, ...]
    targets: tuple[str, ...] = ()  # side-effect attributes this type means to change (SIDE_EFFECT_ATTRIBUTES)

    def prototype(self) -> str:
        """The fidelity prototype sentence of M1 (docs/metrics.md) (prototype_sentence)."""
        return prototype_sentence([c.name for c in self.characteristics])


@dataclass(frozen=True)
class InstructionSet:
    suite: str
    variants_per_type: int
    axes: dict[str, str]
    types: tuple[InstructionType, ...]
    path: Path = field(compare=False)

    def type(self, name: str) -> InstructionType:
        for t in self.types:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.types]


_TYPE_FIELDS = {"name", "axis", "description", "targets", "characteristics", "variants"}
_TOP_FIELDS = {"suite", "variants_per_type", "axes", "types"}


def load_instructions(suite: str, directory: Path | None = None) -> InstructionSet:
    path = (directory or paths.instructions_dir()) / f"{suite}.yaml"
    if not path.exists():
        raise ValidationError([Problem(str(path), None, "instruction file not found")])
    doc, problems = load_yaml(path)
    if doc is None:
        raise ValidationError(problems)
    f = str(path)
    data = doc.data
    if not isinstance(data, dict):
        raise ValidationError([Problem(f, None, "top level must be a mapping", doc.line())])
    for key in sorted(set(data) - _TOP_FIELDS):
        problems.append(Problem(f, None, f"unknown field {key!r}", doc.line(key)))
    for key in sorted(_TOP_FIELDS - set(data)):
        problems.append(Problem(f, None, f"missing field {key!r}", doc.line()))
    if problems:
        raise ValidationError(problems)
    if data["suite"] != suite:
        problems.append(Problem(f, None, f"suite is {data['suite']!r}, expected {suite!r}", doc.line("suite")))
    n_variants = data["variants_per_type"]
    if not isinstance(n_variants, int) or n_variants < 1:
        problems.append(Problem(f, None, "variants_per_type must be a positive integer", doc.line("variants_per_type")))
    axes = data["axes"]
    if not isinstance(axes, dict) or not axes:
        problems.append(Problem(f, None, "axes must be a non-empty mapping of name: description", doc.line("axes")))
        axes = {}
    raw_types = data["types"]
    if not isinstance(raw_types, list) or not raw_types:
        problems.append(Problem(f, None, "types must be a non-empty list", doc.line("types")))
        raw_types = []
    types, seen = [], set()
    target_lines: dict[str, tuple] = {}
    for i, t in enumerate(raw_types):
        line = doc.line("types", i)
        entry = f"types[{i}]"
        if not isinstance(t, dict):
            problems.append(Problem(f, entry, "must be a mapping", line))
            continue
        entry = f"type {t.get('name', i)!r}"
        bad = False
        for key in sorted(set(t) - _TYPE_FIELDS):
            problems.append(Problem(f, entry, f"unknown field {key!r}", doc.line("types", i, key)))
            bad = True
        for key in sorted(_TYPE_FIELDS - set(t)):
            problems.append(Problem(f, entry, f"missing field {key!r}", line))
            bad = True
        if bad:
            continue
        if t["name"] in seen:
            problems.append(Problem(f, entry, "duplicate type name", line))
        seen.add(t["name"])
        if t["axis"] not in axes:
            problems.append(
                Problem(f, entry, f"unknown axis {t['axis']!r} (declared: {', '.join(axes)})", doc.line("types", i, "axis"))
            )
        variants = t["variants"]
        if not isinstance(variants, list) or not all(isinstance(v, str) and v.strip() for v in variants):
            problems.append(Problem(f, entry, "variants must be a list of non-empty strings", doc.line("types", i, "variants")))
            continue
        if isinstance(n_variants, int) and len(variants) != n_variants:
            problems.append(
                Problem(
                    f,
                    entry,
                    f"has {len(variants)} variants, declared variants_per_type is {n_variants}",
                    doc.line("types", i, "variants"),
                )
            )
        if len(set(variants)) != len(variants):
            problems.append(Problem(f, entry, "duplicate variant text", doc.line("types", i, "variants")))
        chars = []
        for j, c in enumerate(t["characteristics"] or []):
            if not (
                isinstance(c, dict) and set(c) == {"name", "description"} and all(isinstance(v, str) and v for v in c.values())
            ):
                problems.append(
                    Problem(
                        f,
                        entry,
                        f"characteristics[{j}] must have exactly a name and a description",
                        doc.line("types", i, "characteristics", j),
                    )
                )
                continue
            chars.append(Characteristic(c["name"], c["description"]))
        if not chars:
            problems.append(Problem(f, entry, "needs at least one characteristic", doc.line("types", i, "characteristics")))
        types.append(
            InstructionType(
                t["name"],
                t["axis"],
                str(t["description"]),
                tuple(chars),
                tuple(variants),
                tuple(t["targets"]) if isinstance(t["targets"], list) else (),
            )
        )
        target_lines[t["name"]] = (entry, t["targets"], doc.line("types", i, "targets"))
    problems += _target_problems(f, target_lines)
    if problems:
        raise ValidationError(problems)
    return InstructionSet(suite, n_variants, dict(axes), tuple(types), path)


def _target_problems(f: str, declared: dict[str, tuple]) -> list[Problem]:
    """Each type's `targets`: a list (possibly empty) of SIDE_EFFECT_ATTRIBUTES or "drift:<another type>"."""
    problems = []
    for name, (entry, targets, line) in declared.items():
        if not isinstance(targets, list) or not all(isinstance(x, str) for x in targets):
            problems.append(Problem(f, entry, "targets must be a list of attribute names ([] for none)", line))
            continue
        known = [*SIDE_EFFECT_ATTRIBUTES, *(DRIFT_PREFIX + o for o in declared if o != name)]
        for x in targets:
            if x not in known:
                problems.append(Problem(f, entry, f"targets: unknown attribute {x!r} (known: {', '.join(known)})", line))
        if len(set(targets)) != len(targets):
            problems.append(Problem(f, entry, "targets: duplicate attribute", line))
    return problems


# ----------------------------------------------------------------------------------------------
# prompt banks


@dataclass(frozen=True)
class ItemSpec:
    """The shape of one suite's bank files: prompts/<suite>/*.yaml."""

    list_key: str  # key of the list of items in each file
    fields: dict[str, type]  # required item fields and their types (str or list)
    text_field: str  # the prompt text: checked for empty/overlong
    header: dict[str, set[str] | None]  # required top-level keys -> allowed values (None: any)
    choices: dict[str, set[str]] = field(default_factory=dict)  # item field -> allowed values
    header_matches_stem: str | None = None  # this header key must equal the file name stem
    min_entries: dict[str, int] = field(default_factory=dict)  # list field -> fewest entries allowed


@dataclass(frozen=True)
class BankItem:
    data: dict
    file: str
    line: int | None
    header: dict


def load_items(suite: str, spec: ItemSpec, directory: Path | None = None) -> list[BankItem]:
    folder = directory or (paths.prompts_dir() / suite)
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise ValidationError([Problem(str(folder), None, "no *.yaml prompt files found")])
    problems: list[Problem] = []
    items: list[BankItem] = []
    ids: dict[str, str] = {}
    texts: dict[str, str] = {}
    for path in files:
        f = str(path)
        doc, errs = load_yaml(path)
        problems += errs
        if doc is None:
            continue
        data = doc.data
        if not isinstance(data, dict):
            problems.append(Problem(f, None, "top level must be a mapping", doc.line()))
            continue
        allowed_top = set(spec.header) | {spec.list_key}
        for key in sorted(set(data) - allowed_top):
            problems.append(Problem(f, None, f"unknown field {key!r}", doc.line(key)))
        for key in sorted(allowed_top - set(data)):
            problems.append(Problem(f, None, f"missing field {key!r}", doc.line()))
        header = {k: data.get(k) for k in spec.header}
        for key, allowed in spec.header.items():
            if key in data and allowed is not None and data[key] not in allowed:
                problems.append(Problem(f, None, f"unknown {key} {data[key]!r}", doc.line(key)))
        if spec.header_matches_stem and data.get(spec.header_matches_stem) not in (None, path.stem):
            problems.append(
                Problem(
                    f,
                    None,
                    f"{spec.header_matches_stem} {data[spec.header_matches_stem]!r} does not match file name {path.name!r}",
                    doc.line(spec.header_matches_stem),
                )
            )
        raw = data.get(spec.list_key)
        if not isinstance(raw, list):
            if spec.list_key in data:
                problems.append(Problem(f, None, f"{spec.list_key} must be a list", doc.line(spec.list_key)))
            continue
        for i, item in enumerate(raw):
            line = doc.line(spec.list_key, i)
            if not isinstance(item, dict):
                problems.append(Problem(f, f"{spec.list_key}[{i}]", "must be a mapping", line))
                continue
            entry = f"id {item['id']!r}" if "id" in item else f"{spec.list_key}[{i}]"
            required = {"id", *spec.fields}
            bad = [Problem(f, entry, f"unknown field {k!r}", doc.line(spec.list_key, i, k)) for k in sorted(set(item) - required)]
            bad += [Problem(f, entry, f"missing field {k!r}", line) for k in sorted(required - set(item))]
            for k, typ in spec.fields.items():
                v = item.get(k)
                if k not in item:
                    continue
                if typ is list and not (isinstance(v, list) and v and all(isinstance(x, str) and x.strip() for x in v)):
                    bad.append(Problem(f, entry, f"{k} must be a non-empty list of strings", doc.line(spec.list_key, i, k)))
                elif typ is str and not isinstance(v, str):
                    bad.append(Problem(f, entry, f"{k} must be a string", doc.line(spec.list_key, i, k)))
                elif typ is list and len(v) < spec.min_entries.get(k, 0):
                    bad.append(
                        Problem(
                            f,
                            entry,
                            f"{k} has {len(v)} entries, needs at least {spec.min_entries[k]}",
                            doc.line(spec.list_key, i, k),
                        )
                    )
            if bad:
                problems += bad
                continue
            if not isinstance(item["id"], str) or not item["id"]:
                problems.append(Problem(f, entry, "id must be a non-empty string", line))
                continue
            if item["id"] in ids:
                problems.append(Problem(f, entry, f"duplicate id (first in {ids[item['id']]})", line))
            ids.setdefault(item["id"], f)
            text = item[spec.text_field].strip()
            if not text:
                problems.append(Problem(f, entry, f"empty {spec.text_field}", line))
            elif len(text) > MAX_PROMPT_CHARS or len(text.split()) > MAX_PROMPT_WORDS:
                problems.append(
                    Problem(
                        f,
                        entry,
                        f"{spec.text_field} too long ({len(text.split())} words, {len(text)} chars; max {MAX_PROMPT_WORDS} words, {MAX_PROMPT_CHARS} chars)",
                        line,
                    )
                )
            elif text.lower() in texts:
                problems.append(Problem(f, entry, f"duplicate {spec.text_field} (same as {texts[text.lower()]})", line))
            texts.setdefault(text.lower(), item["id"])
            for k, allowed in spec.choices.items():
                if item[k] not in allowed:
                    problems.append(Problem(f, entry, f"unknown {k} {item[k]!r}", doc.line(spec.list_key, i, k)))
            items.append(BankItem(item, f, line, header))
    if problems:
        raise ValidationError(problems)
    return items
