"""The scorecard in a real browser (Playwright driving the system Chromium): the filter
narrows the item table, a flipped item opens, nothing leaves the page, model output
stays text, and the page still reads with scripts off. One browser for the module."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from harness.reports import write_reports
from test_report import TITLE, build
from factories import make_suite, results, suite_result
from harness.gates import VACUOUS_PHRASE, evaluate_gates
from test_report_scorecard import GATES, IDS, WEAK, _model, failing_run

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "reports" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if not CHROMIUM or sync_playwright is None:
        # CI installs both (.ci/run: chromium; the test extra: playwright), so there a
        # missing browser is a failure, not a skip.
        assert not os.environ.get("CI"), "CI must have Chromium and playwright (.ci/run, pip install -e .[test])"
        pytest.skip("needs Chromium (apt-get install chromium) and playwright (pip install -e .[test])")
    # No LD_PRELOAD: OpenBLAS (preloaded for MLX by nox) in every Chromium process hangs it,
    # and Playwright's driver (node) inherits the environment when it starts.
    preload = os.environ.pop("LD_PRELOAD", None)
    try:
        manager = sync_playwright().start()
    finally:
        if preload is not None:
            os.environ["LD_PRELOAD"] = preload
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    try:
        b = manager.chromium.launch(executable_path=CHROMIUM, env=env, timeout=60_000,
                                    args=["--no-sandbox", "--disable-gpu", "--in-process-gpu",
                                          "--disable-dev-shm-usage"])
        yield b
        b.close()
    finally:
        manager.stop()


def _open(browser, page_path: Path, scripts: bool = True):
    context = browser.new_context(java_script_enabled=scripts, viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_path.as_uri())
    return page, requests, errors


def _visible_rows(page) -> list[tuple[str, str]]:
    rows = page.eval_on_selector_all(
        "#item-table tbody tr:not([hidden])",
        "rows => rows.map(r => [r.cells[1].textContent.trim(), r.cells[2].textContent.trim()])")
    return [tuple(r) for r in rows]


def test_filter_open_flipped_item_and_no_requests(browser, tmp_path):
    out = tmp_path / "run"
    write_reports(failing_run(tmp_path), out)
    page, requests, errors = _open(browser, out / "index.html")

    assert page.is_visible("#q")  # the script showed the filters
    assert len(_visible_rows(page)) == 40
    page.fill("#q", "q03")
    assert sorted(_visible_rows(page)) == [("base", "q03"), ("ft", "q03")]
    page.select_option("#f-model", "ft")
    assert _visible_rows(page) == [("ft", "q03")]
    page.fill("#q", "")
    page.check("#f-flipped")
    assert sorted(i for _, i in _visible_rows(page)) == sorted(WEAK)
    assert page.inner_text("#count") == "5 of 40 rows"
    page.select_option("#f-verdict", "pass")
    assert _visible_rows(page) == []

    # a flipped item opens from its row, showing both outputs
    page.uncheck("#f-flipped")
    page.select_option("#f-verdict", "")
    page.click("#item-table a:text-is('q02')")
    card = page.locator("details.card[open]")
    assert card.count() == 1
    assert card.locator("pre.diff").count() == 2
    assert "q02" in card.locator("pre.diff").nth(0).inner_text()  # the baseline's text, not a hash
    assert card.locator("pre.diff").nth(1).is_visible()

    # sorting by the item column, descending on the second click
    page.click("#item-table th[data-sort=id]")
    page.click("#item-table th[data-sort=id]")
    assert _visible_rows(page)[0][1] == "q19"

    shot = tmp_path / "failing.png"
    page.screenshot(path=str(shot), full_page=False)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "report-failing.png")
    shutil.copy(out / "index.html", ARTIFACTS / "report-failing.html")

    assert requests == [(out / "index.html").as_uri()]  # the page itself, nothing else
    assert errors == []  # no CSP violation, no script error


def test_hostile_output_stays_text_and_page_reads_without_scripts(browser, tmp_path):
    out = tmp_path / "run"
    write_reports(build(tmp_path), out)
    page, requests, errors = _open(browser, out / "index.html")
    assert page.title() == TITLE
    assert page.locator("img[src=x]").count() == 0
    assert "PWNED" not in page.title()
    assert errors == [] and len(requests) == 1

    page, requests, _ = _open(browser, out / "index.html", scripts=False)
    assert page.title() == TITLE
    assert not page.is_visible("#filters")  # the controls need the script ...
    assert len(_visible_rows(page)) == 16 * 2 + 6 * 2  # ... the table does not
    first = page.locator("details.card").first
    first.locator("summary").click()  # <details> open without scripts
    assert first.locator("pre.diff").last.is_visible()
    assert len(requests) == 1


def test_the_overview_fits_the_page_with_four_candidates(browser, tmp_path):
    # every model fails every item, so each candidate's only gates could not have failed and
    # its cell carries the long badge: kept on one line it pushed four candidates' columns
    # past the page (a horizontal scrollbar on a 1280-pixel window, as `nox -s red` showed)
    suite = make_suite(tmp_path, IDS, gates=GATES)
    every = set(IDS)
    run = results([suite_result({"base": _model(every, "base")}
                                | {f"candidate-{i}": _model(every, f"c{i}") for i in range(4)})])
    s = run["suites"][0]
    s["gates"], s["warnings"] = evaluate_gates(suite, s, None)
    run["verdict"] = "pass"
    out = tmp_path / "run"
    write_reports(run, out)
    page, _, errors = _open(browser, out / "index.html")
    assert page.locator(f".overview .badge:text('only gates that {VACUOUS_PHRASE}')").count() == 4
    scroll, client = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert scroll <= client, f"the page is {scroll} px wide in a {client} px window"
    assert errors == []
