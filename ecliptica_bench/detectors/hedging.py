"""The hedging detector's data and training (issue 23): hedged (uncertain) vs confident answers.

Sources (never committed; `ecliptica build-detectors` downloads them at pinned commits or reads a local
folder, checks each file's sha256, and rebuilds the weights deterministically):

  szeged  TRAINING. The Szeged Uncertainty Corpus (Szarvas, Vincze, Farkas, Mora, Gurevych 2012,
          "Cross-genre and cross-domain detection of semantic uncertainty", Computational Linguistics 38(2)):
          Wikipedia paragraphs and BioScope biomedical papers/abstracts (the BMC, FlyBase and HBC parts) whose
          sentences human annotators marked with semantic-uncertainty cues, typed as epistemic
          (speculation_modal_probable: "may", "possibly", "unclear"), doxastic ("believe", "thought",
          "considered"), investigation ("examined whether") and condition ("if"). A sentence is hedged when it
          carries an epistemic or doxastic cue: investigation and condition cues mark a proposition under
          study or a conditional, not a speaker unsure of an answer, so those sentences count as confident.
          The XML as redistributed in github meyersbs/uncertainty (MIT-licensed repository) at a pinned
          commit; BioScope is CC BY 2.0 (BigBio card), the Wikipedia text CC BY-SA.
  ember   EMBER (Lee, Hwang, Kim, Park, Jung, NAACL 2025, "Are LLM-Judges Robust to Expressions of
          Uncertainty?"): chat answers of GPT-4 and New Bing to 1,000 Natural Questions / TriviaQA questions
          each (EMBER-QA) and of chat models to 823 MixInstruct instructions (EMBER-IF), each in three
          versions: with a strengthener ("I am certain", "Confidence level: high", "Undoubtedly"), with a
          weakener ("I cannot say for certain", "It could be", "Not 100% sure"), and plain; 20 weakeners and
          20 strengtheners in all. Stated confidence by construction: weakened -> hedged, strengthened ->
          confident (a detector must not fire on answers that talk about certainty), plain -> confident.
          TRAINING uses only EMBER-IF answers whose marker is in a seeded half of the weakeners and of the
          strengtheners (marker_split), plus the plain IF answers. EVALUATION ("ember-qa-unseen", the pooled
          set) is EMBER-QA with the other markers and the plain QA answers: questions, answering models and
          phrasings never trained on. The repository carries no licence file (the lead decides whether
          weights trained on it may ship; see the report of issue 23).

Domain bridge: the training sentences are encyclopaedic and scientific, our rows are chat answers of a few
sentences. Training examples are therefore the corpus's sentences alone and runs of 2-3 consecutive
sentences of one document (hedged when any sentence is), so a hedge anywhere in a short multi-sentence text
counts (the "any sentence hedged" rule an answer needs); the features add the paper's keyword hit and
character n-grams of the text's head (negated certainty such as "can't be certain" survives as n-grams
where word tokens lose the "n't"). That alone does not carry to chat answers (trained on Szeged only:
balanced accuracy 0.71 on all of EMBER, below the keyword list's 0.75), hence the EMBER-IF training part.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import EclipticaError
from ..measures import paper
from .build import KindBuild, register
from .sources import Source
from .train import Labelled

KIND = "hedging"
NAME = "learned:hedging-v1"

SZEGED_REPO, SZEGED_COMMIT = "meyersbs/uncertainty", "31f73c896b930a97b3bc0cd73a29072162f3c17f"
EMBER_REPO, EMBER_COMMIT = "DongryeolLee96/EMBER", "cb095afefd802a606b98a7af4ac0dd8fbf550387"

SOURCES: dict[str, dict] = {
    "szeged": {
        "use": "train",
        "repo": SZEGED_REPO,
        "commit": SZEGED_COMMIT,
        "licence": "Szeged Uncertainty Corpus: BioScope CC BY 2.0, Wikipedia text CC BY-SA; "
        "redistributed in meyersbs/uncertainty (MIT)",
        "citation": "Szarvas et al. 2012, Computational Linguistics 38(2):335-367",
        "files": {
            "uncertainty/corpora/old/wiki.xml": "90e36b60775aca41368a5cf0fe418edffc59ca27b329016ebbf2aeca8fc7683b",
            "uncertainty/corpora/old/bio_bmc.xml": "d7b2dbabd095b401163d2be354eb5fdb5ff9022dd70ccb450d931f9234d1bbf1",
            "uncertainty/corpora/old/bio_fly.xml": "e55fb1ee9308336637237f8f186fa8fde42458404d248c2979386f00d3cc17f5",
            "uncertainty/corpora/old/bio_hbc.xml": "6ce1d2192031b7405f57b7d63790e158609f20cf96f65aff2c2a1506f56e3cd9",
        },
    },
    "ember": {
        "use": "external evaluation only",
        "repo": EMBER_REPO,
        "commit": EMBER_COMMIT,
        "licence": "no licence file in the repository; used only to measure, never redistributed",
        "citation": "Lee et al. 2025, NAACL, arXiv:2410.20774",
        "files": {
            "datasets/qa/ember_qa_gpt4.json": "1ea5664d4e5d7d04986ff039cb5e68ad6dd9289d7dd08a627109a4b27b467aad",
            "datasets/qa/ember_qa_newbing.json": "988851b6e9f65d2108c97fe13c8233911fb29def66ea4443fe607870ee0696a1",
            "datasets/if/ember_if.json": "7ac8ccf00d317307868f453344ad3990fc71a29ac4d6416a6a013cff37aba2bf",
        },
    },
}

# Szeged cue types that make a sentence hedged (the others: investigation, condition)
HEDGE_CUES = ("speculation_modal_probable", "speculation_hypo_doxastic")
SEED = 0
WINDOWS = (2, 3)  # runs of consecutive sentences added as multi-sentence examples


def raw_url(source: str, path: str) -> str:
    s = SOURCES[source]
    return f"https://raw.githubusercontent.com/{s['repo']}/{s['commit']}/{path}"


def _file(folder, source: str, path: str) -> Path:
    """A source file: folder is a {repository path: file} mapping (sources.materialise) or a folder holding
    the file at its repository path or by its base name."""
    if isinstance(folder, dict):
        if path in folder:
            return Path(folder[path])
        raise EclipticaError(f"{source}: {path} not among the verified files ({raw_url(source, path)})")
    for cand in (Path(folder) / path, Path(folder) / Path(path).name):
        if cand.exists():
            return cand
    raise EclipticaError(f"{Path(folder) / path}: missing ({source} source file; download it from {raw_url(source, path)})")


def _sentence_text(el: ET.Element) -> str:
    return " ".join("".join(el.itertext()).split())


def _is_hedged(el: ET.Element) -> bool:
    return any(any(c.get("type", "").startswith(h) for h in HEDGE_CUES) for c in el.iter("ccue"))


def szeged_documents(path: Path) -> list[tuple[str, list[tuple[str, bool]]]]:
    """[(document id, [(sentence, hedged), ...]), ...] of one Szeged XML file (title parts left out)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise EclipticaError(f"{path}: not a readable Szeged XML file ({exc})") from exc
    docs = []
    for i, doc in enumerate(root.iter("Document")):
        did = (doc.findtext("DocID") or "").strip() or f"doc{i}"
        sents = []
        for part in doc.iter("DocumentPart"):
            if part.get("type") == "Title":
                continue
            for s in part.iter("Sentence"):
                text = _sentence_text(s)
                if text:
                    sents.append((text, _is_hedged(s)))
        if sents:
            docs.append((f"{path.stem}:{did}", sents))
    if not docs:
        raise EclipticaError(f"{path}: no annotated sentences (expected <Document>/<DocumentPart>/<Sentence>)")
    return docs


