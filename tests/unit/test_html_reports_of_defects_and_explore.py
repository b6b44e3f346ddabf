"""`kcverify defects --report html` and `kcverify explore --report html` in the run report's style: what a
reader acts on first (survivors, the finding), words for badges (no emoji), what a run produced escaped."""

from __future__ import annotations

from kcverify.killmatrix.model import Baseline, MutantResult, MutantsResult
from tests.unit.test_kill_matrix_width import _result


def test_the_html_kill_matrix_opens_with_the_survivor_and_escapes_what_runs_produce() -> None:
    from html.parser import HTMLParser

    from kcverify.killmatrix.html_report import render_html

    result = _result()
    page = render_html(result)
    survivor = result.mutants[0].name
    assert page.index('id="survivors"') < page.index('id="matrix"')
    assert page.index(survivor, page.index('id="matrix"')) < page.index(result.mutants[1].name,
                                                                        page.index('id="matrix"'))
    assert "SURVIVED" in page and "KILLED" in page and "<script" not in page
    assert not any(ord(ch) > 0x2FFF for ch in page)  # badges are words, never emoji
    HTMLParser().feed(page)  # well-formed enough to parse
    hostile = MutantResult("<b>x</b>", "W1", "<script>alert(1)</script>", killed=False, caught_by=(), duration=1.0)
    marked = render_html(MutantsResult("embedded", 0, 1, 0.0, 1.0, Baseline(1.0, ("a",), ()), (hostile,), ()))
    assert "<script>alert" not in marked and "&lt;script&gt;" in marked


def test_the_html_exploration_report_shows_the_finding_before_the_search() -> None:
    from pathlib import Path

    from kcverify.explore.explorer import Budget, Coverage, ExploreReport, Finding
    from kcverify.explore.html_report import render_html

    finding = Finding("freshness", ("S3",), "p1: <stale> read", 12, 0.4, 9, (), 30, 1.2, Path("out/x.yaml"),
                      reproduced=True, passes_without_defect=True)
    page = render_html(ExploreReport(3, "stale-set-race", Budget(seconds=20), 40, 2.0, 1.9, 0, 0, "ab" * 32,
                                     Coverage(), finding))
    assert page.index('id="finding"') < page.index('id="search"')
    assert "&lt;stale&gt;" in page and "kcverify run out/x.yaml --defect stale-set-race" in page
    assert "FAIL" in page and not any(ord(ch) > 0x2FFF for ch in page)
    clean = render_html(ExploreReport(0, None, Budget(schedules=5), 5, 1.0, 1.0, 0, 0, "cd" * 32, Coverage(), None))
    assert 'id="finding"' not in clean and "no failure found" in clean
