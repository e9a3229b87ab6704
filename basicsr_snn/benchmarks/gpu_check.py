"""The checks behind ``scripts/check_gpu.py``: what the CPU tests show, checked on a CUDA device.

* :func:`neuron_check`: a spiking neuron on the device (spikingjelly's CUDA kernels there) against
  the same neuron on the CPU (spikingjelly's torch reference), on the same inputs: the spikes must
  be equal and the gradients (of the input and of learnable parameters) close. The inputs are
  multiples of 1/64 (:func:`dyadic_inputs`), so the membrane arithmetic is exact in float32 on both
  sides and an unequal spike is a kernel's fault, not rounding's.
* :func:`training_step_check`: a few training steps of a network on one fixed batch in fp32, bf16
  or fp16 (:class:`~basicsr_snn.models.mixed_precision.MixedPrecision`, as ``train.amp`` runs
  them): every loss finite, the last under the first.
* :func:`torchrun_distillation_check`: a few iterations of the demo's distillation under
  ``torchrun`` with 2 processes (NCCL on GPUs, gloo on the CPU).

Every check returns a JSON-ready row with ``passed``; the comparison helpers work on any device,
so the CPU tests run them too.
"""
import copy
import importlib
import inspect
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml
from spikingjelly.activation_based import functional

from basicsr_snn.models.mixed_precision import MixedPrecision

REPO_ROOT = Path(__file__).resolve().parents[2]
GRAD_RTOL = 1e-4
GRAD_ATOL = 1e-6
DTYPES = ('fp32', 'bf16', 'fp16')
#: the multi-level neuron, where this checkout has it: (module, class)
ILIF = ('basicsr_snn.archs.ilif_neuron', 'ILIFNode')


def dyadic_inputs(shape: tuple[int, ...], seed: int = 0, spread: float = 0.5) -> torch.Tensor:
    """Random float32 values that are multiples of 1/64 (about ``spread`` apart), exact on every device."""
    generator = torch.Generator().manual_seed(seed)
    return torch.round(torch.randn(shape, generator=generator) * spread * 64) / 64


def compare_spikes(reference: torch.Tensor, candidate: torch.Tensor) -> dict:
    """Spike tensors must be equal: ``{'passed', 'mismatches', 'elements'}``."""
    candidate = candidate.detach().to('cpu', reference.dtype)
    if candidate.shape != reference.shape:
        return dict(passed=False, mismatches=None, elements=reference.numel(),
                    problem=f'shape {tuple(candidate.shape)} against {tuple(reference.shape)}')
    mismatches = int((candidate != reference.detach().cpu()).sum())
    return dict(passed=mismatches == 0, mismatches=mismatches, elements=reference.numel())


def compare_close(reference: torch.Tensor, candidate: torch.Tensor, rtol: float = GRAD_RTOL,
                  atol: float = GRAD_ATOL) -> dict:
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


def _run_neuron(node: torch.nn.Module, inputs: torch.Tensor, grad_weights: torch.Tensor, device) -> tuple:
    """Spikes, input gradient and parameter gradients of ``node`` on ``device`` (multi-step input)."""
    node = node.to(device)
    # a leaf of its own on every run: ``inputs.to('cpu')`` is ``inputs`` itself, whose gradient two runs would share
    x = inputs.detach().to(device, copy=True).requires_grad_(True)
    functional.reset_net(node)
    node.zero_grad(set_to_none=True)
    spikes = node(x)
    (spikes * grad_weights.to(device)).sum().backward()
    functional.reset_net(node)
    return spikes.detach(), x.grad, {name: p.grad for name, p in node.named_parameters() if p.grad is not None}


