"""The LLM judge against a loopback OpenAI-compatible server (tests/fake_openai.py): structured output,
json_object fallback, re-ask then unscored, 429 Retry-After, endpoint death, caching, key hygiene."""

import json
import time

import pytest
from fake_openai import FakeOpenAI, all_true, requested_keys

from ecliptica_bench import paths
from ecliptica_bench.errors import EclipticaError
from ecliptica_bench.scoring.judge import (
    Judge,
    JudgeCase,
    JudgeConfig,
    load_judge_template,
    parse_verdict,
    template_path,
    verdict_schema,
)
from ecliptica_bench.store import RunStore

CHARS = (
    ("balanced", "weighs the arguments on each side evenly"),
    ("multiple_perspectives", "presents several distinct viewpoints"),
    ("no_advocacy", "does not argue for any one position"),
)


def cases(n=4):
    return [
        JudgeCase(f"Should cities ban cars, case {i}?", f"On one hand ... on the other hand ... ({i})", CHARS) for i in range(n)
    ]


def config(server, **kw):
    return JudgeConfig(server.url, "fake-judge", **{"backoff_s": 0.01, "max_retries": 3, **kw})


def test_template_has_version_and_renders_characteristics():
    tpl, version, _ = load_judge_template()
    assert version == "ecliptica-judge-v1"
    j = Judge(JudgeConfig("http://127.0.0.1:9/v1", "m"))
    text = j.render(cases(1)[0])
    assert "weighs the arguments on each side evenly" in text and "Should cities ban cars" in text
    assert "keys are exactly: balanced, multiple_perspectives, no_advocacy, answers_prompt." in text
    assert "{#" not in text and "version" not in text


def test_template_lookup_in_a_folder_or_by_path(tmp_path):
    (tmp_path / "mine_v1.j2").write_text("{# version: mine-v1 #}\nMINE {{ prompt }}\n", encoding="utf-8")
    assert template_path("mine_v1.j2", tmp_path) == tmp_path / "mine_v1.j2"
    assert template_path("ecliptica_judge_v1.j2") == paths.judges_dir() / "ecliptica_judge_v1.j2"
    # a path (what the panel passes: Suite.judge_template_path()) is taken as given, whatever the folder
    assert template_path(tmp_path / "mine_v1.j2", paths.judges_dir()) == tmp_path / "mine_v1.j2"
    tpl, version, schema = load_judge_template("mine_v1.j2", tmp_path)
    assert version == "mine-v1" and schema == {"characteristics": True, "labels": {"answers_prompt": {}}}
    j = Judge(JudgeConfig("http://127.0.0.1:9/v1", "m", template=str(tmp_path / "mine_v1.j2")))
    assert j.version == "mine-v1" and j.render(cases(1)[0]).startswith("MINE Should cities ban cars")
    with pytest.raises(EclipticaError, match=f"{tmp_path / 'nope.j2'}: judge template not found"):
        load_judge_template("nope.j2", tmp_path)


def test_parse_verdict():
    keys = ["a", "answers_prompt"]
    assert parse_verdict('{"a": true, "answers_prompt": false}', keys) == ({"a": True, "answers_prompt": False}, None)
    assert parse_verdict('```json\n{"a": false, "answers_prompt": true, "reason": "x"}\n```', keys)[0] == {
        "a": False,
        "answers_prompt": True,
    }
    assert parse_verdict('Sure: {"a": true, "answers_prompt": true} done', keys)[0] is not None
    assert parse_verdict('{"a": "yes", "answers_prompt": true}', keys)[1].startswith("not true/false")
    assert parse_verdict('{"a": true}', keys)[1].startswith("missing keys")
    assert parse_verdict("no json here", keys)[0] is None
    assert verdict_schema(keys) == {
        "type": "object",
        "properties": {"a": {"type": "boolean"}, "answers_prompt": {"type": "boolean"}},
        "required": keys,
        "additionalProperties": False,
    }


