"""The lm-evaluation-harness bridge: a built dataset out as lm-eval tasks, lm-eval's samples back in as a run.

    export-lm-eval DATA_DIR --output-dir TASKS/    one generate_until task per suite (Suite.lmeval_task_name:
                                            `ecliptica`, `ecliptica_truthfulqa`, ...), the group `ecliptica_all`,
                                            and `<task>_mc` for a suite with a multiple-choice task
                                            (Suite.lmeval_mc: TruthfulQA MC1/MC2, loglikelihood)
    lm-eval run --model hf --model_args pretrained=M --device cpu --include_path TASKS/ --tasks ecliptica \
        --apply_chat_template --log_samples --output_path OUT/
    import-lm-eval OUT/ --data DATA_DIR --output-dir runs/   -> runs/<run_id>/ (the run output contract)
    ecliptica score runs/<run_id>

What an imported run cannot know: lm-eval does not log why a generation stopped or its token count, so
finish_reason and completion_tokens are null (the truncation flag of `score` then never fires), and
latency_s is null. prompt_tokens is counted with the model's tokenizer when the model folder is on this machine.

How the chat condition survives the trip (lm-eval 0.4.13, read from lm_eval/api/task.py `fewshot_context`):
the task's `description` is resolved per document (`resolve_field(doc, description)`, a Jinja template over
the doc) and, with `--apply_chat_template`, becomes the system message; `doc_to_text` becomes the user
message. So `description: "{{instruction}}"` + `doc_to_text: "{{prompt}}"` gives exactly the messages of
`chat.messages_for(case, "instructed")`, rendered by the model's own chat template. Two caveats, both global
lm-eval switches: without `--apply_chat_template` lm-eval joins the two as plain text with no separator
(not our condition: the importer records it and warns), and `--system_instruction` is prepended to every
instruction. The importer re-renders each prompt with `chat.render_chat` when it can load the tokenizer and
records how many matched byte for byte.

Scoring is ecliptica's (`ecliptica score`); the generation tasks carry lm-eval's `bypass` metric only so the
harness accepts them (it reports 999). The MC task is scored by lm-eval itself: mc1 = the best answer has the
highest loglikelihood among it and the incorrect answers; mc2 = the normalised probability mass on the correct
answers (as lm-eval's truthfulqa_mc1 / truthfulqa_mc2); mc1_norm, beside them, is mc1 per character.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import json
import logging
import re
import textwrap
from pathlib import Path

from . import DATASET_VERSION, __version__
from .chat import INSTRUCTED, messages_for, render_chat, template_sha
from .data.build import JSONL_NAME, PARQUET_NAME, read_cases, validate_built
from .data.build import MANIFEST as DATA_MANIFEST
from .data.io import dumps, read_json, sha256_file, sha256_text, staged_dir, write_json
from .errors import EclipticaError
from .lock import LOCK_FILES, run_dir_lock
from .rundir import GENERATIONS, Manifest, ModelRef, extra_columns, write_generations, write_manifest
from .rundir import MANIFEST as RUN_MANIFEST
from .store import RunStore, cache_key, model_slug
from .suites import SUITES, Suite, default_suite, get_suite

log = logging.getLogger(__name__)

GROUP = "ecliptica_all"
EXPORT_MARKER = "ecliptica_lm_eval.json"


def task_name(suite: str) -> str:
    """A suite's lm-eval generation task (Suite.lmeval_task_name: `ecliptica_<suite>` unless the suite names it)."""
    return get_suite(suite).lmeval_task_name


def mc_task_name(suite: str) -> str:
    """A suite's lm-eval multiple-choice task (Suite.lmeval_mc): its generation task's name + `_mc`."""
    return f"{task_name(suite)}_mc"


def mc_suites(names=None) -> list[Suite]:
    """The suites (of `names`, default all) with a multiple-choice task, in registry order."""
    return [s for s in SUITES.values() if s.lmeval_mc is not None and (names is None or s.name in names)]


