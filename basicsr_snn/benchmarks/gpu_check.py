"""The checks behind ``scripts/check_gpu.py``: what the CPU tests show, checked on a CUDA device.

* :func:`neuron_check`: a spiking neuron on the device (spikingjelly's CUDA or Triton kernels there)
  fed fp32, bf16 or fp16 inputs at T = 1 or 4, against the same neuron on the CPU (spikingjelly's
  torch reference) in float32, on the same inputs: the spikes must be equal (up to
  :data:`SPIKE_MISMATCH_RATE` in half precision) and the gradients (of the input and of learnable
  parameters) close (:data:`GRAD_TOLERANCE`). The inputs are multiples of 1/64
  (:func:`dyadic_inputs`), exact in every dtype, so an unequal spike in float32 is a kernel's fault,
  not rounding's. The row names the kernel spikingjelly chose (:func:`chosen_kernel`).
* :func:`training_step_check`: a few training steps of a network on one fixed batch in fp32, bf16
  or fp16 (:class:`~basicsr_snn.models.mixed_precision.MixedPrecision`, as ``train.amp`` runs
  them), at a size that is no power of two (cuFFT's fp16 takes powers of two only): every loss
  finite, the last under the first.
* The runs through the entry point (training, ``torchrun``, stop and resume) are in
  :mod:`basicsr_snn.benchmarks.entry_point_checks`.

Every check returns a JSON-ready row with ``passed``; the checks take the device as an argument,
so the CPU tests run them too.
"""
import copy
import importlib
import inspect
import math
import time
from collections.abc import Callable

import torch
from spikingjelly.activation_based import functional

from basicsr_snn.models.mixed_precision import MixedPrecision

DTYPES = ('fp32', 'bf16', 'fp16')
TORCH_DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
#: (rtol, atol) of a gradient against the float32 CPU reference, per input dtype
GRAD_TOLERANCE = {'fp32': (1e-4, 1e-6), 'bf16': (5e-2, 1e-2), 'fp16': (1e-2, 2e-3)}
#: the fraction of spikes that may differ from the float32 reference, per input dtype (a membrane kept in
#: half precision rounds differently near the threshold)
SPIKE_MISMATCH_RATE = {'fp32': 0.0, 'bf16': 0.02, 'fp16': 0.01}
TIME_STEPS = (1, 4)
#: size of the training checks' batch: no power of two, a multiple of 4 (padded to 40 by the UNets)
TRAINING_SIZE = 36
#: the multi-level neuron, where this checkout has it: (module, class)
ILIF = ('basicsr_snn.archs.ilif_neuron', 'ILIFNode')


def dyadic_inputs(shape: tuple[int, ...], seed: int = 0, spread: float = 0.5) -> torch.Tensor:
    """Random float32 values that are multiples of 1/64 (about ``spread`` apart), exact on every device."""
    generator = torch.Generator().manual_seed(seed)
    return torch.round(torch.randn(shape, generator=generator) * spread * 64) / 64


def compare_spikes(reference: torch.Tensor, candidate: torch.Tensor, mismatch_rate: float = 0.0) -> dict:
    """Spike tensors must be equal, but for a fraction ``mismatch_rate``: ``{'passed', 'mismatches', 'elements'}``."""
    candidate = candidate.detach().to('cpu', reference.dtype)
    if candidate.shape != reference.shape:
        return dict(passed=False, mismatches=None, elements=reference.numel(),
                    problem=f'shape {tuple(candidate.shape)} against {tuple(reference.shape)}')
    mismatches = int((candidate != reference.detach().cpu()).sum())
    return dict(passed=mismatches <= mismatch_rate * reference.numel(), mismatches=mismatches,
                elements=reference.numel())


def compare_close(reference: torch.Tensor, candidate: torch.Tensor, rtol: float = GRAD_TOLERANCE['fp32'][0],
                  atol: float = GRAD_TOLERANCE['fp32'][1]) -> dict:
    """Tensors (gradients) must agree within ``atol + rtol * |reference|``: ``{'passed', 'max_abs_diff'}``."""
    reference = reference.detach().cpu().double()
    candidate = candidate.detach().to('cpu', torch.float64)
    if candidate.shape != reference.shape:
        return dict(passed=False, max_abs_diff=None,
                    problem=f'shape {tuple(candidate.shape)} against {tuple(reference.shape)}')
    finite = bool(torch.isfinite(candidate).all())
    difference = (candidate - reference).abs()
    return dict(passed=finite and bool((difference <= atol + rtol * reference.abs()).all()),
                max_abs_diff=float(difference.max()) if finite else math.inf)


