"""The training run, in order: BasicSR's ``train.py`` with this project's features called where they act.

    options -> distributed start -> resume state and the experiment lock -> run folders -> loggers
    -> data loaders -> model (in a TrainingSession) -> the loop -> the final save -> one final validation

Built from BasicSR's public parts (``parse_options``, ``build_dataset``, ``build_dataloader``,
``build_model``, ``EnlargedSampler``, ``MessageLogger``, ``init_tb_loggers``, ``get_env_info``, the
prefetchers), so the option files, the folder layout (``experiments/<name>/{models,training_states,
visualization}``), the log format and the checkpoint names are BasicSR's. Nothing of BasicSR is
replaced and nothing passes through module globals: :func:`train` can run several times in one process.
"""
import argparse
import contextlib
import datetime
import functools
import io
import itertools
import logging
import math
import os
import shutil
import signal
import sys
import time
from os import path as osp
from pathlib import Path

import torch
import yaml
from basicsr.data import build_dataloader, build_dataset
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.data.prefetch_dataloader import CPUPrefetcher, CUDAPrefetcher
from basicsr.models import build_model as build_basicsr_model
from basicsr.train import init_tb_loggers
from basicsr.utils import AvgTimer, MessageLogger, check_resume, get_env_info, get_root_logger, get_time_str
from basicsr.utils.dist_util import get_dist_info
from basicsr.utils.misc import set_random_seed
from basicsr.utils.options import copy_opt_file, parse_options
from basicsr.utils.registry import MODEL_REGISTRY

from basicsr_snn import _compat
from basicsr_snn.data.unreadable_samples import DEFAULT_MAX_BAD_SAMPLES, SkipUnreadableSamples
from basicsr_snn.training_session import TrainingSession
from basicsr_snn.utils import experiment_lock, random_state
from basicsr_snn.utils.checkpoint import newest_complete_checkpoint, remove_temporary_files
from basicsr_snn.utils.training_option_checks import check_training_options, read_exponent_numbers

QUIET_ENV_VAR = 'BASICSR_SNN_QUIET'
#: with ``$BASICSR_SNN_QUIET=1``, INFO messages longer than this go to the log file only
QUIET_MAX_LINES = 12
#: the folders of a training run among BasicSR's ``path.*`` values (the others name files, keys or prefixes)
RUN_FOLDERS = ('experiments_root', 'models', 'training_states', 'log', 'visualization')
#: signals a DataLoader worker ignores: the main process stops training, then its workers
WORKER_IGNORED_SIGNALS = (signal.SIGINT, signal.SIGUSR1)


def train(argv: list[str], root_path: str, build_model=build_basicsr_model) -> None:
    """Train as ``basicsr-snn-train ARGV`` does, writing ``experiments/`` (and ``tb_logger/``) under ``root_path``.

    ``build_model(opt)`` builds the model (BasicSR's registry by default; a test may wrap it). An error before
    the first checkpoint removes the run folders this call created, and says so in the error's notes.
    """
    folders, lock = RunFolders(), None
    try:
        opt, opt_file = parse_run_options(argv, root_path)
        lock = Path(opt['path']['experiments_root']) / experiment_lock.LOCK_NAME
        resume_state = load_resume_state(opt)
        if resume_state is None and opt['rank'] == 0:
            folders.make(opt)
        copy_opt_file(opt_file, opt['path']['experiments_root'])
        with run_logger(opt) as logger:
            _train(opt, resume_state, build_model, logger)
    except Exception as error:
        for line in folders.remove_unused():
            error.add_note(f'basicsr-snn-train: {line}')
        raise
    finally:
        if lock is not None:
            experiment_lock.release(lock)


