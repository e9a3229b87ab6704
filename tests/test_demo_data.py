"""The offline demo set (scripts/prepare_demo_data.py) and the location of the real benchmark sets."""
import re
from pathlib import Path

import cv2
import pytest

from basicsr_snn.data.demo_data import TRAIN_PHOTOS, VAL_PHOTOS, make_demo_dataset
from basicsr_snn.data.paths import shared_datasets_root
from pipeline_utils import load_script

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPECTED_COUNTS = {'train_color': 59, 'train_gray': 135, 'val_color': 3, 'val_gray': 5}


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo')
    return root, make_demo_dataset(root)


def test_folders_counts_and_shapes(demo):
    root, folders = demo
    assert folders == {f'{split}_{color}': root / split / color for split in ('train', 'val')
                       for color in ('gray', 'color')}
    for name, folder in folders.items():
        images = [cv2.imread(str(path), cv2.IMREAD_UNCHANGED) for path in sorted(folder.glob('*.png'))]
        assert len(images) == EXPECTED_COUNTS[name], name
        expected_shape = (128, 128, 3) if name.endswith('color') else (128, 128)
        assert all(image.shape == expected_shape for image in images), name


def test_train_and_val_photos_are_disjoint(demo):
    _, folders = demo
    train_photos = {path.stem.rsplit('_', 2)[0] for path in folders['train_gray'].glob('*.png')}
    val_photos = {path.stem for path in folders['val_gray'].glob('*.png')}
    assert train_photos == set(TRAIN_PHOTOS['color'] + TRAIN_PHOTOS['gray'])
    assert val_photos == set(VAL_PHOTOS['color'] + VAL_PHOTOS['gray'])


def test_rerun_writes_nothing_and_removes_stale_tiles(tmp_path):
    lines = []
    make_demo_dataset(tmp_path, val_size=32)
    make_demo_dataset(tmp_path, val_size=32, log=lines.append)
    assert all('(0 written' in line and ' 0 stale removed' in line for line in lines), lines
    lines.clear()
    make_demo_dataset(tmp_path, tile_size=256, val_size=32, log=lines.append)
    train_gray_line = next(line for line in lines if str(Path('train') / 'gray') in line)
    match = re.search(r': (\d+) images .* (\d+) stale removed', train_gray_line)
    kept, removed = int(match.group(1)), int(match.group(2))
    assert 0 < kept < 135 and removed > 0
    assert len(list((tmp_path / 'train' / 'gray').glob('*.png'))) == kept


def test_script_prints_what_it_wrote(tmp_path, capsys):
    script = load_script('prepare_demo_data')
    script.main(['--root', str(tmp_path / 'demo'), '--tile-size', '256', '--val-size', '32'])
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and all('written' in line for line in out)
    assert (tmp_path / 'demo' / 'val' / 'color' / 'chelsea.png').is_file()


def test_bad_sizes_are_named(tmp_path):
    with pytest.raises(ValueError, match='tile_size'):
        make_demo_dataset(tmp_path, tile_size=0)


def test_shared_datasets_root(monkeypatch, tmp_path):
    monkeypatch.setenv('BASICSR_SNN_DATASETS', str(tmp_path))
    assert shared_datasets_root() == tmp_path
    monkeypatch.delenv('BASICSR_SNN_DATASETS')
    assert shared_datasets_root() == REPO_ROOT.parent / 'shared' / 'datasets'
