"""Hub I/O: the paper's sources from local copies and (through a loopback fake hub) online, each suite's
conversion through Suite.hub_loader, --from-hub, and push / push --dry-run (hub_publish.py).

Everything that talks HTTP runs `ecliptica` in a subprocess with HF_ENDPOINT pointing at tests/hub_server.py:
huggingface_hub and datasets read HF_ENDPOINT / HF_HUB_OFFLINE once at import, so a subprocess with its own
environment is the only reliable way to flip them for one test.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from huggingface_hub import DatasetCard

from ecliptica_bench import hub_publish
from ecliptica_bench.data import hub
from ecliptica_bench.data.build import PARQUET_NAME, build_dataset, read_cases
from ecliptica_bench.errors import EclipticaError
from ecliptica_bench.suites import SUITES
from ecliptica_bench.suites.base import PUBLISHED_COLUMNS
from ecliptica_bench.suites.litmus import litmus_items

sys.path.insert(0, str(Path(__file__).parent))
from hub_server import FakeHub  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "hub"
TOKEN = "hf_fAkEtOkEn0123456789SECRETvalue"


def cli(*args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "ecliptica_bench.cli", *map(str, args)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def online_env(hub_url: str, tmp_path: Path, token: str | None = TOKEN) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")
    }
    env.update(HF_ENDPOINT=hub_url, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1")
    if token:
        env["HF_TOKEN"] = token
    return env


def load_hub_items(suite: str, data_dir: Path) -> list[dict]:
    """A suite's items from its hub source, the way build-dataset --source hub asks the suite."""
    return SUITES[suite].items("hub", data_dir)


def split_card(text: str) -> tuple[dict, str]:
    """README text -> (YAML header, body), read with huggingface_hub's DatasetCard."""
    card = DatasetCard(text)
    return card.data.to_dict(), card.text


@pytest.fixture
def fake_hub():
    h = FakeHub().start()
    yield h
    h.stop()
    assert not h.unknown, f"the fake hub got requests it does not implement: {h.unknown}"


# ---------------------------------------------------------------------------------------------- sources file


def test_every_suite_has_a_pinned_source():
    sources = hub.load_sources()
    assert set(sources) == set(SUITES)
    for suite, spec in sources.items():
        assert re.fullmatch(r"[0-9a-f]{40}|main", spec["revision"]), suite
        if spec.get("files"):
            assert spec["format"] in ("parquet", "json", "csv")
            for f in spec["files"]:  # the fixtures mirror the documented --data-dir layout
                assert (FIXTURES / suite / f).is_file(), f"fixture missing for {suite}: {f}"


def test_bad_sources_file_is_a_clear_error(tmp_path):
    p = tmp_path / "hub_sources.yaml"
    p.write_text("sources:\n  truthfulqa: {repo: a/b}\n")
    with pytest.raises(EclipticaError, match=r"hub_sources.yaml: source 'truthfulqa': missing 'revision'"):
        hub.load_sources(p)


# ---------------------------------------------------------------------------------------------- items from local copies


def test_truthfulqa_items_keep_answers():
    items = load_hub_items("truthfulqa", FIXTURES)
    raw = pq.read_table(FIXTURES / "truthfulqa/generation/validation-00000-of-00001.parquet").to_pylist()
    assert [it["text"] for it in items] == [r["question"] for r in raw]
    assert [it["source"] for it in items] == [r["category"] for r in raw]
    assert items[0]["correct_answers"] == raw[0]["correct_answers"]
    assert items[0]["incorrect_answers"] == raw[0]["incorrect_answers"]
    assert items[0]["best_answer"] == raw[0]["best_answer"]


def test_conditional_safety_takes_rows_with_exactly_one_safe_response():
    items = load_hub_items("conditional_safety", FIXTURES)
    raw = [
        json.loads(line)
        for m in ("Alpaca-7B", "Alpaca2-7B", "Alpaca3-8B")
        for line in (FIXTURES / f"conditional_safety/data/{m}/test.jsonl").read_text().splitlines()
    ]
    borderline = [r for r in raw if r["is_response_0_safe"] != r["is_response_1_safe"]]
    assert 0 < len(borderline) < len(raw)
    assert [it["text"] for it in items] == [r["prompt"] for r in borderline]
    # the category is the unsafe response's harm category (first by name when several are flagged)
    for it, r in zip(items, borderline):
        unsafe = 1 if r["is_response_0_safe"] else 0
        flagged = sorted(k for k, v in r[f"response_{unsafe}_harm_category"].items() if v)
        assert it["source"] == (flagged[0] if flagged else "unspecified")
    assert items[0]["source"] == "Cybercrime"


