"""The control condition and per-request seeds (issue 12.1), and --dtype in the cache key (issue 11).

Under sampling every case, the uninstructed control's too, is its own request with its own seed derived
from the case; under greedy decoding one generation per distinct prompt is shared. A case's sample is a
function of the model, its prompt, the params and its seed only: not of the batch size or of a resume.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fake_openai import FakeOpenAI

from ecliptica_bench.errors import EclipticaError
from ecliptica_bench.run import RunOptions, run
from ecliptica_bench.store import request_seed


def echo_seed(body: dict, n: int):
    """Answers with the request's seed, so the rows show which draw they got."""
    return 200, {}, f"sample with seed {body.get('seed')} for {body['messages'][-1]['content']}"


def _opts(tmp_path, url, **kw):
    base = dict(
        backend="openai",
        model="fake-model",
        base_url=url,
        suites="ecliptica",
        limit=20,
        condition="uninstructed",
        temperature=0.7,
        max_new_tokens=16,
        out=tmp_path / "runs",
        progress=False,
    )
    return RunOptions(**{**base, **kw})


def test_request_seed_rule():
    # greedy: the run seed itself (identical prompts share a key)
    assert request_seed(42, "ecliptica/x/neutral", greedy=True) == 42
    a, b = request_seed(42, "ecliptica/x/neutral", False), request_seed(42, "ecliptica/x/concise", False)
    assert a != b and a == request_seed(42, "ecliptica/x/neutral", False)  # distinct per case, reproducible
    assert request_seed(43, "ecliptica/x/neutral", False) != a  # and it follows the run seed
    assert 0 <= a < 2**31 - 1


def test_sampled_control_is_one_request_per_case_with_distinct_seeds(tmp_path):
    srv = FakeOpenAI(behaviour=echo_seed)
    try:
        s = run(_opts(tmp_path, srv.url))
        # 2 prompts x 10 types, uninstructed: 20 requests, not 2
        assert s["rows"] == 20 and s["generated"] == 20 and len(srv.requests) == 20
        seeds = [r["seed"] for r in srv.requests]
        assert len(set(seeds)) == 20
        ctl = s["suites"]["ecliptica"]["control"]
        assert ctl == {"rows": 20, "generations": 20, "shared": 0, "why": "sampling: every control case is its own seeded sample"}
        df = pq.read_table(Path(s["run_dir"]) / "generations.parquet").to_pandas()
        assert df.groupby("prompt_id").response.nunique().tolist() == [10, 10]
        # the rows record the seed each case was drawn with
        want = {request_seed(42, c, False) for c in df.case_id}
        assert set(seeds) == want
        again = run(_opts(tmp_path, srv.url))
        assert again["generated"] == 0 and len(srv.requests) == 20 and again["run_id"] == s["run_id"]
    finally:
        srv.stop()


def test_greedy_control_shares_one_generation_per_prompt_and_says_why(tmp_path):
    srv = FakeOpenAI(behaviour=echo_seed)
    try:
        s = run(_opts(tmp_path, srv.url, temperature=0.0))
        assert s["generated"] == 2 and len(srv.requests) == 2
        assert {r["seed"] for r in srv.requests} == {42}
        ctl = s["suites"]["ecliptica"]["control"]
        assert (ctl["rows"], ctl["generations"], ctl["shared"]) == (20, 2, 18) and ctl["why"].startswith("greedy")
        from ecliptica_bench.run import format_summary

        assert "control: 20 rows share 2 generations" in format_summary(s)
    finally:
        srv.stop()


def test_sampled_uninstructed_shift_is_not_zero(tmp_path, monkeypatch):
    """The control's ECLIPTICA shift measures sampling diversity: with distinct samples it is > 0."""
    from ecliptica_bench.measures import paper

    srv = FakeOpenAI(behaviour=echo_seed)
    try:
        s = run(_opts(tmp_path, srv.url))
    finally:
        srv.stop()
    df = pq.read_table(Path(s["run_dir"]) / "generations.parquet").to_pandas()
    import numpy as np

    # a toy embedding that differs whenever the text differs: shift > 0 iff the samples differ
    emb = np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in df.response])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    shifts, _ = paper.prompt_shift(df.prompt_id.tolist(), emb)
    assert min(shifts.values()) > 0.1


def test_dtype_is_refused_for_openai(tmp_path):
    with pytest.raises(EclipticaError, match="--dtype"):
        run(_opts(tmp_path, "http://127.0.0.1:9/v1", dtype="float32"))


def test_dtype_is_part_of_the_key(tmp_path):
    from ecliptica_bench.backends import SamplingParams
    from ecliptica_bench.run import load_cases, plan
    from ecliptica_bench.suites import parse_suites

    class Tok:
        chat_template = "x"

        def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
            return "|".join(m["content"] for m in messages)

    class B:
        tokenizer = Tok()
        fingerprint = "fp"

        def __init__(self, dtype):
            self.resolved_dtype = dtype

    cases = load_cases(parse_suites("litmus"), None, 2)
    params = {"litmus": SamplingParams(temperature=0.0, max_new_tokens=8)}
    k32 = [p.key for p in plan(B("float32"), cases, ["instructed"], params)["litmus"]]
    k16 = [p.key for p in plan(B("bfloat16"), cases, ["instructed"], params)["litmus"]]
    assert len(set(k32)) == 2 and not set(k32) & set(k16)


@pytest.mark.slow
def test_hf_sampling_ignores_batch_size_and_resume(tmp_path, embedded_model_dir):
    """The same sampled run at batch size 32 and at batch size 4 after a run stopped half-way gives
    identical text for every case."""
    common = dict(
        backend="hf",
        suites="ecliptica",
        condition="both",
        temperature=0.7,
        top_p=0.9,
        max_new_tokens=10,
        out=tmp_path / "runs",
        progress=False,
    )
    whole = run(RunOptions(**common, limit=10, batch_size=32, run_id="whole"))
    half = run(RunOptions(**common, limit=5, batch_size=4, run_id="resumed"))  # stopped half-way
    resumed = run(RunOptions(**common, limit=10, batch_size=4, run_id="resumed"))
    assert half["generated"] == 10 and resumed["generated"] == 10 and resumed["cached"] == 10
    a = pq.read_table(Path(whole["run_dir"]) / "generations.parquet").to_pandas().set_index(["case_id", "condition"])
    b = pq.read_table(Path(resumed["run_dir"]) / "generations.parquet").to_pandas().set_index(["case_id", "condition"])
    assert len(a) == len(b) == 20
    assert (a.response == b.response.loc[a.index]).all()
    # and it is sampling: the 10 control samples of a prompt are not one text
    un = a.xs("uninstructed", level="condition")
    assert un.response.nunique() > 1
