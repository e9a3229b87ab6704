"""Mixed precision for training (``train.amp``) and for validation and testing (``val.amp``).

``train.amp`` / ``val.amp`` (default ``~``: off, everything in float32)::

    train:
      amp: {dtype: bf16}   # bf16 | fp16: the forwards (student, teacher, adapters, losses) under torch.autocast
    val:
      amp: {dtype: bf16}   # validation and test forwards under torch.autocast; outputs back in float32

``bf16`` on a CUDA GPU without bf16 arithmetic (before Ampere) is refused at start-up. The weights,
the optimizer state and the checkpoints stay float32: autocast only runs the ops in half precision.
``fp16`` scales the loss with a :class:`torch.amp.GradScaler`, whose gradients are
unscaled before the gradient norm is taken (so ``train.grad_clip_norm`` and the loss guard see true
gradients). A step whose fp16 gradients overflow is GradScaler's to skip: it lowers the scale and
the loss guard does not count the step as a bad one, as long as the scale is at least
:data:`MIN_OVERFLOW_SCALE`; below it, an overflow is no longer the scale's fault and the loss guard
counts it like any non-finite gradient. The scale is not checkpointed: a resumed fp16 run starts
again at GradScaler's initial scale and skips the few steps it takes to back off.
"""
import contextlib

import torch

from basicsr_snn.utils.checks import check_choice, check_keys

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
AMP_KEYS = ('dtype', )
#: below this loss scale a gradient overflow is counted by the loss guard (GradScaler starts at 2**16)
MIN_OVERFLOW_SCALE = 1.0


class MixedPrecision:
    """Autocast (and, for fp16 training, loss scaling) of one model's forwards, from ``train.amp`` or ``val.amp``.

    A training step is ``with amp.autocast(): <forwards and losses>``, then :meth:`backward`, the
    gradient checks, and :meth:`step` or :meth:`skip`.

    Args:
        dtype (str | None): ``'bf16'``, ``'fp16'`` or None (off: float32, every method a plain no-op).
        device (torch.device): Where the networks run; autocast's device type comes from it.
        option_key (str): The option read, for errors (``train.amp``).
        training (bool): Scale the loss (fp16 only). False for validation and testing.
    """

    def __init__(self, dtype: str | None, device: torch.device, option_key: str = 'train.amp', training: bool = True):
        if dtype is not None:
            check_choice(f'{option_key}.dtype', dtype, tuple(AMP_DTYPES))
        self.dtype = dtype
        self.device_type = torch.device(device).type
        without_bf16 = self.device_type == 'cuda' and not torch.cuda.is_bf16_supported(including_emulation=False)
        if dtype == 'bf16' and without_bf16:
            # before Ampere, autocast would fail at the first forward, or emulate bf16 slowly
            raise ValueError(f'{option_key}.dtype: bf16 needs a GPU with bf16 arithmetic (Ampere or newer), which '
                             f'this machine has not; use fp16 (or {option_key}: ~ for float32)')
        self.scaler = torch.amp.GradScaler(self.device_type) if dtype == 'fp16' and training else None
        self._unscaled = False

    @classmethod
    def from_options(cls, options: dict | None, device: torch.device, option_key: str,
                     training: bool = True) -> 'MixedPrecision':
        """``options`` is the ``amp`` mapping (``{dtype: bf16}``) or None (off)."""
        if options is None:
            return cls(None, device, option_key, training)
        check_keys(option_key, options, AMP_KEYS)
        if 'dtype' not in options:
            raise ValueError(f'{option_key}.dtype is missing: give one of {tuple(AMP_DTYPES)} (or {option_key}: ~ '
                             'for float32)')
        return cls(options['dtype'], device, option_key, training)

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    def autocast(self):
        """The context of the forwards: ``torch.autocast`` in the chosen dtype, or nothing when off."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=AMP_DTYPES[self.dtype])

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Back-propagate ``loss`` (scaled with fp16) and leave true-scale gradients in ``optimizer``'s
        parameters, ready to be measured or clipped."""
        if self.scaler is None:
            loss.backward()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)
        self._unscaled = True

    def overflow_is_the_scales(self) -> bool:
        """True when non-finite gradients are GradScaler's business: fp16 at a scale that can still back off."""
        return self.scaler is not None and self.scaler.get_scale() >= MIN_OVERFLOW_SCALE

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer step of gradients that were checked finite (and GradScaler's scale update).

        ``optimizer.step()`` itself, not ``GradScaler.step``: the caller has checked the gradients finite
        already, and GradScaler would read its own overflow flags back to the host (a second sync).
        """
        optimizer.step()
        if self.scaler is not None:
            self.scaler.update()
            self._unscaled = False

    def skip(self, overflow: bool = False) -> None:
        """No step this time. ``overflow``: the gradients overflowed at this loss scale, which GradScaler lowers;
        otherwise (a bad loss) the scale stays."""
        if self._unscaled:
            self.scaler.update(None if overflow else self.scaler.get_scale())
            self._unscaled = False

    def scale(self) -> float | None:
        """The current loss scale (fp16 training), else None."""
        return self.scaler.get_scale() if self.scaler is not None else None

    def __repr__(self):
        return f'MixedPrecision({self.dtype or "off"}, {self.device_type})'
