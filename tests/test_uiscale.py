"""The viewer's UI scale: what a desktop says about its scale, and how it is read."""

from __future__ import annotations

import pytest

from rtsearch.viewer.uiscale import RANGE, detect, fit

XFT_192 = "*customization:\t-color\nXft.antialias:\t1\nXft.dpi:\t192\nXft.hinting:\t1\n"


@pytest.mark.parametrize(
    ("environ", "resources", "scale"),
    [
        ({}, None, 1.0),  # nothing says: as drawn so far
        ({}, "", 1.0),
        ({}, XFT_192, 2.0),  # GNOME or KDE at 200% on X11
        ({}, "Xft.dpi: 144\n", 1.5),
        ({}, "Xft.dpi:\t120\n", 1.25),
        ({}, "Xft.dpi: 96\n", 1.0),
        ({}, "Xft.dpi: 110\n", 1.25),  # to the nearest quarter
        ({}, "Xft.dpi: 600\n", RANGE[1]),  # within the range
        ({}, "Xft.dpi: 40\n", RANGE[0]),
        ({}, "Xft.dpi: big\n", 1.0),  # nonsense is passed over
        ({}, "Xft.dpi: 0\n", 1.0),
        ({}, "Xterm*dpi: 192\nXft.dpix: 192\n", 1.0),  # other resources are not it
        # set by hand for GTK or Qt programs: times Xft.dpi, as their text is drawn
        ({"GDK_SCALE": "2"}, None, 2.0),
        ({"GDK_SCALE": "2"}, "Xft.dpi: 96\n", 2.0),
        ({"GDK_SCALE": "2", "GDK_DPI_SCALE": "0.5"}, XFT_192, 2.0),  # the usual recipe
        ({"GDK_SCALE": "1", "GDK_DPI_SCALE": "1.5"}, None, 1.5),
        ({"GDK_DPI_SCALE": "1.5"}, None, 1.5),  # GTK's text alone
        ({"GDK_DPI_SCALE": "1.5", "QT_SCALE_FACTOR": "2"}, None, 1.5),
        ({"GDK_SCALE": "2", "QT_SCALE_FACTOR": "3"}, None, 2.0),  # GDK_SCALE first
        ({"GDK_SCALE": "x"}, "Xft.dpi: 144\n", 1.5),
        ({"QT_SCALE_FACTOR": "1.75"}, None, 1.75),
        ({"QT_SCALE_FACTOR": "1.5"}, XFT_192, 3.0),
        ({"QT_SCALE_FACTOR": "nan"}, None, 1.0),
        ({"QT_SCALE_FACTOR": "-2"}, None, 1.0),
    ],
)
def test_the_desktops_scale_is_read_from_its_settings(environ, resources, scale):
    assert detect(environ, resources) == scale


def test_a_scale_given_is_taken_to_the_nearest_quarter_within_the_range():
    assert [fit(v) for v in (1.0, 1.1, 1.2, 1.9, 2.5, 0.5, 4.0)] == [
        1.0, 1.0, 1.25, 2.0, 2.5, 0.75, 3.0,
    ]  # fmt: skip
