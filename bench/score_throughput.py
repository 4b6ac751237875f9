"""Scoring throughput on 3,000 synthetic ECLIPTICA responses, and judge concurrency.

    .venv/bin/python bench/score_throughput.py [--rows-per-type 300] [--bootstrap 10000] [--judge-cases 128]

1. Writes a fake run directory (generations.parquet + manifest) holding 300 bundled prompts x 10
   instruction types of synthetic responses: varied openings, type-flavoured bodies about the prompt's
   topic and closings, with a few empty, looping, off-topic and truncated ones mixed in.
2. Loads the embedder (timed apart), scores the run (paper metrics, validity, identifiability, bootstrap;
   no judge) and prints the stage breakdown (load, embed, validity, identifiability, bootstrap, write and
   the rest), the total after load (target < 10 s), the embedding calls and the load average.
3. Scores again with a fresh embedder on the same store: prints the embedding calls (target 0).
4. Judges the same N cases against a loopback OpenAI-compatible server with a fixed 50 ms latency at
   concurrency 1 and 16 (no cache) and prints both times and the speed-up (target >= 8x).
5. Detector overhead (issue 23), both in this one run: the same rows scored from scratch (fresh run
   directory and embedder each time) with the keyword detectors only, as before the learned detectors
   (`before`), and with the shipped learned detectors flagging every row (`after`), in alternating
   order, --detector-reps pairs (after the passes above, so both are warm); prints the median of each, the ratio (target <= 1.10) and the
   learned detectors' own seconds (metrics.json scoring.seconds_by_step.detectors).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

OPENINGS = ["", "Great question. ", "Here is my take. ", "Let me think about this. ", "In short: ", "Okay. "]
BODIES = {
    "neutral": [
        "Supporters argue that {t} brings clear benefits, while critics point to real costs.",
        "There are reasonable arguments on both sides of {t}, and each deserves a fair hearing.",
        "Some people favour {t}; others oppose it, and the evidence is mixed.",
    ],
    "conservative": [
        "When it comes to {t}, time-tested approaches and established institutions deserve our trust.",
        "A cautious, gradual path on {t} protects stability and avoids unintended harm.",
        "Tradition offers proven guidance on {t}; we should not discard it lightly.",
    ],
    "liberal": [
        "{T} is a chance to innovate boldly and include communities that are too often left out.",
        "Progressive reform of {t} can expand opportunity and advance social justice.",
        "We should experiment with new ideas on {t} and centre the voices of underserved groups.",
    ],
    "regulatory_aware": [
        "Any approach to {t} must comply with applicable laws, regulations and professional standards.",
        "Check the legal requirements and official guidelines that govern {t} before acting.",
        "Regulators have issued rules on {t}; following them limits liability.",
    ],
    "empathetic": [
        "It is completely understandable to feel anxious about {t}, and your feelings matter.",
        "Many people find {t} stressful; be gentle with yourself and reach out for support.",
        "I hear how much {t} weighs on you, and you are not alone in this.",
    ],
    "safety_first": [
        "Before doing anything about {t}, assess the risks and put safeguards in place.",
        "Caution is essential with {t}: protect the vulnerable and plan for what could go wrong.",
        "The safest course on {t} is to prevent harm first and act only with precautions.",
    ],
    "educational": [
        "To understand {t}, start with the basic concepts, then look at how they connect, step by step.",
        "Let me explain {t}: first the definition, second the main mechanisms, third an example.",
        "A useful way to learn about {t} is to break it into parts and study each in turn.",
    ],
    "concise": [
        "{T}: weigh costs and benefits, then decide.",
        "Short answer on {t}: it depends on the context.",
        "{T}? Do it carefully.",
    ],
    "professional": [
        "From a business perspective, {t} should be evaluated against strategic objectives and stakeholder value.",
        "We recommend a structured assessment of {t}, including a cost-benefit analysis and a clear governance plan.",
        "Organisations addressing {t} should align policy with operational priorities and report outcomes formally.",
    ],
    "creative": [
        "Imagine {t} reinvented as a community festival where everyone co-designs the rules.",
        "What if we approached {t} like gardeners, planting unusual ideas and seeing which bloom?",
        "Picture a future where {t} is handled by citizen juries meeting in floating libraries.",
    ],
}
CLOSINGS = [
    "",
    " Ultimately the right choice depends on local circumstances.",
    " I hope this helps.",
    " Each situation is different.",
    " Consider talking to people affected before deciding.",
]
OFF_TOPIC = [
    "The mitochondria is the powerhouse of the cell.",
    "My favourite pasta recipe uses garlic and basil.",
    "The football match ended in a draw after extra time.",
]


def synthetic_response(rng: random.Random, prompt: str, itype: str) -> tuple[str, str]:
    topic = prompt.rstrip("?.! ")
    topic = topic[0].lower() + topic[1:] if topic else topic
    u = rng.random()
    if u < 0.01:
        return "", "stop"
    if u < 0.03:
        return " ".join([f"{topic} is important."] * 8), "length"
    if u < 0.05:
        return rng.choice(OFF_TOPIC), "stop"
    body = " ".join(b.format(t=topic, T=topic[:1].upper() + topic[1:]) for b in rng.sample(BODIES[itype], 2))
    text = rng.choice(OPENINGS) + body + rng.choice(CLOSINGS)
    return text, ("length" if rng.random() < 0.03 else "stop")


def write_fake_run(run_dir: Path, rows_per_type: int = 300, seed: int = 0) -> int:
    from ecliptica_bench.data.io import write_json, write_parquet
    from ecliptica_bench.rundir import parquet_columns
    from ecliptica_bench.suites import get_suite

    suite = get_suite("ecliptica")
    cases = suite.build_rows(suite.bundled_items(), 42)
    keep = sorted({c["prompt_id"] for c in cases})[:rows_per_type]
    rng = random.Random(seed)
    rows = []
    for c in cases:
        if c["prompt_id"] not in keep:
            continue
        text, fr = synthetic_response(rng, c["prompt"], c["instruction_type"])
        rows.append(
            {
                **c,
                "run_id": run_dir.name,
                "condition": "instructed",
                "response": text,
                "finish_reason": fr,
                "prompt_tokens": 40,
                "completion_tokens": len(text.split()),
                "latency_s": 0.0,
                "key": f"synthetic/{c['case_id']}",
            }
        )
    write_parquet(run_dir / "generations.parquet", rows, parquet_columns())
    write_json(
        run_dir / "manifest.json",
        {"run_id": run_dir.name, "model": {"name": "synthetic", "fingerprint": "synthetic"}, "dataset_sha256": "synthetic"},
    )
    return len(rows)


def bench_judge(n_cases: int, latency: float) -> dict:
    """The fake endpoint runs in its own process, as a real server would (in-process it would share the
    client's GIL and its request handling would count against the client)."""
    import subprocess

    from ecliptica_bench.scoring.judge import Judge, JudgeCase, JudgeConfig

    rng = random.Random(1)
    chars = (("balanced", "weighs the arguments on each side evenly"), ("multiple_perspectives", "presents several viewpoints"))
    cases = [JudgeCase(f"Question {i}?", synthetic_response(rng, f"topic {i}", "neutral")[0], chars) for i in range(n_cases)]
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "fake_openai.py"), "--latency", str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    out = {}
    try:
        url = proc.stdout.readline().strip()
        Judge(JudgeConfig(url, "fake-judge", concurrency=4), store=None).judge(cases[:4])  # warm-up (imports)
        for conc in (1, 16):
            judge = Judge(JudgeConfig(url, "fake-judge", concurrency=conc), store=None)
            t, c = time.perf_counter(), time.process_time()
            verdicts = judge.judge(cases)
            out[conc] = time.perf_counter() - t
            out[f"cpu{conc}"] = time.process_time() - c
            assert all(v.status == "ok" for v in verdicts), judge.faults
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    return out


