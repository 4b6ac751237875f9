"""Surface shortcuts in the bundled banks: no trick that ignores meaning may solve them.

TruthfulQA MC1, as lm-eval's truthfulqa_mc1 and lmeval.process_results_mc score it: choose among the best
answer and the incorrect answers; chance = mean over items of 1 / (1 + number of incorrect answers). Each
baseline below picks options by a surface feature only (length, wording of one option at a time, opening
word); on a sound bank each lands within MAX_GAP of chance. tests/fixtures/truthfulqa_v1_questions.yaml, the
80-question bank before issue 18 (best answers about twice as long as the false ones, "No." against "Yes,"),
is solved by every one of them, and each check runs on both files to show that it catches that.

LITMUS (M5): AQI scores how well responses to safe and to unsafe prompts separate. If the prompts' form
(question or request, opening words, length) gives the label away, responses separate by genre even for a
model that refuses nothing, so a form-only classifier must stay near 50% (tests/fixtures/
litmus_v1_prompts.yaml, the bank before issue 18: safe prompts were questions, unsafe ones requests).

conditional_safety and length_control carry no per-item label: every prompt is run under both instructions
and compared with itself, so there is no label for a surface feature to leak.
"""

from __future__ import annotations

import collections
import re
import shutil
import statistics
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut, cross_val_predict

from ecliptica_bench.data.bank import load_items
from ecliptica_bench.errors import ValidationError
from ecliptica_bench.suites import SUITES
from ecliptica_bench.suites.truthfulqa import MIN_INCORRECT

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TQA_BUNDLED = REPO / "prompts" / "truthfulqa" / "questions.yaml"
TQA_V1 = FIXTURES / "truthfulqa_v1_questions.yaml"
LITMUS_BUNDLED = REPO / "prompts" / "litmus" / "prompts.yaml"
LITMUS_V1 = FIXTURES / "litmus_v1_prompts.yaml"

MAX_GAP = 0.1  # a baseline's MC1 (or accuracy) may differ from chance by at most this much
LENGTH_BAND = 0.3  # every option within 30% of its item's median length in words
BOW_FOLDS = 5

# ------------------------------------------------------------------------------------------- helpers
Pick = Callable[[list[str]], list[int]]  # MC1 options (best first) -> indices the baseline chooses between


def mc_items(path: Path) -> list[dict]:
    """A TruthfulQA bank file as MC items: options = [best] + incorrect (MC1), correct = every true answer."""
    out = []
    for it in yaml.safe_load(path.read_text(encoding="utf-8"))["items"]:
        best = it["best_answer"].strip()
        correct = list(dict.fromkeys([best] + [c.strip() for c in it["correct_answers"]]))
        out.append(
            {
                "id": it["id"],
                "options": [best] + [c.strip() for c in it["incorrect_answers"]],
                "correct": correct,
                "incorrect": [c.strip() for c in it["incorrect_answers"]],
                "category": it["category"],
            }
        )
    return out


def chance(items: list[dict]) -> float:
    return statistics.fmean(1 / len(it["options"]) for it in items)


def mc1(items: list[dict], pick: Pick) -> float:
    """Expected MC1 of a baseline that chooses uniformly among the options `pick` returns (ties split)."""
    return statistics.fmean(_hit(pick(it["options"])) for it in items)


def _hit(chosen: list[int]) -> float:
    return (0 in chosen) / len(chosen)


def extreme(key: Callable[[str], float], sign: int) -> Pick:
    def pick(options):
        values = [sign * key(o) for o in options]
        return [i for i, v in enumerate(values) if v == max(values)]

    return pick


def words(text: str) -> int:
    return len(text.split())


def first_word(text: str) -> str:
    return re.findall(r"[a-z0-9']+", text.lower())[0]


def odd_opening(options: list[str]) -> list[int]:
    """The options whose first word is the rarest within the item (the odd one out)."""
    counts = collections.Counter(first_word(o) for o in options)
    fewest = min(counts.values())
    return [i for i, o in enumerate(options) if counts[first_word(o)] == fewest]


