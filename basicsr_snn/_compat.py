"""Fixes that BasicSR 1.4.2 needs on today's torch/torchvision, on CPU and under torchrun.

Two kinds, applied at two moments:

* :func:`install_import_shims`, run by ``import basicsr_snn`` before anything imports
  ``basicsr``: only what importing BasicSR needs (a torchvision module it imports, a scipy
  warning). Nothing of BasicSR's behaviour changes.
* :func:`apply_pipeline_fixes`, run by this plugin's entry points (``basicsr_snn.train``,
  ``basicsr_snn.test``, ``basicsr_snn.run``) before BasicSR's pipeline starts: options, launcher,
  resume, data order, CPU DDP. A program that imports the package for its networks or models
  keeps BasicSR as it is.

Each fix is idempotent and leaves a BasicSR that is already fixed upstream alone. docs/compatibility.md
lists them with their reasons.
"""
import datetime
import functools
import importlib.util
import itertools
import logging
import os
import shutil
import signal
import sys
import types
import warnings
from os import path as osp
from pathlib import Path

import torch

_pipeline_fixes_applied = False
# The training state loaded by load_resume_state, until the train loader exists to align it with.
_resume_state_to_align = None
# Batches per epoch of the train loader, for the epoch of a checkpoint saved by the training session.
_train_loader_length = 1