def neuron_check(name: str, build: Callable[[], torch.nn.Module], device, reference_device='cpu',
                 shape: tuple[int, ...] = (4, 2, 4, 8, 8), seed: int = 0,
                 build_candidate: Callable[[], torch.nn.Module] | None = None) -> dict:
    """``build()``'s neuron on ``device`` against the same neuron on ``reference_device``, same inputs and weights.

    Args:
        name: The row's label.
        build: Makes a multi-step neuron (``step_mode='m'``) on the CPU.
        device: Where the neuron under test runs (``'cuda'``).
        reference_device: Where the reference runs: the CPU, whose neurons are spikingjelly's torch ops.
        shape: ``(T, B, C, H, W)`` of the input.
        build_candidate: Another implementation to test (e.g. the fused CPU kernel), given the
            reference's state dict; default: a copy of the reference.
    """
    reference = build()
    candidate = copy.deepcopy(reference) if build_candidate is None else build_candidate()
    candidate.load_state_dict(reference.state_dict())
    inputs = dyadic_inputs(shape, seed)
    grad_weights = dyadic_inputs(shape, seed + 1)
    ref_spikes, ref_grad, ref_params = _run_neuron(reference, inputs, grad_weights, torch.device(reference_device))
    spikes, grad, params = _run_neuron(candidate, inputs, grad_weights, torch.device(device))
    row = dict(check='neuron', neuron=name, device=str(device), reference=str(reference_device),
               spikes=compare_spikes(ref_spikes, spikes), grad_input=compare_close(ref_grad, grad),
               grad_params={key: compare_close(value, params[key]) if key in params else dict(passed=False)
                            for key, value in ref_params.items()},
               spike_rate=float(ref_spikes.float().mean()))
    row['passed'] = (row['spikes']['passed'] and row['grad_input']['passed']
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
                        steps: int = 5, size: int = 32, batch: int = 2, lr: float = 1e-3, seed: int = 0) -> dict:
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
    return dict(check='training', network=label, dtype=dtype, device=str(device), losses=losses,
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


def write_gray_images(folder: Path, count: int = 4, size: int = 48) -> Path:
    """``count`` smooth gray PNGs (a clean training set for the noise dataset)."""
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size]
    for index in range(count):
        image = 127 + 100 * np.sin((xx + 5 * index) / 6.0) * np.cos(yy / 7.0)
        cv2.imwrite(str(folder / f'{index:03d}.png'), image.astype(np.uint8))
    return folder


def torchrun_options(work_dir: Path, backend: str, iterations: int = 4) -> Path:
    """The demo's distillation (``options/demo/distill_demo.yml``) cut to ``iterations`` on a tiny set,
    with an untrained teacher, on CUDA for NCCL and on the CPU for gloo; returns the option file."""
    options = yaml.safe_load((REPO_ROOT / 'options' / 'demo' / 'distill_demo.yml').read_text())
    options.update(name='check_gpu_torchrun', num_gpu=1 if backend == 'nccl' else 0,
                   dist_params={'backend': backend})
    train_set = options['datasets']['train']
    train_set.update(dataroot_gt=str(write_gray_images(work_dir / 'data')), gt_size=32, batch_size_per_gpu=2,
                     num_worker_per_gpu=0, dataset_enlarge_ratio=1)
    options['datasets'] = {'train': train_set}
    options.pop('val')
    options['path'].update(pretrain_network_t=None)
    options['train'].update(total_iter=iterations)
    options['train']['scheduler'].update(periods=[iterations])
    options['train']['distill']['allow_random_teacher'] = True
    options['logger'] = {'print_freq': 1, 'save_checkpoint_freq': iterations, 'use_tb_logger': False}
    path = work_dir / 'torchrun.yml'
    path.write_text(yaml.safe_dump(options, sort_keys=False))
    return path


def torchrun_distillation_check(work_dir: Path, backend: str = 'nccl', iterations: int = 4,
                                timeout: int = 600) -> dict:
    """``torchrun --nproc_per_node=2`` of :func:`torchrun_options` in ``work_dir``: exits 0, every logged
    loss finite, the final checkpoint written."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '-m',
               'basicsr_snn.train', '-opt', str(torchrun_options(work_dir, backend, iterations)), '--launcher',
               'pytorch']
    environment = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    started = time.perf_counter()
    result = subprocess.run(command, cwd=work_dir, env=environment, capture_output=True, text=True, timeout=timeout)
    experiment = work_dir / 'experiments' / 'check_gpu_torchrun'
    log = '\n'.join(path.read_text() for path in sorted(experiment.glob('train_*.log')))
    losses = [float(value) for value in re.findall(r'l_pix: ([-+.\deEnaif]+)', log)]
    checkpoint = (experiment / 'models' / 'net_g_latest.pth').is_file()
    row = dict(check='torchrun', backend=backend, processes=2, iterations=iterations, returncode=result.returncode,
               logged_losses=len(losses), losses_finite=bool(losses) and all(map(math.isfinite, losses)),
               checkpoint=checkpoint, seconds=time.perf_counter() - started)
    row['passed'] = result.returncode == 0 and row['losses_finite'] and checkpoint
    if not row['passed']:
        row['output_tail'] = (result.stdout + result.stderr)[-3000:]
    return row