def test(argv: list[str], root_path: str, build_model=build_basicsr_model) -> None:
    """Test as ``basicsr-snn-test ARGV`` does (BasicSR's ``test.py``), writing ``results/<name>/`` under ``root_path``."""
    folders = RunFolders()
    try:
        opt, _ = parse_run_options(argv, root_path, is_train=False)
        if opt['rank'] == 0:
            folders.make(opt)
        with run_logger(opt) as logger:
            logger.info(get_env_info())
            logger.info(options_as_yaml(opt))
            test_loaders = []
            for _, dataset_opt in sorted(opt['datasets'].items()):
                test_set = build_dataset(dataset_opt)
                test_loaders.append(build_dataloader(test_set, dataset_opt, num_gpu=opt['num_gpu'], dist=opt['dist'],
                                                     sampler=None, seed=opt['manual_seed']))
                logger.info(f"Number of test images in {dataset_opt['name']}: {len(test_set)}")
            model = build_model(opt)
            for test_loader in test_loaders:
                logger.info(f"Testing {test_loader.dataset.opt['name']}...")
                model.validation(test_loader, current_iter=opt['name'], tb_logger=None, save_img=opt['val']['save_img'])
    except Exception as error:
        for line in folders.remove_unused():
            error.add_note(f'basicsr-snn-test: {line}')
        raise


def _train(opt, resume_state, build_model, logger):
    logger.info(get_env_info())
    logger.info(options_as_yaml(opt))
    tb_logger = init_tb_loggers(opt)
    train_loader, train_sampler, val_loaders, total_iters = create_loaders(opt, logger)
    session = TrainingSession(build_model(opt), opt, len(train_loader))
    try:
        start_iter = 0
        if resume_state:
            session.resume_training(resume_state)
            start_iter = resume_state['iter']
        start_epoch, batches_done = divmod(start_iter, len(train_loader))
        if resume_state:
            logger.info(f'Resuming training from epoch: {start_epoch}, iter: {start_iter}.')
            train_sampler.skip(start_epoch, batches_done * train_loader.batch_size)
        msg_logger = MessageLogger(opt, start_iter, tb_logger)
        prefetcher = make_prefetcher(opt, train_loader, logger)
        logger.info(f'Start training from epoch: {start_epoch}, iter: {start_iter}')
        resumed_random = session.resumed_random_state() if resume_state else None
        epochs = sampler_epochs(train_sampler, prefetcher, start_epoch, resumed_random, batches_done)
        current_iter, validated = train_loop(opt, session, epochs, (start_iter, total_iters), msg_logger,
                                             lambda iteration: validate(opt, session, val_loaders, iteration, tb_logger))
        logger.info('Save the latest model.')
        session.save(epoch=-1, current_iter=-1)
        if opt.get('val') is not None and not validated:
            validate(opt, session, val_loaders, current_iter, tb_logger)
    except Exception as error:
        session.after_crash(error)
        raise
    finally:
        session.close()
        if tb_logger:
            tb_logger.close()


def train_loop(opt, model, epochs, span, msg_logger, validate_at):
    """BasicSR's loop from iteration ``span[0]`` to ``span[1]`` over ``epochs``, (epoch, batches) pairs: per
    iteration the lr update, the step, ``msg_logger`` (BasicSR's ``MessageLogger`` or anything called like it) every
    ``logger.print_freq``, ``model.save`` every ``logger.save_checkpoint_freq`` and ``validate_at(iteration)`` every
    ``val.val_freq`` (never without ``val``). The training run (:func:`train`), the gap study and the Pareto sweep
    (:mod:`basicsr_snn.benchmarks`) all train through it. Returns the last iteration and whether it was validated."""
    data_timer, iter_timer = AvgTimer(), AvgTimer()
    start_time = time.time()
    current_iter, total_iters = span
    print_freq, save_freq = opt['logger']['print_freq'], opt['logger']['save_checkpoint_freq']
    val_freq = opt['val']['val_freq'] if opt.get('val') is not None else None
    validated = False
    for epoch, batches in epochs:
        if current_iter >= total_iters:
            break
        for train_data in batches:
            data_timer.record()
            current_iter += 1
            model.update_learning_rate(current_iter, warmup_iter=opt['train'].get('warmup_iter', -1))
            model.feed_data(train_data)
            model.optimize_parameters(current_iter)
            iter_timer.record()
            if current_iter == 1:
                msg_logger.reset_start_time()
            if current_iter % print_freq == 0:
                msg_logger({'epoch': epoch, 'iter': current_iter, 'lrs': model.get_current_learning_rate(),
                            'time': iter_timer.get_avg_time(), 'data_time': data_timer.get_avg_time(),
                            **model.get_current_log()})
            if current_iter % save_freq == 0:
                get_root_logger().info('Saving models and training states.')
                model.save(epoch, current_iter)
            validated = val_freq is not None and current_iter % val_freq == 0
            if validated:
                validate_at(current_iter)
            if current_iter >= total_iters:
                break
            data_timer.start()
            iter_timer.start()
    consumed = str(datetime.timedelta(seconds=int(time.time() - start_time)))
    get_root_logger().info(f'End of training. Time consumed: {consumed}')
    return current_iter, validated