def _install_functional_tensor_shim():
    """basicsr.data.degradations imports a torchvision module removed in torchvision 0.17."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules or importlib.util.find_spec(name) is not None:
        return
    from torchvision.transforms import functional
    shim = types.ModuleType(name)
    shim.rgb_to_grayscale = functional.rgb_to_grayscale
    sys.modules[name] = shim


def _silence_niqe_scipy_warning():
    """basicsr.metrics.niqe imports the deprecated scipy.ndimage.filters (an error under -W error)."""
    warnings.filterwarnings('ignore', message='Please import .* from the `scipy.ndimage` namespace',
                            category=DeprecationWarning)
    warnings.filterwarnings('ignore', message='Please use .* from the `scipy.ndimage` namespace',
                            category=DeprecationWarning)


#: minutes a rank waits in a collective before torch.distributed gives up (``dist_params.timeout_minutes``).
#: torch's NCCL default is 10: too short, since rank 0 validates alone (and, distilling, first measures the
#: teacher on every validation set) while the other ranks wait in the next iteration's all-reduce.
DEFAULT_DIST_TIMEOUT_MINUTES = 60


def init_dist(launcher, backend=None, timeout_minutes=DEFAULT_DIST_TIMEOUT_MINUTES, **kwargs):
    """Initialise torch.distributed for BasicSR's `pytorch` (torchrun) and `slurm` launchers.

    BasicSR's own version hard-codes NCCL and ``RANK % cuda.device_count()``, which raises
    ZeroDivisionError without a GPU. Here the device comes from LOCAL_RANK and the backend is
    ``backend`` (``dist_params.backend`` in the options) or NCCL with CUDA, gloo without; collectives
    wait ``timeout_minutes`` (``dist_params.timeout_minutes``, under torchrun) before failing.
    """
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from basicsr.utils import dist_util

    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')
    if backend is None:
        backend = 'nccl' if torch.cuda.is_available() else 'gloo'
    if launcher == 'slurm':
        return dist_util._init_dist_slurm(backend, **kwargs)
    if launcher != 'pytorch':
        raise ValueError(f"Invalid launcher '{launcher}'; valid choices: none, pytorch, slurm.")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count())
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=timeout_minutes), **kwargs)


def _dist_params_from_options(argv) -> dict:
    """``dist_params.backend`` (None when absent) and ``dist_params.timeout_minutes`` (checked) of the options
    file named by ``-opt``."""
    params = {}
    if '-opt' in argv and argv.index('-opt') + 1 < len(argv):
        import yaml
        with open(argv[argv.index('-opt') + 1]) as f:
            params = (yaml.safe_load(f) or {}).get('dist_params') or {}
    from basicsr_snn.utils.checks import check_number
    timeout = params.get('timeout_minutes', DEFAULT_DIST_TIMEOUT_MINUTES)
    return dict(backend=params.get('backend'),
                timeout_minutes=check_number('dist_params.timeout_minutes', timeout, above=0))


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


def _wrap_parse_options(original):

    @functools.wraps(original)
    def parse_options(root_path, is_train=True):
        import yaml
        from basicsr.utils import options

        from basicsr_snn.utils.training_option_checks import check_training_options, read_exponent_numbers
        sys.argv[:] = normalise_launcher_argv(sys.argv)
        try:
            options.init_dist = functools.partial(init_dist, **_dist_params_from_options(sys.argv))
            opt, args = original(root_path, is_train)
        except yaml.YAMLError as error:
            raise ValueError(_yaml_error_line(sys.argv[sys.argv.index('-opt') + 1], error)) from error
        opt = read_exponent_numbers(opt)
        if is_train:
            check_training_options(opt)
        return opt, args

    parse_options.__wrapped_by_basicsr_snn__ = True
    return parse_options


def _yaml_error_line(path, error):
    """``FILE:LINE:COLUMN: not valid YAML: PROBLEM`` for a YAML syntax error in the option file ``path``."""
    mark = getattr(error, 'problem_mark', None)
    where = f'{path}:{mark.line + 1}:{mark.column + 1}' if mark is not None else path
    problem = getattr(error, 'problem', None) or str(error).splitlines()[0]
    return f'{where}: not valid YAML: {problem} (fix the option file)'


def _read_numbers(original):
    """``--force_yml key=1e3``: BasicSR keeps ``'1e3'`` (and ``'-2'``) as strings; read them as numbers."""

    @functools.wraps(original)
    def postprocess_yml_value(value):
        result = original(value)
        if isinstance(result, str):
            try:
                number = float(result)
            except ValueError:
                return result
            return int(number) if number.is_integer() and result.lstrip('+-').isdigit() else number
        return result

    postprocess_yml_value.__wrapped_by_basicsr_snn__ = True
    return postprocess_yml_value


def load_resume_state(opt):
    """BasicSR's resume, made independent of the current directory and of CUDA.

    The state is looked up in the experiment's own ``training_states`` folder (BasicSR looks
    relative to the working directory) and loaded on the CPU: optimizers move their state to
    the parameters' device when loaded, so this works on CPU and on any GPU. ``--auto_resume``
    takes the newest checkpoint whose files all load, naming the newer files it skipped. The
    networks that the model class declares frozen (``frozen_networks``, e.g. the teacher
    ``network_t`` of DistillSNNModel, never checkpointed) keep their checkpoint path and key; the
    others load their own ``net_<x>_<iter>.pth``, so their ``strip_prefix_<x>`` is dropped and their
    ``param_key_<x>``, if set, becomes ``params``. Rank 0 takes the experiment's lock, then deletes the
    temporary files of checkpoint writers that were killed.
    """
    import basicsr.train
    from basicsr.utils.registry import MODEL_REGISTRY

    from basicsr_snn.utils import experiment_lock
    from basicsr_snn.utils.checkpoint import newest_complete_checkpoint, remove_temporary_files

    if opt['rank'] == 0:
        experiment_lock.check_free(opt['path']['experiments_root'])
    resume_state_path = opt['path'].get('resume_state')
    resume_state = None
    if opt['auto_resume'] and osp.isdir(opt['path']['training_states']):
        resume_state, skipped = newest_complete_checkpoint(opt['path']['training_states'], opt['path']['models'])
        for path, reason in skipped:
            print(f'WARNING: --auto_resume skips {path} ({reason}) and the rest of its checkpoint', flush=True)
        if resume_state is not None:
            opt['path']['resume_state'] = osp.join(opt['path']['training_states'], f"{resume_state['iter']}.state")
    if resume_state is None and resume_state_path:
        if not osp.isfile(resume_state_path):
            raise FileNotFoundError(f"path.resume_state: no such file '{resume_state_path}'.")
        resume_state = torch.load(resume_state_path, map_location='cpu', weights_only=False)
    if resume_state is None:
        return None
    if opt['rank'] == 0:
        experiment_lock.acquire(opt['path']['experiments_root'])
        # only the lock's holder writes checkpoints: every temporary file left is of a writer that was killed
        removed = remove_temporary_files(opt['path']['experiments_root'])
        if removed:
            print(f'Removed {len(removed)} temporary file(s) of a checkpoint writer that was killed: '
                  f'{[str(path) for path in removed]}', flush=True)
    model_class = MODEL_REGISTRY.get(opt['model_type']) if opt.get('model_type') in MODEL_REGISTRY else None
    frozen = [key for key in getattr(model_class, 'frozen_networks', ()) if key in opt]
    frozen_keys = {f'param_key_{key[len("network_"):]}': opt['path'].get(f'param_key_{key[len("network_"):]}')
                   for key in frozen}
    opt['path']['ignore_resume_networks'] = list(opt['path'].get('ignore_resume_networks') or []) + frozen
    basicsr.train.check_resume(opt, resume_state['iter'])
    for key in opt:
        if key.startswith('network_') and key not in frozen:
            label = key[len('network_'):]
            opt['path'].pop(f'strip_prefix_{label}', None)
            if f'param_key_{label}' in opt['path']:
                opt['path'][f'param_key_{label}'] = 'params'
    opt['path'].update({key: value for key, value in frozen_keys.items() if value is not None})
    global _resume_state_to_align
    _resume_state_to_align = resume_state
    return resume_state


def _wrap_make_exp_dirs(original):
    """A fresh run takes its experiment's lock as soon as BasicSR has created the folder."""

    @functools.wraps(original)
    def make_exp_dirs(opt):
        from basicsr_snn.utils import experiment_lock
        original(opt)
        if opt['is_train'] and opt['rank'] == 0:
            experiment_lock.acquire(opt['path']['experiments_root'])

    make_exp_dirs.__wrapped_by_basicsr_snn__ = True
    return make_exp_dirs