def bench_detectors(rows_per_type: int, n_boot: int, reps: int) -> dict:
    """Section 5 of the module docstring: median seconds before / after and the detectors' own seconds."""
    import contextlib
    import statistics
    from unittest import mock

    from ecliptica_bench import detectors
    from ecliptica_bench.scoring.embed import Embedder
    from ecliptica_bench.scoring.score import score_run

    learned = [k for k in detectors.KINDS if detectors.learned_available(k)]
    times: dict[str, list[float]] = {"before": [], "after": []}
    own: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(reps):
            for which in ("before", "after") if i % 2 == 0 else ("after", "before"):  # alternate who goes first
                run = Path(tmp) / f"{which}-{i}"
                write_fake_run(run, rows_per_type)
                keyword_only = mock.patch.object(detectors, "learned_available", lambda kind: False)
                with keyword_only if which == "before" else contextlib.nullcontext():
                    t = time.perf_counter()
                    m = score_run(run, n_boot=n_boot, embedder_obj=Embedder())
                    times[which].append(time.perf_counter() - t)
                if which == "after":
                    own.append(m["scoring"]["seconds_by_step"].get("detectors", 0.0))
    return {
        "learned": learned,
        "before": statistics.median(times["before"]),
        "after": statistics.median(times["after"]),
        "own": statistics.median(own),
        "all": times,
    }


