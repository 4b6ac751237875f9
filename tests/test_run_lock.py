"""One writer per run directory: a second `ecliptica run` / `score` on a locked run dir exits 2 naming the
holder, `--wait` waits for it and then proceeds, and a lock whose holder was killed (-9) blocks nobody."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

from ecliptica_bench.errors import EclipticaError
from ecliptica_bench.lock import lock_paths, run_dir_lock

HOLD = """
import sys
from pathlib import Path
from ecliptica_bench.lock import run_dir_lock
with run_dir_lock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def server():
    with FakeOpenAI(model="served") as srv:
        yield srv


def hold(run_dir: Path) -> subprocess.Popen:
    """Another process holding RUN_DIR's lock until its stdin is closed."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "ecliptica_bench.cli", *map(str, args)]


def run_args(runs: Path, server, *extra) -> list[str]:
    return cli(
        "run",
        "--backend",
        "openai",
        "--model",
        "served",
        "--base-url",
        server.url,
        "--suites",
        "ecliptica",
        "--limit",
        "2",
        "--max-new-tokens",
        "8",
        "--temperature",
        "0",
        "--out",
        runs,
        "--run-id",
        "r",
        *extra,
    )


def test_a_second_writer_exits_2_naming_the_holder(tmp_path, server):
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    holder = hold(run_dir)
    try:
        owner = json.loads(lock_paths(run_dir)[1].read_text())
        assert owner["pid"] == holder.pid and owner["host"] == socket.gethostname()
        for args in (run_args(tmp_path / "runs", server), cli("score", run_dir, "--bootstrap", "0")):
            res = subprocess.run(args, capture_output=True, text=True, timeout=300)
            assert res.returncode == 2, res.stderr
            assert f"{run_dir}: a run is in progress" in res.stderr
            assert f"pid {holder.pid} on {socket.gethostname()} since {owner['started_at']}" in res.stderr
            assert "Traceback" not in res.stderr
        assert server.requests == []  # the refused run generated nothing
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock", ".lock.owner.json"]
        with pytest.raises(EclipticaError, match="in progress"):  # also within one process
            with run_dir_lock(run_dir):
                pass
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert not lock_paths(run_dir)[1].exists()  # the owner record goes with the lock


def test_wait_waits_for_the_holder_then_runs(tmp_path, server):
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    holder = hold(run_dir)
    proc = subprocess.Popen(
        run_args(tmp_path / "runs", server, "--wait"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for line in proc.stderr:
            if "waiting for the lock held by" in line:
                assert f"pid {holder.pid}" in line
                break
        else:
            pytest.fail(f"the run did not wait: rc {proc.wait()}")
        assert server.requests == [] and not (run_dir / "generations.parquet").exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert (run_dir / "generations.parquet").exists() and len(server.requests) > 0


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path, server):
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    holder = hold(run_dir)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    lock_file, owner_file = lock_paths(run_dir)
    assert lock_file.exists() and owner_file.exists()  # left behind, stale
    res = subprocess.run(run_args(tmp_path / "runs", server), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert (run_dir / "generations.parquet").exists()
    with run_dir_lock(run_dir):  # and free again afterwards
        assert json.loads(owner_file.read_text())["pid"] != holder.pid


def test_import_lm_eval_takes_the_same_lock_and_keeps_it_across_the_swap(built_dataset, tmp_path):
    from test_lmeval import _sample, _write_samples

    from ecliptica_bench import lmeval
    from ecliptica_bench.data.build import read_cases

    samples = tmp_path / "lm"
    _write_samples(
        samples, "ecliptica", [_sample(c, f"answer {i}", i) for i, c in enumerate(read_cases(built_dataset, "ecliptica")[:2])]
    )
    run_dir = lmeval.import_lm_eval(samples, built_dataset, tmp_path / "runs", model_name="m", run_id="r")
    holder = hold(run_dir)
    try:
        with pytest.raises(EclipticaError, match=f"a run is in progress, lock held by pid {holder.pid}"):
            lmeval.import_lm_eval(samples, built_dataset, tmp_path / "runs", model_name="m", run_id="r")
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    inode = (run_dir / ".lock").stat().st_ino
    before = (run_dir / "manifest.json").stat().st_ino
    lmeval.import_lm_eval(samples, built_dataset, tmp_path / "runs", model_name="m", run_id="r")
    assert (run_dir / "manifest.json").stat().st_ino != before  # a new directory was swapped in ...
    assert (run_dir / ".lock").stat().st_ino == inode  # ... carrying the very lock file
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["r"]
