"""The lm-eval bridge: exported tasks load in lm-eval 0.4.13 and render our chat condition; lm-eval samples
import into a run dir that `score` reads; TruthfulQA MC1/MC2 through lm-eval. The slow tests run the real
harness on the embedded model."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from lmeval_runner import evaluate, run_mc

from ecliptica_bench import lmeval
from ecliptica_bench.chat import messages_for, render_chat
from ecliptica_bench.cli import cli
from ecliptica_bench.data.build import read_cases
from ecliptica_bench.errors import EclipticaError
from ecliptica_bench.store import RunStore
from ecliptica_bench.suites import SUITES
from ecliptica_bench.suites.base import McTask

DATE = "2026-01-02T03-04-05.678901"
MC_TASK = lmeval.mc_task_name("truthfulqa")  # truthfulqa's multiple-choice task


@pytest.fixture(scope="module")
def tasks_dir(built_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("lmeval") / "tasks"
    lmeval.export_lm_eval(built_dataset, out)
    return out


def _yaml(path: Path) -> dict:
    from lm_eval.tasks._yaml_loader import load_yaml  # lm-eval's own loader (knows !function)

    return load_yaml(path, resolve_func=False)


# ------------------------------------------------------------------------------------------ export
def test_export_writes_one_task_per_suite_and_a_group(built_dataset, tasks_dir):
    from lm_eval.tasks import TaskManager

    manifest = json.loads((built_dataset / "manifest.json").read_text())
    for suite, info in manifest["suites"].items():
        cfg = _yaml(tasks_dir / f"{lmeval.task_name(suite)}.yaml")
        assert cfg["task"] == ("ecliptica" if suite == "ecliptica" else f"ecliptica_{suite}")
        assert cfg["output_type"] == "generate_until"
        assert cfg["description"] == "{{instruction}}" and cfg["doc_to_text"] == "{{prompt}}"
        assert cfg["generation_kwargs"] == {"until": [], "max_gen_toks": info["max_new_tokens"], "do_sample": False}
        data_file = Path(cfg["dataset_kwargs"]["data_files"]["test"])
        assert data_file.is_absolute() and data_file.exists() and data_file.parent.name == suite
    group = _yaml(tasks_dir / f"{lmeval.GROUP}.yaml")
    assert group["task"] == [lmeval.task_name(s) for s in manifest["suites"]]
    tm = TaskManager(include_path=str(tasks_dir), include_defaults=False)
    assert {"ecliptica", "ecliptica_truthfulqa", lmeval.GROUP, "ecliptica_truthfulqa_mc"} <= set(tm.all_tasks)
    mc = _yaml(tasks_dir / "ecliptica_truthfulqa_mc.yaml")  # the suite's MC task: TruthfulQA's QA primer, then Q/A
    assert mc["doc_to_text"] == SUITES["truthfulqa"].lmeval_mc.primer + "\n\nQ: {{question}}\nA:"
    assert Path(mc["dataset_kwargs"]["data_files"]["test"]).name == "truthfulqa_mc.jsonl"


def test_task_names_and_mc_task_come_from_the_suite(built_dataset, tmp_path, monkeypatch):
    """lmeval names no suite: a suite's lmeval_task and lmeval_mc decide its tasks."""
    toy = McTask(
        docs=lambda items: [{"item_id": "a", "question": "Q?", "choices": ["y", "n"], "labels": [1, 0]}],
        primer="",
        title="Toy MC",
    )
    toy_litmus = dataclasses.replace(SUITES["litmus"], lmeval_task="toy_task", lmeval_mc=toy)
    monkeypatch.setattr(SUITES, "_suites", {**SUITES, "litmus": toy_litmus})  # the registry is read-only
    rec = lmeval.export_lm_eval(built_dataset, tmp_path / "t", suites=["litmus"])
    assert set(rec["tasks"]) == {"toy_task"} and set(rec["mc_tasks"]) == {"toy_task_mc"}
    cfg = _yaml(tmp_path / "t" / "toy_task_mc.yaml")
    assert cfg["task"] == "toy_task_mc" and cfg["doc_to_text"] == "Q: {{question}}\nA:"  # no primer
    assert (tmp_path / "t" / "toy_task_mc.yaml").read_text().startswith("# Toy MC (1 questions in\n# litmus_mc.jsonl);")
    assert [json.loads(line) for line in (tmp_path / "t" / "litmus_mc.jsonl").read_text().splitlines()] == toy.docs([])


