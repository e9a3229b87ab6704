"""``train.distill``: the options of feature-hint distillation, checked before anything is built.

The keys, their defaults and an example are in :class:`basicsr_snn.models.distill_snn_model.DistillSNNModel`.
"""
from dataclasses import dataclass, field
from typing import Optional

from basicsr_snn.distill.adapter import ADAPTER_TYPES, RESIZE_MODES
from basicsr_snn.distill.hint_loss import DEFAULT_HINT_LOSS, NORMALIZATIONS, check_loss_type
from basicsr_snn.distill.recorder import REDUCTIONS
from basicsr_snn.distill.schedule import SCHEDULE_KEYS, DistillWeightSchedule
from basicsr_snn.utils.checks import check_bool, check_choice, check_keys, check_number, named_errors

OPTION_ROOT = 'train.distill'
DISTILL_KEYS = ('hints', 'output', 'schedule', 'adapter', 'resize', 'probe_shape', 'allow_random_teacher')
HINT_KEYS = ('name', 'student', 'teacher', 'loss', 'weight', 'reduce', 'teacher_reduce', 'normalize', 'adapter',
             'resize')
TEACHER_REDUCTIONS = ('none', 'mean')
OUTPUT_KEYS = ('loss', 'weight')
DEFAULT_OUTPUT_LOSS = {'type': 'L1Loss', 'loss_weight': 1.0}


def _checked_loss(option_key, loss_opt):
    with named_errors(option_key, ('type', )):
        check_loss_type(loss_opt)
    return dict(loss_opt)


def _check_path(option_key, value):
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
    def log_key(self) -> str:
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
    schedule: DistillWeightSchedule = field(default_factory=DistillWeightSchedule)
    probe_shape: Optional[tuple] = None
    allow_random_teacher: bool = False

    @classmethod
    def from_train_options(cls, train_opt: dict) -> 'DistillOptions':
        """Parse and check ``train_opt['distill']`` (its schedule against ``train_opt['total_iter']``);
        every error names its option key."""
        if 'distill' not in train_opt:
            raise ValueError(f'{OPTION_ROOT} is missing: DistillSNNModel needs hints and/or an output term')
        opt = train_opt['distill'] or {}
        check_keys(OPTION_ROOT, opt, DISTILL_KEYS)
        default_adapter = check_choice(f'{OPTION_ROOT}.adapter', opt.get('adapter', 'conv1x1'), ADAPTER_TYPES)
        default_resize = check_choice(f'{OPTION_ROOT}.resize', opt.get('resize', 'bilinear'), RESIZE_MODES)
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
        check_bool(f'{OPTION_ROOT}.allow_random_teacher', allow_random_teacher)
        schedule_opt = check_keys(f'{OPTION_ROOT}.schedule', dict(opt.get('schedule') or {}), SCHEDULE_KEYS)
        with named_errors(f'{OPTION_ROOT}.schedule', SCHEDULE_KEYS):
            schedule = DistillWeightSchedule(**schedule_opt, total_iter=train_opt.get('total_iter'))
        return cls(hints=hints, output=output, schedule=schedule,
                   probe_shape=tuple(probe_shape) if probe_shape else None,
                   allow_random_teacher=allow_random_teacher)

    @staticmethod
    def _parse_hint(hint, option_key, default_adapter, default_resize):
        check_keys(option_key, hint, HINT_KEYS)
        for required in ('student', 'teacher'):
            if required not in hint:
                raise ValueError(f'{option_key}.{required} is missing: the {required} module path')
        student = _check_path(f'{option_key}.student', hint['student'])
        name = hint.get('name', student.replace('.', '_'))
        if not isinstance(name, str) or not name.replace('_', '').isalnum():
            raise ValueError(f'{option_key}.name must be letters, digits and underscores, got {name!r}')
        return HintOptions(
            name=name,
            student=student,
            teacher=_check_path(f'{option_key}.teacher', hint['teacher']),
            loss=_checked_loss(f'{option_key}.loss', hint.get('loss') or DEFAULT_HINT_LOSS),
            weight=float(check_number(f'{option_key}.weight', hint.get('weight', 1.0), minimum=0)),
            reduce=check_choice(f'{option_key}.reduce', hint.get('reduce', 'mean'), REDUCTIONS),
            teacher_reduce=check_choice(f'{option_key}.teacher_reduce', hint.get('teacher_reduce', 'none'),
                                        TEACHER_REDUCTIONS),
            normalize=check_choice(f'{option_key}.normalize', hint.get('normalize', 'none'), NORMALIZATIONS),
            adapter=check_choice(f'{option_key}.adapter', hint.get('adapter', default_adapter), ADAPTER_TYPES),
            resize=check_choice(f'{option_key}.resize', hint.get('resize', default_resize), RESIZE_MODES),
            option_key=option_key)

    @staticmethod
    def _parse_output(output):
        option_key = f'{OPTION_ROOT}.output'
        check_keys(option_key, output, OUTPUT_KEYS)
        return OutputTermOptions(loss=_checked_loss(f'{option_key}.loss', output.get('loss') or DEFAULT_OUTPUT_LOSS),
                                 weight=float(check_number(f'{option_key}.weight', output.get('weight', 1.0),
                                                           minimum=0)))