def stage_breakdown(load_s: float, steps: dict, total: float) -> str:
    """'load 0.1 s | embed 30.2 s | ...' from score_run's seconds_by_step; 'write+rest' is what they leave
    of the total (reading the run, writing scores.parquet and metrics.json)."""
    named = {
        "embed": steps.get("embedding", 0.0),
        "validity": steps.get("validity", 0.0),
        "identifiability": steps.get("identifiability", 0.0),
        "judge": steps.get("judge", 0.0),
        "bootstrap": steps.get("metrics_and_bootstrap", 0.0),
    }
    parts = [f"load {load_s:.1f} s"] + [f"{k} {v:.1f} s" for k, v in named.items()]
    parts.append(f"write+rest {max(0.0, total - sum(named.values())):.1f} s")
    return " | ".join(parts) + f" | total after load {total:.1f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows-per-type", type=int, default=300, help="prompts (each x 10 types)")
    ap.add_argument("--bootstrap", type=int, default=10000)
    ap.add_argument("--judge-cases", type=int, default=128)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--detector-reps", type=int, default=2, help="before/after pairs of section 5 (0: skip it)")
    args = ap.parse_args()

    from ecliptica_bench.models import embedder_path
    from ecliptica_bench.scoring.embed import Embedder, load_model
    from ecliptica_bench.scoring.score import score_run

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "synthetic-run"
        n = write_fake_run(run, args.rows_per_type)
        t = time.perf_counter()
        load_model(embedder_path())
        load_s = time.perf_counter() - t
        print(f"embedder load: {load_s:.1f} s (not counted); load average {os.getloadavg()[0]:.2f}")

        emb = Embedder()
        t = time.perf_counter()
        m = score_run(run, n_boot=args.bootstrap, embedder_obj=emb)
        first = time.perf_counter() - t
        e = m["suites"]["ecliptica"]["conditions"]["instructed"]
        steps = m["scoring"]["seconds_by_step"]
        print(
            f"first pass: {n} rows, {first:.1f} s after load (target < 10 s), embedding calls {emb.calls}, "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        print("  " + stage_breakdown(load_s, steps, first))
        print(
            f"  awareness {e['paper']['value']:.4f} [{e['paper']['ci_low']:.4f}, {e['paper']['ci_high']:.4f}]  "
            f"valid_rate {e['signals']['valid_rate']['value']:.3f}  "
            f"identifiability {e['signals']['identifiability']['value']:.3f} (chance {e['signals']['identifiability_chance']['value']:.2f})"
        )

        emb2 = Embedder()
        t = time.perf_counter()
        m2 = score_run(run, n_boot=args.bootstrap, embedder_obj=emb2)
        second = time.perf_counter() - t
        print(f"second pass: {second:.1f} s, embedding calls {emb2.calls} (target 0), cache hits {emb2.cache_hits}")
        print("  " + stage_breakdown(0.0, m2["scoring"]["seconds_by_step"], second))

    if args.detector_reps > 0:
        d = bench_detectors(args.rows_per_type, args.bootstrap, args.detector_reps)
        print(
            f"detectors ({n} rows, from scratch, median of {args.detector_reps}): before (keyword only) {d['before']:.1f} s, "
            f"after (+ learned {', '.join(d['learned']) or 'none shipped'}) {d['after']:.1f} s, ratio "
            f"{d['after'] / d['before']:.3f} (target <= 1.10); the learned detectors' own time {d['own']:.2f} s; "
            f"load average {os.getloadavg()[0]:.2f}"
        )

    times = bench_judge(args.judge_cases, args.latency)
    print(
        f"judge, {args.judge_cases} cases at {1000 * args.latency:.0f} ms latency: concurrency 1 {times[1]:.2f} s, "
        f"concurrency 16 {times[16]:.2f} s, speed-up {times[1] / times[16]:.1f}x (target >= 8x); client CPU "
        f"{1000 * times['cpu16'] / args.judge_cases:.1f} ms/request bounds concurrency 16 at "
        f"{times['cpu16']:.2f} s"
    )


if __name__ == "__main__":
    main()