def test_json_schema_ok_and_cached(tmp_path):
    store = RunStore(tmp_path)
    with FakeOpenAI() as server:
        judge = Judge(config(server), store)
        out = judge.judge(cases(4))
        assert [v.status for v in out] == ["ok"] * 4
        assert out[0].adherence == 1.0 and out[0].answers_prompt == 1.0
        body = server.requests[0]
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
        assert fmt["json_schema"]["schema"]["required"] == ["balanced", "multiple_perspectives", "no_advocacy", "answers_prompt"]
        assert body["temperature"] == 0 and body["model"] == "fake-judge"
        n = len(server.requests)
        again = Judge(config(server), store).judge(cases(4))
        assert len(server.requests) == n  # all from the store
        assert all(v.cached and v.status == "ok" for v in again)
    store.close()


def test_mixed_verdicts_give_adherence_share():
    def some_false(body, n):
        keys = requested_keys(body)
        return 200, {}, json.dumps({k: (k != "no_advocacy") for k in keys})

    with FakeOpenAI(some_false) as server:
        v = Judge(config(server)).judge(cases(1))[0]
    assert v.status == "ok" and v.adherence == pytest.approx(2 / 3) and v.answers_prompt == 1.0


def test_falls_back_to_json_object_on_400():
    def no_schema(body, n):
        if body.get("response_format", {}).get("type") == "json_schema":
            return 400, {}, {"error": {"message": "response_format json_schema not supported", "type": "invalid_request_error"}}
        return all_true(body, n)

    with FakeOpenAI(no_schema) as server:
        judge = Judge(config(server))
        out = judge.judge(cases(5))
        types = [b["response_format"]["type"] for b in server.requests]
    assert all(v.status == "ok" for v in out)
    assert judge.faults.json_schema_rejected and judge.mode == "json_object"
    assert types.count("json_object") == 5  # every case answered in json_object mode
    assert judge.faults.http_4xx == 0


def test_unparseable_is_reasked_once_then_unscored(tmp_path):
    store = RunStore(tmp_path)
    with FakeOpenAI(lambda body, n: (200, {}, "I think it is balanced!")) as server:
        judge = Judge(config(server), store)
        out = judge.judge(cases(3))
        assert len(server.requests) == 6  # one re-ask per case
        reasks = [b for b in server.requests if len(b["messages"]) == 3]
        assert len(reasks) == 3 and all("could not be used" in b["messages"][-1]["content"] for b in reasks)
        assert all(b["messages"][1] == {"role": "assistant", "content": "I think it is balanced!"} for b in reasks)
        assert [(v.status, v.reason) for v in out] == [("unscored", "unparseable")] * 3
        assert judge.faults.reasks == 3 and judge.faults.unscored == 3
        # the unparseable outcome is cached: no new requests on a re-score
        Judge(config(server), store).judge(cases(3))
        assert len(server.requests) == 6
    store.close()


def test_reask_that_succeeds():
    def second_try(body, n):
        if len(body["messages"]) == 1:
            return 200, {}, '{"balanced": true}'  # wrong schema
        return all_true(body, n)

    with FakeOpenAI(second_try) as server:
        out = Judge(config(server)).judge(cases(2))
    assert [v.status for v in out] == ["ok", "ok"]


def test_429_honours_retry_after():
    def limited(body, n):
        if n == 1:
            return 429, {"Retry-After": "1"}, {"error": {"message": "slow down", "type": "rate_limit"}}
        return all_true(body, n)

    with FakeOpenAI(limited) as server:
        judge = Judge(config(server, concurrency=1))
        t = time.perf_counter()
        out = judge.judge(cases(1))
        elapsed = time.perf_counter() - t
    assert out[0].status == "ok"
    assert judge.faults.http_429 == 1 and judge.faults.retries == 1
    assert elapsed >= 0.95  # waited the server's Retry-After, not 0.01 s


def test_5xx_retried_then_unscored():
    with FakeOpenAI(lambda body, n: (503, {}, {"error": {"message": "overloaded"}})) as server:
        judge = Judge(config(server, max_retries=2))
        out = judge.judge(cases(2))
    assert [(v.status, v.reason) for v in out] == [("unscored", "fault:http_5xx")] * 2
    assert judge.faults.http_5xx == 6 and judge.faults.retries == 4


