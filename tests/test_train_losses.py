"""CITA's loss pieces against hand computations, and trl's DPO term inside our trainer, on a tiny Llama."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from loss_reference import sequence_logps, sft_nll, token_kl

from ecliptica_bench.errors import EclipticaError
from ecliptica_bench.train.losses import (
    KLSchedule,
    completion_head,
    dpo_sigmoid_loss,
    token_logps,
)
from ecliptica_bench.train.packing import plan_packing

# ---------------------------------------------------------------------------------------------- pure functions


def test_token_kl_matches_hand_computation():
    p_logits = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]])
    q_logits = torch.tensor([[0.0, 0.0, 0.0], [2.0, -1.0, 0.0]])
    hand = []
    for pl, ql in zip(p_logits.tolist(), q_logits.tolist()):
        zp = sum(math.exp(x) for x in pl)
        zq = sum(math.exp(x) for x in ql)
        p = [math.exp(x) / zp for x in pl]
        q = [math.exp(x) / zq for x in ql]
        hand.append(sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q)))
    assert token_kl(p_logits, q_logits).item() == pytest.approx(sum(hand) / 2, rel=1e-5)
    # masking keeps only the selected positions
    mask = torch.tensor([False, True])
    assert token_kl(p_logits, q_logits, mask).item() == pytest.approx(hand[1], rel=1e-5)


def test_token_kl_zero_for_equal_and_positive_otherwise():
    torch.manual_seed(0)
    logits = torch.randn(5, 64)
    assert token_kl(logits, logits.clone()).item() == pytest.approx(0.0, abs=1e-6)
    # shifting all logits by a constant is the same distribution
    assert token_kl(logits, logits + 3.0).item() == pytest.approx(0.0, abs=1e-5)
    other = logits + 0.5 * torch.randn(5, 64)
    assert token_kl(logits, other).item() > 1e-3
    # not the signed log-ratio shortcut: KL is direction-sensitive and never negative
    for _ in range(20):
        a, b = torch.randn(3, 64), torch.randn(3, 64)
        assert token_kl(a, b).item() >= 0
    assert token_kl(logits, other).item() != pytest.approx(token_kl(other, logits).item(), rel=1e-3)


def test_token_kl_gradient_flows_to_policy_only():
    p = torch.randn(4, 16, requires_grad=True)
    q = torch.randn(4, 16, requires_grad=True)
    token_kl(p, q).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert q.grad is None


def test_sft_nll_equals_cross_entropy_and_hand_value():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 1, 2])
    hand = -(math.log(math.exp(2) / (math.exp(2) + 2)) + math.log(math.e / (math.e + 2)) + math.log(1 / 3)) / 3
    assert sft_nll(logits, labels).item() == pytest.approx(hand, rel=1e-6)
    assert sft_nll(logits, labels).item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)
    mask = torch.tensor([True, False, False])
    assert sft_nll(logits, labels, mask).item() == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 2)), rel=1e-6)


def test_dpo_sigmoid_loss_formula():
    loss = dpo_sigmoid_loss(torch.tensor([-10.0]), torch.tensor([-12.0]), torch.tensor([-11.0]), torch.tensor([-11.0]), 0.1)
    margin = (-10 + 11) - (-12 + 11)  # = 2
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.1 * margin))), rel=1e-6)


def test_kl_schedule():
    s = KLSchedule.parse(2e-4, None)
    assert s.at(0, 10) == s.at(9, 10) == 2e-4 and s.active
    a = KLSchedule.parse(2e-4, "0.01:0.1")
    assert a.at(0, 10) == pytest.approx(0.01)
    assert a.at(9, 10) == pytest.approx(0.1)
    assert a.at(3, 7) == pytest.approx(0.01 + 0.09 * 0.5)
    assert not KLSchedule.parse(0.0, None).active
    with pytest.raises(EclipticaError, match="START:END"):
        KLSchedule.parse(1e-4, "0.1")
    with pytest.raises(EclipticaError, match=">= 0"):
        KLSchedule.parse(1e-4, "-1:0.1")


# ---------------------------------------------------------------------------------------------- a tiny model

WORDS = (
    "a b c d e f g h i j k l m n o p q r s t u v w x y z yes no ok refuse help short long explain safe risky "
    "please maybe sure can't will data lock key"
).split()


@pytest.fixture(scope="module")
def tiny():
    """A 2-layer Llama (hidden 32, vocab 64) and a word-level tokenizer with a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<unk>", "<system>", "<user>", "<assistant>"]
    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    assert len(vocab) <= 64
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    tok.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} <eos> {% endfor %}"
        "{% if add_generation_prompt %}<assistant> {% endif %}"
    )
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
    )
    return LlamaForCausalLM(cfg), tok


