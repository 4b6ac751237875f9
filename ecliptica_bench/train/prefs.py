"""build-prefs: instruction-conditioned preference data for CITA / DPO / SFT (docs/training.md).

What makes the data *switchable*: the same prompt appears under two opposite instructions with the
preference reversed. A switch pair gives a prompt and two responses; it becomes two rows, one per
instruction type of its kind (each suite's Suite.preference axis; kinds()):

    kind       instructions from   type        chosen             rejected
    safety     conditional_safety  strict      refusal            helpful
                                   permissive  helpful            refusal
    length     length_control      concise     concise            detailed
                                   detailed    detailed           concise
    epistemic  truthfulqa          honest      hedged             direct
                                   confident   direct             hedged

Instruction texts come from the named suite's own instruction file, so the model is trained on exactly the
wording the benchmark evaluates with. Every response is chosen in one row and rejected in the other, so
nothing but the instruction tells which of the two is preferred.

The pairs live in prompts/preferences/<kind>.yaml, one file per kind:

    suite: "preferences"
    kind: "safety"
    items:
      - id: "saf-001"        # unique over all kinds: it is the pair_id
        prompt: "..."        # written for training, never taken from an eval bank
        refusal: "..."
        helpful: "..."

Training prompts must stay out of every evaluation bank: an exact match (after prompt_key) with any bundled
suite prompt is a validation error here; near-duplicates (MiniLM cosine) are caught by
tests/test_prefs_leakage.py. Each kind also declares word bounds per field (str.split words), marker rules
(a judges/markers list a field must, or must not, match: the detectors M2 and M3 score with) and how much
longer one response may be than the other. Adding a kind is a suite's `preference` axis plus its file.

Layout of a built preference set:
    DIR/train.parquet, DIR/heldout.parquet   columns PREF_COLUMNS; both rows of a pair on the same side
    DIR/manifest.json                        seed, source, counts, eval-overlap, sha256 of inputs and outputs
"""

from __future__ import annotations

import collections
import json
import logging
import random
import re
from dataclasses import replace
from pathlib import Path, PurePosixPath

from .. import __version__, paths
from ..data.io import read_json, sha256_file, sha256_text, staged_dir, write_json, write_parquet
from ..data.yamlio import load_yaml
from ..errors import EclipticaError, Problem, ValidationError
from ..suites import SUITES, get_suite
from ..suites.base import PreferenceAxis

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SPLITS = ("train", "heldout")
REQUIRED_COLUMNS = ["id", "pair_id", "kind", "instruction_type", "instruction", "prompt", "chosen", "rejected"]
PREF_COLUMNS = REQUIRED_COLUMNS + ["source", "source_id"]


# The bundled kinds in the order their rows are made: one seeded draw of instruction variants runs through
# them in this order, so it fixes the built data. Kinds of other (plugin) suites follow in registry order.
BUNDLED_KIND_ORDER = ("safety", "length", "epistemic")


def kinds() -> dict[str, PreferenceAxis]:
    """kind -> the switching axis a suite declares (Suite.preference), with its suite's name filled in."""
    found = {s.preference.kind: replace(s.preference, suite=s.name) for s in SUITES.values() if s.preference is not None}
    rank = {k: i for i, k in enumerate(BUNDLED_KIND_ORDER)}
    return {k: found[k] for k in sorted(found, key=lambda k: rank.get(k, len(rank)))}


def hub_axis() -> PreferenceAxis:
    """The axis whose suite has a hub preference source (PreferenceAxis.hub_type: conditional_safety, PKU-SafeRLHF)."""
    for axis in kinds().values():
        if axis.hub_type:
            return axis
    raise EclipticaError("no suite declares a hub preference source (PreferenceAxis.hub_type)")


_ID_FIELDS = ("id", "prompt")

# PKU-SafeRLHF, the paper's safety preference source. Its repo and pinned revision are the conditional-safety
# entry of prompts/hub_sources.yaml (one pin for the eval and the training side); training reads the train
# files that sit beside the test files listed there.
PKU_REPO = "PKU-Alignment/PKU-SafeRLHF"
PKU_COLUMNS = ("prompt", "response_0", "response_1", "is_response_0_safe", "is_response_1_safe")


