"""Is a response a real answer? Flags that the paper's scoring lacks (docs/metrics.md, validity).

empty       no non-space character
looping     degenerate repetition: more than half of the word 4-grams are repeats (responses of at
            least 8 words), or one line / sentence of 3+ words occurs 3 or more times, or a unit of
            1-10 characters repeats 20+ times in a row inside one token ("!!!!!!...", "hahaha...")
off_topic   cos(response, prompt) < OFF_TOPIC_COS with the embedder (MiniLM: an answer to the
            question scores about 0.3-0.8, unrelated text -0.05-0.12). A refusal (refusal markers)
            is a response to the prompt even though it shares no words with it, so it is never
            off-topic; nor is a short statement of uncertainty (hedging markers, at most
            HEDGE_MAX_WORDS (25) words): "I don't know." answers any question honestly and has a
            cosine of about 0.07 to it.
truncated   finish_reason == "length" (the generation budget ran out). It invalidates only where
            the run's budget is at or above the suite's paper budget (Suite.max_new_tokens): a run
            that deliberately generates fewer tokens than the paper (the CPU demo: 64 instead of
            256) cuts answers because of the budget it chose, not because the model failed, so
            there a truncated answer stays valid (still flagged, and counted in the truncation
            rate). `truncation_policy` decides per suite; metrics.json records the rule that applied
            (scoring.truncation_policy). An unknown run budget keeps truncation invalid.
echo        the response restates the alignment instruction instead of answering the prompt (an
            echo scores high on M1 fidelity and shift and on identifiability without answering):
            it is not a refusal, and either
              - cos(response, instruction) >= ECHO_COS (0.8) and above cos(response, prompt)
                (MiniLM: the instruction verbatim 1.0, a paraphrase of it about 0.9, a real answer
                0.1-0.5), or
              - it has at least ECHO_MIN_WORDS (5) words, at least ECHO_INSTRUCTION_SHARE (half) of
                them occur in the instruction and at least ECHO_UNION_SHARE (90%) in the instruction
                or the prompt (the instruction copied with the prompt appended: no new words).
            Only rows that showed the model an instruction (a non-empty `instruction`) can echo.
valid       none of the above
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import numpy as np

from ..measures.paper import has_hedge, is_refusal, word_counts

OFF_TOPIC_COS = 0.15
HEDGE_MAX_WORDS = 25  # a hedge this short is an answer ("I don't know."), never off-topic
NGRAM = 4
NGRAM_REPEAT_SHARE = 0.5
MIN_WORDS_FOR_NGRAM = 8
LINE_REPEATS = 3
CHAR_LOOP_UNIT = 10  # a unit of 1..10 characters ...
CHAR_LOOP_REPEATS = 20  # ... repeated this many times in a row
_CHAR_LOOP = re.compile(rf"(.{{1,{CHAR_LOOP_UNIT}}}?)\1{{{CHAR_LOOP_REPEATS - 1},}}", re.DOTALL)
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\w+")

ECHO_COS = 0.8
ECHO_MIN_WORDS = 5
ECHO_INSTRUCTION_SHARE = 0.5
ECHO_UNION_SHARE = 0.9

FLAGS = ("is_empty", "is_looping", "is_off_topic", "is_truncated", "is_echo")


def word_share(text: str, vocabulary: set[str]) -> float:
    """Share of the text's words (lowercase \\w+ tokens) that occur in `vocabulary` (0 for no words)."""
    words = _WORD.findall(text.lower())
    return sum(w in vocabulary for w in words) / len(words) if words else 0.0


