"""User errors stay one clean line, and `-v` shows the traceback with the library exception they wrap."""

from __future__ import annotations

import subprocess
import sys


def test_verbose_shows_the_wrapped_cause(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "generations.parquet").write_bytes(b"not a parquet file")
    plain = subprocess.run(
        [sys.executable, "-m", "ecliptica_bench.cli", "score", str(run_dir)], capture_output=True, text=True, timeout=300
    )
    assert plain.returncode == 2
    assert "Traceback" not in plain.stderr
    assert plain.stderr.strip().splitlines()[-1].startswith(f"error: {run_dir / 'generations.parquet'}: unreadable parquet")
    verbose = subprocess.run(
        [sys.executable, "-m", "ecliptica_bench.cli", "-v", "score", str(run_dir)], capture_output=True, text=True, timeout=300
    )
    assert verbose.returncode == 2
    assert "ArrowInvalid" in verbose.stderr  # pyarrow's own exception, kept as the cause
    assert "The above exception was the direct cause of the following exception" in verbose.stderr
    # the package's user error (EclipticaError or its subclass ValidationError, rundir's one error) wraps it
    assert "ecliptica_bench.errors." in verbose.stderr and verbose.stderr.strip().splitlines()[-1].startswith("error: ")
