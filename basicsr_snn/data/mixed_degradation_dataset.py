"""Several degradations in one training set (all-in-one restoration): each sample comes from one source."""
import copy

import numpy as np
import torch
from basicsr.data import build_dataset
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from basicsr_snn.utils.checks import check_choice, check_int, check_number

#: options of the mixed dataset that every source gets unless it sets its own
SHARED_KEYS = ('gt_size', 'use_hflip', 'use_rot')
SAMPLE_KEYS = ('lq', 'gt', 'lq_path', 'gt_path')


def apportion(total, weights):
    """Split ``total`` into integer counts proportional to ``weights`` (largest remainders; ties to the first)."""
    weights = np.asarray(weights, dtype=np.float64)
    quotas = total * weights / weights.sum()
    counts = np.floor(quotas).astype(np.int64)
    leftover = total - int(counts.sum())
    counts[np.argsort(-(quotas - counts), kind='stable')[:leftover]] += 1
    return counts


@DATASET_REGISTRY.register()
class MixedDegradationDataset(data.Dataset):
    """Each sample drawn from one of several datasets, in proportion to their weights.

    The training set of all-in-one restoration (PromptIR, AdaIR): e.g. Gaussian noise at sigma 15,
    25 and 50 (``GaussianNoiseDataset``), rain (``PairedFolderDataset`` on Rain100L, or
    ``SyntheticDegradationDataset``) and haze. A source's ``name`` labels its samples.

    Which source serves index i is fixed by ``mix_seed``: the ``num_samples`` indices are split
    between the sources in exact proportion to their weights (largest remainders) and shuffled, so
    every epoch (and a resumed run) sees the same mix. In training, the image within the source is
    drawn from torch's RNG, as ``GaussianNoiseDataset`` draws its noise (BasicSR seeds it per rank
    and worker), so small and large sources are both used in full over the epochs. Out of training,
    index i gives a fixed image: the j-th index of a source reads its image j (modulo its length).

    Args:
        opt (dict): Options:
            sources (list[dict]): At least one BasicSR dataset option dict (``type`` and the options
                of that type), each with two more keys: ``name`` (str, unique: the degradation name
                returned with its samples, e.g. ``noise15``, ``rain``, ``synthetic-haze``) and
                ``weight`` (number > 0, relative share of the samples). ``phase`` is this dataset's;
                ``gt_size``, ``use_hflip`` and ``use_rot`` are this dataset's unless a source sets them.
            num_samples (int): Samples per epoch (before BasicSR's ``dataset_enlarge_ratio``).
                Default: the sum of the sources' lengths.
            mix_seed (int): Seed of the assignment of indices to sources. Default: 0.
            phase (str): 'train', 'val' or 'test' (BasicSR sets it).

    Returns (per item):
        dict: 'lq', 'gt' (Tensor (C, H, W), as the source returns them), 'lq_path', 'gt_path' (str),
        'degradation' (str, the source's name). Other entries of a source (``sigma``) are dropped so
        that samples of different sources collate into one batch; sources must agree on C and
        (in training) on ``gt_size``.
    """

    def __init__(self, opt: dict):
        super().__init__()
        self.opt = opt
        self.phase = opt.get('phase', 'train')
        self.key = f'datasets.{self.phase}'
        self.names, weights, self.sources = self._build_sources(opt.get('sources'))
        lengths = [len(source) for source in self.sources]
        self.num_samples = check_int(f'{self.key}.num_samples', opt.get('num_samples', sum(lengths)), 1)
        counts = apportion(self.num_samples, weights)
        starved = [name for name, count in zip(self.names, counts) if count == 0]
        if starved:
            raise ValueError(f'{self.key}.num_samples: {self.num_samples} samples leave source(s) {starved} '
                             f'none at weights {weights}; raise num_samples or those weights.')
        mix_seed = check_int(f'{self.key}.mix_seed', opt.get('mix_seed', 0))
        assignment = np.random.default_rng(mix_seed).permutation(np.repeat(np.arange(len(counts)), counts))
        occurrence = np.zeros_like(assignment)
        for source in range(len(counts)):
            occurrence[assignment == source] = np.arange(counts[source])
        self.index_map = [(int(source), int(rank) % lengths[source]) for source, rank in zip(assignment, occurrence)]

    def _build_sources(self, sources):
        if not isinstance(sources, list) or not sources:
            raise ValueError(f'{self.key}.sources must be a non-empty list of dataset option dicts '
                             f"(each with 'type', 'name' and 'weight'), got {sources!r}")
        names, weights, datasets = [], [], []
        for index, source in enumerate(sources):
            key = f'{self.key}.sources[{index}]'
            if not isinstance(source, dict):
                raise ValueError(f'{key} must be a dataset option dict, got {source!r}')
            for required in ('type', 'name', 'weight'):
                if required not in source:
                    raise KeyError(f'{key}.{required} is missing')
            check_choice(f'{key}.type', source['type'], sorted(name for name, _ in DATASET_REGISTRY))
            if source['type'] == type(self).__name__:
                raise ValueError(f'{key}.type: a {type(self).__name__} cannot be a source of another')
            if not isinstance(source['name'], str) or not source['name'] or source['name'] in names:
                raise ValueError(f'{key}.name must be a non-empty string unlike the other sources\' names '
                                 f'{names}, got {source["name"]!r}')
            weights.append(check_number(f'{key}.weight', source['weight'], above=0))
            names.append(source['name'])
            datasets.append(self._build_source(key, source))
        return names, weights, datasets

    def _build_source(self, key, source):
        source_opt = {name: copy.deepcopy(self.opt[name]) for name in SHARED_KEYS if name in self.opt}
        source_opt.update({name: value for name, value in source.items() if name != 'weight'}, phase=self.phase)
        try:
            dataset = build_dataset(source_opt)
        except (ValueError, KeyError, TypeError, FileNotFoundError, NotADirectoryError) as error:
            message = error.args[0] if error.args and isinstance(error.args[0], str) else str(error)
            raise type(error)(f'{key} ({source["type"]} {source["name"]!r}): {message}') from error
        if len(dataset) == 0:
            raise ValueError(f'{key} ({source["name"]!r}) has no samples.')
        return dataset

    def __getitem__(self, index):
        source, image = self.index_map[index]
        dataset = self.sources[source]
        if self.phase == 'train':
            image = int(torch.randint(0, len(dataset), ()))
        sample = dataset[image]
        missing = [key for key in SAMPLE_KEYS if key not in sample]
        if missing:
            raise KeyError(f'{self.key}.sources[{source}] ({self.names[source]!r}) returns no {missing}')
        return {**{key: sample[key] for key in SAMPLE_KEYS}, 'degradation': self.names[source]}

    def __len__(self):
        return self.num_samples
