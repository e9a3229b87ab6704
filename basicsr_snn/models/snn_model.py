"""SNNModel: BasicSR's SRModel made safe for spiking networks (spikingjelly neuron state)."""
import inspect
import time
from collections import OrderedDict
from contextlib import nullcontext

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.base_model import BaseModel
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY
from spikingjelly.activation_based import functional

from basicsr_snn import _compat
from basicsr_snn.analysis import FiringRateMonitor
from basicsr_snn.models import preflight
from basicsr_snn.models.checkpoints import CheckpointsMixin
from basicsr_snn.models.guarded_optimizer import GuardedOptimizer
from basicsr_snn.models.mixed_precision import MixedPrecision
from basicsr_snn.models.training_guard import LossGuard, check_grad_clip_norm
from basicsr_snn.models.validation import ValidationMixin
from basicsr_snn.utils.checks import check_keys, named_errors

RATE_OPTION_KEYS = ('type', 'target', 'loss_weight')


def build_network_from_options(opt: dict, key: str) -> torch.nn.Module:
    """Build the arch of ``opt[key]`` (e.g. ``network_g``); errors name the option, e.g. ``network_g.T``.

    An arch that rejects an argument by a message starting with the argument's name (``T must be
    an integer >= 1``) gets that option key as prefix (``network_g.T must be ...``).
    """
    net_opt = opt.get(key)
    if not isinstance(net_opt, dict) or 'type' not in net_opt:
        raise ValueError(f'{key} is missing or has no type: give {key}: {{type: <arch>, ...}}')
    arch_type = net_opt['type']
    if arch_type not in ARCH_REGISTRY:
        raise ValueError(f'{key}.type: no arch named {arch_type!r}; registered: {sorted(ARCH_REGISTRY.keys())}')
    arguments = [name for name in inspect.signature(ARCH_REGISTRY.get(arch_type).__init__).parameters if name != 'self']
    with named_errors(key, arguments, label=f'{key} ({arch_type})'):
        return build_network(net_opt)