def test_export_max_new_tokens_override_and_subset(built_dataset, tmp_path):
    rec = lmeval.export_lm_eval(built_dataset, tmp_path / "t", max_new_tokens=24, suites=["ecliptica", "litmus"])
    assert set(rec["tasks"]) == {"ecliptica", "ecliptica_litmus"} and rec["mc_tasks"] == {}
    assert _yaml(tmp_path / "t" / "ecliptica_litmus.yaml")["generation_kwargs"]["max_gen_toks"] == 24
    with pytest.raises(EclipticaError, match="max-new-tokens"):
        lmeval.export_lm_eval(built_dataset, tmp_path / "u", max_new_tokens=0)
    with pytest.raises(EclipticaError, match="not in this dataset"):
        lmeval.export_lm_eval(built_dataset, tmp_path / "u", suites=["nope"])


def test_lm_eval_renders_instruction_as_system_message(built_dataset, tasks_dir, embedded_model_dir):
    """The heart of the export: lm-eval's own prompt construction == chat.render_chat(messages_for(case))."""
    from lm_eval.tasks import TaskManager
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(embedded_model_dir))

    def chat_template(messages, add_generation_prompt=True):  # what lm-eval's HFLM.apply_chat_template does
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    tm = TaskManager(include_path=str(tasks_dir), include_defaults=False)
    task = tm.load(["ecliptica_conditional_safety"])["tasks"]["ecliptica_conditional_safety"]
    docs = list(task.test_docs())
    cases = {c["case_id"]: c for c in read_cases(built_dataset, "conditional_safety")}
    assert len(docs) == len(cases)
    for doc in docs[:6]:
        ctx = task.fewshot_context(doc=doc, num_fewshot=0, apply_chat_template=True, chat_template=chat_template)
        case = cases[doc["case_id"]]
        assert ctx == render_chat(tok, messages_for(case, "instructed")).text
        assert ctx.index(case["instruction"]) < ctx.index(case["prompt"])


def test_mc_docs_and_process_results():
    items = [
        {"item_id": "q1", "prompt": "Q?", "best_answer": "B", "correct_answers": ["B", "C"], "incorrect_answers": ["X", "Y"]}
    ] * 2  # one row per instruction type: deduplicated
    mc_docs = SUITES["truthfulqa"].lmeval_mc.docs
    docs = mc_docs(items)
    assert docs == [{"item_id": "q1", "question": "Q?", "choices": ["B", "C", "X", "Y"], "labels": [1, 1, 0, 0]}]
    lls = [math.log(p) for p in (0.1, 0.4, 0.3, 0.2)]
    r = lmeval.process_results_mc(docs[0], [(ll, False) for ll in lls])
    assert r["mc1"] == 0.0  # best (0.1) loses to an incorrect answer (0.3); C does not count
    assert r["mc2"] == pytest.approx(0.5)
    r = lmeval.process_results_mc(docs[0], [(ll, False) for ll in [math.log(p) for p in (0.5, 0.3, 0.1, 0.1)]])
    assert r == {"mc1": 1.0, "mc2": pytest.approx(0.8), "mc1_norm": 1.0}
    # a long best answer: loses on the total, wins per character
    long = {**docs[0], "choices": ["B" * 30, "C", "X", "Y"]}
    r = lmeval.process_results_mc(long, [(-6.0, False), (-1.0, False), (-3.0, False), (-3.0, False)])
    assert (r["mc1"], r["mc1_norm"]) == (0.0, 1.0)
    with pytest.raises(EclipticaError, match="no incorrect answers"):
        mc_docs([{**items[0], "incorrect_answers": []}])


