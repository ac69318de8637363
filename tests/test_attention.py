"""Attention maps: weights of every level, aggregations, the character projection, binning, CLI, view.

Acceptance: every attention row sums to 1 and is causal (tiny random models of each family);
the character projection preserves row sums and maps toy attentions to known character matrices.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_hat import build_tiny_hat

from models import registry as reg
from playground import attention as core
from playground.attention import CharProjector, TextIndex, Unit

REPO = Path(__file__).resolve().parent.parent
TEXT = "The quick  brown fox, über 😀 Straßenbahnhaltestelle\n\tx"


@pytest.fixture(scope="module")
def cpu_registry(tmp_path_factory: pytest.TempPathFactory) -> reg.Registry:
    tmp = tmp_path_factory.mktemp("attention-registry")
    return reg.Registry(device="cpu", cache_dir=tmp / "cache", trained_dir=tmp / "trained")


@pytest.fixture(scope="module")
def results(
    cpu_registry: reg.Registry, tiny_bpe_dir: Path, tiny_byte_dir: Path, tiny_hat_dir: Path
) -> dict[str, core.AttentionResult]:
    dirs = {"bpe": tiny_bpe_dir, "byte": tiny_byte_dir, "hat": tiny_hat_dir}
    return {family: core.compute_attention(cpu_registry.load_model(f"hf:{d}"), TEXT) for family, d in dirs.items()}


# ------------------------------------------------------------------------------- the weights


@pytest.mark.parametrize("family", ["bpe", "byte", "hat"])
def test_rows_sum_to_one_and_are_causal(results: dict[str, core.AttentionResult], family: str) -> None:
    result = results[family]
    expected = {"bpe": ["tokens"], "byte": ["bytes"], "hat": ["encoder", "backbone", "decoder"]}[family]
    assert list(result.levels) == expected
    for level in result.levels.values():
        assert level.n_layers >= 1 and level.n_heads == 2
        for weights in level.layers:
            assert weights.shape == (level.n_heads, level.n_units, level.n_units)
            assert weights.dtype == np.float32
            np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
            assert level.causal
            assert np.all(np.triu(weights, k=1) == 0), f"{family}/{level.name} attends to the future"


@pytest.mark.parametrize("family", ["bpe", "byte", "hat"])
def test_units_cover_the_text_bytes_in_order(results: dict[str, core.AttentionResult], family: str) -> None:
    data = TEXT.encode("utf-8")
    for level in results[family].levels.values():
        spans = [(u.byte_start, u.byte_end) for u in level.units if not u.special]
        assert spans[0][0] == 0 and spans[-1][1] == len(data)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans)), level.name
        for u in level.units:
            assert 0 <= u.char_start <= u.char_end <= len(TEXT)
            assert u.special == (u.byte_start == u.byte_end)
            if not u.special:
                assert TEXT[u.char_start : u.char_end].encode("utf-8").find(data[u.byte_start : u.byte_end]) >= 0


def test_labels_show_whitespace_and_split_characters(results: dict[str, core.AttentionResult]) -> None:
    byte_labels = [u.label for u in results["byte"].levels["bytes"].units]
    assert byte_labels[0] == "[BOS]"
    assert "⋅" in byte_labels and "↵" in byte_labels and "→" in byte_labels
    assert "ü…" in byte_labels and "…ü" in byte_labels  # the two bytes of ü
    assert "😀…" in byte_labels and "…😀…" in byte_labels and "…😀" in byte_labels
    bpe = results["bpe"].levels["tokens"].units
    # Byte-level BPE spans are exact bytes: tokens inside the emoji hold only some of its bytes.
    emoji = [u for u in bpe if "😀" in u.label]
    assert sum(u.byte_end - u.byte_start for u in emoji) >= 4
    assert all(u.char_end - u.char_start >= 1 for u in emoji)


def test_hat_levels(results: dict[str, core.AttentionResult], cpu_registry: reg.Registry, tiny_hat_dir: Path) -> None:
    result = results["hat"]
    lm = cpu_registry.load_model(f"hf:{tiny_hat_dir}")
    words = lm.model.split(TEXT)
    enc, bb, dec = (result.levels[k] for k in ("encoder", "backbone", "decoder"))
    assert [u.label for u in bb.units][:3] == ["[BOS]", "The", "⋅quick"]
    assert bb.n_units == len(words) + 1  # every word has a row, including the last one
    assert enc.n_units == dec.n_units == len(TEXT.encode()) + len(words)
    assert [enc.units[b - 1].label for b in enc.blocks[1:]] == ["[WORD]"] * (len(words) - 1)
    assert all(dec.units[b].label == "[CTX]" for b in dec.blocks)
    assert len(result.word_spans) == len(words) and result.word_spans[0] == (0, 3)
    # The backbone matches HATForCausalLM.attention_maps on the words it feeds there.
    maps = lm.model.attention_maps(TEXT)
    for ours, theirs in zip(bb.layers, maps.backbone, strict=True):
        w = theirs.shape[-1]
        np.testing.assert_allclose(ours[:, :w, :w], theirs.numpy(), atol=1e-4)
    # Words never attend to each other in the encoder and decoder: block diagonal.
    for level in (enc, dec):
        bounds = [*level.blocks, level.n_units]
        mask = np.zeros((level.n_units, level.n_units), dtype=bool)
        for a, b in itertools.pairwise(bounds):
            mask[a:b, a:b] = True
        assert all(np.all(weights[:, ~mask] == 0) for weights in level.layers)


def test_hat_decoder_with_two_context_slots(cpu_registry: reg.Registry, tmp_path: Path) -> None:
    """A HAT whose decoder reads the backbone output as two positions shows both, per word."""
    model_dir = build_tiny_hat(tmp_path / "wide", encoder_mean_pool=True, decoder_context_slots=2)
    lm = cpu_registry.load_model(f"hf:{model_dir}")
    result = core.compute_attention(lm, TEXT)
    words = lm.model.split(TEXT)
    dec = result.levels["decoder"]
    assert dec.n_units == len(TEXT.encode()) + 2 * len(words)
    assert all(dec.units[b].label == dec.units[b + 1].label == "[CTX]" for b in dec.blocks)
    for weights in dec.layers:
        assert weights.shape[-1] == dec.n_units
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)


# ------------------------------------------------------------------------------ aggregations


def test_aggregations(results: dict[str, core.AttentionResult]) -> None:
    level = results["bpe"].levels["tokens"]
    w = level.layers[1]
    np.testing.assert_allclose(core.aggregate(level, 1, "mean"), w.mean(0))
    np.testing.assert_allclose(core.aggregate(level, 1, "max"), w.max(0))
    np.testing.assert_allclose(core.aggregate(level, 1, "head", 1), w[1])
    np.testing.assert_allclose(core.aggregate(level, 9, "head", 9), w[1])  # clamped to the last layer/head
    with pytest.raises(ValueError, match="Unknown aggregation"):
        core.aggregate(level, 0, "median")


def test_rollout() -> None:
    rng = np.random.default_rng(0)
    n = 6
    layers = []
    for _ in range(3):
        a = np.tril(rng.random((2, n, n)))
        layers.append((a / a.sum(-1, keepdims=True)).astype(np.float32))
    first = core.rollout(layers, 0)
    np.testing.assert_allclose(first, 0.5 * np.eye(n) + 0.5 * layers[0].mean(0), atol=1e-6)
    out = core.rollout(layers, 2)
    expected = np.eye(n)
    for a in layers:
        expected = (0.5 * np.eye(n) + 0.5 * a.mean(0)) @ expected
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(out, 1) == 0)
    # The view's cached chain gives the same, asked in any order.
    units = [Unit(str(i), "", i, i + 1, i, i + 1) for i in range(n)]
    level = core.AttentionLevel("tokens", units, layers)
    np.testing.assert_allclose(core.aggregate(level, 2, "rollout"), expected, atol=1e-5)
    np.testing.assert_allclose(core.aggregate(level, 0, "rollout"), first, atol=1e-6)


# ----------------------------------------------------------------------- character projection


def _units(text: str, byte_spans: list[tuple[int, int]], specials: tuple[int, ...] = ()) -> list[Unit]:
    index = TextIndex(text)
    units = [index.unit(b0, b1) for b0, b1 in byte_spans]
    for at in specials:
        units.insert(at, index.special("[BOS]", 0, "bos"))
    return units


def test_projection_of_a_toy_token_attention() -> None:
    # "abc" as [BOS] "ab" "c": the [BOS] share has no character and is spread back on each row.
    units = _units("abc", [(0, 2), (2, 3)], specials=(0,))
    a = np.array([[1.0, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]])
    projector = CharProjector.from_units(units, "abc")
    raw, special = projector.project(a, preserve_row_sums=False)
    np.testing.assert_allclose(raw, [[0.25, 0.25, 0], [0.25, 0.25, 0], [0.15, 0.15, 0.5]], atol=1e-6)
    np.testing.assert_allclose(special, [0.5, 0.5, 0.2], atol=1e-6)
    chars, _ = projector.project(a)
    np.testing.assert_allclose(chars, [[0.5, 0.5, 0], [0.5, 0.5, 0], [0.1875, 0.1875, 0.625]], atol=1e-6)
    np.testing.assert_allclose(chars.sum(-1), 1.0, atol=1e-6)


def test_projection_of_bytes_and_of_a_token_splitting_a_character() -> None:
    # Byte units of "éx": é's two bytes are averaged as queries and summed as keys.
    units = _units("éx", [(0, 1), (1, 2), (2, 3)])
    a = np.array([[1.0, 0, 0], [0.4, 0.6, 0], [0.1, 0.2, 0.7]])
    chars, special = CharProjector.from_units(units, "éx").project(a)
    np.testing.assert_allclose(chars, [[1.0, 0.0], [0.3, 0.7]], atol=1e-6)
    np.testing.assert_allclose(special, 0.0, atol=1e-7)
    # "aé" as "a"+first byte of é, then the last byte of é: a unit's weight goes to its characters
    # by the fraction of each character it holds (a: 1, é: 1/2 -> 2/3 and 1/3).
    units = _units("aé", [(0, 2), (2, 3)])
    assert [u.label for u in units] == ["aé…", "…é"]
    p = CharProjector.from_units(units, "aé")
    np.testing.assert_allclose(p.key_matrix(), [[2 / 3, 1 / 3], [0, 1]], atol=1e-9)
    np.testing.assert_allclose(p.query_matrix(), [[1, 0], [0.5, 0.5]], atol=1e-9)
    chars, _ = p.project(np.array([[1.0, 0], [0.4, 0.6]]))
    np.testing.assert_allclose(chars, [[2 / 3, 1 / 3], [7 / 15, 8 / 15]], atol=1e-6)


@pytest.mark.parametrize("family", ["bpe", "byte", "hat"])
def test_projection_preserves_row_sums(results: dict[str, core.AttentionResult], family: str) -> None:
    rng = np.random.default_rng(1)
    for level in results[family].levels.values():
        projector = CharProjector.from_units(level.units, TEXT)
        np.testing.assert_allclose(projector.key_matrix()[[not u.special for u in level.units]].sum(1), 1.0)
        n = level.n_units
        for _ in range(3):
            a = rng.random((n, n)) * rng.integers(0, 2, (n, n))
            a[:, 1] += 0.01  # every row has weight on a unit with characters
            a /= a.sum(-1, keepdims=True)
            raw, special = projector.project(a, preserve_row_sums=False)
            np.testing.assert_allclose(raw.sum(-1) + special, 1.0, atol=1e-5)
            chars, _ = projector.project(a)
            np.testing.assert_allclose(chars.sum(-1), 1.0, atol=1e-5)
        # Row sums other than 1 (a max over heads) are preserved too.
        m = level.layers[0].max(0)
        chars, _ = projector.project(m)
        np.testing.assert_allclose(chars.sum(-1), projector.queries(m.sum(-1)), rtol=1e-5)


def test_binning_preserves_row_sums() -> None:
    rng = np.random.default_rng(2)
    a = rng.random((10, 10))
    a /= a.sum(-1, keepdims=True)
    binned = core.bin_matrix(a, 3)
    assert binned.shape == (4, 4)
    np.testing.assert_allclose(binned.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(binned[0, 0], a[:3, :3].sum(1).mean(), atol=1e-6)
    np.testing.assert_allclose(binned[3, 3], a[9, 9], atol=1e-6)
    assert core.bin_size_for(512) == 1 and core.bin_size_for(513) == 2 and core.bin_size_for(2000) == 4


def test_heatmaps_difference_grid_and_profile(results: dict[str, core.AttentionResult]) -> None:
    hat, bpe = results["hat"], results["bpe"]
    h = core.heatmap(hat, "backbone", 1, "mean", axes="units")
    assert h.matrix.shape == (hat.levels["backbone"].n_units,) * 2 and h.labels[0] == "[BOS]"
    assert "backbone · layer 1 · mean of heads" in h.title
    enc = core.heatmap(hat, "encoder", 0, "head", 1)
    assert enc.boundaries == hat.levels["encoder"].blocks[1:] and "head 1" in enc.title
    a = core.heatmap(hat, "backbone", 1, "rollout", axes="chars")
    b = core.heatmap(bpe, None, 1, "rollout", axes="chars")
    assert a.matrix.shape == b.matrix.shape == (len(TEXT), len(TEXT))
    assert a.boundaries == [s for s, _ in hat.word_spans[1:]] and b.boundaries == []
    diff = core.difference(a, b)
    np.testing.assert_allclose(diff.matrix, a.matrix - b.matrix)
    np.testing.assert_allclose(diff.matrix.sum(-1), 0.0, atol=1e-5)
    with pytest.raises(ValueError):
        core.difference(h, b)
    small = core.heatmap(bpe, None, 0, "mean", axes="chars", max_units=16)
    assert small.bin_size == 4 and small.matrix.shape[0] == -(-len(TEXT) // 4)
    assert small.notes and "bins of 4" in small.notes[0]
    np.testing.assert_allclose(small.matrix.sum(-1), 1.0, atol=1e-5)
    grid = core.head_grid(bpe, None, 1, max_units=8)
    assert len(grid) == 2 and all(g.shape[0] <= 8 for g in grid)
    prof = core.profile(hat, "backbone", TEXT.index("fox"), "mean")
    assert prof.matrix.shape == (2, hat.levels["backbone"].n_units) and "⋅fox," in prof.query
    np.testing.assert_allclose(prof.matrix.sum(-1), 1.0, atol=1e-5)
    prof = core.profile(bpe, None, 3, "head", 1, axes="chars")
    assert prof.matrix.shape == (2, len(TEXT)) and prof.query.startswith("char 3")


def test_size_limits(cpu_registry: reg.Registry, tiny_bpe_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lm = cpu_registry.load_model(f"hf:{tiny_bpe_dir}")
    with pytest.raises(core.AttentionInputError, match="enter some text"):
        core.compute_attention(lm, "")
    monkeypatch.setattr(core, "MAX_ATTENTION_WEIGHTS", 1000)
    with pytest.raises(core.AttentionInputError, match="shorten the text to about 15 units"):
        core.compute_attention(lm, TEXT)
    with pytest.raises(core.AttentionInputError, match="reads at most 4 positions"):
        core.check_size("m", 10, 1, 1, max_positions=4)


# ------------------------------------------------------------------------------------- npz / CLI


def test_cli_writes_npz(tmp_path: Path, tiny_hat_dir: Path) -> None:
    out = tmp_path / "att.npz"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "playground.attention",
            "--model",
            f"hf:{tiny_hat_dir}",
            "--text",
            TEXT,
            "--out",
            str(out),
            "--json",
        ],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["family"] == "hat" and set(info["levels"]) == {"encoder", "backbone", "decoder"}
    with np.load(out) as z:
        assert str(z["text"]) == TEXT and list(z["levels"]) == ["encoder", "backbone", "decoder"]
        for level, meta in info["levels"].items():
            n = meta["units"]
            for k in range(meta["layers"]):
                weights = z[f"{level}/layer{k}"]
                assert weights.shape == (meta["heads"], n, n)
                np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
            assert z[f"{level}/char_spans"].shape == (n, 2) and z[f"{level}/labels"].shape == (n,)
        assert z["backbone/labels"][1] == "The" and tuple(z["backbone/char_spans"][1]) == (0, 3)


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert core.main(["--model", "no-such-model", "--text", "hi", "--out", str(tmp_path / "x.npz")]) == 2
    assert "Unknown model" in capsys.readouterr().err
    assert core.main(["--model", "no-such-model", "--text", "", "--out", str(tmp_path / "x.npz")]) == 2
    assert "empty" in capsys.readouterr().err


def test_npz_round_trip(results: dict[str, core.AttentionResult], tmp_path: Path) -> None:
    path = core.save_npz(results["bpe"], tmp_path / "bpe.npz")
    level = results["bpe"].levels["tokens"]
    with np.load(path) as z:
        np.testing.assert_array_equal(z["tokens/layer1"], level.layers[1])
        assert list(z["tokens/labels"]) == [u.label for u in level.units]
        assert list(z["tokens/special"]) == [u.special for u in level.units]


# ------------------------------------------------------------------------------------- the view


def test_view_render_and_errors(tiny_bpe_dir: Path, tiny_hat_dir: Path) -> None:
    import gradio as gr

    from playground.config import AppConfig
    from playground.ui import attention as ui

    reg.configure(device="cpu")
    names = [f"hf:{tiny_hat_dir}", f"hf:{tiny_bpe_dir}"]
    config = AppConfig(models=names, max_text_chars=200)
    view = ui.render(config, TEXT, names[0], names[1], "backbone", "chars", "head", 1, 1, "sqrt", 4)
    fig = view["figure"]
    assert len(fig.data) == 3  # A, B and A − B
    assert "difference" in fig.layout.annotations[2].text and "tiny-bpe" in fig.layout.annotations[1].text
    assert fig.layout.shapes  # HAT word boundaries
    assert len(view["grids"]) == 2 and len(view["grids"][0]) == 2
    assert view["has_hat"] and view["layer"] == 1
    assert "".join(t for t, _ in view["query_text"]) == TEXT
    view = ui.render(config, TEXT, names[1], "", "backbone", "units", "mean", 5, 0, "linear", 0)
    assert len(view["figure"].data) == 1 and view["layer"] == 1 and not view["has_hat"]
    with pytest.raises(ValueError, match="enter some text"):
        ui.render(config, "  ", names[0], "", "backbone", "units", "mean", 0, 0, "sqrt", 0)
    with pytest.raises(ValueError, match="limit is 200"):
        ui.render(config, "x" * 201, names[0], "", "backbone", "units", "mean", 0, 0, "sqrt", 0)
    with pytest.raises(ValueError, match="Unknown model"):
        ui.render(config, TEXT, "gpt-5", "", "backbone", "units", "mean", 0, 0, "sqrt", 0)
    with pytest.raises(ValueError, match="choose a model"):
        ui.render(config, TEXT, None, None, "backbone", "units", "mean", 0, 0, "sqrt", 0)
    with gr.Blocks():
        ui.build_tab(config)  # components and events build without errors