def sampler_epochs(sampler, prefetcher, start_epoch, random_of_start=None, batches_done=0):
    """The epochs of the training run's loader from ``start_epoch`` on, as (epoch, batches) pairs.

    Resumed, the random state of the resumed iteration (``random_of_start``, with ``batches_done`` batches of its
    epoch done) is restored where the uninterrupted run held it: before the epoch's loader iterator draws its seed
    at an epoch's start, after it mid-epoch (the uninterrupted run drew that seed at the epoch's start)."""
    for epoch in itertools.count(start_epoch):
        sampler.set_epoch(epoch)
        if random_of_start is not None and batches_done == 0:
            random_state.restore(random_of_start)
        prefetcher.reset()
        if random_of_start is not None and batches_done:
            random_state.restore(random_of_start)
        random_of_start = None
        first = prefetcher.next()
        if first is None:
            raise ValueError(f"datasets.train: epoch {epoch} gives no batch (check dataset_enlarge_ratio, "
                             'batch_size_per_gpu and the number of images)')
        yield epoch, itertools.chain([first], iter(prefetcher.next, None))


def train_in_process(opt, batches, msg_logger, validate_at, log=print, on_resume=None,
                     build_model=build_basicsr_model):
    """Train ``opt``'s model on ``batches`` as the benchmarks do, with the training run's loop (:func:`train_loop`),
    session and checkpoints: BasicSR's ``models/`` and ``training_states/`` of ``path.experiments_root``, saved
    every ``logger.save_checkpoint_freq`` and on a stop signal or a crash; a rerun resumes from the newest complete
    one with the batches an uninterrupted run would have seen.

    Args:
        opt (dict): Options of :func:`basicsr_snn.utils.run_options.in_process_options`.
        batches (SeededBatches): The training batches (:class:`basicsr_snn.benchmarks.protocol.SeededBatches`).
        msg_logger: Called as BasicSR's ``MessageLogger`` every ``logger.print_freq`` iterations.
        validate_at: ``validate_at(model, iteration)`` every ``val.val_freq`` iterations, at the last one, and at the
            resumed one (a stop may have come before it finished), under the training's random state.
        log: Called with the resume message.
        on_resume: Called with the resumed iteration, before anything is validated or logged after it.
        build_model: Builds the model from ``opt`` (BasicSR's registry).

    Returns:
        The trained model.
    """
    total = len(batches)
    for folder in ('models', 'training_states'):
        os.makedirs(opt['path'][folder], exist_ok=True)
    resume_state = load_resume_state(opt)
    set_random_seed(opt['manual_seed'])
    model = build_model(opt)
    session = TrainingSession(model, opt, total)
    val_freq = (opt.get('val') or {}).get('val_freq')

    def validate_now(iteration):
        with random_state.preserved():
            validate_at(model, iteration)

    try:
        start = 0
        if resume_state:
            session.resume_training(resume_state)
            start = resume_state['iter']
            log(f'[{opt["name"]}] resuming at iteration {start}/{total}')
            if on_resume is not None:
                on_resume(start)
            random_of_start = session.resumed_random_state()
            if random_of_start is not None:
                random_state.restore(random_of_start)
            if val_freq and start % val_freq == 0:
                validate_now(start)
        _, validated = train_loop(opt, session, [(0, batches.iterate(start))], (start, total), msg_logger,
                                  validate_now)
        if val_freq and not validated:
            validate_now(total)
    except Exception as error:
        session.after_crash(error)
        raise
    finally:
        session.close()
    return model


