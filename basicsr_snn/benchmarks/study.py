"""Run the arms of the gap study, one cached, resumable result per arm.

Layout of ``out``::

    out/protocol.json            the protocol every arm of this folder shares (checked on rerun)
    out/<arm>/result.json        a finished arm: curves, losses, final scores, timing
    out/<arm>/net_g.pth          its trained network (BasicSR checkpoint, key ``params``)
    out/<arm>/models/, training_states/
                                 an unfinished arm's checkpoints, those of a training run (it trains through
                                 the run's loop, :func:`basicsr_snn.pipeline.train_in_process`): a rerun
                                 continues from the newest with the same batches; SIGTERM saves and stops
    out/<arm>/progress.json      an unfinished arm's curve, losses and timing so far
    out/<arm>/.lock              the OS lock of the process training it, naming its pid and host (two
                                 processes can share a study: each takes the arms no process holds)

An arm's dependencies (the teacher, a twin) are trained first when missing; a dependency held by
another live process is waited for.
"""
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import yaml
from basicsr.data import build_dataset
from torch.utils.data import DataLoader, Subset

from basicsr_snn.benchmarks.arms import LEVELS, RECIPES, TEACHERS, Arm, student_network
from basicsr_snn.benchmarks.protocol import SeededBatches, evaluate_model, evenly_spaced
from basicsr_snn.data.demo_data import make_demo_dataset
from basicsr_snn.data.paths import shared_datasets_root
from basicsr_snn.pipeline import train_in_process
from basicsr_snn.utils import experiment_lock
from basicsr_snn.utils.checkpoint import atomic_save, atomic_write_text
from basicsr_snn.utils.run_options import in_process_options

OPTIONS_DIR = Path(__file__).resolve().parents[2] / 'options'
RESULT, CHECKPOINT, PROGRESS = 'result.json', 'net_g.pth', 'progress.json'
#: the keys of a message logger's values that are not losses
MESSAGE_KEYS = ('epoch', 'iter', 'lrs', 'time', 'data_time')
MULTI_STEP_ARCHS = ('SpikerIR', 'SpikerIRReLU')
#: the tiny budget of ``--quick`` runs (tests, a first look)
QUICK = dict(iters=4, teacher_iters=4, batch=2, crop=32, val_every=2, val_images=2, final_images=2)


@dataclass(frozen=True)
class StudyProtocol:
    """What every arm of one study shares. The defaults are the CPU-scale study of docs/results.md."""
    train_dir: str
    val_dirs: tuple
    sigma: float = 25.
    iters: int = 4000
    teacher_iters: int = 8000
    batch: int = 8
    crop: int = 64
    lr: float = 2e-3
    teacher_lr: float = 2e-3
    lr_floor: float = 0.4  # the cosine schedule ends at lr_floor x lr: still high where the curve should flatten
    val_every: int = 250
    val_images: int = 4  # per set, for the curves (0: all)
    final_images: int = 0  # per set, for the final scores (0: all)
    teacher: str = 'relu-medium'  # a key of arms.TEACHERS
    device: str = 'cpu'

    def to_dict(self):
        return dict(asdict(self), val_dirs=list(self.val_dirs))

    @classmethod
    def of_study(cls, out: str | Path) -> 'StudyProtocol':
        """The protocol stored in an existing study folder."""
        path = Path(out) / 'protocol.json'
        if not path.is_file():
            raise ValueError(f'{out} holds no study ({path} is missing); run scripts/bench_distill.py --out {out} '
                             'first, or give another folder')
        stored = json.loads(path.read_text())
        return cls(**dict(stored, val_dirs=tuple(stored['val_dirs'])))


def keep_settings(path: Path, current: dict, what: str) -> None:
    """Store ``current`` at ``path``, or check that the stored settings equal it: a folder's cached results
    are only comparable under one set of settings."""
    if path.is_file():
        earlier = json.loads(path.read_text())
        differing = sorted(key for key in set(earlier) | set(current) if earlier.get(key) != current.get(key))
        if differing:
            raise ValueError(f'{path.parent} holds {what} (differing: {differing}); use another --out or the same '
                             'settings')
    else:
        path.write_text(json.dumps(current, indent=1))


