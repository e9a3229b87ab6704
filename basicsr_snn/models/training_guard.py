"""What keeps a bad step from reaching the weights: non-finite or diverging losses and gradients.

``train.loss_guard`` (defaults in brackets)::

    loss_guard:
      max_skips: 3              # [3] bad steps in a row that are skipped before training stops
      divergence_ratio: 1.0e4   # [1e4] a loss above this x the lowest loss so far is a bad step; ~: off
    grad_clip_norm: ~           # [~] clip the gradient norm to this value before the step

A bad step (non-finite total loss, non-finite gradient norm, or a diverged loss) is skipped:
its gradients are dropped and the optimizer does not step. Every rank takes the same decision
(the flags are reduced over the process group), so no rank waits for another.

One decision costs one all-reduce and one host sync (:meth:`LossGuard.check`): the flags are
computed on the device, joined by the numbers the training session agrees on every iteration (the
stop signal, new unreadable files), reduced in one tensor and read once. The lowest loss stays on
the device; it is read only for a message.
"""
import math

import torch
import torch.distributed as dist
from basicsr.utils import get_root_logger

from basicsr_snn.utils.checks import check_int, check_keys, check_number

GUARD_KEYS = ('max_skips', 'divergence_ratio')
NON_FINITE_GRADIENT = 'the gradient norm is not finite'


class TrainingDiverged(RuntimeError):
    """Training stopped at a bad step that follows ``max_skips`` skipped ones in a row."""


class LossGuard:
    """Decides, every iteration and identically on every rank, whether the optimizer may step.

    Args:
        max_skips (int): Bad steps in a row skipped before :class:`TrainingDiverged` is raised.
        divergence_ratio (float | None): A total loss above ``divergence_ratio`` x the lowest
            accepted loss counts as diverged; None disables the test.
        option_key (str): Where the options come from, for errors.
    """

    def __init__(self, max_skips: int = 3, divergence_ratio: float | None = 1e4, option_key: str = 'train.loss_guard'):
        check_int(f'{option_key}.max_skips', max_skips, 0)
        check_number(f'{option_key}.divergence_ratio', divergence_ratio, above=1, allow_none=True)
        self.max_skips = max_skips
        self.divergence_ratio = divergence_ratio
        self.lowest_loss = math.inf  # a tensor on the device once a step is accepted
        self.skipped_in_a_row = 0

    @classmethod
    def from_options(cls, options: dict | None, option_key: str = 'train.loss_guard') -> 'LossGuard':
        return cls(**check_keys(option_key, dict(options or {}), GUARD_KEYS), option_key=option_key)

    def check(self, total_loss: torch.Tensor, grad_norm: torch.Tensor, host_values=()) -> tuple[str | None, list]:
        """Why the step of ``total_loss`` with gradient norm ``grad_norm`` must be skipped on every rank (None: it
        may be taken), and ``host_values`` (numbers) maxed over the ranks: one all-reduce, one host sync."""
        loss = total_loss.detach().float()
        finite = torch.isfinite(loss)
        diverged = (finite & (loss > self.divergence_ratio * self.lowest_loss) if self.divergence_ratio is not None
                    else torch.zeros_like(finite))
        flags = [~finite, diverged, ~torch.isfinite(grad_norm.detach())]
        # torch.full launches a fill with the number as argument: no blocking copy from the host
        values = torch.stack([flag.to(loss.device, torch.float32) for flag in flags]
                             + [torch.full((), float(value), device=loss.device) for value in host_values])
        agreed = _max_over_ranks(values)
        not_finite, diverged, bad_gradient = agreed[:3]
        if not_finite:
            problem = 'the loss is not finite'
        elif diverged:
            problem = (f'the loss diverged (above {self.divergence_ratio:g} x the lowest loss so far, '
                       f'{float(self.lowest_loss):.4g})')
        elif bad_gradient:
            problem = NON_FINITE_GRADIENT
        else:
            problem = None
        return problem, [int(value) if float(value).is_integer() else value for value in agreed[3:]]

    def accept(self, total_loss: torch.Tensor) -> None:
        """A step was taken: its loss may be the lowest so far (kept on the device, no sync)."""
        loss = total_loss.detach().float()
        self.lowest_loss = torch.minimum(self.lowest_loss, loss) if torch.is_tensor(self.lowest_loss) else loss
        self.skipped_in_a_row = 0

    def state_dict(self) -> dict:
        """What a checkpoint keeps, so that a resumed run judges divergence as the uninterrupted one does (no
        checkpoint is written while steps are skipped: the count of skips in a row is 0 in every one)."""
        return {'lowest_loss': self.lowest_loss}

    def load_state_dict(self, state: dict) -> None:
        self.lowest_loss = state['lowest_loss']

    def skip(self, current_iter: int, reason: str, loss_dict: dict, checkpoint_hint: str) -> None:
        """Count a bad step; skip it with a warning, or raise :class:`TrainingDiverged` if it is the
        ``max_skips + 1``-th in a row.

        ``checkpoint_hint`` says where the last good checkpoint is, for the error.
        """
        self.skipped_in_a_row += 1
        values = {key: float(value.detach() if torch.is_tensor(value) else value) for key, value in loss_dict.items()}
        terms = ', '.join(f'{key}: {value:.4g}' for key, value in values.items())
        bad_terms = [key for key, value in values.items() if not math.isfinite(value)]
        where = f'iteration {current_iter}: {reason} ({terms}' + (f'; not finite: {bad_terms}' if bad_terms else '')
        if self.skipped_in_a_row > self.max_skips:
            raise TrainingDiverged(f'Training stopped at {where}), {self.skipped_in_a_row} bad steps in a row '
                                   f'(train.loss_guard.max_skips: {self.max_skips}). Lower train.optim_g.lr or set '
                                   f'train.grad_clip_norm. {checkpoint_hint}')
        get_root_logger().warning(f'Skipped the step of {where}); {self.skipped_in_a_row} in a row '
                                  f'(train.loss_guard.max_skips: {self.max_skips}).')


def _max_over_ranks(values: torch.Tensor) -> list:
    """``values`` (a 1-D tensor) maxed element-wise over every rank of the process group, read on the host."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values.tolist()


def max_over_ranks(values: list, device) -> list:
    """The element-wise maximum of ``values`` (numbers) over every rank of the process group (``values``
    without one): one all-reduce, which every rank must call at the same point."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    agreed = _max_over_ranks(torch.tensor([float(value) for value in values], device=device))
    return [int(value) if float(value).is_integer() else value for value in agreed]


def check_grad_clip_norm(value, option_key: str = 'train.grad_clip_norm') -> float | None:
    return check_number(option_key, value, above=0, allow_none=True)
