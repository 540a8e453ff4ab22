"""The atlas in a real browser: Debian's headless Chromium driven by selenium.

Skipped (with the reason) unless ``chromium``, ``chromedriver`` and the ``selenium`` package
are there; ``make browser-test`` installs them and runs this file. The atlas is built from a
small hand-made run (always) and from the run directory ``$ANDLIB_ATLAS_RUN`` (``make
browser-test`` points it at the smoke run; its atlas is written into ``<run>/atlas/``). Each page is opened from ``file://`` without any
flag that relaxes file access, as someone who downloaded the folder would. Screenshots of every
page go to ``$ANDLIB_SCREENSHOT_DIR`` (else a temporary folder); the test prints where.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from andlib.report.atlas import build_atlas
from andlib.store import RunDir
from tests.report.test_atlas import enrich_run
from tests.report.test_browser import make_run_dir


def _find(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = os.environ.get("CHROMIUM") or _find("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER") or _find("chromedriver")
try:
    import selenium  # noqa: F401

    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER and HAVE_SELENIUM),
        reason="needs chromium, chromedriver and selenium (make browser-test installs them)",
    ),
]


# --------------------------------------------------------------------------------------------
# Runs to build an atlas of
# --------------------------------------------------------------------------------------------


def _runs() -> list[Any]:
    params: list[Any] = ["handmade"]
    given = os.environ.get("ANDLIB_ATLAS_RUN", "").strip()
    if given:
        params.append(pytest.param(given, id=Path(given).name))
    return params


@pytest.fixture(params=_runs())
def atlas(request, tmp_cfg, tmp_path) -> dict[str, Any]:
    if request.param == "handmade":
        cfg = tmp_cfg({"k": 3})
        run = make_run_dir(cfg)
        enrich_run(run)
        return {"name": "handmade", **build_atlas(run, cfg, workers=1)}
    src = Path(request.param)
    if not (src / "neurons.csv").exists():
        pytest.fail(f"ANDLIB_ATLAS_RUN={src}: not a described run (no neurons.csv)")
    # into the run's own atlas/ (what `make browser-test` leaves to look at); media reused
    return {"name": src.name, **build_atlas(RunDir(src))}


# --------------------------------------------------------------------------------------------
# The browser
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--mute-audio",
        "--window-size=1280,1000",
        "--no-first-run",
        "--disable-extensions",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def screenshot_dir(name: str) -> Path:
    root = os.environ.get("ANDLIB_SCREENSHOT_DIR", "").strip()
    folder = Path(root) if root else Path(os.environ.get("TMPDIR", "/tmp")) / "andlib-screenshots"
    folder = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def full_page_screenshot(driver, path: Path) -> None:
    """The whole page, beyond the viewport (Chrome DevTools), else the viewport."""
    from selenium.common.exceptions import WebDriverException

    try:
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path.write_bytes(base64.b64decode(shot["data"]))
    except WebDriverException:  # no DevTools command: the visible part
        driver.save_screenshot(str(path))


def wait_for(driver, script: str, timeout: float = 30.0) -> Any:
    """Poll a JavaScript expression until it is truthy; returns its value."""
    end = time.time() + timeout
    while True:
        value = driver.execute_script(f"return ({script});")
        if value:
            return value
        if time.time() > end:
            raise AssertionError(f"timed out waiting for: {script}")
        time.sleep(0.1)


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def _norm(text: Any) -> str:
    return re.sub(r"[_\-\s]+", " ", str(text or "").lower()).strip()


def expected_matches(table: list[list[Any]], query: str) -> set[tuple[str, str]]:
    """The neurons a search should keep: the query as whole words of the concept, the other
    concepts, the descriptions or the adjectives (``_``, ``-`` and spaces alike)."""
    pattern = re.compile(rf"(?<![a-z0-9]){re.escape(_norm(query))}(?![a-z0-9])")
    return {
        (str(r[0]), str(r[1]))
        for r in table
        if pattern.search(
            _norm(" ".join(str(r[i] or "") for i in (2, 6, 3, 7, 4)).replace(";", " "))
        )
    }


def pick_query(table: list[list[Any]]) -> tuple[str, set[tuple[str, str]]]:
    """The table's most frequent concept that a search narrows (matches some, not all)."""
    counts = pd.Series([r[2] for r in table if r[2]]).value_counts()
    for concept in counts.index:
        expected = expected_matches(table, concept)
        if 0 < len(expected) < len(table):
            return str(concept), expected
    raise AssertionError("no concept narrows the table")


def visible_rows(driver) -> list[dict[str, str]]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#neurons tbody tr')).map(tr => ({"
        "layer: tr.dataset.layer, neuron: tr.dataset.neuron, text: tr.innerText}));"
    )


