"""The energy-quality curve of a trained spiking student: fine-tuned variants, their PSNR and energy.

Every variant starts from the same trained student (an arm of a gap study, see :mod:`.study`),
changes its time steps, its firing threshold, its spikes per step and/or adds a firing-rate budget
(``train.rate_opt``),
and fine-tunes for the same number of iterations on the same batches; ``base`` changes nothing,
so it is the unpenalised student at the same budget. Each variant is then scored on the study's
final validation sets and costed on the study's energy image, compute-only and with memory traffic
(both assumption sets of :mod:`basicsr_snn.analysis.memory`). The study's teacher and ReLU twin
are the reference points.

Layout of ``out``::

    out/settings.json           the sweep's settings (checked on rerun, like a study's protocol)
    out/<variant>/result.json   a finished variant: scores, energy, fine-tuning losses
    out/<variant>/net_g.pth     its network
    out/pareto.json, pareto.md, pareto.png

Variant names join parts with ``+``: ``T<int>`` (time steps), ``rate<float>`` (rate-penalty
weight, at the sweep's ``rate_target``), ``vth<float>`` (threshold), ``D<int>`` (the multi-level
neuron, ``neuron: ilif``, with that many spikes per step: a binary student switches neuron, an
``ilif`` one changes D); ``base`` has none.
"""
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from basicsr_snn.analysis import ENERGY_MEASURES, energy_measures
from basicsr_snn.benchmarks.arms import Arm
from basicsr_snn.benchmarks.protocol import SeededBatches, evaluate_model
from basicsr_snn.benchmarks.study import CHECKPOINT, PROGRESS, RunRecord, Study, keep_settings, remove_checkpoints
from basicsr_snn.benchmarks.study_report import arm_energy, energy_image, network_energy
from basicsr_snn.pipeline import train_in_process
from basicsr_snn.utils.checkpoint import atomic_save, atomic_write_text
from basicsr_snn.utils.run_options import in_process_options

RESULT = 'result.json'
# for the default multi-level student at T = 1; a binary one at T = 4 was swept with
# base T2 T1 rate0.01 rate0.1 rate1 vth0.3 vth0.6 T2+rate0.1 (docs/results.md)
DEFAULT_VARIANTS = ('base', 'D4', 'D2', 'vth0.3', 'vth0.6', 'rate0.1', 'rate1', 'D4+vth0.3')
_PART = re.compile(r'^(?:T(?P<T>\d+)|rate(?P<rate>\d+(?:\.\d+)?(?:e-?\d+)?)|vth(?P<vth>\d+(?:\.\d+)?)|D(?P<D>\d+))$')
MEMORY_KEYS = ('gpu', 'neuromorphic')


@dataclass(frozen=True)
class Variant:
    """A change to the base student: time steps, rate-penalty weight, threshold, spikes per step of the
    multi-level neuron (None: unchanged)."""
    name: str
    T: int | None = None
    rate_weight: float = 0.
    v_threshold: float | None = None
    spike_levels: int | None = None

    @classmethod
    def parse(cls, name: str) -> 'Variant':
        """``base`` or ``+``-joined ``T<int>``, ``rate<float>``, ``vth<float>``, ``D<int>``; the error shows the
        form."""
        if name == 'base':
            return cls(name)
        values = {}
        for part in name.split('+'):
            match = _PART.match(part)
            if not match:
                raise ValueError(f'variant {name!r}: write base or parts joined by + among T<int>, rate<float>, '
                                 f'vth<float>, D<int> (e.g. T2+rate0.1, T1+D4)')
            values.update({key: value for key, value in match.groupdict().items() if value is not None})
        T = int(values['T']) if 'T' in values else None
        if T is not None and T < 1:
            raise ValueError(f'variant {name!r}: T must be >= 1')
        v_threshold = float(values['vth']) if 'vth' in values else None
        if v_threshold is not None and v_threshold <= 0:
            raise ValueError(f'variant {name!r}: the threshold must be > 0')
        spike_levels = int(values['D']) if 'D' in values else None
        if spike_levels is not None and spike_levels < 1:
            raise ValueError(f'variant {name!r}: D must be >= 1')
        return cls(name, T, float(values.get('rate', 0.)), v_threshold, spike_levels)

    def network(self, base: dict) -> dict:
        """``network_g`` of the variant from the base student's."""
        changes = {key: value for key, value in (('T', self.T), ('v_threshold', self.v_threshold)) if value is not None}
        if self.spike_levels is not None:
            changes.update(neuron='ilif', spike_levels=self.spike_levels)
        return dict(base, **changes)


@dataclass(frozen=True)
class SweepSettings:
    """What every variant of one sweep shares.

    Attributes:
        base_arm (str): the study arm whose trained student every variant starts from.
        iters (int): fine-tuning iterations per variant (batches as in the study protocol).
        lr (float): fine-tuning learning rate (cosine to the protocol's ``lr_floor`` x lr).
        rate_target (float): ``train.rate_opt.target`` of the variants with a rate penalty.
        seed (int): seed of the fine-tuning batches (the same for every variant).
    """
    base_arm: str = 'ilif-t1d8.twin-init.s0'
    iters: int = 500
    lr: float = 8e-4
    rate_target: float = 0.02
    seed: int = 1000


