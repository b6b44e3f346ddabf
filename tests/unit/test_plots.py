"""The charts of the HTML reports: inline SVG elements that scale with the page, the same bytes for the
same data, and a clear exit-2 error naming the extra when matplotlib is missing."""

from __future__ import annotations

import sys

import pytest

from kcverify.core.extras import MissingExtra
from kcverify.report.plots import Band, Chart, Series, require, svg

CHART = Chart("A title", "x", "y (ms)", series=[Series("line", [1, 2, 3], [10, 20, 15]),
                                                 Series("dots", [1.5, 2.5], [12, 30], points=True)],
              bands=[Band(1.2, 1.8, "a fault"), Band(2.2, 2.4, "a fault")], log_y=True)


def test_a_chart_is_an_svg_element_that_scales_with_the_page() -> None:
    drawn = svg(CHART)
    assert drawn.startswith("<svg") and drawn.rstrip().endswith("</svg>")
    head = drawn[:drawn.index(">")]
    assert 'width="100%"' in head and "viewBox" in head and 'height="' not in head
    assert "A title" in drawn and "a fault" in drawn and drawn.count("a fault") == 1  # one legend entry


def test_the_same_data_draws_the_same_bytes() -> None:
    assert svg(CHART) == svg(CHART)


def test_without_matplotlib_the_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # an import of it raises ModuleNotFoundError
    with pytest.raises(MissingExtra, match=r"matplotlib") as raised:
        require()
    assert "kcverify[plots]" in (raised.value.hint or "")
