"""rundir.py: the typed, versioned run directory. Round trip through the one writer and reader, directories
written before schema versions (version 0) still load, a newer schema_version or a missing key is one clear
error (exit 2 through the CLI), and `ecliptica run` and `ecliptica import-lm-eval` write the same manifest keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_lmeval import _sample, _write_samples
from test_run import fake, opts  # noqa: F401  (fake: a fixture)
from test_score import cases, write_run

from ecliptica_bench import lmeval
from ecliptica_bench.cli import cli
from ecliptica_bench.data.build import read_cases
from ecliptica_bench.errors import EclipticaError
from ecliptica_bench.run import run
from ecliptica_bench.rundir import (
    GENERATION_COLUMNS,
    METRICS,
    RUN_SCHEMA_VERSION,
    Manifest,
    ModelRef,
    parquet_columns,
    read_manifest,
    read_metrics,
    read_run,
    write_generations,
    write_manifest,
    write_metrics,
)


def _rows(run_id: str, n_prompts: int = 2) -> list[dict]:
    out = []
    for c in cases("truthfulqa", n_prompts):
        for cond in ("instructed", "uninstructed"):
            out.append(
                {
                    **{k: c.get(k) for k in parquet_columns()},
                    "run_id": run_id,
                    "condition": cond,
                    "response": f"answer to {c['case_id']} ({cond})",
                    "finish_reason": "stop",
                    "prompt_tokens": 5,
                    "completion_tokens": 4,
                    "latency_s": 0.1,
                    "key": f"{c['case_id']}/{cond}",
                }
            )
    return out


def _manifest(run_id: str = "r1", **kw) -> Manifest:
    fields = dict(
        run_id=run_id,
        source="ecliptica run",
        status="complete",
        model=ModelRef("tiny", "/models/tiny", "fp-1"),
        adapter="/adapters/a",
        dataset_sha256="ds-1",
        dataset={"source": "bundled", "sha256": "ds-1"},
        seeds={"sampling": 7, "dataset": 42},
        config={"params": {"truthfulqa": {"max_new_tokens": 64}}, "seed": 7},
        details={"cli_args": ["run", "--seed", "7"]},
    )
    return Manifest(**{**fields, **kw})


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# ------------------------------------------------------------------------------------------ round trip
def test_round_trip(tmp_path):
    rows = _rows("r1")
    man = _manifest()
    man.outputs = {"generations.parquet": write_generations(tmp_path, rows)}
    write_manifest(tmp_path, man)
    written = write_metrics(tmp_path, {"run_id": "r1", "suites": {}, "schema_version": 0})
    assert written["schema_version"] == RUN_SCHEMA_VERSION  # the writer stamps the current version

    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["schema_version"] == RUN_SCHEMA_VERSION and on_disk["cli_args"] == ["run", "--seed", "7"]
    assert on_disk["model"] == {"name": "tiny", "path": "/models/tiny", "fingerprint": "fp-1"}
    assert on_disk["adapter"] == {"path": "/adapters/a"}

    r = read_run(tmp_path)
    assert r.manifest == man  # every typed field and the details come back as written
    assert r.manifest.sampling_seed == 7
    assert r.metrics == written
    df = r.generations
    assert list(df.columns) == parquet_columns() and list(df.columns[: len(GENERATION_COLUMNS)]) == GENERATION_COLUMNS
    assert df["response"].tolist() == [x["response"] for x in rows]
    # metrics are optional unless asked for; generations are skipped when not wanted
    (tmp_path / METRICS).unlink()
    assert read_run(tmp_path).metrics is None
    assert read_run(tmp_path, generations=False).generations is None
    with pytest.raises(EclipticaError, match=r"no metrics.json \(run `ecliptica score"):
        read_run(tmp_path, metrics=True)


def test_details_cannot_shadow_core_keys(tmp_path):
    with pytest.raises(ValueError, match="core keys"):
        write_manifest(tmp_path, _manifest(details={"run_id": "other"}))


# ------------------------------------------------------------------------------------------ version 0
V0_RUN = {  # `ecliptica run` before schema versions
    "run_id": "old-run",
    "status": "complete",
    "config": {"model_fingerprint": "fp-old", "seed": 3, "params": {"truthfulqa": {"max_new_tokens": 32}}},
    "config_sha256": "c" * 64,
    "seeds": {"sampling": 3, "dataset": 42},
    "dataset": {"source": "bundled", "sha256": "ds-old"},
    "dataset_sha256": "ds-old",
    "model": {"name": "smol", "path": "/m/smol", "fingerprint": "fp-old"},
    "adapter": None,
    "outputs": {"generations.parquet": "0" * 64},
}
V0_LMEVAL = {  # `ecliptica import-lm-eval` before schema versions: flat model name and fingerprint
    "run_id": "old-lm",
    "status": "complete",
    "source": "lm-eval",
    "backend": {"backend": "lm-eval"},
    "model": "org/model",
    "model_fingerprint": "fp-lm",
    "adapter": None,
    "dataset_sha": "ds-lm",
    "conditions": ["instructed"],
    "lm_eval": {"version": "0.4"},
}
V0_MINIMAL = {"run_id": "tiny", "model": {"fingerprint": "fp-t"}, "dataset": {"sha256": "ds-t"}, "config": {"seed": 5}}
V0_LIKELIHOOD = {"run_id": "lik", "kind": "likelihood-only", "model": {"name": "m", "path": "/m", "fingerprint": "fp"}}


@pytest.mark.parametrize(
    "old, want",
    [
        (V0_RUN, ("ecliptica run", "smol", "fp-old", "ds-old", 3)),
        (V0_LMEVAL, ("lm-eval", "org/model", "fp-lm", "ds-lm", None)),
        (V0_MINIMAL, ("ecliptica run", None, "fp-t", "ds-t", 5)),
        (V0_LIKELIHOOD, ("likelihood", "m", "fp", None, None)),
    ],
)
def test_version_0_loads_upgraded_in_memory(tmp_path, old, want):
    (tmp_path / "manifest.json").write_text(json.dumps(old))
    m = read_manifest(tmp_path)
    assert m.schema_version == 0
    assert (m.source, m.model.name, m.model.fingerprint, m.dataset_sha256, m.sampling_seed) == want
    assert m.run_id == old["run_id"]
    # the old spellings were folded into the typed fields, the writer's other keys kept as details
    assert not {"model_fingerprint", "dataset_sha", "kind"} & set(m.details)
    if old is V0_LMEVAL:
        assert m.details["lm_eval"] == {"version": "0.4"} and m.details["conditions"] == ["instructed"]
    # written back, it is a version-1 manifest that reads the same
    write_manifest(tmp_path, m)
    again = read_manifest(tmp_path)
    assert again.schema_version == RUN_SCHEMA_VERSION
    assert (again.source, again.model, again.dataset_sha256, again.seeds, again.details) == (
        m.source,
        m.model,
        m.dataset_sha256,
        m.seeds,
        m.details,
    )


def test_version_0_run_dir_scores(tmp_path):
    """A run directory written before schema versions (test_score's writer: no schema_version) scores, and
    metrics.json carries the run's identity from the upgraded manifest."""
    rows = [{**c, "condition": "instructed", "response": "I am not sure."} for c in cases("truthfulqa", 2)]
    run_dir = write_run(tmp_path / "old", rows)
    assert "schema_version" not in json.loads((run_dir / "manifest.json").read_text())
    res = _cli("score", run_dir, "--bootstrap", "0")
    assert res.exit_code == 0, res.output
    m = read_metrics(run_dir)
    assert m["schema_version"] == RUN_SCHEMA_VERSION
    assert (m["run_id"], m["model"], m["model_fingerprint"], m["dataset_sha"]) == ("old", "fake-model", "fp-123", "ds-sha")


# ------------------------------------------------------------------------------------------ clear errors
def _scorable(tmp_path, manifest: dict) -> Path:
    rows = [{**c, "condition": "instructed", "response": "x"} for c in cases("truthfulqa", 1)]
    run_dir = write_run(tmp_path / "run", rows)
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


def test_future_schema_version_is_one_clear_error(tmp_path):
    run_dir = _scorable(tmp_path, {**_manifest().to_json(), "schema_version": RUN_SCHEMA_VERSION + 1})
    with pytest.raises(EclipticaError, match=r"manifest.json: schema_version: version 2 is newer"):
        read_manifest(run_dir)
    res = _cli("score", run_dir, "--bootstrap", "0")
    assert res.exit_code == 2, res.output
    line = res.output.strip().splitlines()[-1]
    assert line.startswith(f"error: {run_dir / 'manifest.json'}: schema_version: ")
    assert "upgrade ecliptica_bench" in line and "re-run `ecliptica run`" in line and "import-lm-eval" in line
    assert not (run_dir / "metrics.json").exists()
    # metrics.json too: the leaderboard refuses a newer one
    scored = _scorable(tmp_path / "b", _manifest().to_json())
    (scored / "metrics.json").write_text(json.dumps({"schema_version": 99, "suites": {}}))
    res = _cli("leaderboard", scored, "-o", tmp_path / "lb.csv")
    assert res.exit_code == 2 and "metrics.json: schema_version: version 99 is newer" in res.output
    assert "re-run `ecliptica score" in res.output


@pytest.mark.parametrize(
    "drop, version",
    [("run_id", 1), ("model", 1), ("source", 1), ("status", 1), ("run_id", 0), ("model", 0)],
)
def test_missing_required_key_is_one_clear_error(tmp_path, drop, version):
    data = _manifest().to_json() if version else dict(V0_RUN)
    del data[drop]
    run_dir = _scorable(tmp_path, data)
    with pytest.raises(EclipticaError, match=rf"manifest.json: {drop}: missing \(schema version {version}\)"):
        read_manifest(run_dir)
    res = _cli("score", run_dir, "--bootstrap", "0")
    assert res.exit_code == 2, res.output
    assert f"manifest.json: {drop}: missing" in res.output and "re-run `ecliptica run`" in res.output


@pytest.mark.parametrize(
    "patch, key",
    [
        ({"schema_version": "1"}, "schema_version"),
        ({"source": "somebody"}, "source"),
        ({"model": "just-a-name"}, "model"),
        ({"run_id": 3}, "run_id"),
        ({"seeds": [1]}, "seeds"),
    ],
)
def test_wrong_types_name_the_key(tmp_path, patch, key):
    run_dir = _scorable(tmp_path, {**_manifest().to_json(), **patch})
    with pytest.raises(EclipticaError, match=rf"manifest.json: {key}: "):
        read_manifest(run_dir)


def test_missing_manifest_and_bad_json(tmp_path):
    run_dir = _scorable(tmp_path, {})
    (run_dir / "manifest.json").unlink()
    res = _cli("score", run_dir, "--bootstrap", "0")
    assert res.exit_code == 2 and "manifest.json: not found" in res.output
    (run_dir / "manifest.json").write_text("{nope")
    res = _cli("score", run_dir, "--bootstrap", "0")
    assert res.exit_code == 2 and "manifest.json: not valid JSON" in res.output


# ------------------------------------------------------------------------------------------ both writers
def test_run_and_import_write_the_same_manifest_keys(tmp_path, fake, built_dataset):  # noqa: F811
    fake()
    s = run(opts(tmp_path, suites="truthfulqa", limit=2, condition="instructed"))
    ran = json.loads((Path(s["run_dir"]) / "manifest.json").read_text())

    ecl = read_cases(built_dataset, "truthfulqa")[:2]
    out = tmp_path / "lm"
    _write_samples(out, "ecliptica_truthfulqa", [_sample(c, f"answer {i}", i) for i, c in enumerate(ecl)])
    imported_dir = lmeval.import_lm_eval(out, built_dataset, tmp_path / "runs-lm", model_name="some/model")
    imported = json.loads((imported_dir / "manifest.json").read_text())

    core = set(Manifest.__dataclass_fields__) - {"details"}
    assert core <= set(ran) and core <= set(imported)
    details_ran = set(ran) - core
    details_imported = set(imported) - core
    assert {"cli_args", "config_sha256", "versions", "device"} <= details_ran
    assert {"lm_eval", "prompt_check"} <= details_imported
    for m, source in ((ran, "ecliptica run"), (imported, "lm-eval")):
        assert m["schema_version"] == RUN_SCHEMA_VERSION and m["source"] == source
        assert set(m["model"]) == {"name", "path", "fingerprint"} and m["model"]["fingerprint"]
        assert m["dataset_sha256"] and m["status"] == "complete" and m["outputs"]["generations.parquet"]
    # and both read back through the one reader
    for d in (Path(s["run_dir"]), imported_dir):
        r = read_run(d)
        assert r.manifest.schema_version == RUN_SCHEMA_VERSION and len(r.generations) == 2