def _mc_docs_file(suite: str) -> str:
    return f"{suite}_mc.jsonl"


def _q(s) -> str:
    """A YAML scalar: JSON strings and numbers are valid YAML flow scalars."""
    return json.dumps(s, ensure_ascii=False)


# ============================================================================================ export
def _generation_task_yaml(suite: str, data_file: Path, rows: int, max_new_tokens: int, dataset_sha: str) -> str:
    fmt = "parquet" if data_file.suffix == ".parquet" else "json"
    return textwrap.dedent(f"""\
        # ECLIPTICA suite `{suite}` as an lm-evaluation-harness task; written by `ecliptica export-lm-eval`.
        # {rows} cases from {data_file} (dataset manifest sha256 {dataset_sha[:16]}).
        #
        # Chat condition: run lm-eval with --apply_chat_template. `description` is resolved per document and
        # becomes the SYSTEM message (the case's alignment instruction); `doc_to_text` is the USER message (the
        # prompt): the same messages as ecliptica's own runs. Without --apply_chat_template lm-eval joins them
        # as plain text; --system_instruction would be prepended to every instruction. Do not use either.
        #
        # Scoring is done by ecliptica: `ecliptica import-lm-eval <lm-eval output> --data <dataset> --output-dir runs/`
        # then `ecliptica score runs/<run_id>`. The `bypass` metric below is a placeholder that only keeps
        # lm-eval happy (it reports 999); it measures nothing.
        task: {task_name(suite)}
        dataset_path: {fmt}
        dataset_kwargs:
          data_files:
            test: {_q(str(data_file))}
        test_split: test
        output_type: generate_until
        description: "{{{{instruction}}}}"
        doc_to_text: "{{{{prompt}}}}"
        doc_to_target: ""
        generation_kwargs:
          until: []
          max_gen_toks: {int(max_new_tokens)}
          do_sample: false
        metric_list:
          - metric: bypass
        metadata:
          version: {_q(DATASET_VERSION)}
          ecliptica_suite: {_q(suite)}
        """)


def _group_yaml(tasks: list[str]) -> str:
    lines = "".join(f"  - {t}\n" for t in tasks)
    return (
        "# Every exported ECLIPTICA suite (generation only; scored by `ecliptica score` after import-lm-eval).\n"
        f"group: {GROUP}\ntask:\n{lines}metadata:\n  version: {_q(DATASET_VERSION)}\n"
    )


def _mc_task_yaml(suite: Suite, docs_file: Path, n: int) -> str:
    mc = suite.lmeval_mc
    notes = list(mc.notes)
    head = f"# {mc.title} ({n} questions in\n# {docs_file.name}); written by `ecliptica export-lm-eval`."
    head += (f" {notes[0]}" if notes else "") + "\n" + "".join(f"# {line}\n" for line in notes[1:])
    question = "Q: {{question}}\nA:"
    doc_to_text = f"{mc.primer}\n\n{question}" if mc.primer else question
    return head + textwrap.dedent(f"""\
        # choices = [best answer] + other correct answers + incorrect answers; labels mark the correct ones.
        # mc1: the best answer has the highest loglikelihood among it and the incorrect answers.
        # mc2: normalised probability mass on the correct answers.
        # mc1_norm (ours, beside them): mc1 on loglikelihood per character, so long answers are not penalised.
        task: {mc_task_name(suite.name)}
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {_q(str(docs_file))}
        test_split: test
        output_type: multiple_choice
        num_fewshot: 0
        doc_to_text: {_q(doc_to_text)}
        doc_to_target: 0
        doc_to_choice: "{{{{choices}}}}"
        process_results: !function utils.process_results_mc
        metric_list:
          - metric: mc1
            aggregation: mean
            higher_is_better: true
          - metric: mc2
            aggregation: mean
            higher_is_better: true
          - metric: mc1_norm
            aggregation: mean
            higher_is_better: true
        metadata:
          version: {_q(DATASET_VERSION)}
        """)


