"""SNNModel: BasicSR's SRModel made safe for spiking networks (spikingjelly neuron state)."""
import inspect
import math
import time
from collections import OrderedDict
from contextlib import nullcontext
from os import path as osp

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.base_model import BaseModel
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, imwrite
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY
from spikingjelly.activation_based import functional

from basicsr_snn import _compat
from basicsr_snn.analysis import FiringRateMonitor
from basicsr_snn.evaluation import evaluate
from basicsr_snn.models import log_messages, preflight
from basicsr_snn.models.mixed_precision import MixedPrecision
from basicsr_snn.models.training_guard import (NON_FINITE_GRADIENT, LossGuard, TrainingDiverged,
                                               check_grad_clip_norm)
from basicsr_snn.utils.checkpoint import DEFAULT_PARAM_KEY, atomic_save, load_weights, state_dict_for_saving
from basicsr_snn.utils.checks import check_keys, named_errors
from basicsr_snn.utils.hooks import evaluating


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
class SNNModel(SRModel):
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

    def load_pretrained_g(self, load_path):
        """Load ``path.pretrain_network_g`` (key ``path.param_key_g``) into net_g."""
        path_opt = self.opt['path']
        self.load_network(self.net_g, load_path, path_opt.get('strict_load_g', True),
                          path_opt.get('param_key_g', DEFAULT_PARAM_KEY), key_chosen='param_key_g' in path_opt,
                          strip_prefix=path_opt.get('strip_prefix_g'))

    def load_network(self, net, load_path, strict=True, param_key=DEFAULT_PARAM_KEY, key_chosen=False,
                     option_key='path.pretrain_network_g', strip_prefix=None):
        """BasicSR's loader, replaced by :func:`basicsr_snn.utils.checkpoint.load_weights`.

        With ``strict_load_g: false`` every tensor whose name and shape match is loaded and the log
        names the others: a trained ``SpikerIRReLU`` twin initialises its ``SpikerIR`` student this
        way (only the T-dependent temporal-attention weights differ). No match at all is an error.
        A key not chosen by the user falls back to the other of ``params`` / ``params_ema``, so a
        checkpoint trained without EMA also initialises ``net_g_ema``.
        """
        net = self.get_bare_model(net)
        report = load_weights(net, load_path, param_key, strict, key_chosen=key_chosen,
                              option_key=option_key,
                              network_label=f'network_g ({type(net).__name__})', strict_key='path.strict_load_g',
                              key_option='path.param_key_g', strip_prefix=strip_prefix,
                              prefix_option='path.strip_prefix_g')
        message = f'Loaded {type(net).__name__} from {load_path} [{report.param_key}]: {report.summary()}'
        logger = get_root_logger()
        (logger.warning if report.not_loaded else logger.info)(message)

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
        self.grad_clip_norm = check_grad_clip_norm(train_opt.get('grad_clip_norm'))
        self.amp = MixedPrecision.from_options(train_opt.get('amp'), self.device, 'train.amp')
        self.last_checkpoint = None
        super().init_training_settings()
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
        """Average the parameters (BasicSR) and copy the buffers, e.g. BN running statistics."""
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
        started = time.time()
        self._optimize(current_iter)
        if not self._first_step_logged:
            # BasicSR's first progress line waits for print_freq iterations: say at once that training runs
            self._first_step_logged = True
            print_freq = (self.opt.get('logger') or {}).get('print_freq', 1)
            get_root_logger().info(f'Iteration {current_iter} done in {time.time() - started:.1f} s (a first step '
                                   f'includes compiling the fused neuron kernel, if used); progress every '
                                   f'{print_freq} iterations.')

    def _optimize(self, current_iter):
        """One step, with one host sync: the loss guard's decision (:meth:`LossGuard.check`), which also agrees
        on the numbers of :attr:`step_flag_source` over the ranks."""
        bare_net = self.get_bare_model(self.net_g)
        logs_rate = self._logs_at(current_iter) and bool(self._spike_monitor.targets)
        monitor = self._spike_monitor if self.cri_rate is not None or logs_rate else None
        self.optimizer_g.zero_grad()
        # a skipped step must not leave its batch in the running statistics (BN) either
        statistics = [(buffer, buffer.clone()) for buffer in running_statistics(bare_net).values()]
        with self.amp.autocast():
            with monitor if monitor is not None else nullcontext():
                self.forward_student()
            l_total, loss_dict = self.compute_losses(current_iter)
        # back-propagated even when the loss is not finite (its step is skipped), so that one check decides
        self.amp.backward(l_total, self.optimizer_g)
        host_values = self.step_flag_source() if self.step_flag_source is not None else ()
        problem, self.agreed_step_flags = self.loss_guard.check(l_total, self._gradient_norm(), host_values)
        self.step_cancelled = self.step_cancelled_by is not None and self.step_cancelled_by(self.agreed_step_flags)
        if problem is None and not self.step_cancelled:
            self.amp.step(self.optimizer_g)
            self.loss_guard.accept(l_total)
        else:
            overflow = problem == NON_FINITE_GRADIENT and self.amp.overflow_is_the_scales() and not self.step_cancelled
            scale = self.amp.scale()
            self.amp.skip(overflow)
            self.optimizer_g.zero_grad()
            with torch.no_grad():
                for buffer, saved in statistics:
                    buffer.copy_(saved)
            if overflow:  # GradScaler's routine back-off, not a bad step
                get_root_logger().info(f'Iteration {current_iter}: fp16 gradients overflowed; step skipped, loss '
                                       f'scale {scale:g} -> {self.amp.scale():g} (train.amp).')
            elif not self.step_cancelled:
                self.loss_guard.skip(current_iter, problem, loss_dict, self._last_checkpoint_hint())
        functional.reset_net(bare_net)
        if logs_rate:
            loss_dict['firing_rate'] = monitor.mean_rate_tensor().detach().float()
        self._spike_monitor.reset()
        self._unreduced_log = OrderedDict((key, value.detach() if torch.is_tensor(value) else value)
                                          for key, value in loss_dict.items())
        if self.ema_decay > 0 and not self.step_cancelled:
            self.model_ema(decay=self.ema_decay)

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

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        """BasicSR's ``net_<label>_<iter>.pth``, written atomically and never from non-finite weights."""
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        iteration = 'latest' if current_iter == -1 else current_iter
        path = osp.join(self.opt['path']['models'], f'{net_label}_{iteration}.pth')
        try:
            checkpoint = {key: state_dict_for_saving(self.get_bare_model(n)) for n, key in zip(nets, keys)}
        except ValueError as error:
            raise TrainingDiverged(f'Iteration {current_iter}: {error} ({path}). ' + self._last_checkpoint_hint())
        atomic_save(checkpoint, path)

    @master_only
    def save_training_state(self, epoch, current_iter):
        """BasicSR's ``training_states/<iter>.state`` with the loss guard's state, written atomically; it completes a
        checkpoint."""
        if current_iter == -1:
            return
        state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers], 'loss_guard': self.loss_guard.state_dict()}
        atomic_save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))
        self.last_checkpoint = (current_iter, osp.join(self.opt['path']['models'], f'net_g_{current_iter}.pth'))

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        if 'loss_guard' in resume_state:  # absent from states saved before it was kept
            self.loss_guard.load_state_dict(resume_state['loss_guard'])
        iteration = resume_state['iter']
        self.last_checkpoint = (iteration, osp.join(self.opt['path']['models'], f'net_g_{iteration}.pth'))

    def _last_checkpoint_hint(self):
        """The checkpoint a diverged run continues from: checkpoints are only written from healthy weights
        (:class:`basicsr_snn.training_session.TrainingSession`), so the last one saved or resumed."""
        if self.last_checkpoint is None:
            return 'No healthy checkpoint was saved in this run: rerun from the beginning.'
        return (f'The last healthy checkpoint is {self.last_checkpoint[1]} (iteration {self.last_checkpoint[0]}); '
                f'--auto_resume continues from it.')

    def _gradient_norm(self):
        """The norm of all gradients of optim_g (a tensor), which are clipped to ``train.grad_clip_norm`` if set and
        left untouched if not."""
        parameters = [p for group in self.optimizer_g.param_groups for p in group['params'] if p.grad is not None]
        if self.grad_clip_norm is None:
            return torch.nn.utils.get_total_norm([p.grad for p in parameters])
        return torch.nn.utils.clip_grad_norm_(parameters, self.grad_clip_norm)

    def _logs_at(self, current_iter):
        """True on the iterations whose log_dict BasicSR prints (the same on every rank)."""
        print_freq = (self.opt.get('logger') or {}).get('print_freq', 1)
        return current_iter % print_freq == 0

    def inference_network(self):
        """The network that test() runs: the EMA network if any, else the bare net_g."""
        return self.net_g_ema if hasattr(self, 'net_g_ema') else self.get_bare_model(self.net_g)

    def test(self):
        with evaluating(self.inference_network()) as net, self.val_amp.autocast():
            self.output = net(self.lq).float()

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """BasicSR's validation with the firing rates of the run, scored by :func:`basicsr_snn.evaluation.evaluate`
        (an image a metric does not apply to is left out of its mean, with a warning; a validation with
        non-finite outputs records ``nan`` and never becomes the best)."""
        self.opt['val'].setdefault('suffix', None)
        dataset_name = dataloader.dataset.opt['name']
        metrics = self.opt['val'].get('metrics') or {}
        if metrics:
            self._initialize_best_metric_results(dataset_name)

        def save(image_name, image):
            imwrite(image, self._validation_image_path(image_name, dataset_name, current_iter))

        # a bar over the images by default when testing, as BasicSR's val.pbar when training
        show_bar = self.opt['val'].get('pbar', not self.opt['is_train'])
        with FiringRateMonitor(self.inference_network()) as monitor:
            result = evaluate(self.restore, dataloader, metrics, on_image=save if save_img else None,
                              progress_bar=dataset_name if show_bar else None)
        if metrics:
            self._record_metrics(dataset_name, result, current_iter, tb_logger)
        self._log_firing_rates(monitor, dataset_name, current_iter, tb_logger)

    def restore(self, data):
        """The restored image of one validation item (the inputs are dropped afterwards, as BasicSR does)."""
        self.feed_data(data)
        self.test()
        output = self.output
        del self.lq, self.output
        if hasattr(self, 'gt'):
            del self.gt
        return output

    def _validation_image_path(self, image_name, dataset_name, current_iter):
        """Where BasicSR saves a validation image."""
        if self.opt['is_train']:
            return osp.join(self.opt['path']['visualization'], image_name, f'{image_name}_{current_iter}.png')
        suffix = self.opt['val']['suffix'] or self.opt['name']
        return osp.join(self.opt['path']['visualization'], dataset_name, f'{image_name}_{suffix}.png')

    def _record_metrics(self, dataset_name, result, current_iter, tb_logger):
        logger = get_root_logger()
        for name, images in result.left_out.items():
            logger.warning(f'Validation {dataset_name}: {name} does not apply to {len(images)} image(s) '
                           f'({", ".join(images[:5])}): no ground truth, or smaller than its window; left out of the '
                           'mean.')
        if result.nonfinite_outputs:
            logger.warning(f'Validation {dataset_name} at iteration {current_iter}: {result.nonfinite_outputs} '
                           f'output(s) were not finite; {", ".join(result.means)} recorded as nan.')
        self.metric_results = dict(result.means)
        for name, mean in result.means.items():
            if math.isfinite(mean):
                self._update_best_metric_result(dataset_name, name, mean, current_iter)
        self._log_validation_metric_values(current_iter, dataset_name, tb_logger)

    @staticmethod
    def _log_firing_rates(monitor, dataset_name, current_iter, tb_logger):
        levels = monitor.rates_by_level()
        if not levels:
            return
        rates = {'mean': monitor.mean_rate(), **levels}
        get_root_logger().info(log_messages.firing_rates_message(dataset_name, rates))
        if tb_logger:
            for level, rate in rates.items():
                tb_logger.add_scalar(f'firing_rate/{dataset_name}/{level}', rate, current_iter)


def running_statistics(network: torch.nn.Module) -> dict:
    """{name: buffer} of the buffers a training forward updates: those of the modules in training mode that
    track running statistics (BatchNorm, InstanceNorm with ``track_running_stats``, spikingjelly's BN)."""
    return {f'{module_name}.{name}' if module_name else name: buffer
            for module_name, module in network.named_modules()
            if module.training and getattr(module, 'track_running_stats', False)
            for name, buffer in module.named_buffers(recurse=False)}


def torch_optimizer_names():
    """Class names usable as ``optim_g.type``."""
    return sorted(name for name, value in vars(torch.optim).items()
                  if isinstance(value, type) and issubclass(value, torch.optim.Optimizer)
                  and value is not torch.optim.Optimizer)
