"""Checks that run before the first iteration, so that a wrong option fails in seconds, not hours.

* The channels of every dataset (read from its first sample) against the input channels of
  every network it feeds (``network_g``, and the teacher ``network_t`` of distillation).
* Every validation image decodes (a corrupt file would otherwise fail at the first validation); a
  training set gives one sample that decodes (unreadable ones are replaced during training).
* The teacher's output against the student's wherever the two are compared.

Errors name the option keys to change, e.g. ``network_g.in_ch`` and ``datasets.train.color``.
"""
import torch
from torch import nn

from basicsr_snn.data.unreadable_samples import DEFAULT_MAX_BAD_SAMPLES, unreadable_sources

IN_CHANNEL_KEYS = ('in_ch', 'inp_channels', 'num_in_ch', 'in_channels', 'in_nc', 'in_chans')
OUT_CHANNEL_KEYS = ('out_ch', 'out_channels', 'num_out_ch', 'out_nc', 'out_chans')


def input_channels(opt: dict, network_key: str, network: nn.Module) -> tuple[int | None, str]:
    """``(channels, option label)`` of the input of ``network`` built from ``opt[network_key]``.

    The arch's own input-channel option where it has a usual name (``network_g.in_ch``,
    ``network_t.num_in_ch``, ...); otherwise the first convolution's input channels. ``(None,
    label)`` when neither is known.
    """
    net_opt = opt.get(network_key) or {}
    key = next((k for k in IN_CHANNEL_KEYS if isinstance(net_opt.get(k), int)), None)
    if key:
        return net_opt[key], f'{network_key}.{key}'
    first = next((m for m in network.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    label = f'{network_key} ({net_opt.get("type")}, its first convolution)'
    return (None if first is None else first.in_channels), label


def output_option(opt: dict, network_key: str) -> str:
    """The label of the output-channel option of ``opt[network_key]`` (``network_g.out_ch``, ...)."""
    net_opt = opt.get(network_key) or {}
    key = next((k for k in OUT_CHANNEL_KEYS if k in net_opt), None)
    return f'{network_key}.{key}' if key else f'{network_key} ({net_opt.get("type")})'


def _dataset_label(phase_key, dataset_opt):
    color = f' (datasets.{phase_key}.color: {dataset_opt["color"]})' if 'color' in dataset_opt else ''
    return f'datasets.{phase_key}{color}'


def check_datasets(opt: dict, networks: dict[str, nn.Module]) -> None:
    """Build each dataset of ``opt['datasets']``, decode its first sample (every sample for validation
    sets), and compare its channels with each network of ``networks`` ({option key: module}).

    Raises:
        ValueError: a sample that does not decode (naming the dataset and, where known, the file),
            or a channel mismatch (naming the option keys).
    """
    from basicsr.data import build_dataset

    expected = [input_channels(opt, key, net) for key, net in networks.items()]
    for phase_key, dataset_opt in (opt.get('datasets') or {}).items():
        dataset = build_dataset(dataset_opt)
        if len(dataset) == 0:
            raise ValueError(f'datasets.{phase_key}: no image found (check dataroot_gt / dataroot_lq)')
        if phase_key.startswith('train'):
            sample = _first_readable(dataset, phase_key, dataset_opt.get('max_bad_samples', DEFAULT_MAX_BAD_SAMPLES))
        else:
            for index in range(len(dataset)):
                sample = _decoded(dataset, index, phase_key)
        channels = sample['lq'].shape[0]
        for network_channels, label in expected:
            if network_channels is not None and network_channels != channels:
                raise ValueError(f'{_dataset_label(phase_key, dataset_opt)} gives {channels}-channel images, but '
                                 f'{label} takes {network_channels}: make them agree')


def _decoded(dataset, index, phase_key):
    try:
        return dataset[index]
    except Exception as error:  # noqa: BLE001  (any unreadable sample stops the run here, named)
        where = _sample_path(dataset, index)
        raise ValueError(f'datasets.{phase_key}: sample {index}{where} cannot be read: '
                         f'{type(error).__name__}: {error}') from error


def _first_readable(dataset, phase_key, max_bad_samples):
    """The first sample of a training set that reads; unreadable files before it are left to training,
    which replaces and counts them (up to ``max_bad_samples``)."""
    last = min(len(dataset), max_bad_samples + 1) - 1
    for index in range(last):
        try:
            return dataset[index]
        except Exception:
            if not unreadable_sources(dataset, index):
                return _decoded(dataset, index, phase_key)  # raises, naming the sample
    return _decoded(dataset, last, phase_key)


def _sample_path(dataset, index):
    paths = getattr(dataset, 'paths', None)
    if paths is None or index >= len(paths):
        return ''
    entry = paths[index]
    return f' ({", ".join(str(v) for v in entry.values()) if isinstance(entry, dict) else entry})'


def check_same_input_channels(opt: dict, networks: dict[str, nn.Module]) -> None:
    """Networks fed the same input ({option key: module}) must take the same number of channels."""
    channels = [input_channels(opt, key, net) for key, net in networks.items()]
    channels = [(value, label) for value, label in channels if value is not None]
    if len({value for value, _ in channels}) > 1:
        described = ', '.join(f'{label} takes {value}' for value, label in channels)
        raise ValueError(f'the networks read the same images but differ in input channels: {described}')


def check_output_shapes(opt: dict, student_output: torch.Tensor, teacher_output: torch.Tensor, reason: str) -> None:
    """The teacher's and the student's outputs must have one shape where they are compared."""
    if tuple(student_output.shape) == tuple(teacher_output.shape):
        return
    raise ValueError(f'{reason}: the student output {tuple(student_output.shape)} ({output_option(opt, "network_g")}) '
                     f'and the teacher output {tuple(teacher_output.shape)} ({output_option(opt, "network_t")}) '
                     f'differ in shape')