def test_atlas_index_search_and_neuron_page_in_chromium(driver, atlas):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    shots = screenshot_dir(atlas["name"])
    print(f"\nscreenshots of the {atlas['name']} atlas: {shots}")
    index = Path(atlas["index"]).resolve()
    driver.get_log("browser")  # drop anything from earlier pages
    driver.get(index.as_uri())
    wait_for(driver, "document.body.dataset.ready === 'index'")
    total = len(driver.execute_script("return window.ATLAS_INDEX.neurons;"))
    assert total == atlas["n_neurons"] > 0
    assert f"of {total} neurons" in driver.find_element(By.ID, "count").text
    assert driver.find_elements(By.CSS_SELECTOR, "#charts svg"), "no overview charts"
    layer_rows = driver.find_elements(By.CSS_SELECTOR, "#layers tbody tr")
    assert len(layer_rows) == atlas["n_layers"]
    full_page_screenshot(driver, shots / "index.png")

    # search a concept that some but not all neurons have: the table filters to them
    table = driver.execute_script("return window.ATLAS_INDEX.neurons;")
    concept, expected = pick_query(table)
    box = driver.find_element(By.ID, "search")
    box.send_keys(concept.replace("_", " "))
    wait_for(
        driver, f"document.getElementById('count').textContent.startsWith('{len(expected)} of ')"
    )
    rows = visible_rows(driver)
    assert len(rows) == min(len(expected), 100)
    assert {(r["layer"], r["neuron"]) for r in rows} <= expected
    full_page_screenshot(driver, shots / "index-search.png")
    # a query nothing matches empties the table; clearing it restores every row
    box.send_keys(" zzqx")
    wait_for(driver, "document.querySelectorAll('#neurons tbody tr').length === 0")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    wait_for(driver, f"document.querySelectorAll('#neurons tbody tr').length === {min(total, 100)}")
    # sorting by simulation score: descending, numbers first
    driver.find_element(By.CSS_SELECTOR, "th[data-sort='sim']").click()
    sims = driver.execute_script(
        "return Array.from(document.querySelectorAll('#neurons tbody tr td.sim'))"
        ".map(td => td.textContent);"
    )
    values = [float(v) for v in sims if v not in ("—", "")]
    assert values == sorted(values, reverse=True) and values
    # sorting by another explanation score, picked in the score column's selector
    metrics = driver.execute_script(
        "return Array.from(document.querySelectorAll('#metric option')).map(o => o.value);"
    )
    assert "detection auroc" in metrics
    driver.execute_script(
        "var s = document.getElementById('metric'); s.value = 'detection auroc';"
        "s.dispatchEvent(new Event('change'));"
    )
    scores = driver.execute_script(
        "return Array.from(document.querySelectorAll('#neurons tbody tr td.score'))"
        ".map(td => td.textContent);"
    )
    values = [float(v) for v in scores if v not in ("—", "")]
    assert values == sorted(values, reverse=True) and values
    assert "metric=detection%20auroc" in driver.current_url
    assert not console_errors(driver), console_errors(driver)

    # open a neuron page from the table (the search result's first neuron)
    box.send_keys(concept.replace("_", " "))
    wait_for(
        driver, f"document.getElementById('count').textContent.startsWith('{len(expected)} of ')"
    )
    first = visible_rows(driver)[0]
    driver.find_element(By.CSS_SELECTOR, "#neurons tbody tr a.neuron-link").click()
    target = f"{first['layer']}/{first['neuron']}"
    wait_for(driver, f"document.body.dataset.ready === {target!r}")
    check_neuron_page(driver, atlas, shots / "neuron.png")

    # the next neuron through the page's own link (hash routing, same page)
    nxt = driver.find_elements(By.ID, "next") or driver.find_elements(By.ID, "prev")
    if nxt:
        nxt[0].click()
        wait_for(
            driver, f"document.body.dataset.ready && document.body.dataset.ready !== {target!r}"
        )
        check_neuron_page(driver, atlas, shots / "neuron-2.png")
    print("\n".join(f"  {p}" for p in sorted(shots.glob("*.png"))))


def check_neuron_page(driver, atlas: dict[str, Any], shot: Path) -> None:
    from selenium.webdriver.common.by import By

    for part in ("calibrated", "high", "low", "closed", "histogram", "top", "bottom"):
        assert driver.find_elements(By.ID, part), f"neuron page lacks #{part}"
    audio_count = driver.execute_script("return document.querySelectorAll('audio').length;")
    assert audio_count > 0
    # every <audio> loads its metadata: a duration, no media error
    states = wait_for(
        driver,
        "(function () { var a = Array.from(document.querySelectorAll('audio'));"
        " if (a.some(x => x.readyState < 1 && !x.error)) return null;"
        " return a.map(x => ({src: x.currentSrc, duration: x.duration,"
        " error: x.error ? x.error.code : 0})); })()",
        timeout=60,
    )
    for s in states:
        assert s["error"] == 0, s
        assert s["duration"] > 0, s
    # every spectrogram decodes
    images = wait_for(
        driver,
        "(function () { var im = Array.from(document.querySelectorAll('img.spec'));"
        " if (im.some(x => !x.complete)) return null;"
        " return im.map(x => ({src: x.currentSrc, w: x.naturalWidth, h: x.naturalHeight})); })()",
    )
    assert len(images) == audio_count
    for im in images:
        assert im["w"] > 0 and im["h"] > 0, im
    assert driver.find_elements(By.CSS_SELECTOR, "#histogram rect")
    assert not console_errors(driver), console_errors(driver)
    full_page_screenshot(driver, shot)