def study_data_folders(out, quick: bool, train_dir=None, val_dirs=None) -> tuple[Path, list[Path]]:
    """(train folder, [validation folders]) of a study: the given ones, else the shared datasets'
    Train400, Set12 and BSD68; ``quick`` without folders builds the demo set under ``out``."""
    if quick and not train_dir and not val_dirs:
        demo = make_demo_dataset(Path(out) / 'demo_data', tile_size=64, val_size=64)
        return demo['train_gray'], [demo['val_gray']]
    root = shared_datasets_root()
    train_dir = Path(train_dir) if train_dir else root / 'Train400'
    val_dirs = [Path(d) for d in val_dirs] if val_dirs else [root / 'Set12', root / 'BSD68']
    for option, folder in [('--train-dir', train_dir)] + [('--val-dirs', d) for d in val_dirs]:
        if not folder.is_dir():
            raise ValueError(f'{option}: {folder} is not a folder (datasets root: {root}; set BASICSR_SNN_DATASETS '
                             f'or pass {option})')
    return train_dir, val_dirs


def _load_yaml(name):
    return yaml.safe_load((OPTIONS_DIR / name).read_text())


class Study:
    """The arms of one protocol in one folder. ``run(arms)`` trains what is missing."""

    def __init__(self, protocol: StudyProtocol, out: str | Path, log: Callable[[str], None] = print):
        self.protocol = protocol
        self.out = Path(out)
        self.log = log
        self.out.mkdir(parents=True, exist_ok=True)
        self._check_protocol()
        self.scratch_opt = _load_yaml('train_snn_denoise.yml')
        self.distill_opt = _load_yaml('distill_denoise.yml')
        self.teacher_opt = _load_yaml('train_teacher_denoise.yml')
        self._data = None

    def _check_protocol(self):
        keep_settings(self.out / 'protocol.json', self.protocol.to_dict(), 'a study with another protocol')

    # data ------------------------------------------------------------------------------------
    def data(self):
        """(training set, curve loaders, final loaders), built once."""
        if self._data is None:
            protocol = self.protocol
            base = self.scratch_opt['datasets']['train']
            train_set = build_dataset(dict(base, name='train', dataroot_gt=protocol.train_dir, gt_size=protocol.crop,
                                           sigma=protocol.sigma, phase='train', io_backend={'type': 'disk'}))
            curves, finals = {}, {}
            for folder in map(Path, protocol.val_dirs):
                val_set = build_dataset({'name': folder.name, 'type': base['type'], 'dataroot_gt': str(folder),
                                         'color': base['color'], 'sigma': protocol.sigma, 'phase': 'val',
                                         'io_backend': {'type': 'disk'}})
                for loaders, limit in ((curves, protocol.val_images), (finals, protocol.final_images)):
                    loaders[folder.name] = DataLoader(Subset(val_set, evenly_spaced(len(val_set), limit)),
                                                      batch_size=1, shuffle=False, num_workers=0)
            self._data = train_set, curves, finals
        return self._data

    # arms ------------------------------------------------------------------------------------
    def arm_dir(self, arm):
        return self.out / arm.name

    def result(self, arm: Arm) -> dict | None:
        path = self.arm_dir(arm) / RESULT
        return json.loads(path.read_text()) if path.is_file() else None

    def finished(self) -> dict[str, dict]:
        """Every finished arm's result, by arm name."""
        return {path.parent.name: json.loads(path.read_text()) for path in sorted(self.out.glob(f'*/{RESULT}'))}

    def run(self, arm_names: Iterable[str]) -> None:
        """Train the arms of ``arm_names`` (and their dependencies) not finished yet; skip those held elsewhere."""
        for name in arm_names:
            self._ensure(Arm.parse(name), wait_if_held=False)

    def _ensure(self, arm, wait_if_held):
        if self.result(arm) is not None:
            self.log(f'[{arm.name}] finished earlier: skipped')
            return True
        for dependency in arm.dependencies():
            if not self._ensure(dependency, wait_if_held=True):
                self.log(f'[{arm.name}] skipped: its dependency {dependency.name} is not finished')
                return False
        lock = self.arm_dir(arm) / experiment_lock.LOCK_NAME
        while True:
            holder = experiment_lock.take(lock)
            if holder is None:
                try:
                    if self.result(arm) is None:
                        self._train(arm)
                finally:
                    experiment_lock.release(lock)
                return True
            if not wait_if_held:
                self.log(f'[{arm.name}] held by process {holder[0]}: skipped')
                return False
            self.log(f'[{arm.name}] held by process {holder[0]}: waiting for it')
            time.sleep(30)
            if self.result(arm) is not None:
                return True

    # one arm ---------------------------------------------------------------------------------
    def options(self, arm: Arm) -> dict:
        """The BasicSR option dict that trains ``arm``."""
        protocol = self.protocol
        run_dir = self.arm_dir(arm)
        schedule = dict(save_every=protocol.val_every, val_every=protocol.val_every)
        if arm.is_teacher:
            network = TEACHERS[protocol.teacher]['network']
            base = self.teacher_opt if network['type'] == 'Restormer' else self.scratch_opt
            opt = in_process_options(base, arm.name, run_dir, protocol.teacher_iters, 0, protocol.device,
                                     protocol.teacher_lr, protocol.lr_floor, **schedule)
            opt['network_g'] = dict(network)
            return opt
        recipe = RECIPES[arm.recipe]
        base = self.distill_opt if recipe.distill else self.scratch_opt
        opt = in_process_options(base, arm.name, run_dir, protocol.iters, arm.seed, protocol.device, protocol.lr,
                                 protocol.lr_floor, **schedule)
        opt['network_g'] = student_network(self.scratch_opt['network_g'], arm)
        if recipe.init_from_twin:
            opt['path'].update(pretrain_network_g=str(self.arm_dir(arm.twin) / CHECKPOINT), strict_load_g=False)
        if recipe.distill:
            teacher = Arm.parse('teacher') if recipe.teacher == 'teacher' else arm.twin
            levels = TEACHERS[protocol.teacher]['levels'] if teacher.is_teacher else {level: level for level in LEVELS}
            opt['network_t'] = self.options(teacher)['network_g']
            opt['path'].update(pretrain_network_t=str(self.arm_dir(teacher) / CHECKPOINT), param_key_t='params')
            # SpikerIR-family teachers give (T, B, C, H, W) sequences: compare their mean over T
            teacher_reduce = 'mean' if opt['network_t']['type'] in MULTI_STEP_ARCHS else 'none'
            opt['train']['distill'] = dict(recipe.distill, hints=[
                dict(hint, teacher=levels[hint['teacher']], teacher_reduce=teacher_reduce)
                for hint in recipe.distill['hints']])
        return opt

    def _train(self, arm):
        protocol = self.protocol
        train_set, curve_loaders, final_loaders = self.data()
        opt = self.options(arm)
        total = opt['train']['total_iter']
        batches = SeededBatches(train_set, protocol.batch, total, seed=opt['manual_seed'])
        record = RunRecord.load(self.arm_dir(arm) / PROGRESS, curves=curve_loaders)

        def validate_at(model, iteration):
            if iteration in record.curve['iters']:
                return
            record.train_seconds += record.lap()
            scores = {name: evaluate_model(model, loader) for name, loader in curve_loaders.items()}
            record.add_scores(iteration, scores, model.get_current_learning_rate()[0])
            record.eval_seconds += record.lap()
            record.save(self.arm_dir(arm) / PROGRESS)
            self.log(f'[{arm.name}] iter {iteration}/{total}: ' +
                     ', '.join(f'{name} {score["psnr"]:.2f} dB' for name, score in scores.items()) +
                     f' ({record.train_seconds / iteration:.3f} s/iter)')

        self.log(f'[{arm.name}] training {total} iterations ({describe(arm)})')
        model = train_in_process(opt, batches, record, validate_at, self.log, on_resume=record.cut_to)
        record.lap()
        final = {name: evaluate_model(model, loader) for name, loader in final_loaders.items()}
        self.log(f'[{arm.name}] final: ' + ', '.join(f'{name} {s["psnr"]:.2f} dB / {s["ssim"]:.4f} '
                                                     f'({s["images"]} images)' for name, s in final.items()))
        network = model.get_bare_model(model.net_g)
        atomic_save({'params': network.state_dict()}, self.arm_dir(arm) / CHECKPOINT)
        result = {
            'arm': arm.name, 'design': arm.design, 'recipe': arm.recipe, 'seed': arm.seed,
            'description': describe(arm),
            'network': opt['network_g'], 'params': sum(p.numel() for p in network.parameters()),
            'distill': opt['train'].get('distill'), 'iters': total, 'curve': record.curve,
            'losses': record.losses, 'final': final, 'train_seconds': record.train_seconds,
            'seconds_per_iter': record.train_seconds / total, 'eval_seconds': record.eval_seconds,
            'final_eval_seconds': record.lap(), 'torch_threads': torch.get_num_threads(),
            'load_average_end': os.getloadavg(),
        }
        atomic_write_text(json.dumps(result, indent=1), self.arm_dir(arm) / RESULT)
        remove_checkpoints(self.arm_dir(arm))