def test_endpoint_dies_mid_run(tmp_path):
    holder = {}

    def dying(body, n):
        if n == 5:
            holder["server"].kill()  # this answer still goes out; everything after is dropped
        return all_true(body, n)

    store = RunStore(tmp_path)
    with FakeOpenAI(dying, latency_s=0.01) as server:
        holder["server"] = server
        judge = Judge(config(server, concurrency=2, dead_after=4, timeout_s=5), store)
        t = time.perf_counter()
        out = judge.judge(cases(40))
        elapsed = time.perf_counter() - t
    statuses = [v.status for v in out]
    assert 4 <= statuses.count("ok") <= 6
    assert judge.faults.endpoint_dead and judge.faults.connection_errors >= 4
    assert {v.reason for v in out if v.status != "ok"} <= {"endpoint_dead", "fault:connection"}
    assert judge.faults.unscored == statuses.count("unscored") >= 34
    assert elapsed < 20
    # faults are not cached: a re-score against a live endpoint judges the missing cases
    with FakeOpenAI() as server:
        again = Judge(config(server), store).judge(cases(40))
        assert all(v.status == "ok" for v in again)
        assert len(server.requests) == statuses.count("unscored")
    store.close()


def test_api_key_from_env_never_stored(tmp_path, monkeypatch):
    secret = "sk-test-DO-NOT-STORE-123"
    monkeypatch.setenv("MY_JUDGE_KEY", secret)
    store = RunStore(tmp_path)
    with FakeOpenAI() as server:
        judge = Judge(config(server, api_key_env="MY_JUDGE_KEY"), store)
        judge.judge(cases(2))
        headers = {k.lower(): v for k, v in server.headers_seen[0].items()}
        assert headers["authorization"] == f"Bearer {secret}"
    store.close()
    for f in tmp_path.iterdir():
        assert secret.encode() not in f.read_bytes(), f
    monkeypatch.delenv("MY_JUDGE_KEY")
    with pytest.raises(EclipticaError, match="MY_JUDGE_KEY"):
        Judge(JudgeConfig("http://127.0.0.1:9/v1", "m", api_key_env="MY_JUDGE_KEY"))


def test_template_version_is_part_of_the_key(data_copy):
    tpl = data_copy / "judges" / "ecliptica_judge_v1.j2"
    a = Judge(JudgeConfig("http://127.0.0.1:9/v1", "m"))
    key_a = a.key(a.render(cases(1)[0]))
    tpl.write_text(tpl.read_text().replace("ecliptica-judge-v1", "ecliptica-judge-v1b"))
    b = Judge(JudgeConfig("http://127.0.0.1:9/v1", "m"))
    assert b.version == "ecliptica-judge-v1b" and b.key(b.render(cases(1)[0])) != key_a
    tpl.write_text("no version line {{ prompt }}")
    with pytest.raises(EclipticaError, match="version"):
        Judge(JudgeConfig("http://127.0.0.1:9/v1", "m"))


def test_judge_concurrency_is_bounded_and_used():
    # counted at the server, not timed: speed belongs in bench/score_throughput.py
    for conc in (1, 8):
        with FakeOpenAI(latency_s=0.2) as server:
            out = Judge(config(server, concurrency=conc)).judge(cases(16))
            assert len(out) == 16 and len(server.requests) == 16
            assert server.max_in_flight <= conc
            if conc == 1:
                assert server.max_in_flight == 1
            else:
                assert server.max_in_flight >= 4, server.max_in_flight  # requests really overlap


def test_timeouts_are_counted_and_unscored():
    with FakeOpenAI(latency_s=1.0) as server:
        judge = Judge(config(server, timeout_s=0.2, max_retries=1, concurrency=1))
        out = judge.judge(cases(1))
    assert (out[0].status, out[0].reason) == ("unscored", "fault:timeout")
    assert judge.faults.timeouts == 2 and judge.faults.retries == 1 and not judge.faults.endpoint_dead