ROWS = [
    {"instruction": "refuse risky", "prompt": "lock key please", "chosen": "can't help", "rejected": "sure a b c d"},
    {"instruction": "help", "prompt": "lock key please", "chosen": "sure a b c d", "rejected": "can't help"},
    {"instruction": "short", "prompt": "explain data", "chosen": "ok short", "rejected": "long e f g h i j k"},
    {"instruction": "long", "prompt": "explain data", "chosen": "long e f g h i j k", "rejected": "ok short"},
]


def make_trainer(tiny, tmp_path, kl=0.0, sft=0.0, beta=0.1, pack=True, ref_cache=None):
    import copy

    from peft import LoraConfig
    from trl import DPOConfig

    from ecliptica_bench.train.trainer import _preference_trainer_cls, trl_dataset

    model, tok = tiny
    args = DPOConfig(
        output_dir=str(tmp_path / "ckpt"),
        per_device_train_batch_size=4,
        report_to="none",
        beta=beta,
        bf16=False,
        use_cpu=True,
        gradient_checkpointing=False,
        max_length=64,
        logging_steps=1,
        precompute_ref_log_probs=False,
        max_steps=1,
        learning_rate=1e-3,
    )
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        task_type="CAUSAL_LM",
    )
    trainer = _preference_trainer_cls()(
        model=copy.deepcopy(model),
        args=args,
        train_dataset=trl_dataset(ROWS, "dpo"),
        processing_class=tok,
        peft_config=lora,
        kl_schedule=KLSchedule(kl, kl),
        sft_weight=sft,
        pack=pack,
        ref_cache=ref_cache,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    return trainer, batch


def perturb_lora(model, seed=1, scale=0.3):
    """Move the adapter off zero so the policy differs from the reference (adapter disabled)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * scale)


def hand_terms(trainer, batch):
    """Per-sequence log-probs and token-level KL / SFT from plain full-logit forwards (policy and adapter-off reference)."""
    model = trainer.model
    ids, att, cm = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    with torch.no_grad():
        pol = model(input_ids=ids, attention_mask=att).logits
        with model.disable_adapter():
            ref = model(input_ids=ids, attention_mask=att).logits
    lp, _ = sequence_logps(pol, ids, cm)
    rlp, _ = sequence_logps(ref, ids, cm)
    mask = cm[:, 1:].bool()
    kl = token_kl(pol[:, :-1], ref[:, :-1], mask).item()
    b = ids.shape[0] // 2
    sft = sft_nll(pol[:b, :-1], ids[:b, 1:], mask[:b]).item()
    return lp, rlp, kl, sft


def test_trainer_dpo_term_is_minus_logsigmoid_of_beta_margin(tiny, tmp_path):
    trainer, batch = make_trainer(tiny, tmp_path, beta=0.5)
    perturb_lora(trainer.model)
    lp, rlp, _, _ = hand_terms(trainer, batch)
    b = lp.shape[0] // 2
    margin = (lp[:b] - rlp[:b]) - (lp[b:] - rlp[b:])
    assert margin.abs().max() > 1e-3, "perturbed adapter should move the log-ratios"
    hand = torch.tensor([-math.log(1 / (1 + math.exp(-0.5 * m))) for m in margin.tolist()]).mean().item()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch)
    assert loss.item() == pytest.approx(hand, rel=1e-4)
    assert trainer._metrics["train"]["dpo"][-1] == pytest.approx(hand, rel=1e-4)
    # dpo measures the KL to the reference too (logged, not in the loss)
    _, _, kl_hand, _ = hand_terms(trainer, batch)
    assert kl_hand > 1e-4 and trainer._metrics["train"]["kl"][-1] == pytest.approx(kl_hand, rel=1e-4)
    assert trainer._metrics["train"]["kl_weight"][-1] == 0.0
    # trl's logged reward margin is beta x the same margin
    assert trainer._metrics["train"]["rewards/margins"][-1] == pytest.approx(0.5 * margin.mean().item(), rel=1e-4)


def test_trainer_kl_term_is_full_vocabulary_token_kl(tiny, tmp_path):
    w = 0.7
    trainer, batch = make_trainer(tiny, tmp_path, kl=w)
    with torch.no_grad():
        trainer.compute_loss(trainer.model, batch)
    # fresh LoRA (B = 0): policy == reference, KL exactly 0
    assert trainer._metrics["train"]["kl"][-1] == pytest.approx(0.0, abs=1e-7)
    perturb_lora(trainer.model)
    _, _, kl_hand, _ = hand_terms(trainer, batch)
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch)
    m = trainer._metrics["train"]
    assert kl_hand > 1e-4
    assert m["kl"][-1] == pytest.approx(kl_hand, rel=1e-4)
    assert m["kl_weight"][-1] == w
    assert loss.item() == pytest.approx(m["dpo"][-1] + w * kl_hand, rel=1e-5)


def test_trainer_sft_term_is_nll_on_chosen(tiny, tmp_path):
    trainer, batch = make_trainer(tiny, tmp_path, sft=0.3)
    perturb_lora(trainer.model)
    _, _, _, sft_hand = hand_terms(trainer, batch)
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch)
    m = trainer._metrics["train"]
    assert m["sft"][-1] == pytest.approx(sft_hand, rel=1e-5)
    assert loss.item() == pytest.approx(m["dpo"][-1] + 0.3 * sft_hand, rel=1e-5)


def test_completion_head_values_and_gradients_match_full_logits():
    """The fused head (one projection, analytic backward) against plain autograd on full logits."""
    torch.manual_seed(3)
    n, H, V = 7, 5, 11
    h = torch.randn(n, H).requires_grad_()
    W = torch.randn(V, H).requires_grad_()
    labels = torch.randint(0, V, (n,))
    ref_logits = torch.randn(n, V)
    a, b = torch.randn(n), torch.randn(n)  # arbitrary upstream weights of the two outputs

    logits = h @ W.t()
    lp_full = token_logps(logits, labels)
    logp, logq = torch.log_softmax(logits, -1), torch.log_softmax(ref_logits, -1)
    kl_full = (logp.exp() * (logp - logq)).sum(-1)
    # the per-token KL is the hand-checked token_kl, one position at a time
    assert kl_full[2].item() == pytest.approx(token_kl(logits[2:3], ref_logits[2:3]).item(), rel=1e-5)
    gh_full, gw_full = torch.autograd.grad((a * lp_full).sum() + (b * kl_full).sum(), (h, W))
    for chunk in (3, 1000):
        out = completion_head(h, W, labels, ref_logq=logq, chunk_tokens=chunk)
        assert torch.allclose(out.logps, lp_full, atol=1e-5) and torch.allclose(out.kl, kl_full, atol=1e-5)
        assert torch.allclose(out.entropy, -(logp.exp() * logp).sum(-1), atol=1e-5)
        assert torch.equal(out.is_top1, logits.argmax(-1) == labels)
        assert torch.allclose(out.mean_logit, logits.mean(-1), atol=1e-5)
        gh, gw = torch.autograd.grad((a * out.logps).sum() + (b * out.kl).sum(), (h, W))
        assert torch.allclose(gh, gh_full, atol=1e-5) and torch.allclose(gw, gw_full, atol=1e-5)
    # the reference pass keeps its log-softmax for the policy pass; without a reference there is no KL
    ref = completion_head(h.detach(), W.detach(), labels, keep_logq=True)
    assert ref.kl is None and torch.allclose(ref.logq, logp.detach(), atol=1e-5)
    # only the log-prob gradient when the KL is not in the loss (dpo logs it)
    out = completion_head(h, W, labels, ref_logq=logq)
    (gh,) = torch.autograd.grad((a * out.logps).sum(), (h,))
    (gh_lp,) = torch.autograd.grad((a * token_logps(h @ W.t(), labels)).sum(), (h,))
    assert torch.allclose(gh, gh_lp, atol=1e-5) and not torch.allclose(gh, gh_full, atol=1e-3)
    # and only the KL's gradient when the log-probs are not used
    (gh,) = torch.autograd.grad((b * completion_head(h, W, labels, ref_logq=logq, chunk_tokens=3).kl).sum(), (h,))
    lp2 = torch.log_softmax(h @ W.t(), -1)
    (gh_kl,) = torch.autograd.grad((b * (lp2.exp() * (lp2 - logq)).sum(-1)).sum(), (h,))
    assert torch.allclose(gh, gh_kl, atol=1e-5)


def test_plan_packing_shares_prompts_and_drops_padding():
    # three pairs, batch order [chosen x 3; rejected x 3], right-padded to 5
    P = 0
    rows = [
        [11, 12, 13, 21, 22],
        [14, 15, 23, P, P],
        [16, 24, P, P, P],  # chosen
        [11, 12, 13, 31, P],
        [14, 15, 32, 33, 34],
        [16, 35, P, P, P],
    ]  # rejected
    ids = torch.tensor(rows)
    att = (ids != P).long()
    plan = plan_packing(ids, att, pad_id=P)
    # pair sizes: 3 + 2 + 1 = 6, 2 + 1 + 3 = 6, 1 + 1 + 1 = 3 -> rows of 6, first-fit decreasing: 3 rows
    assert plan.input_ids.tolist() == [[11, 12, 13, 21, 22, 31], [14, 15, 23, 32, 33, 34], [16, 24, 35, P, P, P]]
    assert plan.position_ids.tolist() == [[0, 1, 2, 3, 4, 3], [0, 1, 2, 2, 3, 4], [0, 1, 1, 0, 1, 2]]
    assert plan.branch[0].tolist() == [0, 0, 0, 1, 1, 2]
    assert plan.index.tolist() == [
        [0, 1, 2, 3, 4],
        [6, 7, 8, -1, -1],
        [12, 13, -1, -1, -1],
        [0, 1, 2, 5, -1],
        [6, 7, 9, 10, 11],
        [12, 14, -1, -1, -1],
    ]
    assert plan.real_tokens == 21 and plan.packed_tokens == 18 and ids.numel() == 30  # 5+3+2+4+5+2 real
    m = plan.attention_mask("sdpa")
    assert m.shape == (3, 1, 6, 6) and m.dtype == torch.bool
    # row 0: the rejected token (slot 5) sees the prompt and itself, not the chosen tail
    assert m[0, 0].int().tolist() == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 0, 0, 1],
    ]
    # row 2: the dummy end (slots 3-5) is its own sequence
    assert m[0 + 2, 0, 4].int().tolist() == [0, 0, 0, 1, 1, 0]
    eager = plan.attention_mask("eager")
    assert eager.dtype == torch.float32 and torch.equal(eager == 0, m)
    # left padding is not planned (the caller runs the batch as it is)
    assert plan_packing(torch.tensor([[P, 1, 2], [3, 4, 5]]), torch.tensor([[0, 1, 1], [1, 1, 1]])) is None


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_packed_forward_equals_padded_forward(tiny, impl):
    import copy

    model = copy.deepcopy(tiny[0]).eval()
    model.set_attn_implementation(impl)
    torch.manual_seed(5)
    ids = torch.randint(6, 64, (4, 9))
    ids[2, :4] = ids[0, :4]  # pair (0, 2) shares a 4-token prompt
    ids[3, :3] = ids[1, :3]
    att = torch.ones_like(ids)
    att[1, 6:] = 0
    att[2, 7:] = 0
    ids = ids.masked_fill(att == 0, 0)
    plan = plan_packing(ids, att)
    assert plan.packed_tokens < ids.numel()
    with torch.no_grad():
        padded = model.model(input_ids=ids, attention_mask=att).last_hidden_state
        packed = model.model(
            input_ids=plan.input_ids, attention_mask=plan.attention_mask(impl), position_ids=plan.position_ids
        ).last_hidden_state
    flat = packed.reshape(-1, packed.shape[-1])
    real = att.bool()
    assert torch.allclose(flat[plan.index[real]], padded[real], atol=1e-5)


def _lora_layers(model):
    return [m for m in model.modules() if hasattr(m, "lora_A") and hasattr(m, "disable_adapters")]


@pytest.mark.parametrize("kl", [0.7, 0.0], ids=["cita", "dpo"])
def test_one_reference_forward_per_step_serves_dpo_and_kl(tiny, tmp_path, kl):
    trainer, batch = make_trainer(tiny, tmp_path, kl=kl, sft=0.3)
    model = trainer.model
    perturb_lora(model)
    lora = _lora_layers(model)
    calls = []

    def hook(_mod, _args, kwargs, _out):
        calls.append(("ref" if lora[0].disable_adapters else "policy", tuple(kwargs["input_ids"].shape)))

    handle = model.get_base_model().model.register_forward_hook(hook, with_kwargs=True)
    try:
        loss = trainer.compute_loss(model, batch)
        loss.backward()
    finally:
        handle.remove()
    # one reference pass (adapter disabled) and one policy pass per step, no recomputation in the backward
    assert [c[0] for c in calls] == ["ref", "policy"]
    # both ran on the packed batch: the 4 pairs share their prompts, fewer rows than the 8 padded sequences
    assert calls[0][1] == calls[1][1] and calls[0][1][0] < batch["input_ids"].shape[0]
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    m = trainer._metrics["train"]
    assert m["kl"][-1] > 1e-4 and m["kl_weight"][-1] == kl
    assert loss.item() == pytest.approx(m["dpo"][-1] + kl * m["kl"][-1] + 0.3 * m["sft"][-1], rel=1e-5)


def test_packing_does_not_change_the_loss_or_its_gradient(tiny, tmp_path):
    results = []
    for pack in (True, False):
        trainer, batch = make_trainer(tiny, tmp_path / str(pack), kl=0.7, sft=0.3, pack=pack)
        perturb_lora(trainer.model)
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
        m = trainer._metrics["train"]
        grads = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.requires_grad])
        results.append((loss.item(), m["dpo"][-1], m["kl"][-1], m["sft"][-1], grads))
    (l1, d1, k1, s1, g1), (l2, d2, k2, s2, g2) = results
    assert k1 > 1e-4
    for a, b in ((l1, l2), (d1, d2), (k1, k2), (s1, s2)):
        assert a == pytest.approx(b, rel=1e-4)
    assert torch.allclose(g1, g2, atol=1e-5, rtol=1e-3)


def _backbone_calls(model):
    """Record, per backbone forward, whether it ran as the reference (adapter disabled) or the policy."""
    lora = _lora_layers(model)
    calls = []
    handle = model.get_base_model().model.register_forward_hook(
        lambda *_: calls.append("ref" if lora[0].disable_adapters else "policy")
    )
    return calls, handle


@pytest.mark.parametrize("pack", [True, False], ids=["packed", "padded"])
def test_cached_reference_equals_live_reference(tiny, tmp_path, pack):
    """RefCache: the second pass over the same batch runs no reference backbone, and its loss, terms (KL,
    DPO reference log-probs) and gradients equal the live computation to 1e-5 in float32."""
    from ecliptica_bench.train.trainer import RefCache

    cache = RefCache(1 << 30)
    live, batch = make_trainer(tiny, tmp_path / "live", kl=0.7, sft=0.3, pack=pack)
    cached, batch2 = make_trainer(tiny, tmp_path / "cached", kl=0.7, sft=0.3, pack=pack, ref_cache=cache)
    assert torch.equal(batch["input_ids"], batch2["input_ids"])
    for t in (live, cached):
        perturb_lora(t.model)
    results = {}
    for name, t, runs in (("live", live, 1), ("cached", cached, 2)):
        for i in range(runs):
            calls, handle = _backbone_calls(t.model)
            try:
                t.model.zero_grad()
                loss = t.compute_loss(t.model, batch)
                loss.backward()
            finally:
                handle.remove()
            m = t._metrics["train"]
            grads = torch.cat([p.grad.flatten() for p in t.model.parameters() if p.requires_grad])
            results[(name, i)] = (calls, loss.item(), m["dpo"][-1], m["kl"][-1], m["sft"][-1], m["rewards/margins"][-1], grads)
    assert results[("live", 0)][0] == ["ref", "policy"]
    assert results[("cached", 0)][0] == ["ref", "policy"]  # first sight: the reference runs and is kept
    assert results[("cached", 1)][0] == ["policy"]  # then the reference backbone is skipped
    assert cache.hits == 1 and cache.misses == 1 and len(cache.rows) == batch["input_ids"].shape[0]
    want = results[("live", 0)]
    assert want[3] > 1e-4 and abs(want[5]) > 1e-4  # a real KL and reward margin to compare
    for key in (("cached", 0), ("cached", 1)):
        got = results[key]
        for a, b in zip(got[1:6], want[1:6]):
            assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
        assert torch.allclose(got[6], want[6], rtol=1e-5, atol=1e-6)


def test_ref_cache_keys_rows_by_tokens_and_labels():
    from ecliptica_bench.train.trainer import RefCache

    ids = torch.tensor([[5, 6, 7, 0], [5, 6, 8, 9]])
    att = (ids != 0).long()
    lab = ids.masked_fill(torch.tensor([[1, 1, 0, 1], [1, 0, 0, 0]]).bool(), -100)
    keys = RefCache.keys(ids, att, lab)
    assert len(set(keys)) == 2
    # the same row padded to another length is the same key; another label mask is another key
    assert RefCache.keys(ids[:1, :3], att[:1, :3], lab[:1, :3]) == keys[:1]
    assert RefCache.keys(ids[:1], att[:1], ids[:1]) != keys[:1]
    # a left-padded row has no key (its states depend on the padding)
    assert RefCache.keys(torch.tensor([[0, 5, 6]]), torch.tensor([[0, 1, 1]]), torch.tensor([[-100, 5, 6]])) is None
    # the byte budget: rows beyond it are not kept
    c = RefCache(max_bytes=3 * 4 * 2)
    c.put(keys, torch.ones(5, 2), [3, 2])
    assert list(c.rows) == [keys[0]] and c.get(keys) is None and c.get(keys[:1]).shape == (3, 2)


def test_bf16_autocast_gives_finite_terms_close_to_fp32(tiny, tmp_path):
    trainer, batch = make_trainer(tiny, tmp_path, kl=0.5, sft=0.2)
    perturb_lora(trainer.model, scale=0.1)
    m = trainer._metrics["train"]
    with torch.no_grad():
        loss32 = trainer.compute_loss(trainer.model, batch).item()
    t32 = {k: m[k][-1] for k in ("dpo", "kl", "sft")}
    seen = []
    handle = _lora_layers(trainer.model)[0].base_layer.register_forward_hook(lambda _m, _a, out: seen.append(out.dtype))
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss16 = trainer.compute_loss(trainer.model, batch)
        loss16.backward()
    finally:
        handle.remove()
    assert torch.bfloat16 in seen, "the projections should have run in bf16"
    t16 = {k: m[k][-1] for k in ("dpo", "kl", "sft")}
    assert all(math.isfinite(v) for v in [loss16.item(), *t16.values()])
    assert all(torch.isfinite(p.grad).all() for p in trainer.model.parameters() if p.requires_grad)
    assert loss16.item() == pytest.approx(loss32, rel=0.05)
    assert t16["dpo"] == pytest.approx(t32["dpo"], rel=0.05) and t16["sft"] == pytest.approx(t32["sft"], rel=0.05)
    assert t16["kl"] == pytest.approx(t32["kl"], rel=0.25, abs=2e-3)


def test_dtype_auto_uses_bf16_only_with_native_support(monkeypatch):
    from ecliptica_bench.train.trainer import TrainConfig, resolve_dtype

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for avx512_bf16, amx, want in [(False, False, "float32"), (True, False, "bfloat16"), (False, True, "bfloat16")]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert resolve_dtype("auto") == want
        assert resolve_dtype("float32") == "float32" and resolve_dtype("bfloat16") == "bfloat16"
    with pytest.raises(EclipticaError, match="--dtype 'fp16'"):
        TrainConfig(method="dpo", model="m", data="d", out="o", dtype="fp16").check()


def test_one_step_on_dpo_term_raises_chosen_over_rejected(tiny, tmp_path):
    trainer, batch = make_trainer(tiny, tmp_path)
    perturb_lora(trainer.model, seed=2, scale=0.05)

    def margins():
        lp, rlp, _, _ = hand_terms(trainer, batch)
        b = lp.shape[0] // 2
        return (lp[:b] - rlp[:b]) - (lp[b:] - rlp[b:])

    before = margins()
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.5)
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    opt.step()
    after = margins()
    assert after.mean() > before.mean()
    with torch.no_grad():
        assert trainer.compute_loss(trainer.model, batch).item() < loss.item()


def test_one_step_on_kl_term_moves_policy_back_to_reference(tiny, tmp_path):
    trainer, batch = make_trainer(tiny, tmp_path, kl=1.0)
    perturb_lora(trainer.model, seed=4)
    _, _, kl_before, _ = hand_terms(trainer, batch)
    trainer.compute_loss(trainer.model, batch)
    dpo = trainer._metrics["train"]["dpo"][-1]
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.05)
    # (dpo + 1e4 x KL) / 1e4: the step follows the KL gradient, the DPO term's share is negligible
    trainer.kl_schedule = KLSchedule(1e4, 1e4)
    loss = trainer.compute_loss(trainer.model, batch)
    (loss / 1e4).backward()
    opt.step()
    _, _, kl_after, _ = hand_terms(trainer, batch)
    assert math.isfinite(dpo)
    assert kl_after < kl_before


def test_cli_refuses_cita_without_kl(tmp_path):
    from click.testing import CliRunner

    from ecliptica_bench.cli import cli

    data = tmp_path / "prefs"
    data.mkdir()
    res = CliRunner().invoke(
        cli, ["train", "--method", "cita", "--kl-weight", "0", "--data", str(data), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2
    assert "KL anchor" in res.output and "--method dpo" in res.output
    res = CliRunner().invoke(
        cli, ["train", "--method", "dpo", "--kl-weight", "1e-4", "--data", str(data), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "cita only" in res.output
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------- train() plumbing
# The whole `train` path (data, trainer, CSV log, adapter, merge, refusal to clobber) for each method, on the
# tiny model so it runs in seconds; the embedded-model run is in test_train_e2e.py.


@pytest.fixture(scope="module")
def tiny_dir(tiny, tmp_path_factory):
    model, tok = tiny
    d = tmp_path_factory.mktemp("tiny") / "model"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def prefs_dir(tmp_path_factory):
    from ecliptica_bench.train.prefs import build_prefs

    d = tmp_path_factory.mktemp("prefs") / "p"
    build_prefs(d, max_pairs=12)
    return d


@pytest.mark.parametrize("method", ["cita", "dpo", "sft"])
def test_train_writes_log_adapter_and_merged_model(method, tiny_dir, prefs_dir, tmp_path):
    import csv

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ecliptica_bench.train.trainer import LOG_COLUMNS, TrainConfig, resolve_dtype, train

    out = tmp_path / "out"
    cfg = TrainConfig(
        method=method,
        model=str(tiny_dir),
        data=str(prefs_dir),
        out=str(out),
        max_steps=2,
        batch_size=2,
        max_length=128,
        lr=1e-2,
        merge=True,
        eval_heldout=method == "cita",
        sft_weight=0.5 if method == "dpo" else 0.0,
        gradient_checkpointing=method == "dpo",
    )
    summary = train(cfg)
    assert summary["global_step"] == 2
    with open(out / "train_log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == LOG_COLUMNS and [int(r["step"]) for r in rows] == [1, 2]
    for r in rows:
        assert math.isfinite(float(r["loss"]))
        if method == "sft":
            assert r["sft"] == r["loss"] and r["dpo"] == "" and r["kl"] == ""
        else:
            assert math.isfinite(float(r["dpo"])) and math.isfinite(float(r["reward_margin"]))
            assert math.isfinite(float(r["kl"]))  # logged for dpo too ...
            assert (float(r["kl_weight"]) > 0) == (method == "cita")  # ... but optimised by cita only
            assert (r["sft"] != "") == (method == "dpo")
            assert int(r["tokens_seen"]) > 0
    assert summary["dtype"] == resolve_dtype("auto") and summary["config"]["method"] == method
    conf = json.loads((out / "train_config.json").read_text())
    assert conf["dtype"] == "auto" and conf["dtype_resolved"] == summary["dtype"]
    if method != "sft":
        assert float(rows[0]["kl"]) == pytest.approx(0.0, abs=1e-6)  # LoRA starts at B = 0: policy == reference
        assert float(rows[1]["kl"]) > 0
        k = summary["kl_to_reference"]
        assert k["final"] == pytest.approx(float(rows[1]["kl"])) and k["optimised"] == (method == "cita")
        assert k["mean"] == pytest.approx((float(rows[0]["kl"]) + float(rows[1]["kl"])) / 2)
        t = summary["tokens"]
        assert 0 < t["real"] < t["padded"] and t["packed"] < t["padded"]
        assert int(rows[1]["tokens_seen"]) == t["real"] and summary["tokens_per_second"] > 0
    else:
        assert summary["kl_to_reference"] is None
    if method == "cita":
        pe = json.loads((out / "pref_eval.json").read_text())
        assert set(pe) == {"before", "after"} and "accuracy_reward" in pe["after"]["overall"]
        acc = summary["heldout_accuracy"]
        kinds = set(pe["after"]["per_kind"])
        assert set(acc["after"]["accuracy_logp_per_token"]) == {"overall"} | kinds and len(kinds) >= 2
        assert acc["before"]["accuracy_logp_per_token"]["overall"] == pe["before"]["overall"]["accuracy_logp_per_token"]
        assert "accuracy_reward" in acc["after"] and "accuracy_reward" not in acc["before"]
    # `ecliptica run --adapter OUT` finds OUT/adapter
    from ecliptica_bench.backends.base import check_adapter

    assert check_adapter(str(out)) == (out / "adapter").resolve() == check_adapter(str(out / "adapter"))
    with pytest.raises(EclipticaError, match="nor adapter/adapter_config.json"):
        check_adapter(str(out / "checkpoints"))
    # the adapter on the base and the merged folder are the same model
    ids = torch.tensor([[6, 7, 8, 9, 10, 11]])
    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    with torch.no_grad():
        plain = base(ids).logits
        with_adapter = PeftModel.from_pretrained(base, str(out / "adapter"))(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(out / "merged")(ids).logits
    assert not torch.allclose(plain, with_adapter, atol=1e-6), "training should move the adapter off zero"
    assert torch.allclose(with_adapter, merged, atol=1e-4)
    assert (out / "merged" / "tokenizer.json").exists() and (out / "adapter" / "adapter_config.json").exists()
    with pytest.raises(EclipticaError, match="already holds a training run"):
        train(cfg)
    with pytest.raises(EclipticaError, match="nothing to resume"):
        train(TrainConfig(**{**cfg.__dict__, "resume": True}))


def test_train_with_dtype_bfloat16_runs_the_step_under_autocast(tiny_dir, prefs_dir, tmp_path):
    from ecliptica_bench.train.prefs import load_prefs
    from ecliptica_bench.train.trainer import TrainConfig, build_trainer

    cfg = TrainConfig(
        method="cita",
        model=str(tiny_dir),
        data=str(prefs_dir),
        out=str(tmp_path),
        max_steps=2,
        batch_size=2,
        max_length=128,
        lr=1e-2,
        dtype="bfloat16",
    )
    trainer = build_trainer(cfg, load_prefs(prefs_dir, "train"), tmp_path / "ckpt", model_path=str(tiny_dir))
    seen = []
    handle = _lora_layers(trainer.model)[0].base_layer.register_forward_hook(lambda _m, _a, out: seen.append(out.dtype))
    try:
        trainer.train()
    finally:
        handle.remove()
    assert trainer.args.bf16 and seen and set(seen) == {torch.bfloat16}
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2 and all(math.isfinite(h["loss"]) and math.isfinite(h["kl"]) for h in logs)
    assert logs[1]["kl"] > 0


def test_heldout_eval_reuses_the_base_log_probs(tiny_dir, prefs_dir, tmp_path, monkeypatch):
    """The adapter's reference (its base) log-probs come from the base model's evaluation when the process has
    it (the demo evaluates the base, then each adapter): one pass fewer, the same report."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    import ecliptica_bench.train.trainer as tm

    pm = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_dir), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    perturb_lora(pm)
    pm.save_pretrained(tmp_path / "adapter")
    calls = []
    real = tm.pair_logps
    monkeypatch.setattr(tm, "pair_logps", lambda *a, **k: calls.append(1) or real(*a, **k))

    def evaluate(adapter):
        calls.clear()
        return tm.evaluate_preferences(str(tiny_dir), adapter, prefs_dir, max_length=128), len(calls)

    monkeypatch.setattr(tm, "_BASE_LOGPS", {})
    live, n_live = evaluate(tmp_path / "adapter")  # no base evaluation yet: the reference pass runs
    monkeypatch.setattr(tm, "_BASE_LOGPS", {})
    base, _ = evaluate(None)
    reused, n_reused = evaluate(tmp_path / "adapter")
    assert (n_live, n_reused) == (2, 1)
    assert abs(live["overall"]["mean_reward_margin"]) > 1e-4
    for part in ("overall", *live["per_kind"]):
        a = live["overall"] if part == "overall" else live["per_kind"][part]
        b = reused["overall"] if part == "overall" else reused["per_kind"][part]
        assert set(a) == set(b)
        for k in a:
            assert b[k] == (pytest.approx(a[k], rel=1e-5, abs=1e-7) if isinstance(a[k], float) else a[k]), (part, k)
    assert base["overall"]["accuracy_logp"] is not None