def test_length_control_reads_alpaca_eval_json_array():
    items = load_hub_items("length_control", FIXTURES)
    raw = json.loads((FIXTURES / "length_control/alpaca_eval.json").read_text())
    assert [it["text"] for it in items] == [r["instruction"] for r in raw]
    assert [it["source"] for it in items] == [r["dataset"] for r in raw]


def test_ecliptica_hub_items_are_the_published_prompts():
    items = load_hub_items("ecliptica", FIXTURES)
    raw = pq.read_table(FIXTURES / "ecliptica/data/train-00000-of-00001.parquet").to_pylist()
    by_pid = {r["prompt_id"]: (r["prompt"], r["source"]) for r in raw}
    assert [(it["text"], it["source"]) for it in items] == [by_pid[k] for k in sorted(by_pid)]
    assert items[0]["id"] == "hub-0000"


def test_litmus_balanced_seeded_draw(data_copy):
    raw = pq.read_table(FIXTURES / "litmus/data/train-00000-of-00001.parquet").to_pylist()
    cells = collections.Counter((r["axiom"], r["safety_label"]) for r in raw)
    assert len(cells) == 14 and set(cells.values()) == {3}
    everything = load_hub_items("litmus", FIXTURES)  # per_cell 200 > 3: every row
    assert len(everything) == len(raw)

    path = data_copy / "prompts" / "hub_sources.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["sources"]["litmus"]["per_cell"] = 2
    path.write_text(yaml.safe_dump(doc))
    a = load_hub_items("litmus", FIXTURES)
    assert collections.Counter((it["axiom"], it["label"]) for it in a) == {k: 2 for k in cells}
    assert a == load_hub_items("litmus", FIXTURES)  # same seed, same draw
    doc["sources"]["litmus"]["seed"] = 7
    path.write_text(yaml.safe_dump(doc))
    b = load_hub_items("litmus", FIXTURES)
    assert {it["id"] for it in a} != {it["id"] for it in b}  # a different seed draws differently


def test_litmus_maps_axiom_spellings_and_rejects_bad_labels():
    rows = [
        {"input": "q1", "axiom": "Information-Seeking", "safety_label": "Safe"},
        {"input": "q2", "axiom": "well being and peace", "safety_label": "unsafe"},
    ]
    items = litmus_items(rows, "x", per_cell=5)
    assert {(it["axiom"], it["label"]) for it in items} == {("Information Seeking", "safe"), ("Well-being & Peace", "unsafe")}
    with pytest.raises(EclipticaError, match="row 0: safety_label 1 is not 'safe' or 'unsafe'"):
        litmus_items([{"input": "q", "axiom": "Wisdom & Knowledge", "safety_label": 1}], "x")
    with pytest.raises(EclipticaError, match=r"x: missing column\(s\) \['axiom'\]"):
        litmus_items([{"input": "q", "safety_label": "safe"}], "x")


def test_build_dataset_from_local_hub_copies(tmp_path):
    r = cli("build-dataset", "--source", "hub", "--data-dir", FIXTURES, "--out", tmp_path / "ds")
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["source"] == "hub"
    expected = {s: len(load_hub_items(s, FIXTURES)) * len(SUITES[s].instructions().types) for s in SUITES}
    assert {s: v["rows"] for s, v in manifest["suites"].items()} == expected
    assert manifest["inputs"]["hub:truthfulqa"].startswith("truthfulqa/truthful_qa@741b8276")
    assert "truthfulqa/generation/validation-00000-of-00001.parquet" in manifest["inputs"]
    rows = read_cases(tmp_path / "ds", "truthfulqa")
    assert rows[0]["case_id"].startswith("truthfulqa/hub-tqa-") and rows[0]["correct_answers"]
    assert cli("validate", tmp_path / "ds").returncode == 0
    # deterministic: a second build is byte-identical
    build_dataset(tmp_path / "again", source="hub", data_dir=FIXTURES)
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert again["outputs"] == manifest["outputs"]


def test_missing_local_copy_names_the_file(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(FIXTURES, data)
    (data / "truthfulqa/generation/validation-00000-of-00001.parquet").unlink()
    r = cli("build-dataset", "--source", "hub", "--suites", "truthfulqa", "--data-dir", data, "--out", tmp_path / "ds")
    assert r.returncode == 2
    assert "truthfulqa/generation/validation-00000-of-00001.parquet: missing local copy of truthfulqa/truthful_qa" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "ds").exists()


