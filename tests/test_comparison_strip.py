"""Labelled comparison strips (scripts/run_demo.py -> results/demo_comparison/*.png)."""

import cv2
import numpy as np
import pytest

from basicsr_snn.utils.comparison_strip import GAP, LABEL_BAND, comparison_strip
from pipeline_utils import load_script


def panels(height=20, width=24):
    """Four flat gray panels of distinct values, so every pixel tells which panel it came from."""
    return [(label, np.full((height, width), value, np.uint8))
            for label, value in (('noisy 20.1 dB', 40), ('teacher', 90), ('student', 140), ('clean', 190))]


def test_panels_keep_their_order_and_pixels_under_a_band():
    strip = comparison_strip(panels())
    assert strip.shape == (LABEL_BAND + 20, 4 * 24 + 3 * GAP, 1)
    for index, (_, image) in enumerate(panels()):
        left = index * (24 + GAP)
        assert np.array_equal(strip[LABEL_BAND:, left:left + 24, 0], image)
        if index < 3:
            assert (strip[:, left + 24:left + 24 + GAP] == 255).all()


def test_each_panel_is_named_on_the_image():
    labelled = comparison_strip(panels())
    unlabelled = comparison_strip([('', image) for _, image in panels()])
    assert (unlabelled[:LABEL_BAND] == 255).all()
    for index in range(4):
        left = index * (24 + GAP)
        band = labelled[:LABEL_BAND, left:left + 24]
        assert (band < 128).sum() >= 5, index  # dark text pixels in every panel's band
    bands = [labelled[:LABEL_BAND, i * (24 + GAP):i * (24 + GAP) + 24] for i in range(4)]
    assert not np.array_equal(bands[1], bands[2])  # 'teacher' and 'student' read differently


def test_color_panels_and_mismatched_panels():
    color = comparison_strip([('a', np.zeros((8, 8, 3), np.uint8)), ('b', np.zeros((8, 10, 3), np.uint8))])
    assert color.shape == (LABEL_BAND + 8, 8 + GAP + 10, 3)
    with pytest.raises(ValueError, match='panels must share height and channels'):
        comparison_strip([('a', np.zeros((8, 8), np.uint8)), ('b', np.zeros((9, 8), np.uint8))])


def test_the_demo_writes_labelled_strips_with_psnr(tmp_path, monkeypatch):
    run_demo = load_script('run_demo')
    monkeypatch.chdir(tmp_path)
    clean = (np.add.outer(np.arange(32), np.arange(32)) * 4).astype(np.uint8)
    (tmp_path / 'datasets' / 'demo' / 'val' / 'gray').mkdir(parents=True)
    cv2.imwrite(str(tmp_path / 'datasets' / 'demo' / 'val' / 'gray' / 'ramp.png'), clean)
    for run, offset in (('demo_test_teacher', 3), ('demo_test_student', 6)):
        folder = tmp_path / 'results' / run / 'visualization' / 'demo_val_gray'
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / 'ramp_demo.png'), np.clip(clean.astype(int) + offset, 0, 255).astype(np.uint8))

    written = run_demo.write_comparisons()
    assert [path.name for path in written] == ['ramp.png']
    strip = cv2.imread(str(written[0]), cv2.IMREAD_GRAYSCALE)
    assert strip.shape == (LABEL_BAND + 32, 4 * 32 + 3 * GAP)
    panel = [strip[LABEL_BAND:, i * (32 + GAP):i * (32 + GAP) + 32] for i in range(4)]
    assert np.array_equal(panel[3], clean)
    assert np.array_equal(panel[1].astype(int), np.clip(clean.astype(int) + 3, 0, 255))
    assert np.array_equal(panel[2].astype(int), np.clip(clean.astype(int) + 6, 0, 255))
    assert not np.array_equal(panel[0], clean)  # the noisy input
    assert (strip[:LABEL_BAND] < 128).any()