def bow_scores(items: list[dict]) -> list[list[float]]:
    """Out-of-fold scores of a bag-of-words classifier (word unigrams and bigrams, plus the opening word)
    trained on single options to tell true from false, folds grouped by question."""
    texts, labels, groups = [], [], []
    for k, it in enumerate(items):
        for text, label in [(c, 1) for c in it["correct"]] + [(c, 0) for c in it["incorrect"]]:
            texts.append("xxstart " + text)  # so "xxstart no" is a bigram: the opening word as a feature
            labels.append(label)
            groups.append(k)
    labels, groups = np.array(labels), np.array(groups)
    scores = np.zeros(len(texts))
    for train, test in GroupKFold(n_splits=BOW_FOLDS).split(texts, labels, groups):
        vec = CountVectorizer(binary=True, ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b")
        clf = LogisticRegression(C=1.0, max_iter=5000).fit(vec.fit_transform([texts[i] for i in train]), labels[train])
        scores[test] = clf.decision_function(vec.transform([texts[i] for i in test]))
    by_text = [dict() for _ in items]
    for text, group, score in zip(texts, groups, scores):
        by_text[group][text[len("xxstart ") :]] = score
    return [[by_text[k][o] for o in it["options"]] for k, it in enumerate(items)]


def bow_mc1(items: list[dict]) -> float:
    return statistics.fmean(_hit([i for i, v in enumerate(s) if v == max(s)]) for s in bow_scores(items))


BASELINES: dict[str, Callable[[list[dict]], float]] = {
    "longest_in_words": lambda items: mc1(items, extreme(words, 1)),
    "shortest_in_words": lambda items: mc1(items, extreme(words, -1)),
    "longest_in_characters": lambda items: mc1(items, extreme(len, 1)),
    "shortest_in_characters": lambda items: mc1(items, extreme(len, -1)),
    "odd_opening_word": lambda items: mc1(items, odd_opening),
    "bag_of_words": bow_mc1,
}


# --------------------------------------------------------------------- the baselines themselves
def _mini(rows):
    return [
        {"id": str(k), "options": [best, *inc], "correct": [best], "incorrect": list(inc), "category": "x"}
        for k, (best, inc) in enumerate(rows)
    ]


def test_length_and_opening_baselines_by_hand():
    items = _mini(
        [
            ("a b c", ["a", "a b", "a b c d"]),  # longest: 'a b c d' (miss); shortest: 'a' (miss)
            ("x y z w", ["p q r s", "p"]),  # longest: tie best / 'p q r s' -> 1/2; shortest: 'p' (miss)
            ("m", ["n o", "n o p"]),  # longest: miss; shortest: 'm' (hit)
        ]
    )
    assert chance(items) == pytest.approx((1 / 4 + 1 / 3 + 1 / 3) / 3)
    assert BASELINES["longest_in_words"](items) == pytest.approx((0 + 0.5 + 0) / 3)
    assert BASELINES["shortest_in_words"](items) == pytest.approx((0 + 0 + 1) / 3)
    # characters: 'a b c'=5 vs 'a b c d'=7; 'x y z w'=7 ties 'p q r s'=7; 'm'=1 is shortest
    assert BASELINES["longest_in_characters"](items) == pytest.approx(0.5 / 3)
    assert BASELINES["shortest_in_characters"](items) == pytest.approx(1 / 3)
    openings = _mini(
        [
            ("No, it is not.", ["Yes, it is.", "Yes, always."]),  # 'no' is the odd one out: hit
            ("No, never.", ["No, rarely.", "Yes, often.", "Yes, always."]),  # 2 no / 2 yes: all four tie -> 1/4
            ("It is red.", ["It is blue.", "Blue."]),  # 'blue' is odd: miss
        ]
    )
    assert BASELINES["odd_opening_word"](openings) == pytest.approx((1 + 0.25 + 0) / 3)


def test_bag_of_words_finds_a_planted_marker_and_nothing_where_there_is_nothing():
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(60)]
    planted = _mini(
        [(" ".join(["indeed", *rng.choice(vocab, 4)]), [" ".join(rng.choice(vocab, 5)) for _ in range(4)]) for _ in range(40)]
    )
    assert BASELINES["bag_of_words"](planted) == 1.0
    # every item uses words no other item has: nothing learnt carries over, every option scores the same,
    # and the baseline is exactly chance
    disjoint = _mini([(f"a{k} b{k}", [f"c{k}", f"d{k} e{k}", f"f{k}", f"g{k} h{k}"]) for k in range(20)])
    assert BASELINES["bag_of_words"](disjoint) == pytest.approx(chance(disjoint))


# ------------------------------------------------------------------------- TruthfulQA: the shortcuts
@pytest.fixture(scope="module")
def banks():
    return {path: mc_items(path) for path in (TQA_BUNDLED, TQA_V1)}


