"""make_lmdb (scripts/make_lmdb.py) and the LMDB backend of GaussianNoiseDataset."""
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest
import torch

import basicsr_snn  # noqa: F401  (registers the dataset)
from basicsr.utils import set_random_seed
from basicsr.utils.registry import DATASET_REGISTRY
from basicsr_snn.data.lmdb_tools import make_lmdb
from pipeline_utils import load_script

GaussianNoiseDataset = DATASET_REGISTRY.get('GaussianNoiseDataset')


@pytest.fixture
def mixed_folder(tmp_path):
    """Color and gray images of different sizes; the first (by name) is the smallest and the
    largest is incompressible noise, so a map size estimated from the first image is far too small."""
    folder = tmp_path / 'images'
    folder.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / 'a_small.png'), np.full((16, 16, 3), 90, np.uint8))
    cv2.imwrite(str(folder / 'b_gray.png'), rng.integers(0, 256, (40, 56), dtype=np.uint8))
    cv2.imwrite(str(folder / 'c_color.jpg'), rng.integers(0, 256, (48, 36, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / 'd_large.png'), rng.integers(0, 256, (400, 400, 3), dtype=np.uint8))
    return folder


def read_lmdb(path):
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        images = {key.decode(): cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_UNCHANGED)
                  for key, value in txn.cursor()}
    env.close()
    return images


def test_lmdb_holds_every_image_of_any_size(mixed_folder, tmp_path):
    result = make_lmdb(mixed_folder, tmp_path / 'out.lmdb')
    stored = read_lmdb(result['lmdb'])
    assert result['count'] == 4 and sorted(stored) == ['a_small', 'b_gray', 'c_color', 'd_large']
    for path in mixed_folder.iterdir():
        np.testing.assert_array_equal(stored[path.stem], cv2.imread(str(path), cv2.IMREAD_UNCHANGED))
    meta = (tmp_path / 'out.lmdb' / 'meta_info.txt').read_text().splitlines()
    assert meta == ['a_small.png (16,16,3) 1', 'b_gray.png (40,56,1) 1', 'c_color.png (48,36,3) 1',
                    'd_large.png (400,400,3) 1']
    assert result['map_size'] >= 400 * 400 * 3


def test_gray_lmdb_stores_one_channel(mixed_folder, tmp_path):
    stored = read_lmdb(make_lmdb(mixed_folder, tmp_path / 'gray.lmdb', gray=True)['lmdb'])
    color = cv2.imread(str(mixed_folder / 'd_large.png'))
    np.testing.assert_array_equal(stored['d_large'], cv2.cvtColor(color, cv2.COLOR_BGR2GRAY))
    assert all(image.ndim == 2 for image in stored.values())


def test_refuses_to_overwrite(mixed_folder, tmp_path, capsys):
    target = tmp_path / 'out.lmdb'
    make_lmdb(mixed_folder, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    with pytest.raises(FileExistsError, match=f'{target} already exists'):
        make_lmdb(mixed_folder, target)
    script = load_script('make_lmdb')
    with pytest.raises(SystemExit) as exit_info:
        script.main(['--input', str(mixed_folder), '--output', str(target)])
    assert exit_info.value.code == 2
    assert 'already exists; remove it or choose another --output' in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before


def test_cli_writes_and_reports(mixed_folder, tmp_path, capsys):
    load_script('make_lmdb').main(['--input', str(mixed_folder), '--output', str(tmp_path / 'cli.lmdb'), '--gray',
                                   '--compress-level', '3'])
    assert 'Wrote 4 images' in capsys.readouterr().out
    assert (tmp_path / 'cli.lmdb' / 'meta_info.txt').read_text().splitlines()[0] == 'a_small.png (16,16,1) 3'


def test_bad_inputs_are_named_and_leave_nothing(mixed_folder, tmp_path):
    with pytest.raises(ValueError, match='must end with .lmdb'):
        make_lmdb(mixed_folder, tmp_path / 'out.db')
    with pytest.raises(ValueError, match='compress_level'):
        make_lmdb(mixed_folder, tmp_path / 'out.lmdb', compress_level=10)
    with pytest.raises(FileNotFoundError, match='--input'):
        make_lmdb(tmp_path / 'nowhere', tmp_path / 'out.lmdb')
    (mixed_folder / 'broken.png').write_bytes(b'not a png')
    with pytest.raises(ValueError, match=f'Cannot decode image {mixed_folder / "broken.png"}'):
        make_lmdb(mixed_folder, tmp_path / 'out.lmdb')
    (mixed_folder / 'broken.png').unlink()
    cv2.imwrite(str(mixed_folder / 'a_small.bmp'), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="share the LMDB key 'a_small'"):
        make_lmdb(mixed_folder, tmp_path / 'out.lmdb')
    assert not (tmp_path / 'out.lmdb').exists()


def dataset_pair(folder, lmdb_path, **options):
    opt = {'sigma': 25, 'phase': 'val', **options}
    on_disk = GaussianNoiseDataset({**opt, 'dataroot_gt': str(folder), 'io_backend': {'type': 'disk'}})
    in_lmdb = GaussianNoiseDataset({**opt, 'dataroot_gt': str(lmdb_path), 'io_backend': {'type': 'lmdb'}})
    return on_disk, in_lmdb


def samples(dataset, seed):
    set_random_seed(seed)
    return [dataset[index] for index in range(len(dataset))]


@pytest.mark.parametrize('color, gray_lmdb', [('rgb', False), ('gray', False), ('gray', True)])
@pytest.mark.parametrize('phase', ['train', 'val'])
def test_lmdb_and_folder_give_identical_samples(mixed_folder, tmp_path, color, gray_lmdb, phase):
    lmdb_path = make_lmdb(mixed_folder, tmp_path / 'data.lmdb', gray=gray_lmdb)['lmdb']
    on_disk, in_lmdb = dataset_pair(mixed_folder, lmdb_path, color=color, phase=phase, gt_size=16,
                                    sigma=[5, 50])
    for from_disk, from_lmdb in zip(samples(on_disk, 7), samples(in_lmdb, 7)):
        assert Path(from_disk['gt_path']).stem == from_lmdb['gt_path']
        assert from_disk['sigma'] == from_lmdb['sigma']
        assert torch.equal(from_disk['gt'], from_lmdb['gt'])
        assert torch.equal(from_disk['lq'], from_lmdb['lq'])


def test_lmdb_without_a_listed_key_is_named(mixed_folder, tmp_path):
    lmdb_path = make_lmdb(mixed_folder, tmp_path / 'data.lmdb')['lmdb']
    with open(lmdb_path / 'meta_info.txt', 'a') as meta_info:
        meta_info.write('ghost.png (8,8,3) 1\n')
    with pytest.raises(KeyError, match=f"LMDB {lmdb_path} has no key 'ghost'"):
        dataset_pair(mixed_folder, lmdb_path)


def test_lmdb_backend_on_a_plain_folder_is_named(mixed_folder):
    with pytest.raises(FileNotFoundError, match=f'{mixed_folder} is not an LMDB'):
        dataset_pair(mixed_folder, mixed_folder)
