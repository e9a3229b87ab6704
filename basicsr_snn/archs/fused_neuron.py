"""Fused multi-step LIF / IF / PLIF / I-LIF neurons for the CPU: one compiled kernel per forward and per backward.

spikingjelly's CPU neuron runs its recurrence over T as a Python loop of small torch ops, about 8
per step forward and 12 backward. Each is its own parallel region, so on a CPU shared with other
work every op waits for the slowest thread. Here the same recurrence (hard reset to 0, input not
decayed: what :class:`~basicsr_snn.archs.spiking_blocks.NeuronSpec` builds) is compiled by
``torch.compile`` into one loop kernel for the forward and one for the backward, inside an
autograd function whose gradients are those of spikingjelly's surrogate (ATan or Sigmoid). The loops
see every input flattened to ``(T, N)``, so one compiled variant per T and neuron kind serves the
layers of every shape (and a machine compiles it once: inductor caches it on disk).

The multi-level I-LIF (:class:`~basicsr_snn.archs.ilif_neuron.ILIFNode`: counts, soft reset, a
straight-through gradient) has its own pair of loops, :class:`FusedILIFMultiStep`, used at any T.

The modules subclass spikingjelly's nodes: same parameters and state dict (checkpoints load either
way), same ``reset_net`` memory ``v``, seen by every hook that watches spikingjelly neurons. They use
the fused kernel only where it pays (:func:`uses_fused_kernel`) and spikingjelly's op elsewhere.

Backends (``network_g.neuron_backend``, or the environment variable ``BASICSR_SNN_NEURON_BACKEND``
which overrides it):

Traced, op-counted or wholly compiled networks (the energy analysis) always run spikingjelly's op.

* ``auto`` (default): fused on CPU tensors of at least :data:`FUSED_MIN_ELEMENTS` entries, if
  ``torch.compile`` works on this machine; spikingjelly's op on CUDA (its own kernels) and for
  small tensors, where the one-off compilation (tens of seconds, then cached on disk by inductor)
  would not pay;
* ``fused``: fused on CPU whatever the size;
* ``spikingjelly``: never fused.
"""
import logging
import math
import os

import torch
from spikingjelly.activation_based import neuron, surrogate
from torch.utils import _python_dispatch

NEURON_BACKENDS = ('auto', 'fused', 'spikingjelly')
BACKEND_ENV_VAR = 'BASICSR_SNN_NEURON_BACKEND'
#: below this many input entries per call the compile cost outweighs the gain (see bench_speed)
FUSED_MIN_ELEMENTS = 1 << 16

_LOGGER = logging.getLogger(__name__)
_compiled = {}
_compile_failure = []


def _charge(v, x, decay_kind: str, decay):
    """spikingjelly's charge with ``v_reset = 0``, ``decay_input = False``, in its order of operations."""
    if decay_kind == 'if':
        return v + x
    if decay_kind == 'lif':
        return v - v / decay + x  # decay: tau
    return v - v * decay + x  # decay: sigmoid(w), PLIF's 1 / tau


def _surrogate_gradient(u, surrogate_kind: str, alpha: float):
    if surrogate_kind == 'atan':
        z = u * (math.pi / 2 * alpha)
        return (alpha / 2) / (1 + z * z)
    s = torch.sigmoid(alpha * u)
    return (1 - s) * s * alpha


def _forward_loop(x_seq, v, threshold: float, decay_kind: str, decay):
    """Spikes, charged potentials ``h`` and the final membrane of ``x_seq`` ``(T, ...)`` from ``v``."""
    spikes, charged = [], []
    for t in range(x_seq.shape[0]):
        h = _charge(v, x_seq[t], decay_kind, decay)
        spike = (h >= threshold).to(x_seq.dtype)
        v = (1 - spike) * h
        spikes.append(spike)
        charged.append(h)
    return torch.stack(spikes), torch.stack(charged), v


def _backward_loop(grad_spikes, grad_v, charged, v0, threshold: float, decay_kind: str, decay, surrogate_kind: str,
                   alpha: float, detach_reset: bool):
    """Gradients of the input sequence, of the initial membrane and (PLIF) of ``decay`` per element, from
    those of the spikes and of the final membrane ``grad_v``."""
    carry = grad_v
    grad_decay = torch.zeros_like(charged[0])
    grads = []
    for t in range(charged.shape[0] - 1, -1, -1):
        h = charged[t]
        sg = _surrogate_gradient(h - threshold, surrogate_kind, alpha)
        keep = 1 - (h >= threshold).to(h.dtype)
        reset_grad = keep if detach_reset else keep - h * sg
        grad_h = grad_spikes[t] * sg + carry * reset_grad
        grads.append(grad_h)
        if decay_kind == 'if':
            carry = grad_h
        elif decay_kind == 'lif':
            carry = grad_h - grad_h / decay
        else:
            previous = v0 if t == 0 else (1 - (charged[t - 1] >= threshold).to(h.dtype)) * charged[t - 1]
            grad_decay = grad_decay - grad_h * previous
            carry = grad_h - grad_h * decay
    grads.reverse()
    return torch.stack(grads), carry, grad_decay