def validate(opt, model, val_loaders, current_iter, tb_logger):
    """Every validation set, leaving the random-number state to training (:func:`random_state.preserved`)."""
    if len(val_loaders) > 1:
        get_root_logger().warning('Multiple validation datasets are *only* supported by SRModel.')
    with random_state.preserved():
        for val_loader in val_loaders:
            model.validation(val_loader, current_iter, tb_logger, opt['val']['save_img'])


# options -------------------------------------------------------------------------------------------------

def parse_run_options(argv: list[str], root_path: str, is_train: bool = True) -> tuple[dict, str]:
    """BasicSR's ``parse_options`` on ``argv``, then this project's launch and checks: the distributed start
    (gloo on CPU, ``dist_params``), numbers read as numbers, every training option checked in one line.

    Returns the options and the option file."""
    _compat.apply_pipeline_fixes()  # BasicSR's models wrap DDP without CUDA device ids on CPU
    launcher_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    launcher_parser.add_argument('--launcher', default='none')
    known, others = launcher_parser.parse_known_args(normalise_launcher_argv(argv))
    launcher = known.launcher
    previous_argv = sys.argv
    sys.argv = ['basicsr-snn-train', *others, '--launcher', 'none']
    try:
        with contextlib.redirect_stdout(io.StringIO()) if launcher != 'none' else contextlib.nullcontext():
            opt, args = parse_options(root_path, is_train=is_train)  # prints 'Disable distributed.' as launcher none
    except yaml.YAMLError as error:
        raise ValueError(_yaml_error_line(argv[argv.index('-opt') + 1], error)) from error
    finally:
        sys.argv = previous_argv
    opt = read_exponent_numbers(opt)
    for keys, value in _forced_values(args.force_yml):
        section = functools.reduce(lambda options, key: options[key], keys[:-1], opt)
        section[keys[-1]] = value
    opt['root_path'] = root_path
    if launcher != 'none':
        _compat.init_dist(launcher, **_compat.dist_params(opt))
        opt['dist'] = True
        opt['rank'], opt['world_size'] = get_dist_info()
        set_random_seed(opt['manual_seed'] + opt['rank'])
    if is_train:
        check_training_options(opt)
    return opt, args.opt


def normalise_launcher_argv(argv):
    """Make a command line from any torch launcher readable by BasicSR's argument parser.

    ``torch.distributed.launch`` passes ``--local-rank=N`` where BasicSR expects ``--local_rank``.
    Under torchrun (WORLD_SIZE > 1) a missing ``--launcher`` would start WORLD_SIZE independent
    runs that archive each other's experiment folders, so the pytorch launcher is inferred.
    """
    argv = [arg.replace('--local-rank', '--local_rank', 1) if arg.startswith('--local-rank') else arg
            for arg in argv]
    world_size = int(os.environ.get('WORLD_SIZE', 1))
    has_launcher = any(arg == '--launcher' or arg.startswith('--launcher=') for arg in argv)
    if world_size > 1 and not has_launcher:
        print(f'WORLD_SIZE={world_size}: started by a distributed launcher; using --launcher pytorch.', flush=True)
        argv = argv + ['--launcher', 'pytorch']
    return argv


def _forced_values(entries):
    """``--force_yml`` entries as (keys, value), the value read as YAML reads it (BasicSR keeps ``1e3`` and
    ``-2`` as strings) and ``none`` as None, as BasicSR reads it."""
    for entry in entries or ():
        keys, text = (part.strip() for part in entry.split('=', 1))
        value = None if text.lower() == 'none' else read_exponent_numbers(yaml.safe_load(text))
        yield keys.split(':'), value


