"""andlib.models.train: the train stage, its cache keys, seeds, checkpoints and strategies (tiny
configs, a few steps on a few real ESC-50 clips)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from andlib.models import train, train_loop
from andlib.models.registry import load_pretrained
from tests.conftest import requires_esc50, tiny_speech_config

pytestmark = pytest.mark.usefixtures("one_thread")


def fake_features(cfg, n_clips=16, n_classes=4, seed=0):
    """Random normalised spectrograms shaped for ``cfg.train``, split over folds 1-5."""
    g = torch.Generator().manual_seed(seed)
    tc = cfg.train
    return train.Features(
        x=torch.randn(n_clips, tc.max_length, tc.num_mel_bins, generator=g),
        labels=torch.arange(n_clips) % n_classes,
        folds=np.array([1 + i % 5 for i in range(n_clips)]),
        class_names=[f"c{i}" for i in range(n_classes)],
        extractor=None,
        per_ln=0.1,
    )


@requires_esc50
def test_tiny_training_saves_a_model_that_load_pretrained_reads_with_labels_and_metrics(tiny_cfg):
    cfg = tiny_cfg()
    path = train.ensure_trained(cfg, "supervised")
    assert path == train.model_dir(cfg, "supervised") and path.parent.name == "models"
    target = load_pretrained(path, device="cpu")
    assert target.label_names[:3] == ["dog", "rooster", "pig"] and len(target.label_names) == 50
    for key in ("strategy", "train_accuracy", "heldout_accuracy", "train_seconds", "epochs"):
        assert key in target.info
    assert target.info["steps"] == 3 and target.info["train_folds"] == [1, 2, 3, 4]
    assert target.info["n_parameters"] == sum(p.numel() for p in target.module.parameters())
    logits = target.logits([np.zeros(16000 * 5, dtype=np.float32)])
    assert logits.shape == (1, 50)
    history = train.read_history(path)
    assert history["finetune"][-1]["step"] == 3  # train.max_steps
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_cache_key_follows_the_settings_that_change_the_model(tiny_cfg):
    base = train.model_dir(tiny_cfg(), "supervised")
    assert train.model_dir(tiny_cfg(**{"train.lr": 0.01}), "supervised") != base
    assert train.model_dir(tiny_cfg(seed=1), "supervised") != base
    assert train.model_dir(tiny_cfg(**{"data.sample_rate": 22050}), "supervised") != base
    # settings that do not change the supervised weights keep the cache
    assert train.model_dir(tiny_cfg(**{"train.num_threads": 1}), "supervised") == base
    assert train.model_dir(tiny_cfg(**{"train.pretrain_epochs": 9}), "supervised") == base
    assert train.model_dir(tiny_cfg(**{"train.pretrain_epochs": 9}), "ssl-frozen") != (
        train.model_dir(tiny_cfg(), "ssl-frozen")
    )
    # each ssl strategy keys only the phase it runs: the probe never fine-tunes, and back
    frozen, tuned = (
        train.model_dir(tiny_cfg(), "ssl-frozen"),
        train.model_dir(tiny_cfg(), "ssl-finetuned"),
    )
    assert train.model_dir(tiny_cfg(**{"train.linear_lr": 0.01}), "ssl-finetuned") == tuned
    assert train.model_dir(tiny_cfg(**{"train.linear_lr": 0.01}), "ssl-frozen") != frozen
    assert train.model_dir(tiny_cfg(**{"train.epochs": 7}), "ssl-frozen") == frozen
    assert train.model_dir(tiny_cfg(**{"train.epochs": 7}), "ssl-finetuned") != tuned
    assert base.name.startswith("supervised-")


def test_the_training_seed_keys_the_model_and_an_unset_one_keeps_the_config_seeds_key(tiny_cfg):
    base = train.model_dir(tiny_cfg(), "ssl-finetuned")
    seeded = tiny_cfg(**{"train.seed": 1})
    assert train.train_seed(seeded) == 1 and train.train_seed(tiny_cfg(seed=3)) == 3
    assert train.model_dir(tiny_cfg(**{"train.seed": 0}), "ssl-finetuned") == base
    assert train.model_dir(seeded, "ssl-finetuned") != base
    assert train._pretrained_dir(seeded) != train._pretrained_dir(tiny_cfg())
    # the config seed still draws the clips data.limit keeps, so it stays in the key
    assert train.model_dir(tiny_cfg(seed=5, **{"train.seed": 1}), "ssl-finetuned") != (
        train.model_dir(seeded, "ssl-finetuned")
    )
    assert train.with_train_seed(tiny_cfg(), 2).train.seed == 2
    assert train.with_train_seed(seeded, None) is seeded


@requires_esc50
def test_two_training_seeds_give_two_models_and_record_seed_and_threads(tiny_cfg):
    """Every phase draws from the training seed: the SSL pretraining (initialization, patch
    masks, gain and shift), then the fine-tuning (batch order, augmentation, mixup)."""
    cfgs = [tiny_cfg(**{"train.seed": k, "train.mixup_alpha": 0.5}) for k in (0, 1)]
    paths = [train.ensure_trained(c, "ssl-finetuned") for c in cfgs]
    assert paths[0] != paths[1]
    a, b = (load_pretrained(p, device="cpu").module.state_dict() for p in paths)
    assert a.keys() == b.keys()
    same = [k for k in a if torch.equal(a[k], b[k])]
    assert not same  # every weight, the encoder's and the classifier's, differs
    pre = [train.read_history(p)["pretrain"][-1]["loss"] for p in paths]
    assert pre[0] != pre[1]  # a different pretraining, not only a different head
    for path, seed in zip(paths, (0, 1), strict=True):
        metrics = train.read_metrics(path)
        assert metrics["seed"] == seed and metrics["pretrain_seed"] == seed
        assert metrics["num_threads"] == 1 and metrics["pretrain_num_threads"] == 1
        assert metrics["train_config"]["seed"] == seed
        assert load_pretrained(path, device="cpu").info["num_threads"] == 1  # -> model.json


def test_unknown_strategy_is_a_clear_error(tiny_cfg):
    with pytest.raises(ValueError, match="unknown training strategy 'contrastive'"):
        train.model_dir(tiny_cfg(), "contrastive")


def test_an_interrupted_training_resumes_from_its_checkpoint_to_the_same_weights(
    tiny_cfg, tmp_path, monkeypatch
):
    cfg = tiny_cfg(**{"train.epochs": 4, "train.eval_every": 0, "train.max_steps": None})
    feats = fake_features(cfg)

    def fresh():
        return train.build_model(cfg.train, feats.class_names, 0), np.random.default_rng(7)

    model, gen = fresh()
    plain = train.fit_classifier(model, feats, cfg.train, gen)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    real_save = train_loop._save_checkpoint

    def save_then_crash(path, model, optimizer, gen, history, epoch, step, seconds):
        real_save(path, model, optimizer, gen, history, epoch, step, seconds)
        if epoch == 2:
            raise KeyboardInterrupt("interrupted after epoch 2")

    ckpt = tmp_path / "ckpt" / "finetune.pt"
    monkeypatch.setattr(train_loop, "_save_checkpoint", save_then_crash)
    model, gen = fresh()
    with pytest.raises(KeyboardInterrupt):
        train.fit_classifier(model, feats, cfg.train, gen, checkpoint=ckpt)
    monkeypatch.setattr(train_loop, "_save_checkpoint", real_save)
    assert torch.load(ckpt, weights_only=False)["epoch"] == 2

    saved: list[int] = []

    def record(path, model, optimizer, gen, history, epoch, step, seconds):
        saved.append(epoch)
        real_save(path, model, optimizer, gen, history, epoch, step, seconds)

    monkeypatch.setattr(train_loop, "_save_checkpoint", record)
    model, gen = fresh()  # a new process: fresh weights and generator, then the checkpoint
    resumed = train.fit_classifier(model, feats, cfg.train, gen, checkpoint=ckpt)
    assert saved == [3, 4]  # only the epochs after the checkpoint ran
    got = model.state_dict()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert [r["epoch"] for r in resumed] == [1, 2, 3, 4]
    assert [r["loss"] for r in resumed] == [r["loss"] for r in plain]


def test_resumed_seconds_reads_the_interrupted_runs_time_from_its_checkpoint(tmp_path):
    ckpt = tmp_path / "finetune.pt"
    assert train_loop.resumed_seconds(ckpt) == 0.0
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    train_loop._save_checkpoint(ckpt, model, optimizer, np.random.default_rng(0), [], 3, 9, 812.5)
    assert train_loop.resumed_seconds(ckpt) == 812.5


@requires_esc50
def test_a_resumed_training_reports_the_time_of_both_sittings(tiny_cfg, monkeypatch):
    cfg = tiny_cfg()
    dest = train.model_dir(cfg, "supervised")
    ckpt = train.checkpoint_dir(dest) / "finetune.pt"
    monkeypatch.setattr(train, "resumed_seconds", lambda path: 1000.0 if path == ckpt else 0.0)
    metrics = train.read_metrics(train.train_model(cfg, "supervised"))
    assert 1000.0 <= metrics["train_seconds"] < 1000.0 + 600  # without the sitting before: ~0


@requires_esc50
def test_train_model_removes_its_checkpoints_once_the_model_is_saved(tiny_cfg):
    cfg = tiny_cfg()
    dest = train.train_model(cfg, "supervised")
    assert (dest / train.METRICS_FILE).exists()
    assert not train.checkpoint_dir(dest).exists()


@requires_esc50
def test_same_seed_trains_identical_weights(tiny_cfg, tmp_path):
    first = train.train_model(tiny_cfg(cache_dir=str(tmp_path / "a")), "supervised")
    second = train.train_model(tiny_cfg(cache_dir=str(tmp_path / "b")), "supervised")
    third = train.train_model(tiny_cfg(cache_dir=str(tmp_path / "c"), seed=1), "supervised")
    a, b, c = (load_pretrained(p, device="cpu").module.state_dict() for p in (first, second, third))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@requires_esc50
def test_ssl_strategies_share_one_pretrained_encoder_and_record_their_metrics(tiny_cfg):
    cfg = tiny_cfg()
    frozen = train.ensure_trained(cfg, "ssl-frozen")
    finetuned = train.ensure_trained(cfg, "ssl-finetuned")
    pretrained = [p for p in frozen.parent.iterdir() if p.name.startswith("ssl-pretrained-")]
    assert len(pretrained) == 1
    for path, phase in ((frozen, "linear"), (finetuned, "finetune")):
        metrics = json.loads((path / train.METRICS_FILE).read_text())
        assert metrics["strategy"] == path.name.rsplit("-", 1)[0]
        assert (
            metrics["pretrain_seconds"] >= 0 and metrics["train_seconds"] >= 0
        )  # rounded to 0.1 s
        assert set(train.read_history(path)) == {"pretrain", phase}


def test_an_interrupted_save_leaves_no_half_model(tmp_path):
    dest = tmp_path / "models" / "supervised-abc"

    def write_then_fail(folder):
        (folder / "model.safetensors").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train._save_atomic(dest, write_then_fail)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    train._save_atomic(dest, lambda folder: (folder / "ok.txt").write_text("done"))
    assert (dest / "ok.txt").read_text() == "done"


@pytest.fixture
def tiny_wav2vec2(tmp_path):
    """A random-weight wav2vec2 encoder saved like a hub SSL checkpoint (no head)."""
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    config = tiny_speech_config(conv_dim=(16, 16))
    torch.manual_seed(1234)  # not the config seed, which the supervised strategy draws from
    path = tmp_path / "w2v-init"
    Wav2Vec2Model(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(path)
    return path


def w2v_cfg(tiny_cfg, init, **extra):
    return tiny_cfg(
        **{"train.init": str(init), "data.duration": 1.0, "train.max_steps": 2, **extra}
    )


def state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


@requires_esc50
def test_a_checkpoint_init_trains_a_frozen_linear_head_and_a_finetuned_model(
    tiny_cfg, tiny_wav2vec2
):
    from transformers import AutoModel

    cfg = w2v_cfg(tiny_cfg, tiny_wav2vec2)
    init = state(AutoModel.from_pretrained(tiny_wav2vec2))
    frozen = load_pretrained(train.ensure_trained(cfg, "ssl-frozen"), device="cpu")
    finetuned = load_pretrained(train.ensure_trained(cfg, "ssl-finetuned"), device="cpu")
    assert frozen.label_names[:2] == ["dog", "rooster"] and frozen.info["init"] == str(
        tiny_wav2vec2
    )
    frozen_enc, tuned_enc = state(frozen.module.wav2vec2), state(finetuned.module.wav2vec2)
    assert all(torch.equal(frozen_enc[k], init[k]) for k in init)  # the encoder stayed frozen
    assert any(not torch.equal(tuned_enc[k], init[k]) for k in init)
    assert set(train.read_history(train.model_dir(cfg, "ssl-frozen"))) == {"linear"}
    assert frozen.logits([np.zeros(16000, dtype=np.float32)]).shape == (1, 50)
    # no masked-spectrogram pretraining ran: the checkpoint is the pretraining
    assert not list(cfg.cache_path.glob("models/ssl-pretrained-*"))


@requires_esc50
def test_supervised_with_a_checkpoint_init_starts_from_random_weights(tiny_cfg, tiny_wav2vec2):
    from transformers import AutoModel

    cfg = w2v_cfg(tiny_cfg, tiny_wav2vec2, **{"train.max_steps": 1, "train.lr": 1e-9})
    init = state(AutoModel.from_pretrained(tiny_wav2vec2))
    model = load_pretrained(train.ensure_trained(cfg, "supervised"), device="cpu").module
    trained = state(model.wav2vec2)
    assert type(model).__name__ == "Wav2Vec2ForSequenceClassification"
    assert any(not torch.allclose(trained[k], init[k]) for k in init if init[k].numel() > 1)


def test_a_checkpoint_init_gets_its_own_cache_key_without_pretraining_settings(tiny_cfg):
    plain = train.model_dir(tiny_cfg(), "ssl-frozen")
    init = train.model_dir(tiny_cfg(**{"train.init": "some/encoder"}), "ssl-frozen")
    assert init != plain
    more_pretraining = tiny_cfg(**{"train.init": "some/encoder", "train.pretrain_epochs": 9})
    assert train.model_dir(more_pretraining, "ssl-frozen") == init


def test_an_init_that_does_not_load_is_a_clear_error(tiny_cfg, tmp_path):
    with pytest.raises(ValueError, match="train.init='.*no-such-checkpoint'"):
        train.model_from_init(str(tmp_path / "no-such-checkpoint"), ["a", "b"])
