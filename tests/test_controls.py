"""andlib.controls: the control runs' corrupted captions."""

from __future__ import annotations


def test_caption_corruption_rate_is_exact_seeded_and_always_wrong():
    from andlib.controls import corrupt_sources

    classes = [f"c{i}" for i in range(10)]
    cats = [classes[i % 10] for i in range(200)]
    for rate in (0.0, 0.25, 0.5, 0.75, 1.0):
        out, wrong = corrupt_sources(cats, classes, rate, seed=0)
        assert wrong.sum() == round(rate * 200)
        assert all(o != c for o, c, w in zip(out, cats, wrong, strict=True) if w)
        assert all(o == c for o, c, w in zip(out, cats, wrong, strict=True) if not w)
        again, wrong_again = corrupt_sources(cats, classes, rate, seed=0)
        assert again == out and (wrong_again == wrong).all()
    other, _ = corrupt_sources(cats, classes, 0.5, seed=1)
    assert other != corrupt_sources(cats, classes, 0.5, seed=0)[0]