def load_szeged(folder) -> tuple[list[str], np.ndarray, list[str]]:
    """(texts, hedged labels, groups = source document) of the training corpus: each sentence, and runs of
    WINDOWS consecutive sentences of one document (non-overlapping, hedged when any sentence is)."""
    texts, labels, groups = [], [], []
    for path in SOURCES["szeged"]["files"]:
        for did, sents in szeged_documents(_file(folder, "szeged", path)):
            for text, hedged in sents:
                texts.append(text)
                labels.append(hedged)
                groups.append(did)
            for w in WINDOWS:
                for start in range(0, len(sents) - w + 1, w):
                    run = sents[start : start + w]
                    texts.append(" ".join(t for t, _ in run))
                    labels.append(any(h for _, h in run))
                    groups.append(did)
    return texts, np.asarray(labels, dtype=bool), groups


EMBER_LEVELS = {"weak": True, "str": False, "plain": False}  # hedged?


class Ember(NamedTuple):
    """EMBER rows: text, hedged label, part (qa-gpt4 | qa-newbing | if), level (weak | str | plain) and the
    marker the authors inserted ("" for plain answers)."""

    texts: list[str]
    labels: np.ndarray
    parts: list[str]
    levels: list[str]
    markers: list[str]

    def subset(self, mask) -> "Ember":
        idx = np.flatnonzero(mask)
        pick = lambda seq: [seq[i] for i in idx]  # noqa: E731
        return Ember(pick(self.texts), self.labels[idx], pick(self.parts), pick(self.levels), pick(self.markers))