# ------------------------------------------------------------------------------------------ import
def _sample(case: dict, response: str, doc_id: int = 0) -> dict:
    """One line as lm-eval's EvaluationTracker.save_results_samples writes it."""
    ctx = f"<|im_start|>system\n{case['instruction']}<|im_end|>\n<|im_start|>user\n{case['prompt']}<|im_end|>\n"
    gk = {"until": [], "max_gen_toks": 16, "do_sample": False}
    return {
        "doc_id": doc_id,
        "doc": case,
        "target": "",
        "arguments": {"gen_args_0": {"arg_0": ctx, "arg_1": gk}},
        "resps": [[response]],
        "filtered_resps": [response],
        "filter": "none",
        "metrics": ["bypass"],
        "doc_hash": "x",
        "prompt_hash": "y",
        "target_hash": "z",
        "bypass": None,
    }


def _write_samples(folder: Path, task: str, samples: list[dict], date: str = DATE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    f = folder / f"samples_{task}_{date}.jsonl"
    f.write_text("".join(json.dumps(s) + "\n" for s in samples))
    return f


def test_import_synthetic_samples(built_dataset, tmp_path):
    ecl = read_cases(built_dataset, "ecliptica")[:4]
    tqa = read_cases(built_dataset, "truthfulqa")[:2]
    out = tmp_path / "lm"
    _write_samples(out, "ecliptica", [_sample(c, f"answer {i}", i) for i, c in enumerate(ecl)])
    _write_samples(out, "ecliptica_truthfulqa", [_sample(c, "I am not sure.", i) for i, c in enumerate(tqa)])
    _write_samples(
        out,
        MC_TASK,
        [{"doc": {"question": "q", "choices": ["a", "b"], "labels": [1, 0]}, "resps": [[[-1.0, False]], [[-2.0, False]]]}],
    )
    run_dir = lmeval.import_lm_eval(out, built_dataset, tmp_path / "runs", model_name="some/model")
    df = pd.read_parquet(run_dir / "generations.parquet")
    assert list(df["case_id"]) == [c["case_id"] for c in ecl + tqa]
    assert list(df["response"]) == [f"answer {i}" for i in range(4)] + ["I am not sure."] * 2
    assert set(df["condition"]) == {"instructed"} and df["finish_reason"].isna().all()
    assert list(df["instruction_type"]) == [c["instruction_type"] for c in ecl + tqa]
    assert df.loc[4, "best_answer"] == tqa[0]["best_answer"] and pd.isna(df.loc[0, "best_answer"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["run_id"] == run_dir.name == df["run_id"].iloc[0]
    assert manifest["model"]["name"] == "some/model" and manifest["lm_eval"]["skipped_samples"] == {MC_TASK: 1}
    assert manifest["warnings"]  # no results file: chat template use unknown, said so
    with RunStore(run_dir) as store:
        gens = store.generations(df["key"].tolist())
    assert [gens[k]["response"] for k in df["key"]] == df["response"].tolist()
    assert all(gens[k]["rendered_prompt"].startswith("<|im_start|>system\n") for k in df["key"])
    # the same samples give the same run id (and replace the run dir)
    assert lmeval.import_lm_eval(out, built_dataset, tmp_path / "runs", model_name="some/model") == run_dir


def test_import_rejects_bad_samples(built_dataset, tmp_path):
    cases = read_cases(built_dataset, "ecliptica")[:2]

    def attempt(name, samples, match, **kw):
        folder = tmp_path / name
        _write_samples(folder, "ecliptica", samples)
        with pytest.raises(EclipticaError, match=match):
            lmeval.import_lm_eval(folder, built_dataset, tmp_path / "runs", model_name="m", **kw)
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())

    attempt("unknown", [_sample({**cases[0], "case_id": "ecliptica/zzz/neutral"}, "r")], r":1: case .*zzz.* is not in")
    attempt("changed", [_sample({**cases[0], "prompt": "Something else?"}, "r")], "differs from")
    attempt("twice", [_sample(cases[0], "a"), _sample(cases[0], "b")], r":2: case .* appears twice")
    attempt("nocase", [_sample(cases[0], "a"), {"doc": {"x": 1}}], r":2: the document has no case_id")
    attempt("noresp", [{**_sample(cases[0], "a"), "resps": []}], "no string response")
    attempt("badid", [_sample(cases[0], "a")], "run-id", run_id="../escape")
    two = tmp_path / "two"
    _write_samples(two, "ecliptica", [_sample(cases[0], "a")])
    _write_samples(two, "ecliptica", [_sample(cases[1], "b")], date="2026-01-03T03-04-05.678901")
    with pytest.raises(EclipticaError, match="2 lm-eval runs"):
        lmeval.import_lm_eval(two, built_dataset, tmp_path / "runs", model_name="m")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EclipticaError, match="no lm-eval samples"):
        lmeval.import_lm_eval(empty, built_dataset, tmp_path / "runs", model_name="m")
    with pytest.raises(EclipticaError, match="--model-name"):
        lmeval.import_lm_eval(two / f"samples_ecliptica_{DATE}.jsonl", built_dataset, tmp_path / "runs")


def test_cli_export_and_import_errors(built_dataset, tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["export-lm-eval", str(built_dataset), "--out", str(tmp_path / "t"), "--max-new-tokens", "32"])
    assert res.exit_code == 0, res.output
    assert "ecliptica_truthfulqa_mc" in res.output and "--include_path" in res.output
    assert _yaml(tmp_path / "t" / "ecliptica.yaml")["generation_kwargs"]["max_gen_toks"] == 32
    res = runner.invoke(cli, ["export-lm-eval", str(tmp_path), "--out", str(tmp_path / "u")])
    assert res.exit_code == 2 and "not a built ecliptica dataset" in res.output
    res = runner.invoke(
        cli, ["import-lm-eval", str(tmp_path / "t"), "--data", str(built_dataset), "--out", str(tmp_path / "runs")]
    )
    assert res.exit_code == 2 and "no lm-eval samples" in res.output


# ------------------------------------------------------------------------------- real lm-eval runs
@pytest.mark.slow
def test_lm_eval_run_import_score(built_dataset, tasks_dir, embedded_model_dir, tmp_path):
    """simple_evaluate on the embedded model -> samples files -> import -> generations.parquet -> score."""
    out = tmp_path / "lm_eval_out"
    results = evaluate(
        str(embedded_model_dir),
        tasks_dir,
        ["ecliptica"],
        limit=3,
        output_path=out,
        gen_kwargs={"max_gen_toks": 16},
        dtype="float32",
    )
    assert results["n-samples"]["ecliptica"]["effective"] == 3
    assert len(list(out.rglob("samples_ecliptica_*.jsonl"))) == 1 and len(list(out.rglob("results_*.json"))) == 1
    run_dir = lmeval.import_lm_eval(out, built_dataset, tmp_path / "runs")
    df = pd.read_parquet(run_dir / "generations.parquet")
    want = [c["case_id"] for c in read_cases(built_dataset, "ecliptica")[:3]]  # lm-eval --limit: the first docs
    assert list(df["case_id"]) == want
    assert all(isinstance(r, str) and r.strip() for r in df["response"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["prompt_check"] == {**manifest["prompt_check"], "checked": 3, "matched": 3}
    assert manifest["lm_eval"]["apply_chat_template"] is True and manifest["warnings"] == []
    assert manifest["model"]["name"] == str(embedded_model_dir)
    from ecliptica_bench.backends.base import model_fingerprint

    assert manifest["model"]["fingerprint"] == model_fingerprint(embedded_model_dir)
    assert df["prompt_tokens"].gt(10).all()
    with RunStore(run_dir) as store:
        assert store.count_generations() == 3
    try:
        from ecliptica_bench.scoring.score import score_run
    except ImportError:  # the scoring stage is not there yet
        return
    metrics = score_run(run_dir, n_boot=50)
    assert metrics["model_fingerprint"] == manifest["model"]["fingerprint"]
    ins = metrics["suites"]["ecliptica"]["conditions"]["instructed"]
    assert ins["paper"]["n"] >= 1
    assert (run_dir / "scores.parquet").exists()


@pytest.mark.slow
def test_truthfulqa_mc_through_lm_eval(embedded_model_dir):
    r = run_mc(str(embedded_model_dir), limit=5, dtype="float32")  # the first suite with an MC task: truthfulqa
    assert r["n"] == 5
    assert 0.0 <= r["mc1"] <= 1.0 and 0.0 <= r["mc2"] <= 1.0 and 0.0 <= r["mc1_norm"] <= 1.0
    for name in ("mc1", "mc1_norm"):
        assert r[name] * 5 == pytest.approx(round(r[name] * 5))  # a mean of five 0/1 outcomes
    assert 0.0 < r["mc2"] < 1.0
