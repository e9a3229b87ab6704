"""One optimizer step that a bad batch cannot spoil: mixed precision, gradient clipping and the loss guard behind
one wrapper, with the interface of mmengine's ``OptimWrapper`` (``optim_context``, ``update_params``).

mmengine's own wrappers do not fit: ``AmpOptimWrapper`` refuses a machine without an accelerator (bf16 autocast
on the CPU is part of this project), ``OptimWrapper`` reads the clipped gradient norm back to the host (a second
host sync per step, see :mod:`.training_guard`), and neither can skip a step on a decision agreed over the ranks.
"""
import contextlib
from dataclasses import dataclass, field

import torch
from basicsr.utils import get_root_logger

from basicsr_snn.models.mixed_precision import MixedPrecision
from basicsr_snn.models.training_guard import NON_FINITE_GRADIENT, LossGuard


@dataclass
class StepOutcome:
    """What :meth:`GuardedOptimizer.update_params` did: ``taken`` (the optimizer stepped), ``cancelled`` (by the
    caller's agreed flags) and ``agreed`` (the caller's numbers maxed over the ranks)."""
    taken: bool
    cancelled: bool = False
    agreed: list = field(default_factory=list)


class GuardedOptimizer:
    """Steps ``optimizer`` for one loss of ``network``, or skips the step identically on every rank.

    A step is::

        with guarded.optim_context():     # gradients cleared, running statistics kept, autocast
            loss = <forwards and losses>
        guarded.update_params(loss, terms, iteration)

    ``update_params`` back-propagates (scaled under fp16), clips the gradient norm to ``clip_norm`` if set,
    and takes one decision with one host sync (:meth:`LossGuard.check`). A skipped step leaves nothing behind:
    no optimizer step, no gradients, and the running statistics (BN) of ``network`` as they were.

    Args:
        optimizer (torch.optim.Optimizer): The optimizer BasicSR's schedulers drive.
        network (nn.Module): The bare network whose running statistics a skipped step restores.
        amp (MixedPrecision): ``train.amp``.
        guard (LossGuard): ``train.loss_guard``.
        clip_norm (float | None): ``train.grad_clip_norm``.
        checkpoint_hint: Returns where a diverged run continues from, for the guard's error.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, network: torch.nn.Module, amp: MixedPrecision,
                 guard: LossGuard, clip_norm: float | None, checkpoint_hint=lambda: ''):
        self.optimizer, self.network, self.amp, self.guard = optimizer, network, amp, guard
        self.clip_norm, self.checkpoint_hint = clip_norm, checkpoint_hint
        self._statistics = []

    @contextlib.contextmanager
    def optim_context(self):
        """The forwards and losses of one step."""
        self.optimizer.zero_grad()
        self._statistics = [(buffer, buffer.clone()) for buffer in running_statistics(self.network).values()]
        with self.amp.autocast():
            yield

    def update_params(self, loss: torch.Tensor, terms: dict, iteration: int, host_values=(),
                      cancelled_by=None) -> StepOutcome:
        """Back-propagate ``loss`` and step, or skip a bad step (warned, counted by the guard with ``terms``, the
        logged loss terms). ``host_values`` (numbers) are agreed over the ranks in the same reduction; with
        ``cancelled_by(agreed)`` true the step is skipped without counting as bad."""
        # back-propagated even when the loss is not finite (its step is skipped), so that one check decides
        self.amp.backward(loss, self.optimizer)
        problem, agreed = self.guard.check(loss, self.gradient_norm(), host_values)
        cancelled = cancelled_by is not None and bool(cancelled_by(agreed))
        if problem is None and not cancelled:
            self.amp.step(self.optimizer)
            self.guard.accept(loss)
            return StepOutcome(True, False, agreed)
        overflow = problem == NON_FINITE_GRADIENT and self.amp.overflow_is_the_scales() and not cancelled
        scale = self.amp.scale()
        self.amp.skip(overflow)
        self.optimizer.zero_grad()
        with torch.no_grad():
            for buffer, saved in self._statistics:
                buffer.copy_(saved)
        if overflow:  # GradScaler's routine back-off, not a bad step
            get_root_logger().info(f'Iteration {iteration}: fp16 gradients overflowed; step skipped, loss scale '
                                   f'{scale:g} -> {self.amp.scale():g} (train.amp).')
        elif not cancelled:
            self.guard.skip(iteration, problem, terms, self.checkpoint_hint())
        return StepOutcome(False, cancelled, agreed)

    def gradient_norm(self) -> torch.Tensor:
        """The norm of all gradients (a tensor, not read to the host); they are clipped to ``clip_norm`` if set."""
        parameters = [p for group in self.optimizer.param_groups for p in group['params'] if p.grad is not None]
        if self.clip_norm is None:
            return torch.nn.utils.get_total_norm([p.grad for p in parameters])
        return torch.nn.utils.clip_grad_norm_(parameters, self.clip_norm)


def running_statistics(network: torch.nn.Module) -> dict:
    """{name: buffer} of the buffers a training forward updates: those of the modules in training mode that
    track running statistics (BatchNorm, InstanceNorm with ``track_running_stats``, spikingjelly's BN)."""
    return {f'{module_name}.{name}' if module_name else name: buffer
            for module_name, module in network.named_modules()
            if module.training and getattr(module, 'track_running_stats', False)
            for name, buffer in module.named_buffers(recurse=False)}