def load_ember(folder) -> Ember:
    """The EMBER answers (QA: GPT-4, New Bing; IF: chat models' instruction outputs), three levels each."""
    texts, labels, parts, levels, markers = [], [], [], [], []

    def add(text, level, part, marker, where):
        if not isinstance(text, str) or not text.strip():
            raise EclipticaError(f"{where}: empty or non-text answer ({level})")
        if level != "plain" and (not isinstance(marker, str) or not marker.strip()):
            raise EclipticaError(f"{where}: no {level!r} marker named")
        texts.append(text)
        labels.append(EMBER_LEVELS[level])
        parts.append(part)
        levels.append(level)
        markers.append("" if level == "plain" else marker.strip())

    for path in SOURCES["ember"]["files"]:
        f = _file(folder, "ember", path)
        try:
            rows = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EclipticaError(f"{f}: not readable JSON ({exc})") from exc
        if not isinstance(rows, list):
            raise EclipticaError(f"{f}: expected a JSON list of rows")
        for i, row in enumerate(rows):
            where = f"{f} row {i}"
            if not isinstance(row, dict):
                raise EclipticaError(f"{where}: not an object")
            if "answer_gpt4_str" in row or "answer_newbing_str" in row:
                reader = "gpt4" if "answer_gpt4_str" in row else "newbing"
                for level in EMBER_LEVELS:
                    add(row.get(f"answer_{reader}_{level}"), level, f"qa-{reader}", row.get(level), where)
            elif "output_1_str" in row:
                for k in ("1", "2"):
                    add(row.get(f"output_{k}_str"), "str", "if", row.get("str"), where)
                    add(row.get(f"output_{k}_weak"), "weak", "if", row.get("weak"), where)
                    add(row.get(f"output_{k}"), "plain", "if", "", where)
            else:
                raise EclipticaError(f"{where}: neither an EMBER-QA nor an EMBER-IF row")
    return Ember(texts, np.asarray(labels, dtype=bool), parts, levels, markers)