#: compiled variants kept per loop: one per T, neuron kind and settings; dynamo's
#: default of 8 is reached by a process that benchmarks several T, after which it would run uncompiled
RECOMPILE_LIMIT = 64


def _flat(tensor, steps=False):
    """``tensor`` as ``(N,)``, or ``(T, N)`` with ``steps``, and not a view: the loops are elementwise, so one
    compiled variant serves a layer of any shape (dynamo would guard on a view's base, and so recompile)."""
    return (tensor.reshape(tensor.shape[0], -1) if steps else tensor.reshape(-1)).detach()


def _run_compiled(name, *args):
    if name not in _compiled:
        # inductor's CPU build warns that no CUDA runtime exists: true and irrelevant here
        logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)
        _compiled[name] = torch.compile(_LOOPS[name], dynamic=True)
    with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
        return _compiled[name](*args)


def _ilif_forward_loop(x_seq, v, tau: float, threshold: float, levels: int):
    """I-LIF counts, charged potentials ``h`` and the final membrane (:mod:`~basicsr_snn.archs.ilif_neuron`)."""
    counts, charged = [], []
    for t in range(x_seq.shape[0]):
        h = v - v / tau + x_seq[t]
        count = (h / threshold).clamp(0, levels).round()
        v = h - count * threshold
        counts.append(count)
        charged.append(h)
    return torch.stack(counts), torch.stack(charged), v


def _ilif_backward_loop(grad_counts, grad_v, charged, tau: float, threshold: float, levels: int, detach_reset: bool):
    """Gradients of the input sequence and of the initial membrane: straight through inside ``[0, levels]``."""
    carry = grad_v
    grads = []
    for t in range(charged.shape[0] - 1, -1, -1):
        scaled = charged[t] / threshold
        inside = ((scaled >= 0) & (scaled <= levels)).to(charged.dtype)
        reset_grad = 1 if detach_reset else 1 - inside
        grad_h = grad_counts[t] * inside / threshold + carry * reset_grad
        grads.append(grad_h)
        carry = grad_h - grad_h / tau
    grads.reverse()
    return torch.stack(grads), carry


_LOOPS = {'forward': _forward_loop, 'backward': _backward_loop, 'ilif_forward': _ilif_forward_loop,
          'ilif_backward': _ilif_backward_loop}


class FusedILIFMultiStep(torch.autograd.Function):
    """``(x_seq, v0, tau, threshold, levels, detach_reset) -> (counts, final v)`` in the compiled loops."""

    @staticmethod
    def forward(ctx, x_seq, v0, tau, threshold, levels, detach_reset):
        counts, charged, v = _run_compiled('ilif_forward', _flat(x_seq, steps=True), _flat(v0), tau, threshold,
                                           levels)
        ctx.save_for_backward(charged)
        ctx.settings, ctx.shape = (tau, threshold, levels, detach_reset), x_seq.shape
        return counts.view(x_seq.shape), v.view(x_seq.shape[1:])

    @staticmethod
    def backward(ctx, grad_counts, grad_v):
        charged, = ctx.saved_tensors
        grad_x, grad_v0 = _run_compiled('ilif_backward', _flat(grad_counts, steps=True), _flat(grad_v), charged,
                                        *ctx.settings)
        return grad_x.view(ctx.shape), grad_v0.view(ctx.shape[1:]), None, None, None, None


class _FusedNeuron(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x_seq, v0, w, threshold, decay_kind, tau, surrogate_kind, alpha, detach_reset):
        decay = w.sigmoid() if decay_kind == 'plif' else tau
        v0 = _flat(v0)
        spikes, charged, v = _run_compiled('forward', _flat(x_seq, steps=True), v0, threshold, decay_kind, decay)
        ctx.save_for_backward(charged, v0, w)
        ctx.settings, ctx.shape = (threshold, decay_kind, tau, surrogate_kind, alpha, detach_reset), x_seq.shape
        return spikes.view(x_seq.shape), v.view(x_seq.shape[1:])

    @staticmethod
    def backward(ctx, grad_spikes, grad_v):
        charged, v0, w = ctx.saved_tensors
        threshold, decay_kind, tau, surrogate_kind, alpha, detach_reset = ctx.settings
        q = w.sigmoid() if decay_kind == 'plif' else None
        grad_x, grad_v0, grad_decay = _run_compiled(
            'backward', _flat(grad_spikes, steps=True), _flat(grad_v), charged, v0, threshold, decay_kind,
            tau if q is None else q, surrogate_kind, alpha, detach_reset)
        grad_w = (grad_decay.sum() * q * (1 - q)).reshape(w.shape) if q is not None else None
        return grad_x.view(ctx.shape), grad_v0.view(ctx.shape[1:]), grad_w, None, None, None, None, None, None