def process_results_mc(doc, results):
    """lm-eval process_results for the MC task: results = [(loglikelihood, is_greedy), ...] per choice.

    Copied verbatim into the exported utils.py (no imports beyond math), so the tasks run wherever lm-eval does.
    """
    import math  # inside: the function's source is the whole exported utils.py

    lls = [float(r[0]) for r in results]
    labels = list(doc["labels"])
    rivals = [i for i, lab in enumerate(labels) if lab == 0]
    # mc1: choice 0 is the best answer; it competes with the incorrect answers only (a tie goes to it)
    mc1 = 1.0 if lls[0] >= max(lls[i] for i in rivals) else 0.0
    # mc1_norm: the same on loglikelihood per character (as lm-eval's acc_norm): long answers are not penalised
    per_char = [ll / max(len(c), 1) for ll, c in zip(lls, doc["choices"])]
    mc1_norm = 1.0 if per_char[0] >= max(per_char[i] for i in rivals) else 0.0
    top = max(lls)
    probs = [math.exp(ll - top) for ll in lls]
    mc2 = sum(p for p, lab in zip(probs, labels) if lab == 1) / sum(probs)
    return {"mc1": mc1, "mc2": mc2, "mc1_norm": mc1_norm}


def _write_mc(dest: Path, suite: Suite, items: list[dict], final_dir: Path) -> dict:
    """A suite's MC task over its items (Suite.lmeval_mc.docs): docs, utils.py and the task YAML; its record."""
    docs = suite.lmeval_mc.docs(items)
    docs_name = _mc_docs_file(suite.name)
    (dest / docs_name).write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    (dest / "utils.py").write_text(
        '"""Written by `ecliptica export-lm-eval` (source: ecliptica_bench.lmeval.process_results_mc)."""\n\n\n'
        + inspect.getsource(process_results_mc),
        encoding="utf-8",
    )
    task = mc_task_name(suite.name)
    (dest / f"{task}.yaml").write_text(_mc_task_yaml(suite, final_dir / docs_name, len(docs)), encoding="utf-8")
    return {"task": task, "suite": suite.name, "questions": len(docs), "docs": str(final_dir / docs_name)}


def export_lm_eval(data_dir: Path, out: Path, max_new_tokens: int | None = None, suites: list[str] | None = None) -> dict:
    """Write lm-eval task YAMLs over a built dataset; returns the export record (also OUT/ecliptica_lm_eval.json).

    The YAMLs point at the dataset's files by absolute path, so OUT can live anywhere but DATA_DIR must stay.
    """
    data_dir = Path(data_dir).resolve()
    out = Path(out).resolve()
    if max_new_tokens is not None and max_new_tokens < 1:
        raise EclipticaError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    manifest = validate_built(data_dir)
    names = suites or list(manifest["suites"])
    for n in names:
        if n not in manifest["suites"]:
            raise EclipticaError(f"{data_dir}: suite {n!r} is not in this dataset (has: {', '.join(manifest['suites'])})")
    dataset_sha = sha256_file(data_dir / DATA_MANIFEST)
    record = {
        "data_dir": str(data_dir),
        "dataset_sha": dataset_sha,
        "dataset_version": manifest.get("dataset_version"),
        "package_version": __version__,
        "group": GROUP,
        "tasks": {},
        "mc_tasks": {},
    }
    with staged_dir(out, EXPORT_MARKER) as tmp:
        for n in names:
            data_file = data_dir / n / PARQUET_NAME
            if not data_file.exists():
                data_file = data_dir / n / JSONL_NAME
            mnt = max_new_tokens or manifest["suites"][n].get("max_new_tokens") or SUITES[n].max_new_tokens
            rows = manifest["suites"][n]["rows"]
            (tmp / f"{task_name(n)}.yaml").write_text(
                _generation_task_yaml(n, data_file, rows, mnt, dataset_sha), encoding="utf-8"
            )
            record["tasks"][task_name(n)] = {"suite": n, "rows": rows, "max_gen_toks": mnt, "data_file": str(data_file)}
        (tmp / f"{GROUP}.yaml").write_text(_group_yaml([task_name(n) for n in names]), encoding="utf-8")
        for s in mc_suites(names):  # each suite's multiple-choice task over its built rows
            mc = _write_mc(tmp, s, read_cases(data_dir, s.name), out)
            record["mc_tasks"][mc["task"]] = mc
        write_json(tmp / EXPORT_MARKER, record)
    return record


