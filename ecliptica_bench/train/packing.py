"""Padding-free, prompt-sharing layout of a preference batch (training speed; the results are unchanged).

trl's preference batch is [chosen_1..chosen_n; rejected_1..rejected_n], each row prompt + completion,
right-padded to the longest row. Every position of that (2n, T) tensor costs a full pass through the
network, padding and the twice-present prompt included. `plan_packing` lays the same tokens out so that

  * the two rows of a pair share their common token prefix (the prompt, at least): it is placed once and
    followed by the chosen tail and the rejected tail, each tail attending to the prefix and to itself only
    (a tree-shaped causal mask);
  * the pairs are packed first-fit-decreasing into rows as long as the longest pair; a row's unused end is
    a dummy segment that attends to itself only.

Position ids restart for every sequence, so each real token sees exactly the context and the position it
has in the padded batch, and the hidden states agree with the padded forward to float rounding. `index`
maps every (row, position) of the padded batch to its place in the flattened packed tensor (-1 at padding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PackPlan:
    input_ids: torch.Tensor  # (R, L) packed tokens
    position_ids: torch.Tensor  # (R, L) position of each token in its own sequence
    unit: torch.Tensor  # (R, L) tokens attend only within their unit (a pair, a sequence or a row's dummy end)
    branch: torch.Tensor  # (R, L) 0 = shared prefix; k > 0 = a tail, which sees the prefix and its own tail
    index: torch.Tensor  # (B, T) flat index into input_ids.view(-1) of each padded position; -1 at padding
    real_tokens: int  # non-padding tokens of the padded batch

    @property
    def packed_tokens(self) -> int:
        return self.input_ids.numel()

    def attention_mask(self, implementation: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(R, 1, L, L) mask in the form the model's attention takes as-is: bool (True = attend) for sdpa,
        additive (0 / most negative) for eager."""
        q_pos, k_pos = self.position_ids[:, :, None], self.position_ids[:, None, :]
        q_br, k_br = self.branch[:, :, None], self.branch[:, None, :]
        allowed = (self.unit[:, :, None] == self.unit[:, None, :]) & (k_pos <= q_pos) & ((k_br == 0) | (k_br == q_br))
        allowed = allowed[:, None]
        if implementation == "sdpa":
            return allowed
        return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def plan_packing(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, paired: bool = True, pad_id: int = 0
) -> PackPlan | None:
    """The packed layout of a right-padded batch; None when the batch is not right-padded (left padding or
    holes), which the caller then runs as it is. paired: rows i and i + B/2 are the two completions of one
    prompt (trl's [chosen; rejected] order) and share their common prefix."""
    B, T = input_ids.shape
    if attention_mask is None:
        lengths = [T] * B
    else:
        am = attention_mask.bool()
        lengths = am.sum(1).tolist()
        if not all(bool(am[b, :n].all()) for b, n in enumerate(lengths)):
            return None
    seqs = [input_ids[b, :n].tolist() for b, n in enumerate(lengths)]
    # units: (rows, shared prefix length); a pair is placed as prefix + chosen tail + rejected tail
    units: list[tuple[tuple[int, ...], int]] = []
    if paired and B % 2 == 0:
        h = B // 2
        for i in range(h):
            units.append(((i, i + h), common_prefix(seqs[i], seqs[i + h])))
    else:
        units = [((b,), lengths[b]) for b in range(B)]

    def size(u):
        rows, k = u
        return k + sum(lengths[r] - k for r in rows)

    cap = max([size(u) for u in units] + [1])
    bins: list[list[int]] = []  # unit numbers per packed row, first-fit decreasing
    fill: list[int] = []
    for u in sorted(range(len(units)), key=lambda u: -size(units[u])):
        s = size(units[u])
        for r, f in enumerate(fill):
            if f + s <= cap:
                bins[r].append(u)
                fill[r] += s
                break
        else:
            bins.append([u])
            fill.append(s)

    R = len(bins)
    ids = torch.full((R, cap), pad_id, dtype=input_ids.dtype)
    pos = torch.zeros((R, cap), dtype=torch.long)
    unit = torch.zeros((R, cap), dtype=torch.long)
    branch = torch.zeros((R, cap), dtype=torch.long)
    index = torch.full((B, T), -1, dtype=torch.long)

    def place(r: int, off: int, tokens: list[int], start: int, u: int, br: int) -> torch.Tensor:
        n = len(tokens)
        if n:
            ids[r, off : off + n] = torch.tensor(tokens, dtype=input_ids.dtype)
            pos[r, off : off + n] = torch.arange(start, start + n)
            unit[r, off : off + n] = u
            branch[r, off : off + n] = br
        return torch.arange(r * cap + off, r * cap + off + n)

    next_unit = len(units)
    for r, members in enumerate(bins):
        off = 0
        for u in members:
            rows, k = units[u]
            shared = place(r, off, seqs[rows[0]][:k], 0, u, 0)
            off += k
            for br, b in enumerate(rows, start=1):
                index[b, :k] = shared
                tail = place(r, off, seqs[b][k:], k, u, br if len(rows) > 1 else 0)
                index[b, k : lengths[b]] = tail
                off += lengths[b] - k
        if off < cap:  # the row's unused end: its own dummy sequence
            place(r, off, [pad_id] * (cap - off), 0, next_unit, 0)
            next_unit += 1
    return PackPlan(
        ids.to(input_ids.device),
        pos.to(input_ids.device),
        unit.to(input_ids.device),
        branch.to(input_ids.device),
        index.to(input_ids.device),
        int(sum(lengths)),
    )