def test_train_refuses_foreign_out_dir(tiny_dir, prefs_dir, tmp_path):
    from ecliptica_bench.train.trainer import TrainConfig, train

    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "notes.txt").write_text("mine")
    with pytest.raises(EclipticaError, match="holds no ecliptica training run"):
        train(TrainConfig(method="dpo", model=str(tiny_dir), data=str(prefs_dir), out=str(tmp_path / "o"), max_steps=1))
    assert (tmp_path / "o" / "notes.txt").read_text() == "mine"


def test_resume_refuses_changed_settings(tiny_dir, prefs_dir, tmp_path):
    from ecliptica_bench.train.trainer import TrainConfig, train

    cfg = TrainConfig(
        method="dpo",
        model=str(tiny_dir),
        data=str(prefs_dir),
        out=str(tmp_path / "o"),
        max_steps=2,
        batch_size=2,
        max_length=128,
        save_steps=1,
    )
    train(cfg)
    with pytest.raises(EclipticaError, match=r"different settings.*lr 5e-06 -> 0\.001"):
        train(TrainConfig(**{**cfg.__dict__, "lr": 1e-3, "resume": True}))
    with pytest.raises(EclipticaError, match=r"already finished \(step 2 of 2\)"):
        train(TrainConfig(**{**cfg.__dict__, "resume": True}))


