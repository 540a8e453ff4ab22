"""andlib.describe.tab: Module A's text-audio (TAB) concepts through CLAP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from andlib.describe import concepts as C
from andlib.describe.concepts import (
    ClapScorer,
    load_concept_set,
    tab_concepts,
)

ESC50 = load_concept_set("esc50")


GROUPS = {
    "dog": "A dog barks loudly several times.",
    "rain": "Heavy rain is falling on a roof.",
    "engine": "A car engine is running and idling.",
}


def planted_case(n_per_group=150, seed=0):
    """Clips of three kinds; neuron i fires for kind i, neuron 3 is noise."""
    rng = np.random.default_rng(seed)
    kinds = np.repeat(np.arange(3), n_per_group)
    captions = [list(GROUPS.values())[k] for k in kinds]
    acts = rng.normal(0, 0.1, (len(kinds), 4)).astype(np.float32)
    for k in range(3):
        acts[kinds == k, k] += 2.0
    return captions, acts


def test_tab_skipped_without_a_clap_model(capsys):
    assert tab_concepts(["x.wav"], ESC50, np.zeros((1, 2)), clap=None) is None
    assert "no CLAP model is configured" in capsys.readouterr().out


def test_tab_a_configured_clap_model_that_cannot_load_is_an_error_naming_it(tmp_path):
    from andlib.cli import project_error

    missing = str(tmp_path / "no-such-clap")
    with pytest.raises(C.ClapLoadError, match="no-such-clap") as err:
        tab_concepts(["x.wav"], ESC50, np.zeros((1, 2)), clap=missing)
    assert "concepts.clap_model" in str(err.value)
    assert project_error(err.value)  # the CLI reports it in one line


class PlantedClap(ClapScorer):
    """TAB's scoring with given CLAP probabilities (no model)."""

    def __init__(self, probs):
        self.probs = probs

    def concept_probs(self, clips, concepts):
        return self.probs


def test_tab_scores_given_clap_probabilities():
    captions, acts = planted_case(n_per_group=50)
    kinds = np.repeat(np.arange(3), 50)
    probs = np.full((150, 50), 0.1 / 49, dtype=np.float32)
    for k, name in enumerate(["dog", "rain", "engine"]):
        probs[kinds == k] = 0.1 / 49
        probs[kinds == k, ESC50.index(name)] = 0.9
    out = tab_concepts([f"clip{i}" for i in range(150)], ESC50, acts, PlantedClap(probs))
    assert [row[0] for row in out[:3]] == ["dog", "rain", "engine"]


@pytest.fixture(scope="module")
def tiny_clap():
    """A tiny random-weight CLAP with a real feature extractor and a byte-level tokenizer."""
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        RobertaTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {t: i for i, t in enumerate(special + list(bytes_to_unicode().values()))}
    tokenizer = RobertaTokenizer(vocab=vocab, merges=[])
    cfg = ClapConfig(
        text_config=dict(
            vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=37, max_position_embeddings=80, pad_token_id=1, bos_token_id=0,
            eos_token_id=2,
        ),
        audio_config=dict(
            depths=[1, 1], num_attention_heads=[1, 2], patch_embeds_hidden_size=16,
            hidden_size=32, num_hidden_layers=2,
        ),
        projection_dim=16,
    )  # fmt: skip
    import torch

    torch.manual_seed(0)
    processor = ClapProcessor(feature_extractor=ClapFeatureExtractor(), tokenizer=tokenizer)
    return ClapModel(cfg).eval(), processor


def test_tab_runs_a_clap_model_on_files_and_waveforms(tiny_clap, tmp_path):
    from tests.conftest import write_tone

    model, processor = tiny_clap
    files = [write_tone(tmp_path / f"t{i}.wav", freq=200 * (i + 1), seconds=0.5) for i in range(3)]
    scorer = ClapScorer(model, processor, name="tiny", batch_size=2, cache_dir=tmp_path / "c")
    emb = scorer.audio_embeddings(files)
    assert emb.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert len(list((tmp_path / "c" / "clap").glob("*.npy"))) == 3  # cached on disk
    again = ClapScorer(model, processor, name="tiny", cache_dir=tmp_path / "c")
    np.testing.assert_allclose(again.audio_embeddings(files), emb, rtol=1e-6)
    waves = scorer.audio_embeddings([np.zeros(48000, np.float32)])
    assert waves.shape == (1, 16)
    probs = scorer.concept_probs(files, ESC50[:4])
    assert probs.shape == (3, 4)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    acts = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=np.float32)
    out = tab_concepts(files, ESC50[:4], acts, scorer, similarity="cos", top=3)
    assert len(out) == 2 and all(len(r) == 3 and set(r) <= set(ESC50[:4]) for r in out)