def lm_eval_command(
    tasks_dir: Path,
    model: str = "MODEL_DIR",
    tasks: str | None = None,
    output_path: str = "lm_eval_out",
    limit: int | None = None,
    device: str | None = None,
) -> str:
    """The lm-eval command line that produces samples `import-lm-eval` reads (lm-eval's own default
    device is cuda: say cpu where there is none). tasks: default the registry's first suite's task."""
    tasks = tasks or default_suite().lmeval_task_name
    if device is None:
        import torch

        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    cmd = (
        f"lm-eval run --model hf --model_args pretrained={model} --device {device} --include_path {tasks_dir} "
        f"--tasks {tasks} --apply_chat_template --log_samples --output_path {output_path}"
    )
    return cmd + (f" --limit {limit}" if limit else "")


# ============================================================================================ import
_SAMPLES_RE = re.compile(r"^samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T[0-9.\-]+)\.jsonl$")


def _find_samples(path: Path) -> tuple[list[tuple[Path, str, str]], Path | None]:
    """[(file, task, date_id)] and the results_<date>.json beside them (if any)."""
    path = Path(path)
    if not path.exists():
        raise EclipticaError(f"{path}: not found")
    files = [path] if path.is_file() else sorted(path.rglob("samples_*.jsonl"))
    found = []
    for f in files:
        m = _SAMPLES_RE.match(f.name)
        if not m:
            raise EclipticaError(f"{f}: not an lm-eval samples file (expected samples_<task>_<date>.jsonl)")
        found.append((f, m["task"], m["date"]))
    if not found:
        raise EclipticaError(f"{path}: no lm-eval samples files (samples_<task>_<date>.jsonl); run lm-eval with --log_samples")
    dates = sorted({d for _, _, d in found})
    if len(dates) > 1:
        raise EclipticaError(
            f"{path}: samples from {len(dates)} lm-eval runs ({', '.join(dates)}); pass one run's folder or file"
        )
    parent = found[0][0].parent
    results = parent / f"results_{dates[0]}.json"
    return found, results if results.exists() else None


def _arguments(sample: dict) -> tuple[str, dict]:
    """(context, gen_kwargs) from a sample: the file form {"gen_args_0": {"arg_0", "arg_1"}} or the
    in-memory form [[context, gen_kwargs]]."""
    args = sample.get("arguments")
    if isinstance(args, dict):
        first = args.get("gen_args_0") or {}
        ctx, kw = first.get("arg_0"), first.get("arg_1")
    elif isinstance(args, list) and args and isinstance(args[0], (list, tuple)):
        ctx, kw = args[0][0], args[0][1] if len(args[0]) > 1 else {}
    else:
        ctx, kw = None, None
    if not isinstance(ctx, str) or not isinstance(kw, dict):
        raise ValueError("no generate_until arguments (context, generation kwargs)")
    return ctx, kw


def _response(sample: dict) -> str:
    """The raw generation (lm-eval `resps`, before any task filter)."""
    resps = sample.get("resps")
    while isinstance(resps, list) and resps:
        resps = resps[0]
    if not isinstance(resps, str):
        raise ValueError("no string response in `resps`")
    return resps