def _compiles() -> bool:
    """Whether ``torch.compile`` works here (a C++ compiler for inductor); checked once, on a tiny input, as
    the forward of the default multi-level neuron runs (T = 1, no gradients), which it compiles for later."""
    if not _compile_failure and 'checked' not in _compiled:
        try:
            with torch.no_grad():
                _run_compiled('ilif_forward', torch.zeros(1, 2), torch.zeros(2), 2., 1., 8)
            _compiled['checked'] = True
        except Exception as error:  # noqa: BLE001  (any compiler failure means: use spikingjelly's op)
            _compile_failure.append(error)
            _LOGGER.warning('torch.compile does not work here (%s: %s); spiking neurons use spikingjelly\'s op',
                            type(error).__name__, error)
    return not _compile_failure


def resolve_backend(backend: str) -> str:
    """The backend in force: ``$BASICSR_SNN_NEURON_BACKEND`` if set, else ``backend``; checked."""
    chosen = os.environ.get(BACKEND_ENV_VAR) or backend
    if chosen not in NEURON_BACKENDS:
        source = f'${BACKEND_ENV_VAR}' if os.environ.get(BACKEND_ENV_VAR) else 'neuron_backend'
        raise ValueError(f'{source} must be one of {NEURON_BACKENDS}, got {chosen!r}')
    return chosen


def _being_analysed() -> bool:
    """Traced (mmengine's MAC count), under a dispatch mode (spikingjelly's op counters) or compiled whole:
    those tools must see spikingjelly's plain ops."""
    return (torch.jit.is_tracing() or torch.compiler.is_compiling()
            or _python_dispatch._get_current_dispatch_mode() is not None)


def uses_fused_kernel(backend: str, x_seq: torch.Tensor) -> bool:
    """Whether a neuron with ``backend`` runs ``x_seq`` in the fused kernel (see the module docstring)."""
    if backend == 'spikingjelly' or x_seq.device.type != 'cpu' or x_seq.dtype != torch.float32:
        return False
    if _being_analysed():
        return False
    if backend == 'auto' and x_seq.numel() < FUSED_MIN_ELEMENTS:
        return False
    return _compiles()


class _FusedMultiStep:
    """Mixin: ``multi_step_forward`` through the fused kernel where :func:`uses_fused_kernel` says so.

    Args:
        neuron_backend (str): ``'auto'``, ``'fused'`` or ``'spikingjelly'``. Default: ``'auto'``.
        **kwargs: the spikingjelly node's arguments.
    """
    decay_kind = None

    def __init__(self, neuron_backend='auto', **kwargs):
        super().__init__(**kwargs)
        if self.v_reset != 0. or getattr(self, 'decay_input', False):
            raise ValueError('the fused neuron implements v_reset=0 and decay_input=False (what NeuronSpec builds), '
                             f'got v_reset={self.v_reset}, decay_input={getattr(self, "decay_input", False)}')
        if not isinstance(self.surrogate_function, (surrogate.ATan, surrogate.Sigmoid)):
            raise ValueError(f'the fused neuron supports the atan and sigmoid surrogates, got '
                             f'{type(self.surrogate_function).__name__}')
        self.neuron_backend = resolve_backend(neuron_backend)

    def multi_step_forward(self, x_seq, *args, **kwargs):
        if self.store_v_seq or args or kwargs or not uses_fused_kernel(self.neuron_backend, x_seq):
            return super().multi_step_forward(x_seq, *args, **kwargs)
        v0 = self.v if torch.is_tensor(self.v) and self.v.shape == x_seq.shape[1:] else torch.zeros_like(x_seq[0])
        w = self.w if self.decay_kind == 'plif' else x_seq.new_zeros(())
        tau = getattr(self, 'tau', 0.)
        surrogate_kind = 'atan' if isinstance(self.surrogate_function, surrogate.ATan) else 'sigmoid'
        spikes, self.v = _FusedNeuron.apply(x_seq.contiguous(), v0, w, float(self.v_threshold), self.decay_kind,
                                            float(tau), surrogate_kind, float(self.surrogate_function.alpha),
                                            bool(self.detach_reset))
        return spikes


class FusedLIFNode(_FusedMultiStep, neuron.LIFNode):
    """spikingjelly's ``LIFNode`` (``decay_input=False``, ``v_reset=0``) with the fused CPU kernel;
    ``neuron_backend`` and ``LIFNode``'s arguments."""
    decay_kind = 'lif'


class FusedIFNode(_FusedMultiStep, neuron.IFNode):
    """spikingjelly's ``IFNode`` (``v_reset=0``) with the fused CPU kernel; ``neuron_backend`` and ``IFNode``'s
    arguments."""
    decay_kind = 'if'


class FusedParametricLIFNode(_FusedMultiStep, neuron.ParametricLIFNode):
    """spikingjelly's ``ParametricLIFNode`` (``decay_input=False``, ``v_reset=0``) with the fused CPU kernel,
    which also gives the gradient of the learnable time constant; ``neuron_backend`` and
    ``ParametricLIFNode``'s arguments."""
    decay_kind = 'plif'