def echo_flags(
    responses: Sequence[str],
    instructions: Sequence[str | None],
    prompts: Sequence[str],
    instruction_cos: np.ndarray,
    prompt_cos: np.ndarray,
    refusal: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(is_echo, instruction_overlap) per row; see the module docstring. NaN cosines never flag."""
    n = len(responses)
    echo = np.zeros(n, dtype=bool)
    overlap = np.full(n, np.nan)
    ci = np.asarray(instruction_cos, dtype=float)
    cp = np.nan_to_num(np.asarray(prompt_cos, dtype=float), nan=-1.0)
    for i, (r, ins, pr) in enumerate(zip(responses, instructions, prompts)):
        if not ins or not str(ins).strip() or not (r or "").strip():
            continue
        ivocab = set(_WORD.findall(str(ins).lower()))
        overlap[i] = word_share(r, ivocab)
        if refusal[i]:
            continue
        by_cos = np.isfinite(ci[i]) and ci[i] >= ECHO_COS and ci[i] > cp[i]
        by_words = (
            len(_WORD.findall(r)) >= ECHO_MIN_WORDS
            and overlap[i] >= ECHO_INSTRUCTION_SHARE
            and word_share(r, ivocab | set(_WORD.findall(str(pr or "").lower()))) >= ECHO_UNION_SHARE
        )
        echo[i] = bool(by_cos or by_words)
    return echo, overlap


def repeated_ngram_share(text: str, n: int = NGRAM) -> float:
    """Share of word n-gram occurrences that repeat an earlier n-gram (0 when fewer than n words)."""
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return 0.0
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)


def is_looping(text: str) -> bool:
    words = _WORD.findall(text.lower())
    if len(words) >= MIN_WORDS_FOR_NGRAM and repeated_ngram_share(text) > NGRAM_REPEAT_SHARE:
        return True
    units = [" ".join(_WORD.findall(s.lower())) for s in _SENT_SPLIT.split(text)]
    counts = Counter(u for u in units if len(u.split()) >= 3)
    if counts and counts.most_common(1)[0][1] >= LINE_REPEATS:
        return True
    return char_loop(text)


def char_loop(text: str) -> bool:
    """A unit of 1..CHAR_LOOP_UNIT characters repeated CHAR_LOOP_REPEATS+ times in a row inside one
    whitespace-free token ("!!!!!!...", "hahaha..."). Repeats that contain spaces are repeated words and
    are caught by the n-gram test, so only tokens of at least CHAR_LOOP_REPEATS characters are searched."""
    return any(_CHAR_LOOP.search(tok) for tok in text.split() if len(tok) >= CHAR_LOOP_REPEATS)


def truncation_policy(run_budget: int | None, paper_budget: int) -> tuple[bool, str]:
    """(whether a truncated answer stays valid, the rule as recorded in metrics.json) for one suite, from
    the run's max_new_tokens (None: unknown) and the suite's paper budget (see the module docstring)."""
    if run_budget is None:
        return False, f"invalid: run budget unknown (paper budget {paper_budget})"
    if run_budget < paper_budget:
        return True, f"counted valid: budget {run_budget} < paper budget {paper_budget}"
    return False, f"invalid: budget {run_budget} >= paper budget {paper_budget}"


def validity(
    responses: Sequence[str],
    finish_reasons: Sequence[str | None],
    prompt_cos: np.ndarray,
    instructions: Sequence[str | None] | None = None,
    prompts: Sequence[str] | None = None,
    instruction_cos: np.ndarray | None = None,
    truncation_valid=False,
) -> dict[str, np.ndarray]:
    """Per-row flags (bool arrays) plus repeat_ngram_share, prompt_similarity, instruction_similarity and
    instruction_overlap (float arrays).

    prompt_cos: cos(response, prompt) per row (NaN where unknown: never off-topic then).
    instructions / prompts / instruction_cos: the instruction the row showed the model (None or '' for
    the uninstructed control), the prompt, and cos(response, instruction); without them nothing is an echo.
    truncation_valid: True (for all rows, or a bool array per row) where a truncated answer stays valid
    (the run's budget is below the paper's: `truncation_policy`); it is still flagged is_truncated.
    """
    texts = [r or "" for r in responses]
    n = len(texts)
    empty = np.array([not t.strip() for t in texts], dtype=bool)
    looping = np.array([(not e) and is_looping(t) for t, e in zip(texts, empty)], dtype=bool)
    refusal = is_refusal(texts)
    cos = np.asarray(prompt_cos, dtype=float)
    short_hedge = has_hedge(texts) & (word_counts(texts) <= HEDGE_MAX_WORDS)
    off = (~empty) & ~refusal & ~short_hedge & np.isfinite(cos) & (np.nan_to_num(cos, nan=1.0) < OFF_TOPIC_COS)
    truncated = np.array([fr == "length" for fr in finish_reasons], dtype=bool)
    tolerated = np.broadcast_to(np.asarray(truncation_valid, dtype=bool), (n,))
    icos = np.full(n, np.nan) if instruction_cos is None else np.asarray(instruction_cos, dtype=float)
    if instructions is None:
        echo, overlap = np.zeros(n, dtype=bool), np.full(n, np.nan)
    else:
        echo, overlap = echo_flags(texts, instructions, prompts if prompts is not None else [""] * n, icos, cos, refusal)
    valid = ~(empty | looping | off | (truncated & ~tolerated) | echo)
    return {
        "is_empty": empty,
        "is_looping": looping,
        "is_off_topic": off,
        "is_truncated": truncated,
        "is_echo": echo,
        "valid": valid,
        "repeat_ngram_share": np.array([repeated_ngram_share(t) for t in texts]),
        "prompt_similarity": cos,
        "instruction_similarity": icos,
        "instruction_overlap": overlap,
    }