def _run_neuron(node: torch.nn.Module, inputs: torch.Tensor, grad_weights: torch.Tensor, device,
                dtype: torch.dtype = torch.float32) -> tuple:
    """Spikes, input gradient and parameter gradients of ``node`` on ``device`` fed ``inputs`` in ``dtype``."""
    node = node.to(device)
    # a leaf of its own on every run: ``inputs.to('cpu')`` is ``inputs`` itself, whose gradient two runs would share
    x = inputs.detach().to(device, dtype, copy=True).requires_grad_(True)
    functional.reset_net(node)
    node.zero_grad(set_to_none=True)
    spikes = node(x)
    (spikes * grad_weights.to(device, spikes.dtype)).sum().backward()
    functional.reset_net(node)
    return spikes.detach(), x.grad, {name: p.grad for name, p in node.named_parameters() if p.grad is not None}


def chosen_kernel(name: str, device) -> str:
    """The implementation spikingjelly binds for neuron ``name`` on ``device`` (``cuda``, ``triton`` or
    ``torch-reference``), with the candidates it found unavailable."""
    from spikingjelly.activation_based.functional import neuron_implementation
    try:
        chosen = neuron_implementation(name, torch.device(device))
    except (ValueError, RuntimeError) as error:
        return f'unknown ({error})'
    unavailable = '; '.join(f'{kind}: {why}' for kind, why in chosen['unavailable'].items())
    return chosen['implementation'] + (f' (unavailable: {unavailable})' if unavailable else '')


def neuron_check(name: str, build: Callable[[], torch.nn.Module], device, reference_device='cpu',
                 shape: tuple[int, ...] = (4, 2, 4, 8, 8), seed: int = 0,
                 build_candidate: Callable[[], torch.nn.Module] | None = None, dtype: str = 'fp32') -> dict:
    """``build()``'s neuron on ``device`` fed ``dtype`` inputs against the same neuron on ``reference_device`` in
    float32, same inputs and weights.

    Args:
        name: The row's label, spikingjelly's name of the neuron (``lif``, ``plif``, ``if``, ``ilif``).
        build: Makes a multi-step neuron (``step_mode='m'``) on the CPU.
        device: Where the neuron under test runs (``'cuda'``).
        reference_device: Where the reference runs: the CPU, whose neurons are spikingjelly's torch ops.
        shape: ``(T, B, C, H, W)`` of the input.
        build_candidate: Another implementation to test (e.g. the fused CPU kernel), given the
            reference's state dict; default: a copy of the reference.
        dtype: ``fp32``, ``bf16`` or ``fp16``: the inputs of the neuron under test.
    """
    reference = build()
    candidate = copy.deepcopy(reference) if build_candidate is None else build_candidate()
    candidate.load_state_dict(reference.state_dict())
    inputs = dyadic_inputs(shape, seed)
    grad_weights = dyadic_inputs(shape, seed + 1)
    ref_spikes, ref_grad, ref_params = _run_neuron(reference, inputs, grad_weights, torch.device(reference_device))
    spikes, grad, params = _run_neuron(candidate, inputs, grad_weights, torch.device(device), TORCH_DTYPES[dtype])
    rtol, atol = GRAD_TOLERANCE[dtype]
    row = dict(check='neuron', neuron=name, dtype=dtype, T=shape[0], device=str(device),
               reference=str(reference_device), kernel=chosen_kernel(name, device),
               output_dtype=str(spikes.dtype).removeprefix('torch.'),
               spikes=compare_spikes(ref_spikes, spikes, SPIKE_MISMATCH_RATE[dtype]),
               grad_input=compare_close(ref_grad, grad, rtol, atol) if grad is not None else dict(
                   passed=False, max_abs_diff=None, problem='no input gradient'),
               grad_params={key: compare_close(value, params[key], rtol, atol) if key in params else dict(passed=False)
                            for key, value in ref_params.items()},
               spike_rate=float(ref_spikes.float().mean()))
    row['passed'] = (row['spikes']['passed'] and row['grad_input']['passed'] and spikes.dtype == TORCH_DTYPES[dtype]
                     and all(result['passed'] for result in row['grad_params'].values()))
    return row