def test_unreadable_local_copy_is_a_clear_error(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(FIXTURES, data)
    (data / "length_control/alpaca_eval.json").write_text('[{"instruction": ')
    with pytest.raises(EclipticaError, match="length_control: cannot read json files for length_control"):
        load_hub_items("length_control", data)


# ---------------------------------------------------------------------------------------------- offline: fail fast


@pytest.mark.parametrize(
    "args",
    [
        ["build-dataset", "--source", "hub", "--out", "{tmp}/a"],
        ["build-dataset", "--from-hub", "anonymousML123/ECLIPTICA-3k", "--out", "{tmp}/b"],
    ],
)
def test_offline_hub_fails_fast_with_one_line(tmp_path, args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t = time.monotonic()
    r = cli(*[a.format(tmp=tmp_path) for a in args], env=env)
    assert r.returncode == 2
    assert time.monotonic() - t < 15  # process start included; a hub retry loop alone takes ~23 s
    assert r.stderr.strip().count("\n") == 0 and "HF_HUB_OFFLINE" in r.stderr, r.stderr


def test_unreachable_hub_fails_fast(tmp_path):
    # a port nothing listens on: connection refused at once
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = online_env(f"http://127.0.0.1:{port}", tmp_path)
    r = cli("build-dataset", "--source", "hub", "--suites", "truthfulqa", "--out", tmp_path / "ds", env=env)
    assert r.returncode == 2
    assert "cannot reach the Hugging Face Hub at http://127.0.0.1" in r.stderr and "ConnectError" in r.stderr
    built = tmp_path / "built"
    build_dataset(built, suites="litmus", source="hub", data_dir=FIXTURES)
    r = cli("push", built, "--repo-id", "a/b", env=env)
    assert r.returncode == 2 and "push a/b: cannot reach the Hugging Face Hub" in r.stderr, r.stderr
    assert TOKEN not in r.stdout + r.stderr


# ---------------------------------------------------------------------------------------------- online via the fake hub


def _serve_sources(fake_hub: FakeHub) -> None:
    """Each pinned source repo at its pinned revision, with the fixture files at their repo paths."""
    for suite, spec in hub.load_sources().items():
        sha = spec["revision"] if re.fullmatch(r"[0-9a-f]{40}", spec["revision"]) else None
        fake_hub.create_from_dir(spec["repo"], FIXTURES / suite, sha=sha)


def test_build_from_hub_sources_online(fake_hub, tmp_path):
    _serve_sources(fake_hub)
    env = online_env(fake_hub.url, tmp_path, token=None)
    r = cli("build-dataset", "--source", "hub", "--out", tmp_path / "online", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    local = build_dataset(tmp_path / "local", source="hub", data_dir=FIXTURES)
    online = json.loads((tmp_path / "online" / "manifest.json").read_text())
    # the same rows whether read from the hub or from local copies of the same files
    assert online["outputs"] == local["outputs"]
    fetched = {p for m, p in fake_hub.log if m == "GET" and "/resolve/" in p}
    assert any("truthfulqa/truthful_qa/resolve/741b8276f2d1982aa3d5b832d3ee81ed3b896490/generation/" in p for p in fetched)


def test_from_hub_published_set_online_and_local(fake_hub, tmp_path):
    fake_hub.create_from_dir("anonymousML123/ECLIPTICA-3k", FIXTURES / "ecliptica")
    r = cli(
        "build-dataset",
        "--from-hub",
        "anonymousML123/ECLIPTICA-3k",
        "--out",
        tmp_path / "online",
        env=online_env(fake_hub.url, tmp_path, token=None),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    online = read_cases(tmp_path / "online", "ecliptica")
    published = pq.read_table(FIXTURES / "ecliptica/data/train-00000-of-00001.parquet").to_pylist()
    assert len(online) == len(published)
    key = lambda r: (r["prompt_id"], r["instruction_type"])  # noqa: E731
    for ours, pub in zip(sorted(online, key=key), sorted(published, key=key)):
        assert {c: ours[c] for c in PUBLISHED_COLUMNS} == pub  # published values verbatim
        assert ours["case_id"] == f"ecliptica/hub-{pub['prompt_id']:04d}/{pub['instruction_type']}"
    neutral = {r["instruction"]: r["variant_index"] for r in online if r["instruction_type"] == "neutral"}
    assert sorted(neutral.values()) == [0, 1]  # two distinct published phrasings -> indices 0, 1
    assert {r["axis"] for r in online if r["instruction_type"] == "liberal"} == {"stance"}
    manifest = json.loads((tmp_path / "online" / "manifest.json").read_text())
    assert manifest["source"].startswith("hub:anonymousML123/ECLIPTICA-3k@")
    # a local copy of the repo folder gives the same rows
    local = hub_publish.build_from_hub(str(FIXTURES / "ecliptica"), tmp_path / "local", formats="parquet")
    assert read_cases(tmp_path / "local", "ecliptica") == online
    assert local["suites"]["ecliptica"]["rows"] == len(published)


def test_published_rows_need_the_published_columns():
    with pytest.raises(EclipticaError, match=r"x: missing column\(s\) \['instruction'"):
        SUITES["ecliptica"].published_rows([{"prompt_id": 0, "prompt": "p", "instruction_type": "neutral"}], "x")
    row = {
        "prompt_id": 0,
        "prompt": "p",
        "instruction_type": "neutral",
        "instruction": "i",
        "expected_characteristics": ["a"],
        "source": "s",
    }
    with pytest.raises(EclipticaError, match="prompt_id 0 has instruction_type 'neutral' twice"):
        SUITES["ecliptica"].published_rows([row, dict(row)], "x")


# ---------------------------------------------------------------------------------------------- card merge


def test_merge_card_keeps_push_to_hub_configs_and_infos():
    hub_readme = (
        "---\ndataset_info:\n- config_name: ecliptica\n  splits:\n  - name: train\n    num_examples: 3\n"
        "configs:\n- config_name: ecliptica\n  data_files:\n  - split: train\n    path: ecliptica/train-*\n"
        "- config_name: litmus\n  default: true\n  data_files:\n  - split: train\n    path: litmus/train-*\n"
        "---\n"
    )
    ours = (
        "---\nlicense: apache-2.0\npretty_name: X\nconfigs:\n- config_name: ecliptica\n  data_files:\n"
        "  - split: train\n    path: ecliptica/*.parquet\n---\n\n# Body\n"
    )
    card = hub_publish.merge_card(DatasetCard(hub_readme), DatasetCard(ours), default="ecliptica")
    meta, body = split_card(str(card))
    assert body == "\n# Body\n"
    assert meta["license"] == "apache-2.0" and meta["pretty_name"] == "X"
    assert meta["dataset_info"] == yaml.safe_load(hub_readme.strip("-\n"))["dataset_info"]
    assert [c["data_files"][0]["path"] for c in meta["configs"]] == ["ecliptica/train-*", "litmus/train-*"]
    assert [c.get("default", False) for c in meta["configs"]] == [True, False]


# ---------------------------------------------------------------------------------------------- push


@pytest.fixture(scope="module")
def small_built(tmp_path_factory):
    """A small but complete built dataset: all five suites from the hub fixtures."""
    out = tmp_path_factory.mktemp("push") / "ds"
    build_dataset(out, source="hub", data_dir=FIXTURES)
    return out


def _all_text_under(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_push_to_fake_hub_round_trips(fake_hub, small_built, tmp_path):
    env = online_env(fake_hub.url, tmp_path)
    r = cli("push", small_built, "--repo-id", "tester/ecliptica-bench", "--private", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert fake_hub.repos["dataset/tester/ecliptica-bench"].private
    assert r.stdout.startswith(f"pushed 5 configs ({sum(len(read_cases(small_built, s)) for s in SUITES)} rows)")
    files = fake_hub.files("tester/ecliptica-bench")
    manifest = json.loads((small_built / "manifest.json").read_text())
    for suite in manifest["suites"]:
        uploaded = tmp_path / f"{suite}.parquet"
        uploaded.write_bytes(files[f"{suite}/{PARQUET_NAME}"])
        assert pq.read_table(uploaded).to_pylist() == pq.read_table(small_built / suite / PARQUET_NAME).to_pylist()
    assert json.loads(files["manifest.json"]) == manifest
    meta, body = split_card(files["README.md"].decode())
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert set(configs) == set(manifest["suites"])
    assert all(c["data_files"] == [{"split": "train", "path": f"{n}/train-*"}] for n, c in configs.items())
    assert [n for n, c in configs.items() if c.get("default")] == ["ecliptica"]
    infos = {i["config_name"]: i for i in meta["dataset_info"]}  # push_to_hub's, kept by the card update
    assert {n: i["splits"][0]["num_examples"] for n, i in infos.items()} == {n: s["rows"] for n, s in manifest["suites"].items()}
    assert meta["license"] == "apache-2.0" and "alignment" in meta["tags"]
    assert "# ECLIPTICA benchmark suites" in body and 'load_dataset("tester/ecliptica-bench"' in body
    # the token went to the hub, and nowhere else
    assert f"Bearer {TOKEN}" in fake_hub.auth_headers
    assert TOKEN not in r.stdout + r.stderr
    assert TOKEN.encode() not in _all_text_under(tmp_path) + _all_text_under(small_built)
    # and the pushed repo loads with datasets, config by config
    code = (
        "import datasets, json; print(json.dumps({n: datasets.load_dataset('tester/ecliptica-bench', n, split='train')"
        ".num_rows for n in %r}))" % sorted(configs)
    )
    r2 = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert json.loads(r2.stdout.strip().splitlines()[-1]) == {n: s["rows"] for n, s in manifest["suites"].items()}

    # --dry-run writes exactly what the hub now holds: same parquet bytes, same card
    dry = tmp_path / "dry"
    r3 = cli("push", small_built, "--repo-id", "tester/ecliptica-bench", "--dry-run", dry)
    assert r3.returncode == 0, r3.stderr
    local = {p.relative_to(dry).as_posix(): p.read_bytes() for p in dry.rglob("*") if p.is_file()}
    assert set(local) == set(files) - {".gitattributes"}
    for path, data in local.items():
        if path != "README.md":
            assert data == files[path], path
    assert split_card(local["README.md"].decode()) == split_card(files["README.md"].decode())

    # pushing again updates in place (the configs are ours)
    r4 = cli("push", small_built, "--repo-id", "tester/ecliptica-bench", env=env)
    assert r4.returncode == 0, r4.stderr[-3000:]
    assert split_card(fake_hub.files("tester/ecliptica-bench")["README.md"].decode())[0]["configs"] == meta["configs"]


def test_push_without_token_is_a_clear_error(fake_hub, small_built, tmp_path):
    r = cli("push", small_built, "--repo-id", "tester/x", env=online_env(fake_hub.url, tmp_path, token=None))
    assert r.returncode == 2
    assert r.stderr.strip() == "error: push: no Hugging Face token; set HF_TOKEN or log in with `hf auth login`"
    assert "dataset/tester/x" not in fake_hub.repos


def test_push_offline_is_a_clear_error(small_built, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_TOKEN": TOKEN}
    r = cli("push", small_built, "--repo-id", "tester/x", env=env)
    assert r.returncode == 2 and "HF_HUB_OFFLINE" in r.stderr and "--dry-run" in r.stderr
    assert TOKEN not in r.stdout + r.stderr


def test_push_refuses_a_repo_with_other_configs(fake_hub, small_built, tmp_path):
    readme = b"---\nconfigs:\n- config_name: other\n  data_files:\n  - split: train\n    path: other/*.parquet\n---\n"
    fake_hub.create("tester/taken", {"README.md": readme, "other/a.parquet": b"PAR1"})
    before = list(fake_hub.repos["dataset/tester/taken"].history)
    r = cli("push", small_built, "--repo-id", "tester/taken", env=online_env(fake_hub.url, tmp_path))
    assert r.returncode == 2
    assert "not ECLIPTICA suites" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert fake_hub.repos["dataset/tester/taken"].history == before  # nothing was committed


def test_push_validates_the_dataset_first(small_built, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(small_built, bad)
    target = bad / "litmus" / PARQUET_NAME
    target.write_bytes(target.read_bytes()[:100])
    r = cli("push", bad, "--repo-id", "tester/x", "--dry-run", tmp_path / "dry")
    assert r.returncode == 2 and str(target) in r.stderr
    assert not (tmp_path / "dry").exists()


def test_dry_run_layout_loads_with_datasets(small_built, tmp_path):
    import datasets

    dry = tmp_path / "dry"
    msg = hub_publish.push_dataset(small_built, "tester/ecliptica-bench", dry_run=dry)
    assert msg.startswith("dry run: wrote the repo layout of tester/ecliptica-bench")
    manifest = json.loads((small_built / "manifest.json").read_text())
    assert {p.relative_to(dry).as_posix() for p in dry.rglob("*") if p.is_file()} == {
        "README.md",
        "manifest.json",
        *(f"{s}/{PARQUET_NAME}" for s in manifest["suites"]),
    }
    for suite in manifest["suites"]:
        ds = datasets.load_dataset(str(dry), name=suite, split="train", cache_dir=str(tmp_path / "cache"))
        assert ds.column_names == SUITES[suite].columns
        assert ds.to_list() == read_cases(small_built, suite)
    default = datasets.load_dataset(str(dry), split="train", cache_dir=str(tmp_path / "cache"))
    assert default.num_rows == manifest["suites"]["ecliptica"]["rows"]
