"""A training set that replaces a sample it cannot read by the next one that reads.

``datasets.train.max_bad_samples`` (default 10) bounds how many distinct unreadable files a run
accepts; the count is kept by the training loop (:mod:`basicsr_snn.training_session`), in the main
process, because DataLoader workers are separate processes: each sample carries the files that
were replaced on its way (:data:`UNREADABLE_KEY`).

A sample is *unreadable* when reading it raises and at least one of its files does not read or
decode (the same decoder as ``scripts/check_data.py``). An error of a sample whose files all decode
(a crop larger than the image, a bug) is raised as it is. The replacement of index ``i`` is the
first readable index of ``i + 1, i + 2, ...`` (modulo the length): a function of ``i`` alone, so a
run and its resumed twin, which draw the same indices, train on the same samples.
"""
import json

from torch.utils import data

from basicsr_snn.data.image_io import decode_image
from basicsr_snn.utils.checks import check_int

#: key of every sample: JSON list of ``[file, reason]`` replaced to give this sample ('[]': none)
UNREADABLE_KEY = 'unreadable_files'
DEFAULT_MAX_BAD_SAMPLES = 10


class TooManyBadSamples(ValueError):
    """More distinct training files than ``datasets.train.max_bad_samples`` could not be read."""


def sample_sources(dataset, index: int) -> dict[str, str]:
    """``{client key: file or LMDB key}`` that sample ``index`` of ``dataset`` reads; {} when unknown.

    BasicSR's paired datasets (and :class:`PairedFolderDataset`) list ``paths[index]`` as
    ``{'lq_path': ..., 'gt_path': ...}``; :class:`GaussianNoiseDataset` lists ``items[index]`` as
    ``(key, source)`` and reads the clean image only.
    """
    paths = getattr(dataset, 'paths', None)
    if isinstance(paths, list) and index < len(paths) and isinstance(paths[index], dict):
        return {key[:-len('_path')]: value for key, value in paths[index].items() if key.endswith('_path')}
    items = getattr(dataset, 'items', None)
    if isinstance(items, list) and index < len(items):
        return {'gt': items[index][1]}
    return {}


def unreadable_sources(dataset, index: int) -> list[tuple[str, str]]:
    """``[(source, reason), ...]`` for the files of sample ``index`` that do not read or decode."""
    client = getattr(dataset, 'file_client', None)
    problems = []
    for client_key, source in sample_sources(dataset, index).items():
        try:
            content = client.get(source, client_key) if client is not None else open(source, 'rb').read()
            decode_image(content, 'rgb', source)
        except Exception as error:  # noqa: BLE001  (whatever stops a file from reading makes it bad)
            problems.append((str(source), f'{type(error).__name__}: {error}'.splitlines()[0]))
    return problems


class SkipUnreadableSamples(data.Dataset):
    """``dataset`` whose unreadable samples are replaced (see the module); other attributes are ``dataset``'s.

    Args:
        dataset (Dataset): The training set; every sample is a dict.
        max_bad_samples (int): ``datasets.train.max_bad_samples``, >= 0; checked here, counted by the loop.

    Returns (per item):
        dict: ``dataset``'s sample, plus :data:`UNREADABLE_KEY`.
    """

    def __init__(self, dataset: data.Dataset, max_bad_samples: int = DEFAULT_MAX_BAD_SAMPLES):
        self.dataset = dataset
        self.max_bad_samples = check_int('datasets.train.max_bad_samples', max_bad_samples, 0)

    def __len__(self):
        return len(self.dataset)

    def __getattr__(self, name):
        if name == 'dataset':  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index):
        replaced = []
        for offset in range(len(self.dataset)):
            candidate = (index + offset) % len(self.dataset)
            try:
                sample = self.dataset[candidate]
            except Exception:
                problems = unreadable_sources(self.dataset, candidate)
                if not problems:
                    raise
                replaced.extend(problems)
                continue
            sample[UNREADABLE_KEY] = json.dumps(replaced)
            return sample
        raise TooManyBadSamples(f'datasets.train: no sample reads, e.g. {replaced[:3]}; check the data with '
                                f'python scripts/check_data.py <dataroot>')