def _model_info(results_file: Path | None, model_name: str | None) -> dict:
    """Model name, fingerprint and lm-eval settings, from the results_<date>.json lm-eval wrote."""
    cfg, res = {}, {}
    if results_file is not None:
        res = read_json(results_file, "not an lm-eval results file")
        if not isinstance(res, dict):
            raise EclipticaError(f"{results_file}: not an lm-eval results file (not a JSON object)")
        cfg = res.get("config") or {}
    margs = cfg.get("model_args") or {}
    if isinstance(margs, str):
        margs = dict(kv.split("=", 1) for kv in margs.split(",") if "=" in kv)
    pretrained = margs.get("pretrained")
    adapter = margs.get("peft")
    name = model_name or res.get("model_name") or pretrained
    if not name:
        raise EclipticaError("no lm-eval results file beside the samples to name the model; pass --model-name")
    folder = Path(pretrained) if pretrained and Path(pretrained).is_dir() else None
    if folder is not None:
        from .backends.base import model_fingerprint  # the same fingerprint ecliptica's own hf runs use

        fingerprint = model_fingerprint(folder, Path(adapter) if adapter and Path(adapter).is_dir() else None)
        fingerprint_of = "weights: the model folder lm-eval loaded (as ecliptica's own hf runs)"
    else:  # a hub id or a folder not on this machine: the best we can name is what lm-eval was told
        fingerprint = sha256_text(
            dumps(
                {
                    "lm_eval_model": cfg.get("model"),
                    "model_args": margs or None,
                    "model_name": name,
                    "model_sha": cfg.get("model_sha"),
                }
            )
        )
        fingerprint_of = "names: lm-eval's model and model_args (the weights were not available to hash)"
    return {
        "name": name,
        "fingerprint": fingerprint,
        "fingerprint_of": fingerprint_of,
        "folder": folder,
        "adapter": adapter,
        "chat_template_sha": res.get("chat_template_sha"),
        "chat_template_applied": bool(res.get("chat_template")),
        "system_instruction": res.get("system_instruction"),
        "config": {
            k: cfg.get(k)
            for k in (
                "model",
                "model_args",
                "model_num_parameters",
                "model_dtype",
                "model_revision",
                "model_sha",
                "batch_size",
                "device",
            )
            if k in cfg
        },
        "lm_eval_version": res.get("lm_eval_version"),
        "transformers_version": res.get("transformers_version"),
        "results_known": results_file is not None,
    }


def _tokenizer(folder: Path | None):
    if folder is None:
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(folder))
    except Exception as exc:  # the check is a bonus: a tokenizer that will not load only skips it
        log.warning("cannot load the tokenizer of %s (%s); prompts not re-rendered", folder, exc)
        return None


