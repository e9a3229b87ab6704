"""Speed and memory measurements behind ``scripts/bench_speed.py`` (see its help for the figures).

:func:`run` times training steps and single-image inference of every SpikerIR preset at
T = 1, 2, 4, 8 (binary LIF neurons) and with the multi-level neuron (:data:`MULTI_LEVEL`), and of
each preset's ReLU twin, then whole training iterations of the demo's ``SNNModel`` and
``DistillSNNModel``, then the forward of each teacher (Restormer, PromptIR, AdaIR);
:func:`run_under_load` times the small and base students
(both neuron backends) and their twins on a quiet CPU and beside busy processes, at one thread
and at every core; the ``format_*`` helpers print the rows.
"""
import contextlib
import ctypes
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TIME_STEPS = (1, 2, 4, 8)
#: the multi-level student every preset is also timed with
MULTI_LEVEL = dict(neuron='ilif', T=1, spike_levels=4)
FULL = dict(batch=8, size=64, infer_size=256, warmup=1, steps=3, infer_repeats=2)
QUICK = dict(batch=2, size=8, infer_size=8, warmup=1, steps=2, infer_repeats=1)


class PeakMemory:
    """Peak memory (MB) used inside a ``with`` block above the memory in use when it started."""

    def __init__(self, device):
        self.device = device
        self.peak_mb = None

    @staticmethod
    def _status_kb(field):
        with open('/proc/self/status', encoding='ascii') as status:
            for line in status:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
        raise KeyError(field)

    def __enter__(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            return self
        try:
            ctypes.CDLL('libc.so.6').malloc_trim(0)
            with open('/proc/self/clear_refs', 'w', encoding='ascii') as clear_refs:
                clear_refs.write('5')  # resets VmHWM to the current resident set
            self._start = self._status_kb('VmRSS')
        except OSError:
            self._start = None
        return self

    def __exit__(self, *exc_info):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._start) / 2**20
        elif self._start is not None:
            self.peak_mb = (self._status_kb('VmHWM') - self._start) / 1024
        return False


def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_calls(function, repeats, device):
    """Median wall and process-CPU seconds of ``repeats`` calls, and the peak memory they used."""
    wall_times, cpu_times = [], []
    with PeakMemory(device) as memory:
        for _ in range(repeats):
            synchronize(device)
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            function()
            synchronize(device)
            wall_times.append(time.perf_counter() - wall_start)
            cpu_times.append(time.process_time() - cpu_start)
    return statistics.median(wall_times), statistics.median(cpu_times), memory.peak_mb


@contextlib.contextmanager
def busy_processes(count: int):
    """``count`` processes that each keep one core busy (a Python loop) while inside ``with``."""
    processes = [subprocess.Popen([sys.executable, '-c', 'while True: pass']) for _ in range(count)]
    try:
        time.sleep(0.5 if count else 0)  # let the scheduler spread them
        yield processes
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait()


def measure_training(model, device, batch, size, warmup, steps):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    lq = torch.rand(batch, 1, size, size, device=device)
    gt = torch.rand(batch, 1, size, size, device=device)

    def step():
        loss = (model(lq) - gt).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    started = time.perf_counter()
    for _ in range(warmup):
        step()
    warmup_s = time.perf_counter() - started
    return (*time_calls(step, steps, device), warmup_s)


def measure_inference(model, device, size, repeats):
    image = torch.rand(1, 1, size, size, device=device)
    model.eval()
    with torch.no_grad():
        model(image)
        return time_calls(lambda: model(image), repeats, device)