def _yaml_error_line(path, error):
    """``FILE:LINE:COLUMN: not valid YAML: PROBLEM`` for a YAML syntax error in the option file ``path``."""
    mark = getattr(error, 'problem_mark', None)
    where = f'{path}:{mark.line + 1}:{mark.column + 1}' if mark is not None else path
    problem = getattr(error, 'problem', None) or str(error).splitlines()[0]
    return f'{where}: not valid YAML: {problem} (fix the option file)'


def options_as_yaml(opt: dict, indent_level: int = 1) -> str:
    """The options as the YAML a user writes (BasicSR's ``dict2str`` prints its own bracketed format)."""

    def plain(value):
        if isinstance(value, dict):
            return {str(key): plain(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        return value

    text = yaml.safe_dump(plain(opt), sort_keys=False, default_flow_style=False, width=100)
    return '\n' + ''.join(' ' * 2 * indent_level + line for line in text.splitlines(True))


# resume and run folders ----------------------------------------------------------------------------------

def load_resume_state(opt: dict) -> dict | None:
    """The training state to resume from (None: a fresh run), independent of the current directory and of CUDA.

    ``--auto_resume`` takes the experiment's newest checkpoint whose files all load, naming the newer files it
    skipped; ``path.resume_state`` names one. Rank 0 takes the experiment's lock first and, resuming, deletes the
    temporary files of checkpoint writers that were killed. The networks the model class declares frozen
    (``frozen_networks``, e.g. the teacher of DistillSNNModel, never checkpointed) keep their checkpoint path
    and key; the others load their own ``net_<x>_<iter>.pth`` (their ``strip_prefix_<x>`` dropped, their
    ``param_key_<x>`` ``params``).
    """
    paths = opt['path']
    if opt['rank'] == 0:
        experiment_lock.check_free(paths['experiments_root'])
    resume_state = None
    if opt['auto_resume'] and osp.isdir(paths['training_states']):
        resume_state, skipped = newest_complete_checkpoint(paths['training_states'], paths['models'])
        for path, reason in skipped:
            print(f'WARNING: --auto_resume skips {path} ({reason}) and the rest of its checkpoint', flush=True)
        if resume_state is not None:
            paths['resume_state'] = osp.join(paths['training_states'], f"{resume_state['iter']}.state")
    if resume_state is None and paths.get('resume_state'):
        if not osp.isfile(paths['resume_state']):
            raise FileNotFoundError(f"path.resume_state: no such file '{paths['resume_state']}'.")
        resume_state = torch.load(paths['resume_state'], map_location='cpu', weights_only=False)
    if resume_state is None:
        return None
    if opt['rank'] == 0:
        experiment_lock.acquire(paths['experiments_root'])
        removed = remove_temporary_files(paths['experiments_root'])  # only the lock's holder writes checkpoints
        if removed:
            print(f'Removed {len(removed)} temporary file(s) of a checkpoint writer that was killed: '
                  f'{[str(path) for path in removed]}', flush=True)
    model_class = MODEL_REGISTRY.get(opt['model_type']) if opt.get('model_type') in MODEL_REGISTRY else None
    frozen = [key for key in getattr(model_class, 'frozen_networks', ()) if key in opt]
    frozen_keys = {f'param_key_{key[len("network_"):]}': paths.get(f'param_key_{key[len("network_"):]}')
                   for key in frozen}
    paths['ignore_resume_networks'] = list(paths.get('ignore_resume_networks') or []) + frozen
    check_resume(opt, resume_state['iter'])
    for key in opt:
        if key.startswith('network_') and key not in frozen:
            label = key[len('network_'):]
            paths.pop(f'strip_prefix_{label}', None)
            if f'param_key_{label}' in paths:
                paths[f'param_key_{label}'] = 'params'
    paths.update({key: value for key, value in frozen_keys.items() if value is not None})
    return resume_state


class RunFolders:
    """The run folders one start creates (BasicSR's layout, only the ``path.*`` values that are folders), and their
    removal after a failed start."""

    def __init__(self):
        self.created = []  # (folder, where an existing folder of that name was moved, whether its parent existed)

    def make(self, opt: dict) -> None:
        """A fresh run's folders; an existing experiment folder is archived under a time-stamped name, as BasicSR
        does. The experiment's lock is taken as soon as its folder exists."""
        if not opt['is_train']:
            self._make_and_rename(opt['path']['results_root'])
            return
        self._make_and_rename(opt['path']['experiments_root'])
        experiment_lock.acquire(opt['path']['experiments_root'])
        for key in RUN_FOLDERS[1:]:
            os.makedirs(opt['path'][key], exist_ok=True)
        if opt['logger'].get('use_tb_logger') and 'debug' not in opt['name']:
            self._make_and_rename(osp.join(opt['root_path'], 'tb_logger', opt['name']))

    def _make_and_rename(self, path):
        archived = None
        if os.path.exists(path):
            archived = f'{path}_archived_{get_time_str()}'
            print(f'{path} exists: moved to {archived}', flush=True)
            os.rename(path, archived)
        parent_existed = os.path.isdir(os.path.dirname(path) or '.')
        os.makedirs(path, exist_ok=True)
        self.created.append((path, archived, parent_existed))

    def remove_unused(self) -> list[str]:
        """Delete the folders made that hold no checkpoint (``*.pth``, ``*.state``) and the parents made with them,
        move any folder they had archived back; return what was done."""
        done = []
        while self.created:
            path, archived, parent_existed = self.created.pop()
            if not os.path.isdir(path) or any(Path(path).rglob('*.pth')) or any(Path(path).rglob('*.state')):
                continue
            experiment_lock.release(Path(path) / experiment_lock.LOCK_NAME)
            shutil.rmtree(path)
            done.append(f'removed {path} (nothing was saved there)')
            if archived and os.path.isdir(archived):
                os.rename(archived, path)
                done.append(f'moved {archived} back to {path}')
            elif not parent_existed and not any(Path(path).parent.iterdir()):
                os.rmdir(Path(path).parent)
        return done


# loggers -------------------------------------------------------------------------------------------------

class _ShortMessagesOnly(logging.Filter):
    """Keeps the console to progress: drops INFO messages of more than QUIET_MAX_LINES lines (the option
    dump, network printouts, the banner), which the log file still receives."""

    def filter(self, record):
        return record.levelno > logging.INFO or str(record.msg).count('\n') < QUIET_MAX_LINES


@contextlib.contextmanager
def run_logger(opt: dict):
    """BasicSR's root logger writing to this run's ``train_<name>_<time>.log`` (``test_...`` for a test) (rank 0; other ranks log errors
    only) until the run ends; its console drops long INFO dumps under ``$BASICSR_SNN_QUIET=1``."""
    logger = get_root_logger()  # BasicSR's: one console handler per process
    log_file = osp.join(opt['path']['log'], f"{'train' if opt['is_train'] else 'test'}_{opt['name']}_{get_time_str()}.log")
    file_handler = None
    previous_level = logger.level
    quiet = _ShortMessagesOnly() if os.environ.get(QUIET_ENV_VAR) == '1' else None
    consoles = [handler for handler in logger.handlers if not isinstance(handler, logging.FileHandler)]
    # the console is this run's stderr (BasicSR's handler keeps the one of the process's first run)
    previous_streams = [handler.stream for handler in consoles]
    for handler in consoles:
        handler.setStream(sys.stderr)
    if opt['rank'] == 0:
        logger.setLevel(logging.INFO)
        file_handler = logging.FileHandler(log_file, 'w')
        file_handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s: %(message)s'))
        logger.addHandler(file_handler)
    else:
        logger.setLevel(logging.ERROR)
    for handler in consoles if quiet else ():
        handler.addFilter(quiet)
    try:
        yield logger
    finally:
        for handler, stream in zip(consoles, previous_streams):
            handler.setStream(stream)
            handler.removeFilter(quiet)
        if file_handler is not None:
            logger.removeHandler(file_handler)
            file_handler.close()
        logger.setLevel(previous_level)


# data ----------------------------------------------------------------------------------------------------

class ResumableSampler(EnlargedSampler):
    """BasicSR's sampler that, resumed mid-epoch, skips the samples the interrupted run consumed in that epoch
    (BasicSR restarts the epoch from its first batch)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped = (None, 0)

    def skip(self, epoch: int, count: int) -> None:
        self.skipped = (epoch, count)

    def __iter__(self):
        epoch, count = self.skipped
        indices = super().__iter__()
        return itertools.islice(indices, count, None) if epoch == self.epoch else indices


def create_loaders(opt: dict, logger):
    """The train loader (unreadable samples replaced, workers ignoring stop signals, a resumable sampler) and the
    validation loaders, with BasicSR's statistics in the log. Returns (train loader, its sampler, validation
    loaders, total iterations)."""
    train_loader, train_sampler, val_loaders = None, None, []
    for phase, dataset_opt in opt['datasets'].items():
        if phase == 'train':
            ratio = dataset_opt.get('dataset_enlarge_ratio', 1)
            train_set = SkipUnreadableSamples(build_dataset(dataset_opt),
                                              dataset_opt.get('max_bad_samples', DEFAULT_MAX_BAD_SAMPLES))
            train_sampler = ResumableSampler(train_set, opt['world_size'], opt['rank'], ratio)
            train_loader = build_dataloader(train_set, dataset_opt, num_gpu=opt['num_gpu'], dist=opt['dist'],
                                            sampler=train_sampler, seed=opt['manual_seed'])
            if train_loader.num_workers > 0:
                train_loader.worker_init_fn = functools.partial(_worker_ignoring_stop_signals,
                                                                train_loader.worker_init_fn)
            per_epoch = math.ceil(len(train_set) * ratio / (dataset_opt['batch_size_per_gpu'] * opt['world_size']))
            total_iters = int(opt['train']['total_iter'])
            logger.info('Training statistics:'
                        f'\n\tNumber of train images: {len(train_set)}'
                        f'\n\tDataset enlarge ratio: {ratio}'
                        f'\n\tBatch size per gpu: {dataset_opt["batch_size_per_gpu"]}'
                        f'\n\tWorld size (gpu number): {opt["world_size"]}'
                        f'\n\tRequire iter number per epoch: {per_epoch}'
                        f'\n\tTotal epochs: {math.ceil(total_iters / per_epoch)}; iters: {total_iters}.')
        elif phase.split('_')[0] == 'val':
            val_set = build_dataset(dataset_opt)
            val_loaders.append(build_dataloader(val_set, dataset_opt, num_gpu=opt['num_gpu'], dist=opt['dist'],
                                                sampler=None, seed=opt['manual_seed']))
            logger.info(f'Number of val images/folders in {dataset_opt["name"]}: {len(val_set)}')
        else:
            raise ValueError(f'datasets.{phase}: not a phase; valid: train, val, val_<n>')
    if train_loader is None:
        raise ValueError('datasets.train: missing; a training run needs a train dataset')
    return train_loader, train_sampler, val_loaders, total_iters


def _worker_ignoring_stop_signals(worker_init_fn, worker_id):
    """A train-loader worker must survive a Ctrl-C or SLURM's SIGUSR1 sent to every process, or the main
    process fails at its next batch instead of stopping after saving. (SIGTERM stays fatal: the
    multiprocessing shutdown of workers relies on it.)"""
    for signum in WORKER_IGNORED_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if worker_init_fn is not None:
        worker_init_fn(worker_id)


def make_prefetcher(opt, train_loader, logger):
    prefetch_mode = opt['datasets']['train'].get('prefetch_mode')
    if prefetch_mode is None or prefetch_mode == 'cpu':
        return CPUPrefetcher(train_loader)
    if prefetch_mode == 'cuda':
        if opt['datasets']['train'].get('pin_memory') is not True:
            raise ValueError('datasets.train.prefetch_mode: cuda needs datasets.train.pin_memory: true')
        logger.info(f'Use {prefetch_mode} prefetch dataloader')
        return CUDAPrefetcher(train_loader, opt)
    raise ValueError(f"datasets.train.prefetch_mode: {prefetch_mode!r}; valid: ~, cpu, cuda")