def import_lm_eval(
    samples_path: Path, data_dir: Path, out: Path, model_name: str | None = None, run_id: str | None = None, wait: bool = False
) -> Path:
    """lm-eval --log_samples output -> OUT/<run_id>/ (manifest.json, store.sqlite, generations.parquet).

    Samples are matched to the dataset's cases by the case_id carried in each document; every sample must
    belong to the dataset (same prompt and instruction), each case at most once. MC samples are skipped.
    """
    data_dir = Path(data_dir).resolve()
    data_manifest = validate_built(data_dir)
    found, results_file = _find_samples(samples_path)
    info = _model_info(results_file, model_name)
    warnings = []
    if results_file is not None and not info["chat_template_applied"]:
        warnings.append(
            "lm-eval ran without --apply_chat_template: the instruction was not sent as a system "
            "message, so these generations are not ecliptica's chat condition"
        )
    if info["system_instruction"]:
        warnings.append("lm-eval ran with --system_instruction: it was prepended to every alignment instruction")
    if results_file is None:
        warnings.append("no lm-eval results file beside the samples: chat template use unknown")
    for w in warnings:
        log.warning(w)

    cases: dict[str, dict[str, tuple[int, dict]]] = {}

    def case_index(suite: str) -> dict[str, tuple[int, dict]]:
        if suite not in cases:
            if suite not in data_manifest["suites"]:
                raise EclipticaError(f"{data_dir}: suite {suite!r} is not in this dataset")
            cases[suite] = {c["case_id"]: (i, c) for i, c in enumerate(read_cases(data_dir, suite))}
        return cases[suite]

    picked: dict[str, dict] = {}
    skipped: dict[str, int] = {}
    mc_tasks = {mc_task_name(s.name) for s in mc_suites()}  # multiple-choice samples: skipped
    for f, task, _ in found:
        with open(f, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{f}:{lineno}"
                try:
                    sample = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise EclipticaError(f"{where}: not JSON: {exc}") from None
                doc = sample.get("doc") if isinstance(sample, dict) else None
                if not isinstance(doc, dict) or "case_id" not in doc:
                    if task in mc_tasks or (isinstance(doc, dict) and "choices" in doc):
                        skipped[task] = skipped.get(task, 0) + 1
                        continue
                    raise EclipticaError(f"{where}: the document has no case_id (not an `ecliptica export-lm-eval` task)")
                cid = doc["case_id"]
                suite = doc.get("suite") or cid.split("/", 1)[0]
                idx = case_index(suite)
                if cid not in idx:
                    raise EclipticaError(f"{where}: case {cid!r} is not in {data_dir} (another dataset build?)")
                order, case = idx[cid]
                if doc.get("prompt") != case["prompt"] or doc.get("instruction") != case["instruction"]:
                    raise EclipticaError(
                        f"{where}: case {cid!r} differs from {data_dir} (prompt or instruction "
                        "changed: rebuild the tasks with export-lm-eval from this dataset)"
                    )
                if cid in picked:
                    raise EclipticaError(f"{where}: case {cid!r} appears twice (also {picked[cid]['where']})")
                try:
                    context, gen_kwargs = _arguments(sample)
                    response = _response(sample)
                except ValueError as exc:
                    raise EclipticaError(f"{where}: {exc}") from None
                picked[cid] = {
                    "where": where,
                    "case": case,
                    "order": order,
                    "context": context,
                    "gen_kwargs": gen_kwargs,
                    "response": response,
                    "task": task,
                }
    for task, n in skipped.items():
        log.info("skipped %d samples of %s (not a generation task)", n, task)
    if not picked:
        raise EclipticaError(f"{samples_path}: no ecliptica generation samples found")

    tok = _tokenizer(info["folder"]) if info["chat_template_applied"] else None
    tpl_sha = template_sha(tok) if tok is not None else info["chat_template_sha"]
    suite_order = {n: i for i, n in enumerate(SUITES)}
    entries = sorted(picked.values(), key=lambda e: (suite_order[e["case"]["suite"]], e["order"]))
    matched = 0
    gen_rows, store_rows = [], []
    for e in entries:
        case, gk, ctx = e["case"], e["gen_kwargs"], e["context"]
        prompt_tokens = None
        if tok is not None:
            matched += render_chat(tok, messages_for(case, INSTRUCTED)).text == ctx
            prompt_tokens = len(tok(ctx, add_special_tokens=False)["input_ids"])
        # the key has run.py's shape; params name lm-eval so these never pass for ecliptica's own generations
        params = {
            "backend": "lm-eval",
            "greedy": not gk.get("do_sample", False),
            "max_new_tokens": gk.get("max_gen_toks"),
            "lm_eval_gen_kwargs": gk,
        }
        key = cache_key("generation", model=info["fingerprint"], prompt=ctx, params=params, seed=None)
        store_rows.append(
            {
                "key": key,
                "model_fingerprint": info["fingerprint"],
                "rendered_prompt": ctx,
                "prompt_sha256": sha256_text(ctx),
                "template_sha256": tpl_sha,
                "params": params,
                "seed": None,
                "response": e["response"],
                "finish_reason": None,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": None,
                "latency_s": None,
            }
        )
        gen_rows.append(
            {
                "suite": case["suite"],
                "case_id": case["case_id"],
                "prompt_id": int(case["prompt_id"]),
                "item_id": case["item_id"],
                "condition": INSTRUCTED,
                "instruction_type": case["instruction_type"],
                "prompt": case["prompt"],
                "instruction": case["instruction"],
                "expected_characteristics": list(case["expected_characteristics"]),
                "source": case["source"],
                "response": e["response"],
                "finish_reason": None,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": None,
                "latency_s": None,
                "key": key,
                **{x: case.get(x) for x in extra_columns()},
                "axis": case.get("axis"),
                "variant_index": case.get("variant_index"),
                "prompt_sha256": sha256_text(ctx),
                "template_sha256": tpl_sha,
            }
        )
    if tok is not None and matched < len(entries):
        warnings.append(
            f"{len(entries) - matched} of {len(entries)} lm-eval prompts differ from ecliptica's own "
            "chat rendering of the same case"
        )
        log.warning(warnings[-1])

    run_id = run_id or f"{model_slug(info['name'])}-lmeval-{sha256_text(''.join(r['key'] for r in gen_rows))[:12]}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", run_id):
        raise EclipticaError(f"--run-id {run_id!r}: use letters, digits, '.', '_' and '-' only")
    for r in gen_rows:
        r["run_id"] = run_id
    suites_present = list(dict.fromkeys(r["suite"] for r in gen_rows))
    gen_kwargs = [json.loads(g) for g in sorted({dumps(e["gen_kwargs"]) for e in entries})]
    dataset_sha = sha256_file(data_dir / DATA_MANIFEST)
    manifest = Manifest(
        run_id=run_id,
        source="lm-eval",
        status="complete",
        created_at=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        model=ModelRef(info["name"], str(info["folder"]) if info["folder"] else None, info["fingerprint"]),
        adapter=info["adapter"],
        dataset_sha256=dataset_sha,
        dataset={
            "source": str(data_dir),
            "sha256": dataset_sha,
            "dataset_version": data_manifest.get("dataset_version"),
            "seed": data_manifest.get("seed"),
        },
        seeds={"sampling": None, "dataset": data_manifest.get("seed")},
        config={
            "conditions": [INSTRUCTED],
            "greedy": all(p["params"]["greedy"] for p in store_rows),
            "gen_kwargs": gen_kwargs,
        },
        chat_template_sha256=tpl_sha,
        backend={
            "backend": "lm-eval",
            "lm_eval_model": info["config"].get("model"),
            "batch_size": info["config"].get("batch_size"),
            "device": info["config"].get("device"),
        },
        warnings=warnings,
        summary={
            "rows": len(gen_rows),
            "suites": {
                n: {
                    "rows": sum(r["suite"] == n for r in gen_rows),
                    "task": task_name(n),
                    "dataset_cases": data_manifest["suites"][n]["rows"],
                }
                for n in suites_present
            },
        },
        details={
            "model_fingerprint_of": info["fingerprint_of"],
            "finish_reason": "unknown: lm-eval does not log why a generation stopped (stored as null)",
            "lm_eval": {
                "version": info["lm_eval_version"],
                "transformers_version": info["transformers_version"],
                "results_file": str(results_file) if results_file else None,
                "samples": {str(f): sha256_file(f) for f, _, _ in found},
                "apply_chat_template": info["chat_template_applied"] if info["results_known"] else None,
                "chat_template_sha": info["chat_template_sha"],
                "system_instruction": info["system_instruction"],
                "config": info["config"],
                "skipped_samples": skipped,
            },
            "prompt_check": {
                "checked": len(entries) if tok is not None else 0,
                "matched": matched,
                "what": "lm-eval's rendered prompt == chat.render_chat(messages_for(case, 'instructed'))",
            },
            "package_version": __version__,
        },
    )
    with run_dir_lock(Path(out) / run_id, wait=wait), staged_dir(Path(out) / run_id, RUN_MANIFEST, LOCK_FILES) as tmp:
        with RunStore(tmp) as store:
            store.put_generations(store_rows)
        manifest.outputs = {GENERATIONS: write_generations(tmp, gen_rows)}
        write_manifest(tmp, manifest)
    return Path(out) / run_id
