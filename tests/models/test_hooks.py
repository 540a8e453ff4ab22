"""andlib.models.hooks: pooling a module's output and the recorder's hooks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from andlib.config import ConfigError
from andlib.models.hooks import ActivationRecorder, pool_output, token_positions


def test_lengths_restrict_mean_and_max_pooling_to_a_clips_own_positions():
    x = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])
    lengths = torch.tensor([2, 3])
    assert pool_output(x, "mean", lengths).ravel().tolist() == [2.0, 4.0]
    assert pool_output(x, "max", lengths).ravel().tolist() == [3.0, 6.0]
    assert pool_output(x, "cls").ravel().tolist() == [1.0, 2.0]


def test_token_positions_keep_each_clips_own_positions_unpooled_as_float16():
    x = torch.arange(12, dtype=torch.float32).reshape(2, 3, 2)
    whole, own = token_positions(x, None), token_positions((x, "extra"), torch.tensor([3, 1]))
    assert [a.shape for a in whole] == [(3, 2), (3, 2)] and whole[0].dtype == "float16"
    assert [a.shape for a in own] == [(3, 2), (1, 2)]
    assert own[1].tolist() == [[6.0, 7.0]] and whole[0].tolist() == x[0].tolist()
    with pytest.raises(ConfigError, match="no token axis"):
        token_positions(torch.ones(2, 4), None)


def test_the_recorder_captures_each_layer_once_and_removes_its_hooks():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    with ActivationRecorder(model, {"relu": "1"}) as rec:
        model(torch.ones(2, 4))
        assert rec.pop()["relu"].shape == (2, 3)
        with pytest.raises(RuntimeError, match="no output captured"):
            rec.pop()
    assert not model[1]._forward_hooks
