"""How much the distillation term weighs at each iteration (``train.distill.schedule``)."""
import math

from basicsr_snn.utils.checks import check_choice, check_int, check_keys, check_number

SCHEDULE_TYPES = ('constant', 'linear', 'cosine', 'step')
SCHEDULE_KEYS = ('type', 'gamma', 'end', 'until_iter')
PAPER_GAMMA = 0.12


class DistillWeightSchedule:
    """The factor ``gamma(iter)`` that multiplies the whole distillation term.

    ============  ==============================================================================
    type          gamma(iter), for iterations counted from 1
    ============  ==============================================================================
    constant      ``gamma`` throughout
    linear        from ``gamma`` at iteration 0 to ``end`` at ``until_iter``, then ``end``
    cosine        half a cosine from ``gamma`` at iteration 0 to ``end`` at ``until_iter``,
                  then ``end``
    step          ``gamma`` up to and including ``until_iter``, then ``end`` (0: distillation off)
    ============  ==============================================================================

    Args:
        type (str): One of ``SCHEDULE_TYPES``. Default: ``'constant'``.
        gamma (float): Starting weight, >= 0. Default: 0.12 (the paper's).
        end (float): Final weight of the decaying types, >= 0. Default: 0.
        until_iter (int | None): Last iteration of the decay / of the step's first phase.
            Default: ``total_iter`` for ``linear`` and ``cosine``; required for ``step``.
        total_iter (int | None): ``train.total_iter``, the default ``until_iter``.
    """

    def __init__(self, type: str = 'constant', gamma: float = PAPER_GAMMA, end: float = 0.,
                 until_iter: int | None = None, total_iter: int | None = None):
        check_choice('type', type, SCHEDULE_TYPES)
        check_number('gamma', gamma, minimum=0)
        check_number('end', end, minimum=0)
        if until_iter is None and type in ('linear', 'cosine'):
            until_iter = total_iter
        if type != 'constant':
            check_int(f'until_iter (for type {type!r})', until_iter, 1)
        self.type = type
        self.gamma = float(gamma)
        self.end = float(end)
        self.until_iter = until_iter

    @classmethod
    def from_options(cls, options: dict | None, total_iter: int | None = None) -> 'DistillWeightSchedule':
        """Build from the ``schedule`` dict of the options (None: the paper's constant 0.12)."""
        options = check_keys('schedule', dict(options or {}), SCHEDULE_KEYS)
        return cls(**options, total_iter=total_iter)

    def __call__(self, current_iter: int) -> float:
        if self.type == 'constant':
            return self.gamma
        if self.type == 'step':
            return self.gamma if current_iter <= self.until_iter else self.end
        progress = min(current_iter, self.until_iter) / self.until_iter
        if self.type == 'linear':
            return self.gamma + (self.end - self.gamma) * progress
        return self.end + (self.gamma - self.end) * 0.5 * (1 + math.cos(math.pi * progress))

    def __repr__(self):
        return (f'{type(self).__name__}(type={self.type!r}, gamma={self.gamma}, end={self.end}, '
                f'until_iter={self.until_iter})')