@pytest.mark.parametrize("baseline", sorted(BASELINES))
@pytest.mark.parametrize("path, solvable", [(TQA_BUNDLED, False), (TQA_V1, True)], ids=["bundled", "v1"])
def test_truthfulqa_surface_baselines_stay_at_chance(banks, baseline, path, solvable):
    items = banks[path]
    value, base = BASELINES[baseline](items), chance(items)
    gap = abs(value - base)
    assert (gap > MAX_GAP) == solvable, (
        f"{path.name}: {baseline} scores MC1 {value:.3f}, chance {base:.3f} "
        f"({'expected a shortcut' if solvable else 'a surface shortcut solves the bank'})"
    )


def _length_band_violations(items):
    bad = []
    for it in items:
        options = it["correct"] + it["incorrect"]
        median = statistics.median(words(o) for o in options)
        bad += [
            f"{it['id']}: {words(o)} words vs median {median} ({o!r})"
            for o in options
            if abs(words(o) - median) > LENGTH_BAND * median
        ]
    return bad


def _yes_no_imbalance(items):
    """Items whose MC1 options answer Yes/No without exactly two of each: the direction would give it away."""
    bad = []
    for it in items:
        counts = collections.Counter(first_word(o) for o in it["options"])
        if (counts["yes"] or counts["no"]) and (counts["yes"], counts["no"]) != (2, 2):
            bad.append(f"{it['id']}: {counts['yes']} options start with 'Yes', {counts['no']} with 'No'")
    return bad


@pytest.mark.parametrize("rule", [_length_band_violations, _yes_no_imbalance], ids=["length_band", "yes_no_balance"])
@pytest.mark.parametrize("path, solvable", [(TQA_BUNDLED, False), (TQA_V1, True)], ids=["bundled", "v1"])
def test_truthfulqa_item_form_rules(banks, rule, path, solvable):
    bad = rule(banks[path])
    if solvable:
        assert len(bad) > len(banks[path]) / 2, bad[:5]
    else:
        assert not bad, "\n".join(bad)


def test_truthfulqa_bank_size_and_integrity(banks):
    items = banks[TQA_BUNDLED]
    assert len(items) >= 150
    assert len({it["category"] for it in items}) >= 10
    for it in items:
        assert len(it["incorrect"]) >= MIN_INCORRECT, it["id"]
        assert len(set(it["incorrect"])) == len(it["incorrect"]), it["id"]
        assert not set(it["correct"]) & set(it["incorrect"]), it["id"]
    questions = [q["question"].strip().lower() for q in yaml.safe_load(TQA_BUNDLED.read_text())["items"]]
    assert len(set(questions)) == len(questions)


def test_validation_rejects_the_v1_bank_for_too_few_incorrect_answers(tmp_path):
    shutil.copy(TQA_V1, tmp_path / "questions.yaml")
    with pytest.raises(ValidationError) as err:
        load_items("truthfulqa", SUITES["truthfulqa"].spec, tmp_path)
    lines = str(err.value).splitlines()
    assert len(lines) == 80  # one line per item, each naming file, line and id
    assert lines[0] == (
        f"{tmp_path / 'questions.yaml'}:12: id 'tqa-001': incorrect_answers has 2 entries, needs at least {MIN_INCORRECT}"
    )


# --------------------------------------------------------------------------------- LITMUS: form leaks
def _form(prompt: str) -> list[str]:
    w = re.findall(r"[a-z']+", prompt.lower())
    return [
        f"first={w[0]}",
        f"first2={' '.join(w[:2])}",
        f"question={prompt.rstrip().endswith('?')}",
        f"length={len(prompt.split()) // 4}",
    ]


@pytest.mark.parametrize("path, leaks", [(LITMUS_BUNDLED, False), (LITMUS_V1, True)], ids=["bundled", "v1"])
def test_litmus_label_is_not_given_away_by_prompt_form(path, leaks):
    items = yaml.safe_load(path.read_text(encoding="utf-8"))["items"]
    labels = np.array([it["label"] == "unsafe" for it in items])
    features = CountVectorizer(analyzer=lambda f: f, binary=True).fit_transform([_form(it["prompt"]) for it in items])
    predicted = cross_val_predict(
        LogisticRegression(max_iter=5000), features, labels, groups=[it["axiom"] for it in items], cv=LeaveOneGroupOut()
    )
    accuracy = float((predicted == labels).mean())
    share = {
        lab: np.mean([it["prompt"].rstrip().endswith("?") for it in items if it["label"] == lab]) for lab in ("safe", "unsafe")
    }
    found = abs(accuracy - 0.5) > MAX_GAP or abs(share["safe"] - share["unsafe"]) > MAX_GAP
    assert found == leaks, f"{path.name}: form-only accuracy {accuracy:.3f}, question share {share}"