def test_tab_leaves_an_unreadable_clip_out_instead_of_scoring_silence(tiny_clap, tmp_path):
    from tests.conftest import write_tone

    model, processor = tiny_clap
    good = [write_tone(tmp_path / f"t{i}.wav", freq=300 * (i + 1), seconds=0.5) for i in range(2)]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    scorer = ClapScorer(model, processor, name="tiny", batch_size=2)
    skipped: list = []
    emb = scorer.audio_embeddings([good[0], broken, good[1]], skipped)
    assert [i for i, _ in skipped] == [1] and skipped[0][1]  # (row, reason)
    assert np.isnan(emb[1]).all() and np.isfinite(emb[[0, 2]]).all()
    silence = scorer.audio_embeddings([np.zeros(48000, np.float32)])[0]
    assert not np.allclose(np.nan_to_num(emb[1]), silence)  # not the embedding of silence
    np.testing.assert_allclose(emb[[0, 2]], scorer.audio_embeddings(good), rtol=1e-5)
    # tab_concepts scores the readable clips only: as if the broken one were not there.
    acts = np.array([[1.0, 0.0], [5.0, 5.0], [0.0, 1.0]], dtype=np.float32)
    with_broken = tab_concepts([good[0], broken, good[1]], ESC50[:4], acts, scorer, "cos", 3)
    assert with_broken == tab_concepts(good, ESC50[:4], acts[[0, 2]], scorer, "cos", 3)


def test_clap_scorer_runs_its_model_on_the_device_it_is_given(tiny_clap, tmp_path):
    from tests.conftest import write_tone

    model, processor = tiny_clap
    moved: list[str] = []
    real_to = model.to

    def to(device):
        moved.append(str(device))
        return real_to(device)

    model.to = to  # type: ignore[method-assign]
    scorer = ClapScorer(model, processor, name="tiny", device="cpu")
    assert moved == ["cpu"] and scorer.device == "cpu"
    wav = write_tone(tmp_path / "t.wav", freq=300, seconds=0.5)
    emb = scorer.audio_embeddings([wav])
    assert isinstance(emb, np.ndarray) and emb.shape == (1, 16)  # back on the host


class _StubClap:
    logit_scale_a = torch.tensor(math.log(33.37))

    def eval(self):
        return self

    def to(self, device):
        return self


def _scorer():
    scorer = C.ClapScorer(_StubClap(), processor=None)
    audio = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    text = np.array([[1.0, 0.0], [0.8, 0.6]], dtype=np.float32)
    scorer.audio_embeddings = lambda clips: audio  # type: ignore[method-assign]
    scorer.text_embeddings = lambda texts: text  # type: ignore[method-assign]
    return scorer, audio @ text.T


def test_tab_logit_scale_one_is_an_unscaled_softmax():
    scorer, cos = _scorer()
    clap = scorer.concept_probs(["a", "b"], ["x", "y"])
    unscaled = scorer.concept_probs(["a", "b"], ["x", "y"], logit_scale=1.0)
    np.testing.assert_allclose(unscaled, torch.softmax(torch.as_tensor(cos), 1).numpy(), 1e-6)
    np.testing.assert_allclose(clap, torch.softmax(torch.as_tensor(cos) * 33.37, 1), 1e-4)
    assert clap.max(1).min() > 0.99 and unscaled.max(1).max() < 0.6  # AND's is nearly flat


def test_tab_concepts_passes_the_scale_through():
    scorer, _ = _scorer()
    seen = []
    original = scorer.concept_probs

    def spy(clips, concepts, logit_scale=None):
        seen.append(logit_scale)
        return original(clips, concepts, logit_scale)

    scorer.concept_probs = spy  # type: ignore[method-assign]
    acts = np.array([[1.0], [0.0]], dtype=np.float32)
    C.tab_concepts(["a", "b"], ["x", "y"], acts, scorer, "cos", 2, logit_scale=1.0)
    assert seen == [1.0]
