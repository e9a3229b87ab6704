"""What a training run's options must hold before anything is built (folders, data, networks).

BasicSR passes option values on unchecked: a learning rate that is a string fails deep inside torch's
optimizer after the experiment folder exists, and ``total_iter: -5`` trains nothing and saves an
untrained network. :func:`check_training_options` refuses such values with the key; the entry points
call it right after the options are parsed (:func:`basicsr_snn.pipeline.parse_run_options`).

PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent: ``2e-3`` and ``1e5`` are
read as strings. :func:`read_exponent_numbers` reads them as the numbers their author meant.
"""
import re
from numbers import Real

from basicsr_snn.utils.checks import check_int, check_number

_EXPONENT_NUMBER = re.compile(r'[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+')


def read_exponent_numbers(options):
    """``options`` with every string such as ``2e-3`` or ``1.5e4`` (numbers YAML 1.1 reads as strings) a float."""
    if isinstance(options, dict):
        return type(options)((key, read_exponent_numbers(value)) for key, value in options.items())
    if isinstance(options, list):
        return [read_exponent_numbers(value) for value in options]
    if isinstance(options, str) and _EXPONENT_NUMBER.fullmatch(options.strip()):
        return float(options)
    return options


def check_training_options(opt: dict) -> None:
    """Refuse, with the option key, the values a training run cannot use (see the module). Counts given as
    whole floats (``total_iter: 4e5``) are made integers in place."""
    train = _section(opt, 'train')
    _count(train, 'train', 'total_iter', 1, required=True)
    _count(train, 'train', 'warmup_iter', -1)
    for key, optim in train.items():
        if key.startswith('optim_') and isinstance(optim, dict):
            check_number(f'train.{key}.lr', optim.get('lr'), above=0)
            if 'weight_decay' in optim:
                check_number(f'train.{key}.weight_decay', optim['weight_decay'], minimum=0)
    if train.get('ema_decay') is not None:
        check_number('train.ema_decay', train['ema_decay'], minimum=0, maximum=1)
    scheduler = train.get('scheduler') or {}
    if 'eta_min' in scheduler:
        check_number('train.scheduler.eta_min', scheduler['eta_min'], minimum=0)
    for key in ('periods', 'milestones'):
        for index in range(len(scheduler.get(key) or [])):
            _count(scheduler[key], f'train.scheduler.{key}', index, 1)
    logger = _section(opt, 'logger')
    for key in ('print_freq', 'save_checkpoint_freq'):
        _count(logger, 'logger', key, 1, required=True)
    if opt.get('val') is not None:
        _count(_section(opt, 'val'), 'val', 'val_freq', 1, required=True)
    train_set = (opt.get('datasets') or {}).get('train')
    if isinstance(train_set, dict):
        _count(train_set, 'datasets.train', 'batch_size_per_gpu', 1)
        _count(train_set, 'datasets.train', 'num_worker_per_gpu', 0)


def _section(opt, key):
    section = opt.get(key)
    if not isinstance(section, dict):
        raise ValueError(f'{key} must be a mapping of options, got {section!r}')
    return section


def _count(container, where, key, minimum, required=False):
    """``container[key]`` is an integer >= ``minimum`` (a whole float becomes one)."""
    if isinstance(container, dict) and key not in container:
        if required:
            raise ValueError(f'{where}.{key} is missing: give an integer >= {minimum}')
        return
    value = container[key]
    if isinstance(value, Real) and not isinstance(value, (bool, int)) and float(value).is_integer():
        value = container[key] = int(value)
    name = f'{where}[{key}]' if isinstance(key, int) else f'{where}.{key}'
    check_int(name, value, minimum)