class ParetoSweep:
    """Variants of one study's trained student in ``out``; ``run(names)`` fine-tunes the missing ones."""

    def __init__(self, study: Study, settings: SweepSettings, out: str | Path, log: Callable[[str], None] = print):
        self.study = study
        self.settings = settings
        self.out = Path(out)
        self.log = log
        self.base_arm = Arm.parse(settings.base_arm)
        if self.base_arm.is_teacher or self.base_arm.is_twin:
            raise ValueError(f'base arm {settings.base_arm!r}: give a spiking student arm, e.g. membrane.scratch.s0')
        self.out.mkdir(parents=True, exist_ok=True)
        self._check_settings()

    def _check_settings(self):
        keep_settings(self.out / 'settings.json', dict(asdict(self.settings), study=str(self.study.out)),
                      'a sweep with other settings')

    def run(self, names: Iterable[str]) -> None:
        variants = [Variant.parse(name) for name in names]
        self.study.run([self.base_arm.name, self.base_arm.twin.name, 'teacher'])
        for variant in variants:
            if (self.out / variant.name / RESULT).is_file():
                self.log(f'[{variant.name}] finished earlier: skipped')
                continue
            self._fine_tune_and_measure(variant)

    def options(self, variant: Variant) -> dict:
        """The BasicSR option dict that fine-tunes ``variant`` from the base student."""
        protocol, settings = self.study.protocol, self.settings
        base = self.study.result(self.base_arm)
        log_every = min(100, settings.iters)
        opt = in_process_options(self.study.scratch_opt, variant.name, self.out / variant.name, settings.iters,
                                 settings.seed, protocol.device, settings.lr, protocol.lr_floor, print_freq=log_every,
                                 save_every=log_every)
        opt['network_g'] = variant.network(base['network'])
        # another T reshapes the temporal attention: those weights restart, the rest loads
        opt['path'].update(pretrain_network_g=str(self.study.arm_dir(self.base_arm) / CHECKPOINT), strict_load_g=False)
        if variant.rate_weight:
            opt['train']['rate_opt'] = {'target': settings.rate_target, 'loss_weight': variant.rate_weight}
        return opt

    def _fine_tune_and_measure(self, variant):
        train_set, _, final_loaders = self.study.data()
        opt = self.options(variant)
        network = opt['network_g']
        levels = f', {network["spike_levels"]} spikes per step' if network.get('neuron') == 'ilif' else ''
        self.log(f'[{variant.name}] fine-tuning {self.settings.iters} iterations ({network["T"]} steps{levels}, '
                 f'threshold {network["v_threshold"]}, rate weight {variant.rate_weight})')
        run_dir = self.out / variant.name
        record = RunRecord.load(run_dir / PROGRESS)
        batches = SeededBatches(train_set, self.study.protocol.batch, self.settings.iters, self.settings.seed)
        model = train_in_process(opt, batches, record, validate_at=None, log=self.log, on_resume=record.cut_to)
        record.train_seconds += record.lap()
        scores = {name: evaluate_model(model, loader) for name, loader in final_loaders.items()}
        network = model.get_bare_model(model.net_g)
        energy = network_energy(network, energy_image(self.study), spiking=True)
        atomic_save({'params': network.state_dict()}, run_dir / CHECKPOINT)
        result = {'variant': asdict(variant), 'network': opt['network_g'], 'rate_opt': opt['train'].get('rate_opt'),
                  'final': scores, 'energy': energy, 'losses': record.losses, 'train_seconds': record.train_seconds,
                  'torch_threads': torch.get_num_threads()}
        atomic_write_text(json.dumps(result, indent=1), run_dir / RESULT)
        remove_checkpoints(run_dir)
        self.log(f'[{variant.name}] ' + ', '.join(f'{name} {s["psnr"]:.2f} dB' for name, s in scores.items())
                 + f'; compute {energy["energy_uj"]:.1f} µJ, firing rate {energy["mean_firing_rate"]:.3f} '
                   f'({record.train_seconds:.0f} s)')

    def summary(self) -> dict:
        """Every finished variant and the reference networks, with the Pareto fronts and the target check."""
        points = {}
        for path in sorted(self.out.glob(f'*/{RESULT}')):
            result = json.loads(path.read_text())
            points[path.parent.name] = _point(result['final'], result['energy'], 'student')
        references = {}
        for role, arm in (('teacher', Arm.parse('teacher')), ('twin', self.base_arm.twin)):
            result = self.study.result(arm)
            if result is not None:
                references[role] = _point(result['final'], arm_energy(self.study, arm.name, result), role)
        return {'settings': asdict(self.settings), 'base_arm': self.base_arm.name,
                'sets': list(self.study.protocol.val_dirs), 'points': points, 'references': references,
                'fronts': {measure: pareto_front(points, measure) for measure in ENERGY_MEASURES},
                'target': _target_check(points, references)}


def _point(scores, energy, kind):
    return {'kind': kind, 'scores': scores, 'psnr': next(iter(scores.values()))['psnr'],
            'firing_rate': energy.get('mean_firing_rate'),
            'energy_pj': energy_measures(energy)}


def pareto_front(points: dict, measure: str) -> list[str]:
    """Names of the points no other point beats on both energy (``measure``, lower) and PSNR (higher),
    by increasing energy."""
    ordered = sorted(points, key=lambda name: (points[name]['energy_pj'][measure], -points[name]['psnr']))
    front, best = [], float('-inf')
    for name in ordered:
        if points[name]['psnr'] > best:
            front.append(name)
            best = points[name]['psnr']
    return front


def _target_check(points, references):
    """The points at or below 1/10 of the twin's compute energy, and whether one is within 0.3 dB of ``base``."""
    if 'base' not in points or 'twin' not in references:
        return None
    limit = references['twin']['energy_pj']['compute'] / 10
    cheap = {name: points['base']['psnr'] - point['psnr'] for name, point in points.items()
             if point['energy_pj']['compute'] <= limit}
    return {'compute_limit_pj': limit, 'points_under_limit': cheap,
            'met': any(loss <= 0.3 for loss in cheap.values())}
