"""Labelled comparison strips (scripts/run_demo.py -> results/demo_comparison/*.png)."""

import cv2
import numpy as np
import pytest

from basicsr_snn.utils.comparison_strip import (GAP, LABEL_BAND, LARGEST_FONT_SCALE, SMALLEST_FONT_SCALE, comparison_strip,
                                                fitted_label)
from pipeline_utils import load_script


LABELS = ('noisy 20.1 dB', 'teacher', 'student', 'clean')
LEGIBLE_INK_ROWS = 6  # a word whose letters span fewer rows than this cannot be read


def panels(height=20, width=24, labels=LABELS):
    """Four flat gray panels of distinct values, so every pixel tells which panel it came from."""
    return [(label, np.full((height, width), value, np.uint8)) for label, value in zip(labels, (40, 90, 140, 190))]


def column_spans(strip_panels):
    """(left, width) of every panel's column, from the label fitting the strip itself uses."""
    spans, left = [], 0
    for label, image in strip_panels:
        width = fitted_label(label, image.shape[1])[1]
        spans.append((left, width))
        left += width + GAP
    return spans


def test_panels_keep_their_order_and_pixels_under_a_band():
    strip = comparison_strip(panels(width=128))
    assert strip.shape == (LABEL_BAND + 20, 4 * 128 + 3 * GAP, 1)  # labels fit a demo-sized panel
    for index, (_, image) in enumerate(panels(width=128)):
        left = index * (128 + GAP)
        assert np.array_equal(strip[LABEL_BAND:, left:left + 128, 0], image)
        if index < 3:
            assert (strip[:, left + 128:left + 128 + GAP] == 255).all()


@pytest.mark.parametrize('width', [24, 48, 128])
def test_each_panel_is_named_legibly_inside_its_own_column(width):
    strip_panels = panels(width=width)
    labelled = comparison_strip(strip_panels)
    spans = column_spans(strip_panels)
    assert labelled.shape[1] == spans[-1][0] + spans[-1][1]
    bands = []
    for (label, image), (left, column_width) in zip(strip_panels, spans):
        assert column_width >= width
        assert np.array_equal(labelled[LABEL_BAND:, left:left + width, 0], image)
        assert (labelled[LABEL_BAND:, left + width:left + column_width] == 255).all()  # widened: white
        band = labelled[:LABEL_BAND, left:left + column_width, 0]
        rows, cols = np.nonzero(band < 128)
        assert rows.size, label
        assert rows.max() - rows.min() + 1 >= LEGIBLE_INK_ROWS, (label, width)
        assert 0 < rows.min() and rows.max() < LABEL_BAND - 1, label  # not cut at the band's edges
        assert cols.max() < column_width - 1, label  # not cut at the column's right edge
        bands.append(band)
    gaps = [labelled[:, left + column_width:left + column_width + GAP] for left, column_width in spans[:-1]]
    assert all((gap == 255).all() for gap in gaps)  # no label runs into its neighbour
    assert not np.array_equal(bands[1], bands[2])  # 'teacher' and 'student' read differently


def test_a_column_widens_only_for_a_label_that_cannot_shrink_to_fit():
    assert fitted_label('teacher', 128) == (LARGEST_FONT_SCALE, 128)
    assert fitted_label('', 8) == (LARGEST_FONT_SCALE, 8)
    scale, column_width = fitted_label('teacher', 24)
    assert scale == SMALLEST_FONT_SCALE and column_width > 24
    scale, column_width = fitted_label('teacher', column_width)  # that column holds it at that scale
    assert scale >= SMALLEST_FONT_SCALE and column_width == fitted_label('teacher', 24)[1]


def test_unlabelled_panels_get_white_bands_and_keep_their_width():
    unlabelled = comparison_strip(panels(labels=('',) * 4))
    assert unlabelled.shape == (LABEL_BAND + 20, 4 * 24 + 3 * GAP, 1)
    assert (unlabelled[:LABEL_BAND] == 255).all()


def test_color_panels_and_mismatched_panels():
    color_panels = [('a', np.zeros((8, 8, 3), np.uint8)), ('b', np.zeros((8, 10, 3), np.uint8))]
    color = comparison_strip(color_panels)
    (_, first_width), (second_left, second_width) = column_spans(color_panels)
    assert color.shape == (LABEL_BAND + 8, first_width + GAP + second_width, 3)
    assert second_left == first_width + GAP and (color[LABEL_BAND:, second_left:second_left + 10] == 0).all()
    with pytest.raises(ValueError, match='panels must share height and channels'):
        comparison_strip([('a', np.zeros((8, 8), np.uint8)), ('b', np.zeros((9, 8), np.uint8))])


def test_the_demo_writes_labelled_strips_with_psnr(tmp_path, monkeypatch):
    run_demo = load_script('run_demo')
    monkeypatch.chdir(tmp_path)
    clean = np.add.outer(np.arange(128), np.arange(128)).astype(np.uint8)  # the demo's image size
    (tmp_path / 'datasets' / 'demo' / 'val' / 'gray').mkdir(parents=True)
    cv2.imwrite(str(tmp_path / 'datasets' / 'demo' / 'val' / 'gray' / 'ramp.png'), clean)
    for run, offset in (('demo_test_teacher', 3), ('demo_test_student', 6)):
        folder = tmp_path / 'results' / run / 'visualization' / 'demo_val_gray'
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / 'ramp_demo.png'), np.clip(clean.astype(int) + offset, 0, 255).astype(np.uint8))

    written = run_demo.write_comparisons()
    assert [path.name for path in written] == ['ramp.png']
    strip = cv2.imread(str(written[0]), cv2.IMREAD_GRAYSCALE)
    assert strip.shape == (LABEL_BAND + 128, 4 * 128 + 3 * GAP)  # every label fits its panel
    panel = [strip[LABEL_BAND:, i * (128 + GAP):i * (128 + GAP) + 128] for i in range(4)]
    assert np.array_equal(panel[3], clean)
    assert np.array_equal(panel[1].astype(int), np.clip(clean.astype(int) + 3, 0, 255))
    assert np.array_equal(panel[2].astype(int), np.clip(clean.astype(int) + 6, 0, 255))
    assert not np.array_equal(panel[0], clean)  # the noisy input
    assert all((strip[:LABEL_BAND, i * (128 + GAP):i * (128 + GAP) + 128] < 128).any() for i in range(4))
