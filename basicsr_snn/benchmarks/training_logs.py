"""Scalars of a BasicSR experiment, from its text log or its tensorboard events.

Both readers return ``{tag: (iterations, values)}`` with tensorboard's tag names, whichever the
source, so one plot serves both:

=================================  ============================================================
tag                                from the log line
=================================  ============================================================
``lr``                             ``[..][epoch: 1, iter: 100, lr:(1.000e-03,)] ...`` (first lr)
``losses/<name>``                  ``... l_pix: 1.2e-02 l_fft: ...`` on those lines
``<name>``                         other values there (``firing_rate``, ``distill_weight``)
``metrics/<dataset>/<metric>``     ``Validation <dataset>`` then ``# psnr: 28.1 ...`` lines
``metrics/<dataset>/teacher_psnr`` ``Teacher PSNR on <dataset>: 29.5 dB`` (DistillSNNModel)
``firing_rate/<dataset>/<level>``  ``Firing rates on <dataset>: mean 0.12, encoder1 0.2, ...``
=================================  ============================================================

A log line carries no iteration for validation results: they are assigned the last iteration
logged before them, exact when ``val_freq`` is a multiple of ``print_freq`` (BasicSR logs, then
validates, within one iteration). Later entries for the same iteration (a resumed run) replace
earlier ones.
"""
import re
from pathlib import Path

from basicsr_snn.models import log_messages

_TRAIN_LINE = re.compile(r'\[epoch:\s*\d+, iter:\s*([\d,]+), lr:\(([^)]*)\)\]')
_VALUE = re.compile(r'([A-Za-z_][\w]*): ([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))')
_VALIDATION_HEADER = re.compile(r'Validation (\S+)\s*$')
_METRIC_LINE = re.compile(r'^\s*# (\w+): ([-+\d.eE]+|nan|inf)')
_TEACHER_PSNR = log_messages.pattern(log_messages.TEACHER_PSNR)
_FIRING_RATES = log_messages.pattern(log_messages.FIRING_RATES)
_FIRING_RATE_ENTRY = log_messages.pattern(log_messages.FIRING_RATE_ENTRY)


class _Series:
    """tag -> {iteration: value}, later values of an iteration replacing earlier ones."""

    def __init__(self):
        self.points = {}

    def add(self, tag, iteration, value):
        self.points.setdefault(tag, {})[iteration] = float(value)

    def as_lists(self):
        return {tag: (sorted(points), [points[i] for i in sorted(points)]) for tag, points in self.points.items()}


def parse_train_log(text: str) -> dict[str, tuple[list[int], list[float]]]:
    """Scalars of BasicSR ``train_*.log`` text (see the module docstring for the tags).

    Args:
        text (str): The log's content (several logs of a resumed run may be concatenated in order).

    Returns:
        dict[str, tuple[list[int], list[float]]]: tag -> (iterations, values), by iteration.
    """
    series = _Series()
    iteration, validated_dataset = None, None
    for line in text.splitlines():
        train = _TRAIN_LINE.search(line)
        if train:
            iteration, validated_dataset = int(train.group(1).replace(',', '')), None
            learning_rates = [lr for lr in train.group(2).split(',') if lr.strip()]
            if learning_rates:
                series.add('lr', iteration, learning_rates[0])
            values = line[train.end():].rsplit('] ', 1)[-1]  # skip the "[eta: ..., time (data): ...]" part
            for name, value in _VALUE.findall(values):
                series.add(f'losses/{name}' if name.startswith('l_') else name, iteration, value)
            continue
        if iteration is None:
            continue
        header = _VALIDATION_HEADER.search(line)
        if header:
            validated_dataset = header.group(1)
            continue
        metric = _METRIC_LINE.search(line)
        if metric and validated_dataset:
            series.add(f'metrics/{validated_dataset}/{metric.group(1)}', iteration, metric.group(2))
            continue
        validated_dataset = None
        teacher = _TEACHER_PSNR.search(line)
        if teacher:
            series.add(f'metrics/{teacher["dataset"]}/teacher_psnr', iteration, teacher['psnr'])
        rates = _FIRING_RATES.search(line)
        if rates:
            for entry in rates['rates'].split(log_messages.FIRING_RATE_SEPARATOR):
                level_rate = _FIRING_RATE_ENTRY.match(entry.strip())
                series.add(f'firing_rate/{rates["dataset"]}/{level_rate["level"]}', iteration, level_rate['rate'])
    return series.as_lists()


def read_tensorboard_scalars(event_dir: str | Path) -> dict[str, tuple[list[int], list[float]]]:
    """Every scalar tag in a tensorboard event folder (BasicSR: ``tb_logger/<name>``).

    Returns:
        dict[str, tuple[list[int], list[float]]]: tag -> (iterations, values), by iteration.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    event_dir = Path(event_dir)
    if not any(event_dir.glob('events.out.tfevents.*')):
        raise FileNotFoundError(f'no tensorboard event file (events.out.tfevents.*) in {event_dir}')
    accumulator = EventAccumulator(str(event_dir), size_guidance={'scalars': 0})
    accumulator.Reload()
    series = _Series()
    for tag in accumulator.Tags()['scalars']:
        for event in accumulator.Scalars(tag):
            series.add(tag, event.step, event.value)
    return series.as_lists()


def read_experiment_scalars(experiment_dir: str | Path, source: str = 'auto',
                            tb_dir: str | Path | None = None) -> tuple[dict, str]:
    """Scalars of a BasicSR experiment folder (``experiments/<name>``).

    Args:
        experiment_dir (str | Path): The experiment folder, holding ``train_*.log``.
        source (str): ``'log'``: the ``train_*.log`` files (in name order, i.e. by start time);
            ``'tb'``: tensorboard events; ``'auto'``: the logs if any, else the events.
        tb_dir (str | Path | None): Event folder. Default: ``<experiment_dir>/../../tb_logger/<name>``,
            where BasicSR's train pipeline writes it.

    Returns:
        tuple[dict, str]: The scalars (see :func:`parse_train_log`) and the source read
        (a log file list or the event folder), for the plot's caption.
    """
    sources = ('auto', 'log', 'tb')
    if source not in sources:
        raise ValueError(f'source must be one of {sources}, got {source!r}')
    experiment_dir = Path(experiment_dir)
    logs = sorted(experiment_dir.glob('train_*.log'))
    if source == 'log' or (source == 'auto' and logs):
        if not logs:
            raise FileNotFoundError(f'no train_*.log in {experiment_dir}')
        return parse_train_log('\n'.join(log.read_text() for log in logs)), ', '.join(str(log) for log in logs)
    tb_dir = Path(tb_dir) if tb_dir else experiment_dir.resolve().parent.parent / 'tb_logger' / experiment_dir.name
    return read_tensorboard_scalars(tb_dir), str(tb_dir)