def options_as_yaml(opt: dict, indent_level: int = 1) -> str:
    """The options as the YAML a user writes (BasicSR prints its own bracketed format, and lists of
    mappings as ``OrderedDict([...])``)."""
    import yaml

    def plain(value):
        if isinstance(value, dict):
            return {str(key): plain(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        return value

    text = yaml.safe_dump(plain(opt), sort_keys=False, default_flow_style=False, width=100)
    return '\n' + ''.join(' ' * 2 * indent_level + line for line in text.splitlines(True))


QUIET_ENV_VAR = 'BASICSR_SNN_QUIET'
#: with ``$BASICSR_SNN_QUIET=1``, INFO messages longer than this go to the log file only
QUIET_MAX_LINES = 12


class _ShortMessagesOnly(logging.Filter):
    """Keeps the console to progress: drops INFO messages of more than QUIET_MAX_LINES lines (the option
    dump, network printouts, the banner), which the log file still receives."""

    def filter(self, record):
        return record.levelno > logging.INFO or str(record.msg).count('\n') < QUIET_MAX_LINES


def _quiet_console(original):
    """BasicSR's root logger, whose console handler drops long INFO dumps under ``$BASICSR_SNN_QUIET=1``."""

    @functools.wraps(original)
    def get_root_logger(*args, **kwargs):
        logger = original(*args, **kwargs)
        if os.environ.get(QUIET_ENV_VAR) == '1':
            for handler in logger.handlers:
                if not isinstance(handler, logging.FileHandler) and not any(
                        isinstance(f, _ShortMessagesOnly) for f in handler.filters):
                    handler.addFilter(_ShortMessagesOnly())
        return logger

    get_root_logger.__wrapped_by_basicsr_snn__ = True
    return get_root_logger


#: (folder, where an existing folder of that name was moved) for each run folder this process created
_run_folders = []


def _mkdir_and_rename(path):
    """BasicSR's ``mkdir_and_rename`` (an existing folder is archived under a time-stamped name), which
    says where it moved it and remembers what it created."""
    from basicsr.utils.misc import get_time_str
    archived = None
    if os.path.exists(path):
        archived = f'{path}_archived_{get_time_str()}'
        print(f'{path} exists: moved to {archived}', flush=True)
        os.rename(path, archived)
    parent_existed = os.path.isdir(os.path.dirname(path) or '.')
    os.makedirs(path, exist_ok=True)
    _run_folders.append((path, archived, parent_existed))


def remove_unused_run_folders() -> list[str]:
    """After a failed start: delete the run folders this process created that hold no checkpoint
    (``*.pth``, ``*.state``) and the parent folders created with them (``experiments/``), move any
    folder they had archived back; return what was done."""
    done = []
    while _run_folders:
        path, archived, parent_existed = _run_folders.pop()
        if not os.path.isdir(path) or any(Path(path).rglob('*.pth')) or any(Path(path).rglob('*.state')):
            continue
        shutil.rmtree(path)
        done.append(f'removed {path} (nothing was saved there)')
        if archived and os.path.isdir(archived):
            os.rename(archived, path)
            done.append(f'moved {archived} back to {path}')
        elif not parent_existed and not any(Path(path).parent.iterdir()):
            os.rmdir(Path(path).parent)
    return done


def _wrap_create_train_val_dataloader(original):
    """Resume in the data order of an uninterrupted run.

    BasicSR restarts the saved epoch from its first batch, so a run resumed at the end of epoch
    k trains epoch k's order again and one resumed mid-epoch repeats the batches it already saw.
    The epoch is recomputed from the iteration, and the sampler skips what that epoch consumed.
    """

    @functools.wraps(original)
    def create_train_val_dataloader(opt, logger):
        global _resume_state_to_align, _train_loader_length
        result = original(opt, logger)
        train_loader, train_sampler = result[:2]
        _train_loader_length = len(train_loader)
        if _resume_state_to_align is not None:
            done = _resume_state_to_align['iter']
            epoch, batches_done = divmod(done, len(train_loader))
            _resume_state_to_align['epoch'] = epoch
            train_sampler.resume_skip = (epoch, batches_done * train_loader.batch_size)
            _resume_state_to_align = None
        return result

    return create_train_val_dataloader


def _wrap_build_dataset(original):
    """Training sets replace an unreadable sample by the next readable one (validation sets stay strict)."""

    @functools.wraps(original)
    def build_dataset(dataset_opt):
        from basicsr_snn.data.unreadable_samples import DEFAULT_MAX_BAD_SAMPLES, SkipUnreadableSamples
        dataset = original(dataset_opt)
        if dataset_opt.get('phase') != 'train':
            return dataset
        return SkipUnreadableSamples(dataset, dataset_opt.get('max_bad_samples', DEFAULT_MAX_BAD_SAMPLES))

    return build_dataset


#: signals a DataLoader worker ignores: the main process stops training, then its workers
WORKER_IGNORED_SIGNALS = (signal.SIGINT, signal.SIGUSR1)


def _worker_ignoring_stop_signals(worker_init_fn, worker_id):
    """A train-loader worker must survive a Ctrl-C or SLURM's SIGUSR1 sent to every process, or the main
    process fails at its next batch instead of stopping after saving. (SIGTERM stays fatal: the
    multiprocessing shutdown of workers relies on it.)"""
    for signum in WORKER_IGNORED_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if worker_init_fn is not None:
        worker_init_fn(worker_id)


def _wrap_build_dataloader(original):

    @functools.wraps(original)
    def build_dataloader(dataset, dataset_opt, *args, **kwargs):
        loader = original(dataset, dataset_opt, *args, **kwargs)
        if dataset_opt.get('phase') == 'train' and loader.num_workers > 0:
            loader.worker_init_fn = functools.partial(_worker_ignoring_stop_signals, loader.worker_init_fn)
        return loader

    return build_dataloader


def _wrap_build_model(original):
    """The training loop gets the model through a :class:`basicsr_snn.training_session.TrainingSession`."""

    @functools.wraps(original)
    def build_model(opt):
        from basicsr_snn import training_session
        return training_session.start(original(opt), opt, _train_loader_length)

    return build_model


def _enlarged_sampler_iter(original_iter):

    @functools.wraps(original_iter)
    def __iter__(self):  # noqa: N807
        epoch, skipped = getattr(self, 'resume_skip', (None, 0))
        indices = original_iter(self)
        return itertools.islice(indices, skipped, None) if epoch == self.epoch else indices

    __iter__.__wrapped_by_basicsr_snn__ = True
    return __iter__


def model_to_device(self, net):
    """BasicSR's ``BaseModel.model_to_device`` with DDP that also works on CPU (gloo)."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel

    net = net.to(self.device)
    if self.opt['dist']:
        # find_unused_parameters (BasicSR's option, default false) stays off for every arch of this package:
        # each trainable parameter gets a gradient every step (PromptIR's and AdaIR's release-only layers are
        # frozen), and detecting unused ones would cost a graph traversal per iteration
        device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
        net = DistributedDataParallel(
            net, device_ids=device_ids, find_unused_parameters=self.opt.get('find_unused_parameters', False))
    elif self.opt['num_gpu'] > 1:
        net = DataParallel(net)
    return net


def install_import_shims():
    """What ``import basicsr`` needs on today's torchvision and scipy; changes no BasicSR behaviour."""
    _install_functional_tensor_shim()
    _silence_niqe_scipy_warning()


def apply_pipeline_fixes():
    """Fix BasicSR's train/test pipeline for this process (options, launcher, resume, data order, CPU DDP).

    The entry points call it; calling it again changes nothing.
    """
    global _pipeline_fixes_applied
    if _pipeline_fixes_applied:
        return
    install_import_shims()

    import basicsr.test
    import basicsr.train
    from basicsr.data.data_sampler import EnlargedSampler
    from basicsr.models.base_model import BaseModel
    from basicsr.utils import options

    if not getattr(options.parse_options, '__wrapped_by_basicsr_snn__', False):
        wrapped = _wrap_parse_options(options.parse_options)
        options.parse_options = basicsr.train.parse_options = basicsr.test.parse_options = wrapped
    options.init_dist = init_dist
    if not getattr(options._postprocess_yml_value, '__wrapped_by_basicsr_snn__', False):
        options._postprocess_yml_value = _read_numbers(options._postprocess_yml_value)
    basicsr.train.load_resume_state = load_resume_state
    if not getattr(basicsr.train.make_exp_dirs, '__wrapped_by_basicsr_snn__', False):
        basicsr.train.make_exp_dirs = _wrap_make_exp_dirs(basicsr.train.make_exp_dirs)
    basicsr.train.create_train_val_dataloader = _wrap_create_train_val_dataloader(
        basicsr.train.create_train_val_dataloader)
    from basicsr_snn import training_session
    basicsr.train.build_dataset = _wrap_build_dataset(basicsr.train.build_dataset)
    basicsr.train.build_dataloader = _wrap_build_dataloader(basicsr.train.build_dataloader)
    basicsr.train.build_model = _wrap_build_model(basicsr.train.build_model)
    if not getattr(basicsr.train.train_pipeline, '__wrapped_by_basicsr_snn__', False):
        basicsr.train.train_pipeline = training_session.guarded(basicsr.train.train_pipeline)
    if not getattr(EnlargedSampler.__iter__, '__wrapped_by_basicsr_snn__', False):
        EnlargedSampler.__iter__ = _enlarged_sampler_iter(EnlargedSampler.__iter__)
    BaseModel.model_to_device = model_to_device
    import basicsr.utils.misc
    basicsr.utils.misc.mkdir_and_rename = basicsr.train.mkdir_and_rename = _mkdir_and_rename
    basicsr.train.dict2str = basicsr.test.dict2str = options_as_yaml
    if not getattr(basicsr.train.get_root_logger, '__wrapped_by_basicsr_snn__', False):
        basicsr.train.get_root_logger = basicsr.test.get_root_logger = _quiet_console(basicsr.train.get_root_logger)
    _pipeline_fixes_applied = True