def test_cli_train_and_eval_only(tiny_dir, prefs_dir, tmp_path):
    from click.testing import CliRunner

    from ecliptica_bench.cli import cli

    out = tmp_path / "o"
    res = CliRunner().invoke(
        cli,
        [
            "train",
            "--method",
            "dpo",
            "--model",
            str(tiny_dir),
            "--data",
            str(prefs_dir),
            "--out",
            str(out),
            "--max-steps",
            "1",
            "--batch-size",
            "2",
            "--max-length",
            "128",
            "--prompt-format",
            "block",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "trained dpo: 1 steps" in res.output and (out / "adapter" / "adapter_config.json").exists()
    assert json.loads((out / "train_config.json").read_text())["prompt_format"] == "block"
    res = CliRunner().invoke(
        cli,
        [
            "train",
            "--eval-only",
            "--model",
            str(tiny_dir),
            "--data",
            str(prefs_dir),
            "--adapter",
            str(out / "adapter"),
            "--max-length",
            "128",
            "--out",
            str(tmp_path / "eval.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "eval.json").read_text())
    assert rep["split"] == "heldout" and rep["overall"]["rows"] > 0 and "accuracy_reward" in rep["overall"]
    assert set(rep["per_kind"]) <= {"safety", "length", "epistemic"}
    res = CliRunner().invoke(cli, ["train", "--data", str(prefs_dir)])
    assert res.exit_code == 2 and "--output-dir is required" in res.output