def describe(arm):
    return RECIPES[arm.recipe].description if arm.recipe else 'the teacher'


def remove_checkpoints(run_dir: Path) -> None:
    """Drop a finished run's training checkpoints and record: its result and final network stay."""
    for folder in ('models', 'training_states'):
        shutil.rmtree(run_dir / folder, ignore_errors=True)
    (run_dir / PROGRESS).unlink(missing_ok=True)


class RunRecord:
    """What a benchmark run records besides its checkpoints: the validation curve, the logged losses (it is the
    run's message logger) and the time spent training and evaluating; saved after each validation, and cut back
    to the resumed iteration (:meth:`cut_to`) on resume."""

    def __init__(self, curves=(), curve=None, losses=None, train_seconds=0., eval_seconds=0.):
        self.curve = curve or {'iters': [], 'lr': [], **{name: {'psnr': [], 'ssim': []} for name in curves}}
        self.losses = losses or {'iters': []}
        self.train_seconds, self.eval_seconds = train_seconds, eval_seconds
        self._tic = time.time()

    def lap(self) -> float:
        """Seconds since the previous lap."""
        now = time.time()
        seconds, self._tic = now - self._tic, now
        return seconds

    def reset_start_time(self):
        """A message logger's call after the first iteration: its time stays in the training time, as before."""

    def __call__(self, log_vars):
        self.losses['iters'].append(log_vars['iter'])
        for key, value in log_vars.items():
            if key not in MESSAGE_KEYS:
                self.losses.setdefault(key, []).append(float(value))

    def add_scores(self, iteration, scores, lr):
        self.curve['iters'].append(iteration)
        self.curve['lr'].append(lr)
        for name, score in scores.items():
            self.curve[name]['psnr'].append(score['psnr'])
            self.curve[name]['ssim'].append(score['ssim'])

    def save(self, path):
        atomic_write_text(json.dumps({'curve': self.curve, 'losses': self.losses, 'train_seconds': self.train_seconds,
                                      'eval_seconds': self.eval_seconds}), path)

    def cut_to(self, iteration):
        """Forget what was recorded after ``iteration`` (the resumed one)."""
        for series in (self.curve, self.losses):
            _cut(series, sum(recorded <= iteration for recorded in series['iters']))

    @classmethod
    def load(cls, path, curves=()) -> 'RunRecord':
        """The record saved at ``path`` (a new one if none)."""
        if not path.is_file():
            return cls(curves)
        saved = json.loads(path.read_text())
        return cls(curves, saved['curve'], saved['losses'], saved['train_seconds'], saved['eval_seconds'])


def _cut(series, kept):
    for key, values in series.items():
        if isinstance(values, dict):
            _cut(values, kept)
        else:
            del values[kept:]
