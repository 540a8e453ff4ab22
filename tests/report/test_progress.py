"""andlib.report.progress: kernel logs, text progress bars, the streamed reproduce and its closing
summary."""

from __future__ import annotations

import io
import logging

import nbformat
import pytest

from andlib.report import progress
from tests.report.test_atlas import enrich_run
from tests.report.test_browser import make_run_dir


def test_prefixed_stream_prefixes_every_line_and_carriage_return():
    out = io.StringIO()
    stream = progress.PrefixedStream(out, "03 | ")
    stream.write("one\ntw")
    stream.write("o\n\rbar 10%\rbar 20%\n")
    assert out.getvalue() == "03 | one\n03 | two\n\r03 | bar 10%\r03 | bar 20%\n"


def test_kernel_setup_sends_andlib_logs_to_stderr_and_makes_tqdm_text(monkeypatch, capsys):
    import tqdm.auto
    import tqdm.std

    logger = logging.getLogger("andlib")
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))
    monkeypatch.setattr(logger, "propagate", logger.propagate)
    monkeypatch.setattr(logger, "level", logger.level)
    monkeypatch.setattr(tqdm.auto, "tqdm", tqdm.auto.tqdm)
    monkeypatch.setattr(tqdm.auto, "trange", tqdm.auto.trange)
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    progress.kernel_setup()
    progress.kernel_setup()  # twice: still one handler
    assert sum(getattr(h, "_andlib_progress", False) for h in logger.handlers) == 1
    assert tqdm.auto.tqdm is tqdm.std.tqdm
    logging.getLogger("andlib.record").info("recorded 16 clips")
    assert "recorded 16 clips" in capsys.readouterr().err
    assert progress.kernel_arguments()[0].startswith("--IPKernelApp.exec_lines=")


def test_closing_summary_names_outputs_and_headline_numbers(tmp_cfg):
    cfg = tmp_cfg({"k": 3})
    run = make_run_dir(cfg)
    enrich_run(run)
    (run / "atlas").mkdir()
    (run / "atlas" / "index.html").write_text("<html></html>")
    cfg.figures_path.mkdir(parents=True, exist_ok=True)
    plan = [(run.path / "00_x.ipynb", [], run.path / "notebooks")] * 2
    text = progress.closing_summary(plan, cfg.figures_path, 12.0)
    assert text.startswith("reproduce: 2 notebooks in 12 s")
    assert f"outputs:   {run.path}" in text and f"figures:   {cfg.figures_path}" in text
    assert f"atlas:     {run.path / 'atlas' / 'index.html'}" in text
    assert "held-out accuracy 50.0 % · tagger top-1 70.0 %" in text
    assert "last-layer top-1 (db_soft_wpmi): tagger+acoustic 67.0 %, acoustic 33.0 %" in text
    assert "simulation r: description " in text and "pruning ΔA−ΔR: db 0.400, random 0.050" in text


@pytest.mark.timeout(300)
def test_reproduce_streams_the_kernels_logs_and_bars_as_they_come(tmp_path, monkeypatch, capfd):
    import andlib.pipeline as pipeline

    books = tmp_path / "nb"
    books.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    }
    params = nbformat.v4.new_code_cell("config_path = ''\noverrides = []")
    params.metadata["tags"] = ["parameters"]
    work = (
        "import logging\n"
        "from tqdm.auto import tqdm\n"
        "logging.getLogger('andlib.run.record').info('record: batch 1 of 2')\n"
        "for _ in tqdm(range(3), desc='caption'):\n"
        "    pass\n"
        "print('notebook says hi')\n"
    )
    nb.cells = [params, nbformat.v4.new_code_cell(work)]
    nbformat.write(nb, str(books / "00_work.ipynb"))
    monkeypatch.setattr(pipeline, "NOTEBOOK_DIR", books)
    monkeypatch.setenv("ANDLIB_PROGRESS", "1")
    out = tmp_path / "run"
    pipeline.reproduce("configs/smoke.yaml", [f"cache_dir={tmp_path / 'c'}"], out=str(out))
    printed = capfd.readouterr()
    assert "00 | " in printed.err and "record: batch 1 of 2" in printed.err
    assert "caption: 100%" in printed.err and "3/3" in printed.err  # the text bar
    assert "00 | notebook says hi" in printed.out
    assert "reproduce: 1 notebook in" in printed.out and f"outputs:   {out}" in printed.out