def training_model(option_file, device, work_dir, teacher=None, amp=None):
    """A BasicSR model for training from one of the demo option files, with no data or checkpoints;
    ``amp``: ``train.amp.dtype`` (bf16 | fp16) or None (float32)."""
    from basicsr.models import build_model

    from basicsr_snn.utils.run_options import in_process_options
    base = yaml.safe_load(Path(option_file).read_text())
    opt = in_process_options(base, Path(option_file).stem, work_dir, base['train']['total_iter'], base['manual_seed'],
                             device.type, print_freq=10**9, ema_decay=base['train'].get('ema_decay', 0))
    opt['train']['amp'] = {'dtype': amp} if amp else None
    if teacher is not None:
        opt['network_t'] = teacher
        opt['train']['distill']['allow_random_teacher'] = True
        opt['path']['pretrain_network_t'] = None
    return build_model(opt)


def measure_model_steps(device, batch, size, warmup, steps, amp=None):
    """(label, teacher parameters, train-step times) of scratch and distillation iterations (``amp``: see
    :func:`training_model`)."""
    from basicsr_snn.archs.restormer_arch import RESTORMER_PRESETS
    demo = REPO_ROOT / 'options' / 'demo'
    runs = [('scratch (SNNModel)', demo / 'train_snn_demo.yml', None)]
    for preset in ('small', 'paper'):
        teacher = dict(type='Restormer', inp_channels=1, out_channels=1, **RESTORMER_PRESETS[preset])
        runs.append((f'H-KD, Restormer {preset}', demo / 'distill_demo.yml', teacher))
    batch_data = {'lq': torch.rand(batch, 1, size, size), 'gt': torch.rand(batch, 1, size, size)}
    rows = []
    with tempfile.TemporaryDirectory() as work_dir:
        for label, option_file, teacher in runs:
            torch.manual_seed(0)
            model = training_model(option_file, device, Path(work_dir), teacher, amp)
            iteration = iter(range(1, 10**9))

            def step():
                model.feed_data(batch_data)
                model.optimize_parameters(next(iteration))

            for _ in range(warmup):
                step()
            wall, cpu, peak = time_calls(step, steps, device)
            teacher_params = sum(p.numel() for p in model.net_t.parameters()) if teacher else 0
            rows.append(dict(run=label, teacher_params=teacher_params, train_step_s=wall, train_step_cpu_s=cpu,
                             train_peak_mb=peak))
            print(f'{label:<26} {teacher_params:>10} {wall:>8.3f} {cpu:>8.3f} '
                  f'{"n/a" if peak is None else f"{peak:.0f}":>8}', flush=True)
    scratch = rows[0]['train_step_cpu_s']
    for row in rows:
        row['cpu_time_over_scratch'] = row['train_step_cpu_s'] / scratch
    return rows


#: the teachers whose forward cost :func:`measure_teachers` reports, each at its authors' configuration
TEACHERS = ('Restormer', 'PromptIR', 'AdaIR')


def measure_teachers(device, batch, size, repeats):
    """One teacher forward per distillation step: median time and peak memory of each of ``TEACHERS``
    at its authors' defaults (3 channels) on a ``batch x 3 x size x size`` batch, eval, no gradients."""
    from basicsr.utils.registry import ARCH_REGISTRY
    rows = []
    for arch in TEACHERS:
        torch.manual_seed(0)
        model = ARCH_REGISTRY.get(arch)().to(device).eval()
        images = torch.rand(batch, 3, size, size, device=device)
        with torch.no_grad():
            model(images)
            wall, cpu, peak = time_calls(lambda: model(images), repeats, device)
        rows.append(dict(teacher=arch, params=sum(p.numel() for p in model.parameters()), batch=batch, size=size,
                         forward_s=wall, forward_cpu_s=cpu, forward_peak_mb=peak))
        print(f'{arch:<10} {rows[-1]["params"]:>10} {wall:>9.3f} {cpu:>8.3f} '
              f'{"n/a" if peak is None else f"{peak:.0f}":>8}', flush=True)
    return rows


