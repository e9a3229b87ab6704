"""``train.distill``: the options of feature-hint distillation, checked before anything is built.

The keys, their defaults and an example are in :class:`basicsr_snn.models.distill_snn_model.DistillSNNModel`.
"""
from dataclasses import dataclass, field
from typing import Optional

from basicsr_snn.distill.adapter import ADAPTER_TYPES, RESIZE_MODES
from basicsr_snn.distill.hint_loss import DEFAULT_HINT_LOSS, NORMALIZATIONS
from basicsr_snn.distill.recorder import REDUCTIONS

OPTION_ROOT = 'train.distill'
DISTILL_KEYS = ('hints', 'output', 'schedule', 'adapter', 'resize', 'probe_shape', 'allow_random_teacher')
HINT_KEYS = ('name', 'student', 'teacher', 'loss', 'weight', 'reduce', 'teacher_reduce', 'normalize', 'adapter',
             'resize')
TEACHER_REDUCTIONS = ('none', 'mean')
OUTPUT_KEYS = ('loss', 'weight')
DEFAULT_OUTPUT_LOSS = {'type': 'L1Loss', 'loss_weight': 1.0}


def _check_keys(options, valid, option_key):
    if not isinstance(options, dict):
        raise ValueError(f'{option_key} must be a mapping with keys {list(valid)}, got {options!r}')
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f'{option_key}: unknown key(s) {unknown}; valid keys: {list(valid)}')


def _check_weight(value, option_key):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f'{option_key} must be a number >= 0, got {value!r}')
    return float(value)


def _check_choice(value, choices, option_key):
    if value not in choices:
        raise ValueError(f'{option_key} must be one of {choices}, got {value!r}')
    return value


def _check_path(value, option_key):
    if not isinstance(value, str) or not value:
        raise ValueError(f'{option_key} must be a module path such as decoder1 (see the network\'s named_modules), '
                         f'got {value!r}')
    return value


@dataclass(frozen=True)
class HintOptions:
    """One hint point: student module ``student`` imitates teacher module ``teacher``."""
    name: str
    student: str
    teacher: str
    loss: dict
    weight: float
    reduce: str
    teacher_reduce: str
    normalize: str
    adapter: str
    resize: str
    option_key: str

    @property
    def log_key(self):
        return f'l_hint_{self.name}'


@dataclass(frozen=True)
class OutputTermOptions:
    """The output-level term: student output vs teacher output."""
    loss: dict
    weight: float
    option_key: str = f'{OPTION_ROOT}.output'


@dataclass(frozen=True)
class DistillOptions:
    hints: tuple
    output: Optional[OutputTermOptions]
    schedule: dict = field(default_factory=dict)
    probe_shape: Optional[tuple] = None
    allow_random_teacher: bool = False

    @classmethod
    def from_train_options(cls, train_opt):
        """Parse and check ``train_opt['distill']``; every error names its option key."""
        if 'distill' not in train_opt:
            raise ValueError(f'{OPTION_ROOT} is missing: DistillSNNModel needs hints and/or an output term')
        opt = train_opt['distill'] or {}
        _check_keys(opt, DISTILL_KEYS, OPTION_ROOT)
        default_adapter = _check_choice(opt.get('adapter', 'conv1x1'), ADAPTER_TYPES, f'{OPTION_ROOT}.adapter')
        default_resize = _check_choice(opt.get('resize', 'bilinear'), RESIZE_MODES, f'{OPTION_ROOT}.resize')
        hints_opt = opt.get('hints') or []
        if not isinstance(hints_opt, list):
            raise ValueError(f'{OPTION_ROOT}.hints must be a list of hint points, got {hints_opt!r}')
        hints = tuple(
            cls._parse_hint(hint, f'{OPTION_ROOT}.hints[{index}]', default_adapter, default_resize)
            for index, hint in enumerate(hints_opt))
        names = [hint.name for hint in hints]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f'{OPTION_ROOT}.hints: names must be unique, repeated: {duplicates}')
        output = cls._parse_output(opt['output']) if opt.get('output') is not None else None
        if not hints and output is None:
            raise ValueError(f'{OPTION_ROOT} distills nothing: give hints and/or an output term')
        probe_shape = opt.get('probe_shape')
        if probe_shape is not None and (not isinstance(probe_shape, (list, tuple)) or len(probe_shape) != 3
                                        or not all(isinstance(v, int) and v > 0 for v in probe_shape)):
            raise ValueError(f'{OPTION_ROOT}.probe_shape must be [channels, height, width], got {probe_shape!r}')
        allow_random_teacher = opt.get('allow_random_teacher', False)
        _check_choice(allow_random_teacher, (True, False), f'{OPTION_ROOT}.allow_random_teacher')
        return cls(hints=hints, output=output, schedule=dict(opt.get('schedule') or {}),
                   probe_shape=tuple(probe_shape) if probe_shape else None,
                   allow_random_teacher=allow_random_teacher)

    @staticmethod
    def _parse_hint(hint, option_key, default_adapter, default_resize):
        _check_keys(hint, HINT_KEYS, option_key)
        for required in ('student', 'teacher'):
            if required not in hint:
                raise ValueError(f'{option_key}.{required} is missing: the {required} module path')
        student = _check_path(hint['student'], f'{option_key}.student')
        name = hint.get('name', student.replace('.', '_'))
        if not isinstance(name, str) or not name.replace('_', '').isalnum():
            raise ValueError(f'{option_key}.name must be letters, digits and underscores, got {name!r}')
        return HintOptions(
            name=name,
            student=student,
            teacher=_check_path(hint['teacher'], f'{option_key}.teacher'),
            loss=dict(hint.get('loss') or DEFAULT_HINT_LOSS),
            weight=_check_weight(hint.get('weight', 1.0), f'{option_key}.weight'),
            reduce=_check_choice(hint.get('reduce', 'mean'), REDUCTIONS, f'{option_key}.reduce'),
            teacher_reduce=_check_choice(hint.get('teacher_reduce', 'none'), TEACHER_REDUCTIONS,
                                         f'{option_key}.teacher_reduce'),
            normalize=_check_choice(hint.get('normalize', 'none'), NORMALIZATIONS, f'{option_key}.normalize'),
            adapter=_check_choice(hint.get('adapter', default_adapter), ADAPTER_TYPES, f'{option_key}.adapter'),
            resize=_check_choice(hint.get('resize', default_resize), RESIZE_MODES, f'{option_key}.resize'),
            option_key=option_key)

    @staticmethod
    def _parse_output(output):
        option_key = f'{OPTION_ROOT}.output'
        _check_keys(output, OUTPUT_KEYS, option_key)
        return OutputTermOptions(loss=dict(output.get('loss') or DEFAULT_OUTPUT_LOSS),
                                 weight=_check_weight(output.get('weight', 1.0), f'{option_key}.weight'))