@MODEL_REGISTRY.register()
class SNNModel(CheckpointsMixin, ValidationMixin, SRModel):
    """SRModel for spiking (spikingjelly) restoration networks trained without a teacher.

    Same options and checkpoints as BasicSR's ``SRModel`` (``net_g_<iter>.pth`` with ``params``
    and, with EMA, ``params_ema``), plus what a stateful spiking network needs:

    * Neuron state (membrane potentials, which are not in the state dict) is reset with
      ``spikingjelly.activation_based.functional.reset_net`` after every optimizer step and
      before and after every test forward, so an arch that does not reset itself also works.
    * ``train.ema_decay`` > 0: the EMA network averages the parameters and copies the buffers
      (BN running statistics), which BasicSR's EMA leaves at their initial values.
    * One process per GPU: DataParallel (``num_gpu`` > 1 without a launcher) is refused, since its
      replicas would share the neuron state and the recording hooks; use ``torchrun``.
    * Validation and testing run the bare network (or its EMA), never the DDP wrapper, so rank 0
      validates alone without entering a collective buffer broadcast.
    * ``train.optim_g.type``: any optimizer class of ``torch.optim`` (``Adam``, ``AdamW``, ``SGD``,
      ...), with its keyword arguments next to ``type`` and ``lr``.
    * ``val.suffix`` may be omitted when ``val.save_img`` is true.

    What keeps a run from losing work:

    * A step whose total loss is not finite, whose gradient norm is not finite, or whose loss
      diverged (``train.loss_guard``) is skipped (no optimizer step; the BN statistics it touched
      are restored), with a warning; after ``max_skips`` in a row training stops with an error
      naming the iteration, the loss terms and the last checkpoint. Every rank takes the same
      decision. Non-finite weights are never saved; a validation with non-finite outputs
      records ``nan`` and never becomes the best.
    * Checkpoints (``net_g_<iter>.pth``, ``<iter>.state``) are written to a temporary name and
      renamed, so each file is complete or absent.
    * Before training, every dataset is decoded (validation sets entirely) and its channels
      checked against ``network_g`` (see :mod:`basicsr_snn.models.preflight`).
    * Validation leaves SSIM out of the mean for images smaller than its 11x11 window (warned).

    Extra options:
        train.fft_opt (dict, optional): a frequency-domain loss added to ``pixel_opt``, logged as
            ``l_fft``. The paper's task loss L1 + 0.1 * FFT::

                pixel_opt: {type: L1Loss, loss_weight: 1.0, reduction: mean}
                fft_opt: {type: FFTLoss, loss_weight: 0.1}

        train.loss_guard (dict, optional): ``max_skips`` [3], bad steps in a row skipped before
            training stops; ``divergence_ratio`` [1e4], a total loss above this x the lowest one
            so far counts as diverged (``~``: off). See :mod:`.training_guard`.
        train.grad_clip_norm (float | None): clip the gradient norm to this value. Default: ~.
        train.amp (dict | None): mixed precision, ``{dtype: bf16}`` or ``{dtype: fp16}``: the training
            forwards and losses under ``torch.autocast``, fp16 with a ``GradScaler`` whose overflow
            steps are skipped without counting as bad steps; weights and checkpoints stay float32.
            Default: ~ (float32). See :mod:`.mixed_precision`.
        val.amp (dict | None): the same for validation and testing forwards. Default: ~.
        train.rate_opt (dict, optional): a firing-rate budget, ``loss_weight * max(0, rate -
            target)`` on the mean firing rate of the spiking neurons (:class:`FiringRateLoss`;
            ``type`` may be omitted), logged as ``l_rate``. The rates are recorded by hooks during
            the training forward (no second pass)::

                rate_opt: {target: 0.1, loss_weight: 1.0e-2}
        path.strip_prefix_g (str | None): removed from every key of ``pretrain_network_g`` (e.g.
            ``net.`` for a PyTorch Lightning ``.ckpt``, with ``param_key_g: state_dict``); dropped on
            resume, which loads the run's own checkpoints. Default: ~.
        path.strict_load_g (bool): with ``false``, ``pretrain_network_g`` loads every tensor
            whose name and shape match and the log names the rest (twin initialisation: a
            trained ``SpikerIRReLU`` into its ``SpikerIR``); no match at all is an error.

    Logged:
        ``l_rate``: the firing-rate penalty, with ``train.rate_opt``.
        ``firing_rate``: fraction of spiking-neuron outputs that are spikes, measured by hooks
            during the training forward of every ``logger.print_freq``-th iteration (the only
            iterations whose losses are logged), averaged over ranks; absent when the network has
            no spiking neuron. Tensorboard: ``firing_rate``.
        At each validation, per dataset: the mean and per-level firing rates (levels = top-level
            children of the network), in the log and in tensorboard under
            ``firing_rate/<dataset>/<level>``.
    """

    def __init__(self, opt):
        if opt['num_gpu'] > 1 and not opt['dist']:
            # DataParallel's replicas would share the neuron state and the hooks of the firing-rate monitor
            raise ValueError(f'{type(self).__name__} does not support DataParallel (num_gpu: {opt["num_gpu"]} without '
                             'a launcher): start with torchrun --nproc_per_node=N ... --launcher pytorch, or set '
                             'num_gpu: 1')
        BaseModel.__init__(self, opt)
        #: a callable giving numbers (the training session's stop signal, new unreadable files) that each step
        #: maxes over the ranks in its one all-reduce; the result is in ``agreed_step_flags``
        self.step_flag_source = None
        self.agreed_step_flags = []
        #: a callable given ``agreed_step_flags``: True cancels the step on every rank (nothing of it is applied)
        self.step_cancelled_by = None
        self.step_cancelled = False
        self._log_dict, self._unreduced_log = OrderedDict(), None
        self._datasets_checked = False
        self._first_step_logged = False
        self.net_g = self.model_to_device(build_network_from_options(opt, 'network_g'))
        self.val_amp = MixedPrecision.from_options((opt.get('val') or {}).get('amp'), self.device, 'val.amp',
                                                   training=False)
        self.print_network(self.net_g)
        load_path = opt['path'].get('pretrain_network_g')
        if load_path is not None:
            self.load_pretrained_g(load_path)
        if self.is_train:
            self.init_training_settings()

    # DDP that also works on the CPU, without relying on the pipeline fixes being applied
    model_to_device = _compat.model_to_device

    def networks_fed_by_data(self):
        """{option key: network} of the networks that read the data (distillation adds the teacher)."""
        return {'network_g': self.get_bare_model(self.net_g)}

    def check_datasets(self):
        """Before training: every dataset decodes and fits the networks it feeds (see :mod:`.preflight`)."""
        if not self._datasets_checked:
            started = time.time()
            get_root_logger().info('Checking the datasets (every validation image is decoded once)...')
            preflight.check_datasets(self.opt, self.networks_fed_by_data())
            get_root_logger().info(f'Datasets checked in {time.time() - started:.1f} s.')
            self._datasets_checked = True

    def init_training_settings(self):
        self.check_datasets()
        train_opt = self.opt['train']
        self.loss_guard = LossGuard.from_options(train_opt.get('loss_guard'))
        self.amp = MixedPrecision.from_options(train_opt.get('amp'), self.device, 'train.amp')
        self.last_checkpoint = None
        super().init_training_settings()
        self.optim_wrapper = GuardedOptimizer(self.optimizer_g, self.get_bare_model(self.net_g), self.amp,
                                              self.loss_guard, check_grad_clip_norm(train_opt.get('grad_clip_norm')),
                                              self._last_checkpoint_hint)
        fft_opt = train_opt.get('fft_opt')
        self.cri_fft = build_loss(fft_opt).to(self.device) if fft_opt else None
        rate_opt = train_opt.get('rate_opt')
        # one monitor for every step; it keeps the counts' graph when the rates are penalised
        self._spike_monitor = FiringRateMonitor(self.get_bare_model(self.net_g), keep_graph=rate_opt is not None)
        self.cri_rate = self._build_rate_loss(rate_opt)

    def _build_rate_loss(self, rate_opt):
        """``train.rate_opt`` -> a :class:`FiringRateLoss` (or another registered loss of a rate), or None."""
        if rate_opt is None:
            return None
        check_keys('train.rate_opt', rate_opt, RATE_OPTION_KEYS)
        if not self._spike_monitor.targets:
            raise ValueError(f'train.rate_opt: network_g ({type(self.get_bare_model(self.net_g)).__name__}) has no '
                             'spiking neuron whose rate could be penalised; remove train.rate_opt')
        with named_errors('train.rate_opt', ('target', 'loss_weight')):
            return build_loss({'type': 'FiringRateLoss', **rate_opt}).to(self.device)

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        """Any ``torch.optim`` optimizer by class name (BasicSR 1.4.2 knows ``Adam`` only)."""
        optimizer_class = getattr(torch.optim, str(optim_type), None)
        if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, torch.optim.Optimizer)):
            raise ValueError(f'train.optim_g.type: {optim_type!r} is not a torch.optim optimizer; valid: '
                             f'{torch_optimizer_names()}')
        return optimizer_class(params, lr=lr, **kwargs)

    def model_ema(self, decay=0.999):
        """Average the parameters (BasicSR) and copy the buffers, e.g. BN running statistics.

        Not ``torch.optim.swa_utils.AveragedModel(use_buffers=True)``: it averages the buffers too (statistics
        mixed over a thousand steps of changing weights) and wraps the network (``module.`` keys and
        ``n_averaged``), which BasicSR's ``net_g_ema`` and its ``params_ema`` checkpoints do not have."""
        super().model_ema(decay)
        ema_buffers = dict(self.net_g_ema.named_buffers())
        for name, buffer in self.get_bare_model(self.net_g).named_buffers():
            ema_buffers[name].copy_(buffer)

    def forward_student(self):
        """The training forward of ``net_g`` on ``self.lq`` (subclasses record features around it)."""
        self.output = self.net_g(self.lq)

    def compute_losses(self, current_iter):
        """Task losses of ``self.output`` against ``self.gt``: ``(total, OrderedDict of logged terms)``."""
        l_total = 0
        loss_dict = OrderedDict()
        if self.cri_pix:
            loss_dict['l_pix'] = self.cri_pix(self.output, self.gt)
            l_total = l_total + loss_dict['l_pix']
        if self.cri_fft:
            loss_dict['l_fft'] = self.cri_fft(self.output, self.gt)
            l_total = l_total + loss_dict['l_fft']
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            for key, value in (('l_percep', l_percep), ('l_style', l_style)):
                if value is not None:
                    loss_dict[key] = value
                    l_total = l_total + value
        if self.cri_rate is not None:
            loss_dict['l_rate'] = self.cri_rate(self._spike_monitor.mean_rate_tensor())
            l_total = l_total + loss_dict['l_rate']
        return l_total, loss_dict

    def optimize_parameters(self, current_iter):
        """BasicSR's step (forward, losses, backward, step) through :attr:`optim_wrapper`, which skips a bad step on
        every rank; the neurons rest after it."""
        started = time.time()
        logs_rate = self._logs_at(current_iter) and bool(self._spike_monitor.targets)
        monitor = self._spike_monitor if self.cri_rate is not None or logs_rate else nullcontext()
        with self.optim_wrapper.optim_context():
            with monitor:
                self.forward_student()
            l_total, loss_dict = self.compute_losses(current_iter)
        host_values = self.step_flag_source() if self.step_flag_source is not None else ()
        step = self.optim_wrapper.update_params(l_total, loss_dict, current_iter, host_values, self.step_cancelled_by)
        self.agreed_step_flags, self.step_cancelled = step.agreed, step.cancelled
        functional.reset_net(self.get_bare_model(self.net_g))
        if logs_rate:
            loss_dict['firing_rate'] = self._spike_monitor.mean_rate_tensor().detach().float()
        self._spike_monitor.reset()
        self._unreduced_log = OrderedDict((key, value.detach() if torch.is_tensor(value) else value)
                                          for key, value in loss_dict.items())
        if self.ema_decay > 0 and not step.cancelled:
            self.model_ema(decay=self.ema_decay)
        if not self._first_step_logged:
            # BasicSR's first progress line waits for print_freq iterations: say at once that training runs
            self._first_step_logged = True
            print_freq = (self.opt.get('logger') or {}).get('print_freq', 1)
            get_root_logger().info(f'Iteration {current_iter} done in {time.time() - started:.1f} s (a first step '
                                   f'includes compiling the fused neuron kernel, if used); progress every '
                                   f'{print_freq} iterations.')

    @property
    def log_dict(self) -> OrderedDict:
        """The logged values of the last step (losses averaged over the ranks), read from the device only when
        asked for: BasicSR's loop asks every ``logger.print_freq`` iterations, on every rank (the average is a
        collective), so the other steps cost no host sync."""
        if self._unreduced_log is not None:
            values = self._unreduced_log
            reduced = self.reduce_loss_dict({key: value for key, value in values.items() if torch.is_tensor(value)})
            self._log_dict = OrderedDict((key, reduced[key] if key in reduced else value)
                                         for key, value in values.items())
            self._unreduced_log = None
        return self._log_dict

    @log_dict.setter
    def log_dict(self, values):
        self._log_dict, self._unreduced_log = values, None

    def _logs_at(self, current_iter):
        """True on the iterations whose log_dict BasicSR prints (the same on every rank)."""
        print_freq = (self.opt.get('logger') or {}).get('print_freq', 1)
        return current_iter % print_freq == 0

def torch_optimizer_names():
    """Class names usable as ``optim_g.type``."""
    return sorted(name for name, value in vars(torch.optim).items()
                  if isinstance(value, type) and issubclass(value, torch.optim.Optimizer)
                  and value is not torch.optim.Optimizer)
