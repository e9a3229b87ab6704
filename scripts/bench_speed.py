"""Speed and memory of SpikerIR (every preset, binary LIF at T = 1, 2, 4, 8 and the multi-level I-LIF at
T = 1, D = 4), of its ReLU twin, and of a distillation step against a scratch step.

    python scripts/bench_speed.py --out /tmp/bench.json          # full: batch 8 of 64x64, 256x256 inference
    python scripts/bench_speed.py --quick                        # tiny sizes, under a minute
    python scripts/bench_speed.py --device cuda --out bench_gpu.json
    python scripts/bench_speed.py --load 2 --out /tmp/load.json    # quiet against 2 busy processes
    python scripts/bench_speed.py --amp bf16 --out /tmp/amp.json   # training iterations with and without train.amp

For every network (gray in/out, attention on, direct encoding) it measures:

* ``train_step_s``: median wall time of one training step (forward, L1 loss, backward, Adam
  step) on a random batch, after warm-up steps; ``train_step_cpu_s``: the median CPU time the
  process used for it (all threads), which other processes sharing the cores disturb less.
* ``train_peak_mb``: peak memory of those steps above the memory in use before them (model,
  optimizer state after warm-up, batch). On CPU, the process's resident-set high-water mark
  (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` before the steps, after returning
  freed heap memory with ``malloc_trim``); it counts every allocation, not only tensors, and
  is ``null`` where the kernel does not offer the reset. On CUDA, ``torch.cuda`` peak
  allocated memory.
* ``infer_s``, ``infer_cpu_s`` and ``infer_peak_mb``: the same for one image in eval mode
  without gradients.
* ``warmup_s``: the untimed warm-up step, which for the first network with fused neurons
  includes compiling the kernel.

A third table times one multi-step neuron (forward and backward; LIF at T=4 and the multi-level
I-LIF at T=1, D=4) at growing input sizes with spikingjelly's op and with the fused kernel
(``neurons``, with ``first_fused_call_s``): where the fused kernel pays, which sets
``neuron_backend: auto``'s threshold.

A second table times whole training iterations of the models (``feed_data`` +
``optimize_parameters``, the L1 + 0.1 FFT task loss, neuron reset) for the small student of
``options/demo/*.yml``: ``SNNModel`` from scratch, and ``DistillSNNModel`` with the demo's three
decoder hints against the small Restormer and against the paper's Restormer (26.1M parameters,
random weights: speed does not depend on them). The difference is the teacher's share.

A last table gives the teachers' share of a distillation step: the forward of Restormer, PromptIR
and AdaIR at their authors' configurations (3 channels; random weights) on the training batch
(batch 8 of 3 x 64x64; ``--quick``: 2 of 8x8), in eval mode without gradients, as
``DistillSNNModel`` runs them (``teachers``: ``forward_s``, ``forward_cpu_s``, ``forward_peak_mb``).

The tables end with the step-time ratios SNN(T=4) / ReLU twin and I-LIF(T=1, D=4) / ReLU twin for
each preset (``train_step_ratio_snn_T4_over_relu``, ``train_step_ratio_ilif_T1_D4_over_relu``). Timings depend on
what else runs on the machine: say so when reporting them.

``--load N`` measures instead how the CPU's other work slows training: the training step of the
small and base students at T=4 (spikingjelly's neuron op and the fused kernel) and of their twins,
first on the machine as it is, then beside N busy processes the script starts itself (each a Python
loop on one core), each at 1 torch thread and at every core the process may use. It reports every
step time, the first two steps of each network (the fused kernel's first includes compiling it), and
the loaded / quiet ratio per network and thread count.

``--amp bf16|fp16`` times instead the training iterations of the second table in float32 and under
``train.amp: {dtype: ...}`` (autocast; fp16 with a GradScaler), and the speed-up of mixed precision.
"""
import argparse
import json
from pathlib import Path

import torch

import basicsr_snn  # noqa: F401  (registers the archs and models)
from basicsr_snn.benchmarks.speed import FULL, QUICK, format_header, run, run_amp, run_under_load


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='tiny sizes and few steps (a smoke run)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: torch default)')
    parser.add_argument('--load', type=int, metavar='N',
                        help='compare quiet and N-busy-process step times instead (see above)')
    parser.add_argument('--amp', choices=('bf16', 'fp16'),
                        help='time the training iterations with and without train.amp of this dtype instead')
    parser.add_argument('--out', help='write the results as JSON to this path')
    args = parser.parse_args()
    if args.amp is not None:
        results = run_amp(args.amp, args.quick, args.device, args.threads)
        for run_label, speedup in results['amp_speedup'].items():
            print(f'{run_label}: {speedup:.2f} x faster with {args.amp} (fp32 / {args.amp} wall time)')
        write_json(results, args.out)
        return
    if args.load is not None:
        if args.load < 1:
            parser.error(f'--load must be >= 1 busy process, got {args.load}')
        results = run_under_load(args.load, args.quick, args.device)
        for network, ratios in results['loaded_over_quiet'].items():
            print(f'{network}: loaded / quiet ' + ', '.join(f'{ratio:.2f} at {key}' for key, ratio in ratios.items()))
        for network, ratios in results['snn_over_twin'].items():
            print(f'{network} / its twin: ' + ', '.join(f'{ratio:.2f} ({key})' for key, ratio in ratios.items()))
        write_json(results, args.out)
        return
    sizes = QUICK if args.quick else FULL
    print(f'batch {sizes["batch"]} x {sizes["size"]}x{sizes["size"]} training, '
          f'{sizes["infer_size"]}x{sizes["infer_size"]} inference, device {args.device}')
    print(format_header())
    results = run(args.quick, args.device, args.threads)
    for preset, ratio in results['train_step_ratio_snn_T4_over_relu'].items():
        print(f'train-step ratio SpikerIR(T=4) / SpikerIRReLU, {preset}: {ratio["train_step_s"]:.2f} (wall), '
              f'{ratio["train_step_cpu_s"]:.2f} (CPU time)')
    for preset, ratio in results['train_step_ratio_ilif_T1_D4_over_relu'].items():
        print(f'train-step ratio SpikerIR(ilif, T=1, D=4) / SpikerIRReLU, {preset}: {ratio["train_step_s"]:.2f} '
              f'(wall), {ratio["train_step_cpu_s"]:.2f} (CPU time)')
    for row in results['model_steps'][1:]:
        print(f'{row["run"]}: {row["cpu_time_over_scratch"]:.2f} x the CPU time of a scratch iteration')
    write_json(results, args.out)


def write_json(results, out):
    if out:
        Path(out).write_text(json.dumps(results, indent=2) + '\n', encoding='utf-8')
        print(f'wrote {out}')


if __name__ == '__main__':
    main()
