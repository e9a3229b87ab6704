"""What BasicSR 1.4.2 needs to import and run on today's torch/torchvision, on CPU and under torchrun.

* :func:`install_import_shims`, run by ``import basicsr_snn`` before anything imports ``basicsr``: a
  torchvision module BasicSR imports, a scipy warning. Nothing of BasicSR's behaviour changes.
* :func:`apply_pipeline_fixes`, run by ``basicsr-snn-run`` (BasicSR's own scripts) and by the training
  pipeline: ``init_dist`` with gloo on CPU and a timeout, DDP without CUDA device ids, resume on CPU.

Only compatibility lives here; the project's features are in :mod:`basicsr_snn.pipeline`. Each fix is
idempotent. docs/compatibility.md lists them with their reasons.
"""
import datetime
import functools
import importlib.util
import os
import subprocess
import sys
import types
import warnings
from os import path as osp

import torch

#: minutes a rank waits in a collective before torch.distributed gives up (``dist_params.timeout_minutes``).
#: torch's NCCL default is 10: too short, since rank 0 validates alone (and, distilling, first measures the
#: teacher on every validation set) while the other ranks wait in the next iteration's all-reduce.
DEFAULT_DIST_TIMEOUT_MINUTES = 60


def init_dist(launcher, backend=None, timeout_minutes=DEFAULT_DIST_TIMEOUT_MINUTES, port=None, **kwargs):
    """Initialise torch.distributed for BasicSR's `pytorch` (torchrun) and `slurm` launchers.

    BasicSR's own version hard-codes NCCL and ``RANK % cuda.device_count()``, which raises
    ZeroDivisionError without a GPU. Here the device comes from LOCAL_RANK and the backend is
    ``backend`` (``dist_params.backend`` in the options) or NCCL with CUDA, gloo without; collectives
    wait ``timeout_minutes`` (``dist_params.timeout_minutes``, under torchrun) before failing.
    """
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')
    if backend is None:
        backend = 'nccl' if torch.cuda.is_available() else 'gloo'
    if launcher == 'slurm':
        _slurm_environment(port)
    elif launcher != 'pytorch':
        raise ValueError(f"Invalid launcher '{launcher}'; valid choices: none, pytorch, slurm.")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count())
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=timeout_minutes), **kwargs)


def _slurm_environment(port):
    """torchrun's variables from SLURM's (one task per GPU): rank, world size, local rank, and the first node
    of the job as the master (``$MASTER_ADDR`` where given, else ``scontrol``), port ``dist_params.port``,
    ``$MASTER_PORT`` or 29500."""
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    if 'MASTER_ADDR' not in os.environ:
        nodes = subprocess.run(['scontrol', 'show', 'hostnames', os.environ['SLURM_NODELIST']], capture_output=True,
                               text=True, check=True).stdout.split()
        os.environ['MASTER_ADDR'] = nodes[0]
    os.environ['MASTER_PORT'] = str(port or os.environ.get('MASTER_PORT', 29500))


def dist_params(opt: dict) -> dict:
    """``dist_params`` of the options for :func:`init_dist`: ``backend`` (None when absent), ``port`` (slurm)
    and ``timeout_minutes`` (checked)."""
    from basicsr_snn.utils.checks import check_number
    params = opt.get('dist_params') or {}
    timeout = params.get('timeout_minutes', DEFAULT_DIST_TIMEOUT_MINUTES)
    return dict(backend=params.get('backend'), port=params.get('port'),
                timeout_minutes=check_number('dist_params.timeout_minutes', timeout, above=0))


def _dist_params_from_options(argv) -> dict:
    """:func:`dist_params` of the options file named by ``-opt`` in ``argv``."""
    opt = {}
    if '-opt' in argv and argv.index('-opt') + 1 < len(argv):
        import yaml
        with open(argv[argv.index('-opt') + 1]) as f:
            opt = yaml.safe_load(f) or {}
    return dist_params(opt)


def load_resume_state(opt):
    """BasicSR's ``load_resume_state``, which loads the state on the CPU (BasicSR's maps it to CUDA)."""
    from basicsr.utils import check_resume, scandir
    path = opt['path'].get('resume_state')
    states_dir = osp.join('experiments', opt['name'], 'training_states')
    if opt['auto_resume'] and osp.isdir(states_dir):
        iterations = [int(name.split('.state')[0]) for name in scandir(states_dir, suffix='state')]
        path = osp.join(states_dir, f'{max(iterations)}.state') if iterations else None
        opt['path']['resume_state'] = path
    if not path:
        return None
    resume_state = torch.load(path, map_location='cpu', weights_only=False)
    check_resume(opt, resume_state['iter'])
    return resume_state


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
    """What ``import basicsr`` needs, changing no BasicSR behaviour: ``basicsr.data.degradations`` imports a
    torchvision module removed in torchvision 0.17, and ``basicsr.metrics.niqe`` the deprecated
    ``scipy.ndimage.filters`` (an error under ``-W error``)."""
    for message in ('Please import .* from the `scipy.ndimage` namespace', 'Please use .* from the `scipy.ndimage` '
                    'namespace'):
        warnings.filterwarnings('ignore', message=message, category=DeprecationWarning)
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules or importlib.util.find_spec(name) is not None:
        return
    from torchvision.transforms import functional
    sys.modules[name] = types.ModuleType(name)
    sys.modules[name].rgb_to_grayscale = functional.rgb_to_grayscale


def apply_pipeline_fixes(argv=()):
    """Make BasicSR's train/test pipeline run on CPU and under torchrun in this process (``argv``: the command
    line, whose ``-opt`` file gives ``dist_params``). Calling it again changes nothing but the ``dist_params``."""
    install_import_shims()
    import basicsr.train
    from basicsr.models.base_model import BaseModel
    from basicsr.utils import options

    options.init_dist = functools.partial(init_dist, **_dist_params_from_options(list(argv)))
    basicsr.train.load_resume_state = load_resume_state
    BaseModel.model_to_device = model_to_device