def switch_pairs_path(kind: str) -> Path:
    return paths.prompts_dir() / "preferences" / f"{kind}.yaml"


def switch_pairs_paths() -> list[Path]:
    return [switch_pairs_path(k) for k in kinds()]


def normalise_prompt(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def prompt_key(text: str) -> str:
    """Exact-match key for leakage checks: lowercase, punctuation dropped, whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def eval_bank_prompts() -> dict[str, tuple[str, str]]:
    """prompt_key -> (suite, item id) over the bundled bank of every suite."""
    out: dict[str, tuple[str, str]] = {}
    for name, suite in SUITES.items():
        for it in suite.bundled_items():
            out.setdefault(prompt_key(it["text"]), (name, it["id"]))
    return out


# ---------------------------------------------------------------------------------------------- bundled


def load_switch_pairs(path: Path | None = None) -> list[dict]:
    """Read and validate switch pairs: one file, or (no path) every kind's file.

    Returns the pairs with their `kind` and stripped strings; every problem names file, entry and line.
    """
    files = [(Path(path), None)] if path is not None else [(switch_pairs_path(k), k) for k in kinds()]
    evals = eval_bank_prompts()
    problems: list[Problem] = []
    seen_ids: dict[str, tuple[str, int | None]] = {}
    seen_prompts: dict[str, str] = {}
    pairs = []
    for f, expect in files:
        pairs += _load_pair_file(f, expect, evals, seen_ids, seen_prompts, problems)
    if problems:
        raise ValidationError(problems)
    return pairs


def _load_pair_file(
    path: Path, expect: str | None, evals: dict, seen_ids: dict, seen_prompts: dict, problems: list[Problem]
) -> list[dict]:
    from ..measures.paper import has_hedge, is_refusal, markers

    detectors = {"refusal": is_refusal, "hedging": has_hedge}
    f = str(path)
    if not path.exists():
        problems.append(Problem(f, None, "switch-pair file not found"))
        return []
    doc, bad = load_yaml(path)
    if doc is None:
        problems += bad
        return []
    data = doc.data
    if not isinstance(data, dict):
        problems.append(Problem(f, None, "top level must be a mapping", doc.line()))
        return []
    for key in sorted(set(data) - {"suite", "kind", "items"}):
        problems.append(Problem(f, None, f"unknown field {key!r}", doc.line(key)))
    if data.get("suite") != "preferences":
        problems.append(Problem(f, None, f"suite is {data.get('suite')!r}, expected 'preferences'", doc.line("suite")))
    kind_name = data.get("kind")
    known = kinds()
    if kind_name not in known:
        problems.append(Problem(f, None, f"kind must be one of {sorted(known)}, got {kind_name!r}", doc.line("kind")))
        return []
    if expect is not None and kind_name != expect:
        problems.append(Problem(f, None, f"kind is {kind_name!r}, expected {expect!r} in this file", doc.line("kind")))
        return []
    kind = known[kind_name]
    items = data.get("items")
    if not isinstance(items, list) or not items:
        problems.append(Problem(f, None, "items must be a non-empty list", doc.line("items")))
        return []
    fields = {*_ID_FIELDS, *kind.fields}
    a, b = kind.fields
    pairs = []
    for i, item in enumerate(items):
        line = doc.line("items", i)
        at = lambda k: doc.line("items", i, k)  # noqa: E731
        if not isinstance(item, dict):
            problems.append(Problem(f, f"items[{i}]", "must be a mapping", line))
            continue
        entry = f"id {item['id']!r}" if "id" in item else f"items[{i}]"
        bad = [Problem(f, entry, f"unknown field {k!r} for kind {kind_name!r}", at(k)) for k in sorted(set(item) - fields)]
        bad += [Problem(f, entry, f"missing field {k!r}", line) for k in sorted(fields - set(item))]
        bad += [
            Problem(f, entry, f"{k} must be a non-empty string", at(k))
            for k in sorted(fields & set(item))
            if not (isinstance(item[k], str) and item[k].strip())
        ]
        if bad:
            problems += bad
            continue
        item = {k: v.strip() for k, v in item.items()}
        if item["id"] in seen_ids:
            first_file, first_line = seen_ids[item["id"]]
            where = f"line {first_line}" if first_file == f else f"{first_file}:{first_line}"
            problems.append(Problem(f, entry, f"duplicate id (first at {where})", line))
            continue
        seen_ids[item["id"]] = (f, line)
        key = prompt_key(item["prompt"])
        if key in evals:
            suite, eid = evals[key]
            problems.append(
                Problem(
                    f,
                    entry,
                    f"prompt is eval prompt {eid!r} of prompts/{suite}: training prompts must not come from an eval bank",
                    at("prompt"),
                )
            )
        elif key in seen_prompts:
            problems.append(Problem(f, entry, f"same prompt as id {seen_prompts[key]!r}", at("prompt")))
        seen_prompts.setdefault(key, item["id"])
        if normalise_prompt(item[a]) == normalise_prompt(item[b]):
            problems.append(Problem(f, entry, f"{a} and {b} are the same text", at(a)))
        n = {k: len(item[k].split()) for k in (a, b)}
        for k, (lo, hi) in kind.words.items():
            if lo is not None and n[k] < lo:
                problems.append(Problem(f, entry, f"{k} has {n[k]} words, needs at least {lo}", at(k)))
            if hi is not None and n[k] > hi:
                problems.append(Problem(f, entry, f"{k} has {n[k]} words, needs at most {hi}", at(k)))
        for k, (name, must) in kind.markers.items():
            hit = bool(detectors[name]([item[k]])[0])  # the detector M2 / M3 score with
            if must and not hit:
                problems.append(Problem(f, entry, f"{k} has no marker from judges/markers/{name}.txt", at(k)))
            elif hit and not must:
                found = markers(name)[0].search(item[k].lower().replace("\u2019", "'"))
                phrase = f" {found.group(0)!r}" if found else " a marker"
                problems.append(Problem(f, entry, f"{k} contains{phrase} from judges/markers/{name}.txt", at(k)))
        if kind.max_length_ratio and max(n.values()) > kind.max_length_ratio * min(n.values()):
            problems.append(
                Problem(
                    f,
                    entry,
                    f"{a} ({n[a]} words) and {b} ({n[b]} words) differ in length by more than {kind.max_length_ratio}x",
                    at(a),
                )
            )
        pairs.append({**item, "kind": kind_name})
    return pairs


def pair_rows(pairs: list[dict], seed: int = 42) -> list[dict]:
    """Each switch pair -> one row per instruction type of its kind, preference reversed between the rows."""
    rng = random.Random(seed)
    rows = []
    for kind, spec in kinds().items():
        inst = get_suite(spec.suite).instructions()
        for pair in sorted((p for p in pairs if p["kind"] == kind), key=lambda p: p["id"]):
            for itype, (chosen, rejected) in spec.types.items():
                variants = inst.type(itype).variants
                rows.append(
                    {
                        "id": f"{pair['id']}/{itype}",
                        "pair_id": pair["id"],
                        "kind": kind,
                        "instruction_type": itype,
                        "instruction": variants[rng.randrange(len(variants))],
                        "prompt": pair["prompt"],
                        "chosen": pair[chosen],
                        "rejected": pair[rejected],
                        "source": "bundled",
                        "source_id": "",
                    }
                )
    return rows


# ---------------------------------------------------------------------------------------------- a local file


def read_pref_file(path: Path) -> list[dict]:
    """Rows from a jsonl or parquet file with at least REQUIRED_COLUMNS; problems name file and row."""
    path = Path(path)
    f = str(path)
    if not path.is_file():
        raise EclipticaError(f"{path}: preference file not found")
    problems: list[Problem] = []
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input problem
            raise EclipticaError(f"{path}: cannot read parquet: {exc}") from exc
        missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
        if missing:
            raise ValidationError(
                [Problem(f, None, f"missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED_COLUMNS)})")]
            )
        raw = [(i + 1, r) for i, r in enumerate(table.to_pylist())]
        where = "row"
    elif path.suffix in (".jsonl", ".json"):
        raw = []
        try:
            lines = path.read_text(encoding="utf-8").split("\n")
        except UnicodeDecodeError as exc:
            raise EclipticaError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(Problem(f, f"line {n}", f"bad JSON: {exc.msg}", n))
                continue
            if not isinstance(obj, dict):
                problems.append(Problem(f, f"line {n}", "must be a JSON object", n))
                continue
            raw.append((n, obj))
        where = "line"
        if not problems and raw:
            missing = [c for c in REQUIRED_COLUMNS if all(c not in r for _, r in raw)]
            if missing:
                raise ValidationError(
                    [Problem(f, None, f"missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED_COLUMNS)})")]
                )
    else:
        raise EclipticaError(f"{path}: preference file must be .jsonl or .parquet")
    if not raw and not problems:
        raise ValidationError([Problem(f, None, "no rows")])
    rows, ids = [], {}
    for n, r in raw:
        entry = f"{where} {n}" + (f" (id {r['id']!r})" if isinstance(r.get("id"), str) and r["id"] else "")
        bad = [Problem(f, entry, f"missing {c!r}", n if where == "line" else None) for c in REQUIRED_COLUMNS if c not in r]
        bad += [
            Problem(f, entry, f"{c} must be a non-empty string", n if where == "line" else None)
            for c in REQUIRED_COLUMNS
            if c in r and not (isinstance(r[c], str) and r[c].strip())
        ]
        if bad:
            problems += bad
            continue
        if r["id"] in ids:
            problems.append(Problem(f, entry, f"duplicate id (first at {where} {ids[r['id']]})", n if where == "line" else None))
            continue
        ids[r["id"]] = n
        if r["chosen"].strip() == r["rejected"].strip():
            problems.append(Problem(f, entry, "chosen and rejected are the same text", n if where == "line" else None))
            continue
        rows.append(
            {
                **{c: r[c] for c in REQUIRED_COLUMNS},
                "source": str(r.get("source") or path.name),
                "source_id": str(r.get("source_id") or ""),
            }
        )
    if problems:
        raise ValidationError(problems)
    return rows


# ---------------------------------------------------------------------------------------------- the hub


def pku_rows(records, instruction: str, instruction_type: str) -> list[dict]:
    """PKU-SafeRLHF rows (the hub's own columns) -> preference rows under a refusal instruction.

    As in the paper, only rows where exactly one of the two responses is safe are used: the safe one is
    chosen, the unsafe one rejected. pair_id is a hash of the prompt, so rows that share a prompt stay on
    the same side of the train/heldout split.
    """
    out, seen = [], set()
    for n, r in enumerate(records):
        missing = [c for c in PKU_COLUMNS if c not in r]
        if missing:
            raise EclipticaError(f"{PKU_REPO} row {n}: missing column(s) {', '.join(missing)}")
        s0, s1 = bool(r["is_response_0_safe"]), bool(r["is_response_1_safe"])
        if s0 == s1:
            continue
        prompt = (r["prompt"] or "").strip()
        chosen, rejected = (r["response_0"], r["response_1"]) if s0 else (r["response_1"], r["response_0"])
        chosen, rejected = (chosen or "").strip(), (rejected or "").strip()
        if not (prompt and chosen and rejected) or chosen == rejected:
            continue
        key = sha256_text("\x1f".join((prompt, chosen, rejected)))[:16]
        if key in seen:
            continue
        seen.add(key)
        pair = "pku-" + sha256_text(normalise_prompt(prompt))[:12]
        out.append(
            {
                "id": f"pku-{key}",
                "pair_id": pair,
                "kind": "safety",
                "instruction_type": instruction_type,
                "instruction": instruction,
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "source": PKU_REPO,
                "source_id": str(n),
            }
        )
    return out


def pku_train_spec() -> dict:
    """The hub source of PKU-SafeRLHF's train split: the pinned entry of the suite that declares it
    (hub_axis(): conditional_safety), train files."""
    from ..data.hub import source_spec

    suite = hub_axis().suite
    spec = dict(source_spec(suite))
    if spec["repo"] != PKU_REPO:
        raise EclipticaError(f"prompts/hub_sources.yaml: {suite} source is {spec['repo']!r}, not {PKU_REPO}")
    spec["split"] = "train"
    if spec.get("files"):
        spec["files"] = [str(PurePosixPath(f).with_name(PurePosixPath(f).name.replace("test", "train"))) for f in spec["files"]]
    return spec


def load_pku_records(hub_file: Path | None = None) -> tuple[list[dict], str]:
    """PKU-SafeRLHF train rows, from the hub at the pinned revision or a local copy; and where they came from."""
    if hub_file is not None:
        import datasets

        hub_file = Path(hub_file)
        if not hub_file.is_file():
            raise EclipticaError(f"{hub_file}: hub data file not found")
        fmt = "parquet" if hub_file.suffix == ".parquet" else "json"
        try:
            return datasets.load_dataset(fmt, data_files=str(hub_file), split="train").to_list(), str(hub_file)
        except Exception as exc:  # noqa: BLE001 - an unreadable local copy is the user's input problem
            raise EclipticaError(f"{hub_file}: cannot read as {fmt} ({type(exc).__name__})") from exc
    from ..data.hub import read_source

    spec = pku_train_spec()
    try:
        return read_source("preferences", None, spec), f"{spec['repo']}@{spec['revision']}"
    except EclipticaError as exc:
        from ..data.hub import LOCAL_HINT

        hint = "or pass --hub-file with a local copy of a train file"
        msg = str(exc)
        raise EclipticaError(msg.replace(LOCAL_HINT, hint) if LOCAL_HINT in msg else f"{msg} ({hint})") from None


def eval_prompts() -> dict[str, set[str]]:
    """Normalised conditional-safety evaluation prompts, by where they come from (bundled bank, hub set)."""
    suite = get_suite(hub_axis().suite)
    out = {"bundled": {normalise_prompt(it["text"]) for it in suite.bundled_items()}}
    if suite.hub_loader is not None:
        try:
            out["hub"] = {normalise_prompt(it["text"]) for it in suite.items("hub")}
        except Exception as exc:  # noqa: BLE001 - the hub set is optional for this check
            log.info("%s hub set not available for the overlap check: %s", suite.name, exc)
    return out


def overlap_report(rows: list[dict]) -> dict:
    """Share of distinct training prompts that also occur in a conditional-safety evaluation set."""
    prompts = {normalise_prompt(r["prompt"]) for r in rows}
    report = {"prompts": len(prompts), "eval_sets": {}}
    for name, ev in eval_prompts().items():
        k = len(prompts & ev)
        report["eval_sets"][name] = {"overlap": k, "rate": (k / len(prompts)) if prompts else 0.0}
    return report


# ---------------------------------------------------------------------------------------------- split + write


def split_by_pair(rows: list[dict], heldout: float, seed: int) -> dict[str, list[dict]]:
    """Seeded split by pair_id, stratified by kind; both rows of a pair land on the same side."""
    if not 0.0 <= heldout < 1.0:
        raise EclipticaError(f"--heldout {heldout}: must be in [0, 1)")
    rng = random.Random(seed)
    held: set[str] = set()
    for kind in sorted({r["kind"] for r in rows}):
        pairs = sorted({r["pair_id"] for r in rows if r["kind"] == kind})
        rng.shuffle(pairs)
        n = round(len(pairs) * heldout)
        if heldout > 0 and n == 0 and len(pairs) >= 2:
            n = 1
        held.update(pairs[:n])
    return {"train": [r for r in rows if r["pair_id"] not in held], "heldout": [r for r in rows if r["pair_id"] in held]}


def build_prefs(
    out: Path,
    source: str = "bundled",
    seed: int = 42,
    heldout: float = 0.2,
    hub_file: Path | None = None,
    max_pairs: int | None = None,
    drop_eval_overlap: bool = False,
) -> dict:
    """Build the preference set into OUT (atomically); returns the manifest."""
    inputs: dict[str, str] = {}
    overlap = None
    if source == "bundled":
        rows = pair_rows(load_switch_pairs(), seed)
        for p in (*switch_pairs_paths(), *(paths.instructions_dir() / f"{k.suite}.yaml" for k in kinds().values())):
            inputs[_rel(p)] = sha256_file(p)
    elif source == "hub":
        axis = hub_axis()
        instruction = get_suite(axis.suite).instructions().type(axis.hub_type).variants[0]
        records, where = load_pku_records(hub_file)
        rows = pku_rows(records, instruction, axis.hub_type)
        inputs[where] = sha256_file(Path(hub_file)) if hub_file is not None else where
        if not rows:
            raise EclipticaError(f"{where}: no row has exactly one safe response")
        overlap = overlap_report(rows)
        for name, o in overlap["eval_sets"].items():
            if o["overlap"]:
                log.warning(
                    "%d of %d training prompts (%.1f%%) also occur in the %s conditional-safety eval set%s",
                    o["overlap"],
                    overlap["prompts"],
                    100 * o["rate"],
                    name,
                    "; dropped (--drop-eval-overlap)" if drop_eval_overlap else "; pass --drop-eval-overlap to remove them",
                )
        if drop_eval_overlap:
            ev = set().union(*eval_prompts().values())
            rows = [r for r in rows if normalise_prompt(r["prompt"]) not in ev]
    else:
        path = Path(source)
        rows = read_pref_file(path)
        inputs[str(path)] = sha256_file(path)
    if max_pairs is not None:
        pair_ids = sorted({r["pair_id"] for r in rows})
        if max_pairs < len(pair_ids):
            keep = set(random.Random(seed).sample(pair_ids, max_pairs))
            rows = [r for r in rows if r["pair_id"] in keep]
    if not rows:
        raise EclipticaError("no preference rows left to write")
    splits = split_by_pair(rows, heldout, seed)
    manifest = {
        "kind": "ecliptica-preferences",
        "package_version": __version__,
        "source": source if source in ("bundled", "hub") else str(source),
        "seed": seed,
        "heldout_fraction": heldout,
        "columns": PREF_COLUMNS,
        "inputs": inputs,
        "eval_overlap": overlap,
        "splits": {},
        "outputs": {},
    }
    with staged_dir(Path(out), MANIFEST) as tmp:
        for name, srows in splits.items():
            write_parquet(tmp / f"{name}.parquet", srows, PREF_COLUMNS)
            manifest["splits"][name] = {
                "rows": len(srows),
                "pairs": len({r["pair_id"] for r in srows}),
                "per_kind": dict(sorted(collections.Counter(r["kind"] for r in srows).items())),
                "per_instruction_type": dict(sorted(collections.Counter(r["instruction_type"] for r in srows).items())),
                "source_ids": sorted({r["source_id"] for r in srows if r["source_id"]}),
            }
        manifest["outputs"] = {p.name: sha256_file(p) for p in sorted(tmp.glob("*.parquet"))}
        write_json(tmp / MANIFEST, manifest)
    return manifest


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(paths.data_root()))
    except ValueError:
        return str(p)


def load_prefs(directory: Path, split: str = "train") -> list[dict]:
    """Rows of one split of a built preference set, after checking the manifest's sha256s."""
    import pyarrow.parquet as pq

    directory = Path(directory)
    mpath = directory / MANIFEST
    if not mpath.exists():
        raise EclipticaError(f"{mpath}: missing; build the data with `ecliptica build-prefs --output-dir {directory}`")
    manifest = read_json(mpath)
    try:
        digest = manifest["outputs"][f"{split}.parquet"]
    except (KeyError, TypeError):
        raise EclipticaError(f"{mpath}: not a preference-set manifest (no {split}.parquet entry)") from None
    f = directory / f"{split}.parquet"
    if not f.exists():
        raise EclipticaError(f"{f}: listed in manifest.json but missing")
    if sha256_file(f) != digest:
        raise EclipticaError(f"{f}: sha256 differs from manifest.json (file changed or corrupted)")
    return pq.read_table(f).to_pylist()