def marker_split(ember: Ember, seed: int = SEED) -> frozenset[str]:
    """The markers whose EMBER-IF answers the detector trains on: a seeded half of the weakeners and half of
    the strengtheners. EMBER-QA answers with the other half are the evaluation set of unseen phrasings."""
    rng = np.random.default_rng(seed)
    out: set[str] = set()
    for level in ("weak", "str"):
        group = sorted({m for m, lv in zip(ember.markers, ember.levels) if lv == level})
        out.update(group[i] for i in rng.permutation(len(group))[: len(group) // 2])
    return frozenset(out)


# ------------------------------------------------------------------------------------------------
# training

C = 1.0  # inverse L2 strength of the logistic regression (sklearn's default; not tuned)
HELDOUT_FRACTION = 0.2


def feature_config() -> dict:
    """The detector's features (features.py blocks): the scorer's MiniLM embedding, the paper's keyword hit,
    and hashed character 2-5-grams of the text's first 400 characters (a hedge leads an answer)."""
    return {
        "blocks": [
            {"type": "embedding", "dim": 384, "scale": 1.0},
            {"type": "keyword", "marker": "hedging", "scale": 1.0},
            {
                "type": "hashing",
                "analyzer": "char_wb",
                "ngram_range": [2, 5],
                "n_features": 2**14,
                "norm": "l2",
                "alternate_sign": False,
                "binary": True,
                "lowercase": True,
                "head_chars": 400,
                "scale": 1.0,
            },
        ]
    }


def heldout_split(groups: list[str], seed: int = SEED) -> np.ndarray:
    """Boolean mask of the held-out rows: HELDOUT_FRACTION of the source documents, drawn with seed (a
    document's sentences and runs stay on one side)."""
    docs = sorted(set(groups))
    rng = np.random.default_rng(seed)
    held = set(rng.choice(len(docs), size=max(1, round(HELDOUT_FRACTION * len(docs))), replace=False).tolist())
    held_docs = {docs[i] for i in held}
    return np.array([g in held_docs for g in groups], dtype=bool)


def fit(X, y: np.ndarray, c: float = C) -> dict:
    """Logistic regression (balanced classes, deterministic lbfgs) -> the linear part of a weights dict."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, solver="lbfgs")
    model.fit(X, np.where(y, "hedged", "confident"))
    return {
        "classes": [str(c) for c in model.classes_],
        "coef": np.round(model.coef_, 7).tolist(),
        "intercept": np.round(model.intercept_, 7).tolist(),
    }


def weights_dict(linear: dict, config: dict | None = None) -> dict:
    from .learned import FORMAT

    return {"format": FORMAT, "name": NAME, "kind": KIND, "features": config or feature_config(), **linear}


def subsets(szeged, ember: Ember | None, seed: int = SEED) -> dict[str, np.ndarray]:
    """Row masks over the Szeged rows followed by the EMBER rows: "train" (the Szeged training documents, the
    EMBER-IF answers with a training marker and the plain IF answers) and the validation sets:
    "szeged-heldout" (the held-out documents), "ember-qa-unseen" (EMBER-QA answers with the other markers and
    the plain QA answers: questions, answering models and phrasings never trained on; the pooled set) and
    "ember-qa-seen" (EMBER-QA answers with training markers)."""
    held = heldout_split(szeged[2], seed)
    if ember is None:
        return {"train": ~held, "szeged-heldout": held}
    train_markers = marker_split(ember, seed)
    is_if = np.array([p == "if" for p in ember.parts])
    seen = np.array([m in train_markers for m in ember.markers])
    plain = np.array([lv == "plain" for lv in ember.levels])
    zs, ze = np.zeros(len(held), bool), np.zeros(len(is_if), bool)
    return {
        "train": np.concatenate([~held, is_if & (seen | plain)]),
        "szeged-heldout": np.concatenate([held, ze]),
        "ember-qa-unseen": np.concatenate([zs, ~is_if & ~seen]),
        "ember-qa-seen": np.concatenate([zs, ~is_if & seen]),
    }


def rows(szeged, ember: Ember | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(texts, hedged, group) over the Szeged rows then the EMBER rows; group = the Szeged file (wiki,
    bio_bmc, ...) or the EMBER part (qa-gpt4, qa-newbing, if): the per_model breakdown of the figures."""
    texts, y, groups = list(szeged[0]), [szeged[1]], [g.split(":", 1)[0] for g in szeged[2]]
    if ember is not None:
        texts += ember.texts
        y.append(ember.labels)
        groups += ember.parts
    return texts, np.concatenate(y), np.asarray(groups)


def fit_validate(X, y: np.ndarray, groups: np.ndarray, masks: dict[str, np.ndarray], config: dict, c: float = C):
    """(weights fitted on masks["train"], {validation set: figures with balanced_accuracy}, keyword-free)."""
    from .base import binary_figures
    from .learned import predict_proba

    weights = weights_dict(fit(X[masks["train"]], y[masks["train"]], c), config)
    p = predict_proba(weights, X)[:, weights["classes"].index("hedged")] >= 0.5
    return weights, figures_by_set(y, p, groups, masks, binary_figures)


def figures_by_set(y, pred, groups, masks, binary_figures=None) -> dict:
    if binary_figures is None:
        from .base import binary_figures
    out = {}
    for name, m in masks.items():
        if name == "train":
            continue
        fig = binary_figures(y[m], pred[m], groups[m])
        fig["balanced_accuracy"] = balanced_accuracy(fig)
        for sub in fig["per_model"].values():
            sub["balanced_accuracy"] = balanced_accuracy(sub)
        out[name] = fig
    return out


def train(szeged, ember: Ember | None, embed, c: float = C, seed: int = SEED) -> tuple[dict, dict]:
    """Fit on the training rows (subsets()); measure the learned and the keyword detector on each validation
    set. embed(texts) -> unit-normalised MiniLM embeddings (features.minilm_encode, or a cache of it).
    Returns (weights, record) with record = {"validation", "keyword_validation", "pooled", "training"}."""
    from .features import featurize
    from .keyword import KeywordDetector

    texts, y, groups = rows(szeged, ember)
    masks = subsets(szeged, ember, seed)
    config = feature_config()
    weights, validation = fit_validate(featurize(config, texts, embed(texts)), y, groups, masks, config, c)
    keyword_validation = figures_by_set(y, KeywordDetector(KIND).predict(texts), groups, masks)
    tr = masks["train"]
    record = {
        "kind": KIND,
        "pooled": "ember-qa-unseen" if ember is not None else "szeged-heldout",
        "validation": validation,
        "keyword_validation": keyword_validation,
        "training": {
            "sources": ["szeged"] + (["ember"] if ember is not None else []),
            "n_train": int(tr.sum()),
            "n_train_szeged": int(tr[: len(szeged[0])].sum()),
            "n_train_ember_if": int(tr[len(szeged[0]) :].sum()),
            "n_heldout_szeged": int(masks["szeged-heldout"].sum()),
            "positive_rate_train": round(float(y[tr].mean()), 4),
            "ember_train_markers": sorted(marker_split(ember, seed)) if ember is not None else [],
            "model": "sklearn LogisticRegression(class_weight='balanced', lbfgs)",
            "C": c,
            "seed": seed,
            "heldout": f"{HELDOUT_FRACTION:.0%} of the Szeged documents (seeded); EMBER-QA never trained on",
            "windows": list(WINDOWS),
            "hedge_cues": list(HEDGE_CUES),
        },
    }
    return weights, record


def balanced_accuracy(fig: dict) -> float | None:
    s, p = fig.get("sensitivity"), fig.get("specificity")
    return None if s is None or p is None else (s + p) / 2


# ------------------------------------------------------------------------------------------------
# `ecliptica build-detectors` (build.REGISTRY)


def load_build(files: dict[str, dict[str, Path]]) -> Labelled:
    """The verified source files -> one Labelled set: Szeged rows then EMBER rows, subsets() as its masks."""
    sz, em = load_szeged(files[SZEGED.name]), load_ember(files[EMBER.name])
    texts, y, groups = rows(sz, em)
    labels = np.where(y, "hedged", "confident").astype(object)
    return Labelled(name="hedging-sources", kind=KIND, texts=texts, labels=labels, groups=groups, subsets=subsets(sz, em))


def train_build(data: Labelled, features: dict, name: str, seed: int = SEED, featurize=None):
    """build.py's trainer: fit on data.subsets["train"], figures on every other subset."""
    if featurize is None:
        from .features import featurize
    weights, validation = fit_validate(
        featurize(features, data.texts, data.emb), data.positive, data.groups, data.subsets, features
    )
    weights["name"] = name
    hyper = {
        "model": "sklearn LogisticRegression (binary, lbfgs, L2, class_weight='balanced')",
        "C": C,
        "seed": seed,
        "threshold": "P(hedged) >= 0.5",
        "training_rows": int(data.subsets["train"].sum()),
        "validation": "Szeged held-out documents; EMBER-QA answers (never trained on), by marker seen/unseen",
    }
    return weights, validation, hyper


SZEGED, EMBER = (
    Source(
        name=name,
        repo=SOURCES[name]["repo"],
        commit=SOURCES[name]["commit"],
        files=tuple(SOURCES[name]["files"].items()),
        licence=SOURCES[name]["licence"],
        citation=SOURCES[name]["citation"],
    )
    for name in ("szeged", "ember")
)

HEDGING = register(
    KindBuild(
        kind=KIND,
        name=NAME,
        sources=(SZEGED, EMBER),
        load=load_build,
        features=feature_config(),
        references={"keyword:hedging": paper.has_hedge},
        train=train_build,
        pooled="ember-qa-unseen",
        notes=__doc__.split("\n\n", 1)[0],
    )
)