def cpu_name():
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as cpuinfo:
            return next(line.split(':', 1)[1].strip() for line in cpuinfo if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def networks():
    """(arch, preset, architecture options) for every benchmarked network."""
    from basicsr_snn.archs.spikerir_arch import SPIKERIR_PRESETS
    for preset, options in SPIKERIR_PRESETS.items():
        for steps in TIME_STEPS:
            yield 'SpikerIR', preset, dict(options, neuron='lif', T=steps)
        yield 'SpikerIR', preset, dict(options, **MULTI_LEVEL)
        yield 'SpikerIRReLU', preset, dict(options)


def run(quick=False, device='cpu', threads=None):
    """Every measurement, as the JSON-ready dict the script writes (``setup``, ``rows``, ratios, model steps)."""
    from basicsr.utils.registry import ARCH_REGISTRY

    sizes = QUICK if quick else FULL
    device = torch.device(device)
    if threads:
        torch.set_num_threads(threads)
    rows = []
    for arch, preset, options in networks():
        torch.manual_seed(0)
        model = ARCH_REGISTRY.get(arch)(in_ch=1, out_ch=1, **options).to(device)
        train = measure_training(model, device, sizes['batch'], sizes['size'], sizes['warmup'], sizes['steps'])
        infer = measure_inference(model, device, sizes['infer_size'], sizes['infer_repeats'])
        rows.append(
            dict(
                arch=arch,
                preset=preset,
                T=model.T,
                neuron=options.get('neuron', 'relu' if arch == 'SpikerIRReLU' else 'lif'),
                spike_levels=model.spike_levels,
                params=sum(p.numel() for p in model.parameters()),
                **dict(zip(('train_step_s', 'train_step_cpu_s', 'train_peak_mb', 'warmup_s'), train)),
                **dict(zip(('infer_s', 'infer_cpu_s', 'infer_peak_mb'), infer))))
        print(format_row(rows[-1]), flush=True)
    ratios, multi_level_ratios = {}, {}
    for preset in sorted({row['preset'] for row in rows}):
        ann = next(r for r in rows if r['preset'] == preset and r['neuron'] == 'relu')
        snn = next(r for r in rows if r['preset'] == preset and r['neuron'] == 'lif' and r['T'] == 4)
        multi_level = next(r for r in rows if r['preset'] == preset and r['neuron'] == MULTI_LEVEL['neuron'])
        ratios[preset] = {key: snn[key] / ann[key] for key in ('train_step_s', 'train_step_cpu_s')}
        multi_level_ratios[preset] = {key: multi_level[key] / ann[key] for key in ('train_step_s', 'train_step_cpu_s')}
    print(f'\n{"training iteration":<26} {"teacher":>10} {"train s":>8} {"cpu s":>8} {"train MB":>8}')
    model_steps = measure_model_steps(device, sizes['batch'], sizes['size'], sizes['warmup'], sizes['steps'])
    print(f'\nteacher forward, batch {sizes["batch"]} x 3 x {sizes["size"]}x{sizes["size"]}, no gradients')
    print(f'{"teacher":<10} {"params":>10} {"forward s":>9} {"cpu s":>8} {"peak MB":>8}')
    teachers = measure_teachers(device, sizes['batch'], sizes['size'], sizes['steps'])
    print()
    neurons = measure_neurons(quick) if device.type == 'cpu' else None
    return dict(
        setup=dict(
            device=str(device),
            device_name=torch.cuda.get_device_name(device) if device.type == 'cuda' else cpu_name(),
            cpu_count=os.cpu_count(),
            torch_threads=torch.get_num_threads(),
            torch=torch.__version__,
            channels=1,
            **sizes),
        rows=rows,
        train_step_ratio_snn_T4_over_relu=ratios,
        train_step_ratio_ilif_T1_D4_over_relu=multi_level_ratios,
        model_steps=model_steps,
        teachers=teachers,
        neurons=neurons)


def run_amp(dtype: str, quick: bool = False, device: str = 'cpu', threads: int | None = None) -> dict:
    """The demo's training iterations (scratch, H-KD with the small and the paper's Restormer) in float32
    and under ``train.amp: {dtype: <dtype>}``: ``rows`` of both, ``amp_speedup`` (float32 / amp wall time)."""
    sizes = QUICK if quick else FULL
    device = torch.device(device)
    if threads:
        torch.set_num_threads(threads)
    rows = []
    for amp in (None, dtype):
        print(f'\n{"training iteration, " + (amp or "fp32"):<26} {"teacher":>10} {"train s":>8} {"cpu s":>8} '
              f'{"train MB":>8}', flush=True)
        measured = measure_model_steps(device, sizes['batch'], sizes['size'], sizes['warmup'], sizes['steps'], amp)
        rows += [dict(row, amp=amp or 'fp32') for row in measured]
    speedup = {row['run']: next(r['train_step_s'] for r in rows if r['run'] == row['run'] and r['amp'] == 'fp32')
               / row['train_step_s'] for row in rows if row['amp'] == dtype}
    return dict(setup=dict(device=str(device), torch_threads=torch.get_num_threads(), torch=torch.__version__, **sizes),
                amp=dtype, rows=rows, amp_speedup=speedup)


NEURON_SIZES = (1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22)


def measure_neurons(quick: bool = False, repeats: int = 5) -> dict:
    """Forward + backward of one multi-step neuron per input size, binary LIF at T=4 and the multi-level
    I-LIF at T=1, D=4: spikingjelly's op against the fused kernel, and the seconds the fused kernel's
    first call took (compiling it)."""
    from spikingjelly.activation_based import surrogate

    from basicsr_snn.archs.fused_neuron import FusedLIFNode
    from basicsr_snn.archs.ilif_neuron import ILIFNode
    sizes = NEURON_SIZES[:2] if quick else NEURON_SIZES
    backends = ('spikingjelly', 'fused')
    neurons = {
        ('lif', 4): {backend: FusedLIFNode(neuron_backend=backend, tau=2., decay_input=False, v_threshold=0.15,
                                           v_reset=0., surrogate_function=surrogate.ATan(), step_mode='m')
                     for backend in backends},
        ('ilif', 1): {backend: ILIFNode(spike_levels=MULTI_LEVEL['spike_levels'], v_threshold=0.15, step_mode='m',
                                        neuron_backend=backend) for backend in backends},
    }

    def call(node, x):
        node.reset()
        node(x).sum().backward()

    first = time.perf_counter()
    call(neurons['lif', 4]['fused'], torch.randn(4, sizes[0], requires_grad=True))
    compile_s = time.perf_counter() - first
    rows = []
    for (name, steps), nodes in neurons.items():
        for size in sizes:
            x = (torch.randn(steps, size) * 0.3).requires_grad_(True)
            times = {}
            for backend, node in nodes.items():
                call(node, x)
                times[backend] = time_calls(lambda: call(node, x), repeats, torch.device('cpu'))[0]
            rows.append(dict(neuron=name, T=steps, elements=steps * size, spikingjelly_s=times['spikingjelly'],
                             fused_s=times['fused'], speedup=times['spikingjelly'] / times['fused']))
            print(f'{name.upper()} T={steps}, {steps * size:>9} inputs: spikingjelly '
                  f'{times["spikingjelly"] * 1e3:8.2f} ms, fused {times["fused"] * 1e3:8.2f} ms '
                  f'({rows[-1]["speedup"]:.2f}x)', flush=True)
    return dict(first_fused_call_s=compile_s, rows=rows)


def load_networks(quick):
    """(label, arch, options) of the load comparison: each preset's student with both neuron backends, its twin."""
    from basicsr_snn.archs.spikerir_arch import SPIKERIR_PRESETS
    for preset in ('small', ) if quick else ('small', 'base'):
        for backend in ('spikingjelly', 'fused'):
            options = dict(SPIKERIR_PRESETS[preset], neuron='lif', T=4, neuron_backend=backend)
            yield f'SpikerIR {preset} T=4 {backend}', 'SpikerIR', options
        yield f'SpikerIRReLU {preset}', 'SpikerIRReLU', dict(SPIKERIR_PRESETS[preset])


def run_under_load(load: int, quick: bool = False, device: str = 'cpu') -> dict:
    """Training-step times quiet and beside ``load`` busy processes, at 1 thread and at every usable core.

    Returns ``rows`` (network, threads, load, ``train_step_s``, ``first_step_s``: the fused kernel's
    first includes compiling it), ``loaded_over_quiet`` (per network and thread count) and
    ``snn_over_twin`` (per student, thread count and load).
    """
    from basicsr.utils.registry import ARCH_REGISTRY

    sizes = QUICK if quick else FULL
    device = torch.device(device)
    cores = len(os.sched_getaffinity(0))
    thread_counts = sorted({1, cores})
    rows = []
    for busy in (0, load):
        with busy_processes(busy):
            for threads in thread_counts:
                torch.set_num_threads(threads)
                for label, arch, options in load_networks(quick):
                    torch.manual_seed(0)
                    model = ARCH_REGISTRY.get(arch)(in_ch=1, out_ch=1, **options).to(device)
                    wall, cpu, _, first = measure_training(model, device, sizes['batch'], sizes['size'], 1,
                                                           sizes['steps'])
                    rows.append(dict(network=label, threads=threads, load=busy, train_step_s=wall,
                                     train_step_cpu_s=cpu, first_step_s=first))
                    print(f'{label:<34} threads {threads} load {busy}: {wall:.3f} s/step '
                          f'(first step {first:.1f} s)', flush=True)

    def step(network, threads, busy):
        return next(r['train_step_s'] for r in rows
                    if r['network'] == network and r['threads'] == threads and r['load'] == busy)

    labels = [label for label, _, _ in load_networks(quick)]
    loaded_over_quiet = {label: {f'{threads} threads': step(label, threads, load) / step(label, threads, 0)
                                 for threads in thread_counts} for label in labels}
    snn_over_twin = {}
    for label in labels:
        if label.startswith('SpikerIR '):
            preset = label.split()[1]
            snn_over_twin[label] = {f'{threads} threads, load {busy}': step(label, threads, busy)
                                    / step(f'SpikerIRReLU {preset}', threads, busy)
                                    for busy in (0, load) for threads in thread_counts}
    return dict(load=load, cores=cores, rows=rows, loaded_over_quiet=loaded_over_quiet, snn_over_twin=snn_over_twin)


# (row key, title, width, format); text columns are left-aligned, numbers right-aligned
COLUMNS = (('arch', 'arch', 13, '{}'), ('preset', 'preset', 6, '{}'), ('neuron', 'neuron', 6, '{}'),
           ('T', 'T', 2, '{}'), ('spike_levels', 'D', 2, '{}'),
           ('params', 'params', 9, '{}'), ('train_step_s', 'train s', 8, '{:.3f}'),
           ('train_step_cpu_s', 'cpu s', 8, '{:.3f}'), ('train_peak_mb', 'train MB', 8, '{:.0f}'),
           ('infer_s', 'infer s', 8, '{:.3f}'), ('infer_cpu_s', 'cpu s', 8, '{:.3f}'),
           ('infer_peak_mb', 'infer MB', 8, '{:.0f}'), ('warmup_s', 'warmup s', 8, '{:.1f}'))


def format_line(texts):
    return ' '.join(
        text.ljust(width) if key in ('arch', 'preset', 'neuron') else text.rjust(width)
        for text, (key, _, width, _) in zip(texts, COLUMNS))


def format_header():
    return format_line([title for _, title, _, _ in COLUMNS])


def format_row(row):
    return format_line(['n/a' if row[key] is None else fmt.format(row[key]) for key, _, _, fmt in COLUMNS])