def neuron_builders() -> dict[str, Callable[[], torch.nn.Module] | str]:
    """{name: builder} of SpikerIR's neurons as its blocks build them (spikingjelly's op), and the
    multi-level neuron where it exists; a string says why a row is skipped."""
    from basicsr_snn.archs.spiking_blocks import NeuronSpec
    builders = {name: (lambda name=name: NeuronSpec(neuron=name, backend='spikingjelly').build())
                for name in ('lif', 'plif', 'if')}
    module, cls = ILIF
    try:
        ilif = getattr(importlib.import_module(module), cls)
        builders['ilif'] = lambda: ilif(step_mode='m')
    except (ImportError, AttributeError):
        builders['ilif'] = f'skipped: {module}.{cls} is not in this checkout'
    return builders


def training_step_check(label: str, build: Callable[[], torch.nn.Module], in_ch: int, device, dtype: str,
                        steps: int = 5, size: int = TRAINING_SIZE, batch: int = 2, lr: float = 1e-3,
                        seed: int = 0) -> dict:
    """``steps`` Adam steps of ``build()`` on one fixed denoising batch under ``dtype`` (fp32 | bf16 | fp16).

    Passes when every loss and gradient is finite and the last loss is under the first. A step whose fp16
    gradients overflow is skipped by GradScaler (counted in ``overflow_steps``, not a failure) as in training.
    """
    if dtype not in DTYPES:
        raise ValueError(f'dtype must be one of {DTYPES}, got {dtype!r}')
    device = torch.device(device)
    torch.manual_seed(seed)
    network = build().to(device).train()
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    amp = MixedPrecision(None if dtype == 'fp32' else dtype, device, option_key='dtype')
    generator = torch.Generator().manual_seed(seed)
    clean = torch.rand(batch, in_ch, size, size, generator=generator)
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=generator)).to(device)
    clean = clean.to(device)
    losses, overflow_steps, bad_gradient_steps = [], 0, 0
    started = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        with amp.autocast():
            output = network(noisy)
        loss = torch.nn.functional.l1_loss(output.float(), clean)
        losses.append(float(loss.detach()))
        amp.backward(loss, optimizer)
        gradients = [p.grad for p in network.parameters() if p.grad is not None]
        if all(bool(torch.isfinite(g).all()) for g in gradients):
            amp.step(optimizer)
        elif amp.overflow_is_the_scales():
            overflow_steps += 1
            amp.skip(overflow=True)
        else:
            bad_gradient_steps += 1
            amp.skip(overflow=True)
        functional.reset_net(network)
    finite = all(math.isfinite(value) for value in losses) and not bad_gradient_steps
    falling = finite and losses[-1] < losses[0]
    return dict(check='training', network=label, dtype=dtype, device=str(device), size=size, losses=losses,
                overflow_steps=overflow_steps, bad_gradient_steps=bad_gradient_steps, finite=finite, falling=falling,
                passed=falling, seconds=time.perf_counter() - started)


def training_networks() -> list[tuple[str, Callable[[], torch.nn.Module], int]]:
    """(label, builder, input channels) of every SpikerIR preset and of every registered teacher."""
    from basicsr.utils.registry import ARCH_REGISTRY

    from basicsr_snn.archs.spikerir_arch import SPIKERIR_PRESETS
    networks = [(f'SpikerIR {preset}', lambda options=options: ARCH_REGISTRY.get('SpikerIR')(in_ch=1, out_ch=1,
                                                                                             **options), 1)
                for preset, options in SPIKERIR_PRESETS.items()]
    networks.append(('Restormer (paper)', lambda: ARCH_REGISTRY.get('Restormer')(inp_channels=1, out_channels=1), 1))
    for name in ('PromptIR', 'AdaIR'):
        if name in ARCH_REGISTRY:
            arch = ARCH_REGISTRY.get(name)
            parameters = inspect.signature(arch.__init__).parameters
            channels = parameters['inp_channels'].default if 'inp_channels' in parameters else 3
            networks.append((f'{name} (defaults)', arch, channels))
    return networks
