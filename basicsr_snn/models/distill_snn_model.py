"""DistillSNNModel: H-KD, a spiking student trained on its task and on a frozen ANN teacher's features."""
import math
from os import path as osp

import torch
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY
from torch import nn

from basicsr_snn.distill import (DistillOptions, FeatureAdapter, FeatureRecorder, HintAdapters, HintComparison,
                                 build_comparison_loss)
from basicsr_snn.evaluation import evaluate
from basicsr_snn.models import log_messages, preflight
from basicsr_snn.models.snn_model import SNNModel, build_network_from_options
from basicsr_snn.utils.checkpoint import DEFAULT_PARAM_KEY, load_weights
from basicsr_snn.utils.checks import named_errors
from basicsr_snn.utils.hooks import evaluating

ADAPTERS_LABEL = 'net_adapters'
DEFAULT_PROBE_SIZE = 32
DEFAULT_TEACHER_PSNR = {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}


@MODEL_REGISTRY.register()
class DistillSNNModel(SNNModel):
    """Feature-hint distillation (H-KD) of a frozen teacher into a spiking student.

    Each training iteration, for a batch ``lq (B, C, H, W)``::

        teacher (frozen, eval, no_grad):  lq -> teacher output, teacher features F_k  (hooks)
        student (net_g, multi-step):      lq -> output (mean over T), features S_k    (hooks)
        loss = task(output, gt)                                       # pixel_opt [+ fft_opt]
             + gamma(iter) * ( sum_k w_k * hint_k(adapter_k(S_k), F_k)
                               [+ w_out * output_loss(output, teacher output)] )

    then the step, the neuron reset and the EMA update of :class:`SNNModel`. Student features are
    averaged over time (``reduce: mean``; for a neuron module: its firing rate) or are a neuron's
    membrane potential averaged over time (``reduce: membrane``). ``gamma`` is one schedule over
    the whole distillation term (hints and output term); at ``gamma = 0`` the teacher is not run.
    With ``train.amp`` both forwards, the adapters and the losses run in one ``torch.autocast``
    (the teacher's without gradients).

    Teacher (training only; ``model_type: DistillSNNModel`` in a test file tests the student):
        network_t (dict): the teacher arch, any BasicSR arch (e.g. ``type: Restormer``).
        path.pretrain_network_t (str): its checkpoint; required (see ``allow_random_teacher``).
        path.param_key_t (str | None): key of the state dict in the checkpoint. Default: ``params``,
            falling back to ``params_ema`` when the checkpoint has no ``params`` and the key was not
            set; ``~``: the checkpoint is the state dict itself.
        path.strict_load_t (bool): the checkpoint must match the arch exactly. Default: true.
        path.strip_prefix_t (str | None): removed from every key of the checkpoint, e.g. ``net.``
            for the authors' Lightning ``.ckpt`` files of PromptIR and AdaIR (with
            ``param_key_t: state_dict``). Default: ~.
    The teacher is frozen (``requires_grad`` off, set to eval before every forward), moved to the
    device but never wrapped in DDP, never saved, and left alone by resume (its path and key are
    kept; no ``net_t_<iter>.pth`` is looked for).

    ``train.distill`` options (defaults in brackets)::

        distill:
          hints:                       # [] ; hints and/or output must be given
            - name: dec1               # [student path with '.' -> '_'] ; logged as l_hint_<name>
              student: decoder1        # module path in net_g (required)
              teacher: decoder_level1  # module path in network_t (required)
              loss: {type: MSELoss, loss_weight: 1.0}   # [MSELoss] any registered BasicSR loss
              weight: 1.0              # [1.0] w_k
              reduce: mean             # [mean] mean | membrane | none (student has no time axis)
              teacher_reduce: none     # [none] none | mean (a multi-step teacher, e.g. a SpikerIRReLU twin)
              normalize: none          # [none] none | channel: standardise both features per channel
                                       #   before the loss, so rescaling cannot shrink it (mmrazor's PKD)
              adapter: conv1x1         # [distill.adapter] conv1x1 | none
              resize: bilinear         # [distill.resize] bilinear | bicubic | nearest | area | none
          output:                      # [~] output-level term, logged as l_output_kd
            loss: {type: L1Loss, loss_weight: 1.0}      # [L1Loss]
            weight: 1.0                # [1.0] w_out
          schedule:                    # [constant 0.12] see DistillWeightSchedule
            type: constant             # constant | linear | cosine | step
            gamma: 0.12                # starting weight (the paper's 0.12)
            end: 0.0                   # [0] final weight of linear / cosine / step
            until_iter: ~              # [train.total_iter] end of the decay; required for step
          adapter: conv1x1             # [conv1x1] default adapter of every hint
          resize: bilinear             # [bilinear] default resize of every hint
          probe_shape: ~               # [C of net_g's first conv, 32, 32] input of the dry run
          allow_random_teacher: false  # [false] allow path.pretrain_network_t: ~ (tests, debugging)

    Adapters: at construction one dry run of both networks on a zero ``(1, *probe_shape)`` input
    (eval mode, RNG untouched) gives each hint's feature shapes; a 1x1 conv is created where the
    channels differ and a resize is applied where the sizes differ (see :class:`FeatureAdapter`).
    They are trained by ``optim_g`` (a second parameter group, so the log shows two learning
    rates), wrapped in DDP of their own, saved as ``net_adapters_<iter>.pth`` (key ``params``)
    next to ``net_g_<iter>.pth`` and restored on resume. ``net_g`` checkpoints stay plain student
    checkpoints, loadable by SNNModel / SRModel for testing.

    Recipes beyond the paper's (each measured by ``scripts/bench_distill.py``):

    * normalised hints: ``normalize: channel`` standardises both features per channel before the
      loss, so an adapter cannot shrink it by rescaling; ``loss: {type: CosineFeatureLoss}``
      compares directions only;
    * a twin teacher: a trained ``SpikerIRReLU`` as ``network_t``, hints under the same module
      paths with ``teacher_reduce: mean`` (its features are ``(1, B, C, H, W)`` sequences); the
      channels match, so no adapter is created;
    * twin initialisation (an ``SNNModel`` option): ``path.pretrain_network_g`` = the twin's
      checkpoint with ``strict_load_g: false``;
    * membrane hints: a neuron module as ``student`` with ``reduce: membrane``.

    Logged every ``logger.print_freq``: ``l_pix``, ``l_fft``, ``l_rate`` (with ``train.rate_opt``, see
    :class:`SNNModel`), ``l_hint_<name>`` (``w_k * hint_k``,
    before gamma), ``l_output_kd`` (``w_out * output_loss``, before gamma), ``distill_weight``
    (gamma), ``firing_rate``. At the first validation of each dataset: ``Teacher PSNR on <dataset>:
    xx.xx dB`` (with the first ``calculate_psnr`` metric of ``val.metrics``, else crop_border 0),
    tensorboard ``metrics/<dataset>/teacher_psnr``.

    ``frozen_networks``: ``--auto_resume`` keeps ``network_t``'s checkpoint path and key (BasicSR's
    resume would look for a ``net_t_<iter>.pth`` that is never written).

    Not supported: DataParallel (``num_gpu`` > 1 without a distributed launcher), whose replicas
    would each record features; refused by :class:`SNNModel`, use ``torchrun ... --launcher pytorch``.
    """

    frozen_networks = ('network_t', )

    def init_training_settings(self):
        self.distill_opt = DistillOptions.from_train_options(self.opt['train'])
        self.distill_schedule = self.distill_opt.schedule
        self.cri_hints = {}
        for hint in self.distill_opt.hints:
            with named_errors(f'{hint.option_key}.loss'):
                self.cri_hints[hint.name] = HintComparison(build_comparison_loss(hint.loss),
                                                           hint.normalize).to(self.device)
        output_term = self.distill_opt.output
        self.cri_output_kd = None
        if output_term:
            with named_errors(f'{output_term.option_key}.loss'):
                self.cri_output_kd = build_comparison_loss(output_term.loss).to(self.device)
        self.net_t = self._build_teacher()
        self.check_datasets()
        self.student_recorder = FeatureRecorder(self.get_bare_model(self.net_g))
        self.teacher_recorder = FeatureRecorder(self.net_t)
        for hint in self.distill_opt.hints:
            with named_errors(f'{hint.option_key}.student'):
                self.student_recorder.add(hint.name, hint.student, hint.reduce)
            with named_errors(f'{hint.option_key}.teacher'):
                self.teacher_recorder.add(hint.name, hint.teacher, hint.teacher_reduce)
        adapters = self._build_adapters().to(self.device)
        get_root_logger().info(f'Distillation weight: {self.distill_schedule}')
        # DDP refuses a module without trainable parameters (all adapters identities)
        self.net_adapters = self.model_to_device(adapters) if adapters.has_parameters() else adapters
        self._teacher_psnr_datasets = set()
        super().init_training_settings()

    def networks_fed_by_data(self):
        return dict(super().networks_fed_by_data(), network_t=self.net_t)

    def _build_teacher(self):
        """network_t, loaded from path.pretrain_network_t and frozen, on the device (not DDP)."""
        if 'network_t' not in self.opt:
            raise ValueError('network_t is missing: DistillSNNModel needs a teacher arch, e.g. network_t: '
                             '{type: Restormer, ...}, and its checkpoint in path.pretrain_network_t')
        net_t = build_network_from_options(self.opt, 'network_t')
        load_path = self.opt['path'].get('pretrain_network_t')
        logger = get_root_logger()
        if load_path is None:
            if not self.distill_opt.allow_random_teacher:
                raise ValueError('path.pretrain_network_t is missing: give the trained teacher\'s checkpoint (or set '
                                 'train.distill.allow_random_teacher: true to distill from an untrained teacher)')
            logger.warning('Distilling from an untrained teacher (train.distill.allow_random_teacher: true).')
        else:
            self._load_teacher(net_t, load_path)
        net_t.requires_grad_(False)
        net_t.eval()
        logger.info(f'Teacher: {type(net_t).__name__} with {sum(p.numel() for p in net_t.parameters()):,d} '
                    f'parameters (frozen).')
        return net_t.to(self.device)

    def _load_teacher(self, net_t, load_path):
        path_opt = self.opt['path']
        strict = path_opt.get('strict_load_t', True)
        report = load_weights(net_t, load_path, path_opt.get('param_key_t', DEFAULT_PARAM_KEY), strict,
                              key_chosen='param_key_t' in path_opt, option_key='path.pretrain_network_t',
                              network_label=f'network_t ({type(net_t).__name__})',
                              strict_key='path.strict_load_t', key_option='path.param_key_t',
                              strip_prefix=path_opt.get('strip_prefix_t'), prefix_option='path.strip_prefix_t')
        get_root_logger().info(f'Loaded teacher {type(net_t).__name__} from {load_path} [{report.param_key}]' +
                               (f'; not loaded: {list(report.not_loaded)}' if report.not_loaded else ''))

    def _probe_shape(self, student):
        if self.distill_opt.probe_shape is not None:
            return self.distill_opt.probe_shape
        first_conv = next((m for m in student.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
        if first_conv is None:
            raise ValueError('train.distill.probe_shape: cannot infer the input channels of net_g (no conv layer); '
                             'give probe_shape: [channels, height, width]')
        return first_conv.in_channels, DEFAULT_PROBE_SIZE, DEFAULT_PROBE_SIZE

    def _build_adapters(self):
        """Dry-run both networks once to learn each hint's shapes, then build the adapters."""
        student = self.get_bare_model(self.net_g)
        preflight.check_same_input_channels(self.opt, self.networks_fed_by_data())
        probe = torch.zeros(1, *self._probe_shape(student), device=self.device)
        rng_devices = [torch.cuda.current_device()] if self.device.type == 'cuda' else []
        with torch.random.fork_rng(devices=rng_devices), evaluating(student), evaluating(self.net_t):
            with self.student_recorder:
                student_output = student(probe)
            with self.teacher_recorder:
                teacher_output = self.net_t(probe)
        if self.distill_opt.output:
            preflight.check_output_shapes(self.opt, student_output, teacher_output, self.distill_opt.output.option_key)
        if any(not key.startswith('train') for key in self.opt.get('datasets') or {}):
            preflight.check_output_shapes(self.opt, student_output, teacher_output, 'the teacher PSNR of validation')
        adapters = HintAdapters()
        logger = get_root_logger()
        for hint in self.distill_opt.hints:
            student_shape = tuple(self.student_recorder.features[hint.name].shape)
            teacher_shape = tuple(self.teacher_recorder.features[hint.name].shape)
            with named_errors(hint.option_key):
                adapters[hint.name] = FeatureAdapter(student_shape, teacher_shape, hint.adapter, hint.resize)
            logger.info(f'Hint {hint.name}: student {hint.student} {student_shape} -> teacher {hint.teacher} '
                        f'{teacher_shape}, adapter: {adapters[hint.name].proj}')
        self.student_recorder.clear()
        self.teacher_recorder.clear()
        return adapters

    def adapters_have_parameters(self):
        return self.get_bare_model(self.net_adapters).has_parameters()

    def setup_optimizers(self):
        super().setup_optimizers()
        if self.adapters_have_parameters():
            self.optimizer_g.add_param_group({'params': list(self.net_adapters.parameters())})

    def forward_student(self):
        with self.student_recorder:
            super().forward_student()

    def compute_losses(self, current_iter):
        l_total, loss_dict = super().compute_losses(current_iter)
        gamma = self.distill_schedule(current_iter)
        loss_dict['distill_weight'] = gamma  # a number of the host: logged as it is, never copied to the device
        if gamma > 0:
            l_total = l_total + gamma * self._distillation_loss(loss_dict)
        self.student_recorder.clear()
        return l_total, loss_dict

    def _distillation_loss(self, loss_dict):
        """Run the teacher and return the unscaled distillation term; log its parts in loss_dict."""
        self.net_t.eval()  # frozen: whoever switched it to training, it stays in eval mode
        with evaluating(self.net_t), self.teacher_recorder:
            teacher_output = self.net_t(self.lq)
        teacher_features = self.teacher_recorder.features
        terms = []
        if self.distill_opt.hints:
            adapted = self.net_adapters(self.student_recorder.features, teacher_features)
            for hint in self.distill_opt.hints:
                term = hint.weight * self.cri_hints[hint.name](adapted[hint.name], teacher_features[hint.name])
                loss_dict[hint.log_key] = term
                terms.append(term)
        if self.cri_output_kd is not None:
            loss_dict['l_output_kd'] = self.distill_opt.output.weight * self.cri_output_kd(self.output, teacher_output)
            terms.append(loss_dict['l_output_kd'])
        self.teacher_recorder.clear()
        return sum(terms)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        dataset_name = dataloader.dataset.opt['name']
        if self.is_train and dataset_name not in self._teacher_psnr_datasets:
            self._teacher_psnr_datasets.add(dataset_name)
            self._log_teacher_psnr(dataloader, dataset_name, current_iter, tb_logger)
        super().nondist_validation(dataloader, current_iter, tb_logger, save_img)

    def _log_teacher_psnr(self, dataloader, dataset_name, current_iter, tb_logger):
        """The teacher's PSNR on a validation set (with ground truth): the ceiling the student aims at."""
        metrics = (self.opt.get('val') or {}).get('metrics') or {}
        psnr_opt = next((m for m in metrics.values() if m.get('type') == 'calculate_psnr'), DEFAULT_TEACHER_PSNR)

        def restore(data):
            with evaluating(self.net_t), self.val_amp.autocast():
                return self.net_t(data['lq'].to(self.device)).float()

        psnr = evaluate(restore, dataloader, {'psnr': psnr_opt}).means['psnr']
        if math.isnan(psnr):
            return
        get_root_logger().info(log_messages.TEACHER_PSNR.format(dataset=dataset_name, psnr=psnr))
        if tb_logger:
            tb_logger.add_scalar(f'metrics/{dataset_name}/teacher_psnr', psnr, current_iter)

    def save(self, epoch, current_iter):
        if self.adapters_have_parameters():
            self.save_network(self.net_adapters, ADAPTERS_LABEL, current_iter)
        super().save(epoch, current_iter)

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        if not self.adapters_have_parameters():
            return
        load_path = osp.join(self.opt['path']['models'], f'{ADAPTERS_LABEL}_{resume_state["iter"]}.pth')
        if not osp.isfile(load_path):
            raise FileNotFoundError(f'Resuming at iteration {resume_state["iter"]} needs the hint adapters saved with '
                                    f'it: no such file {load_path!r}')
        self.load_network(self.net_adapters, load_path, strict=True, param_key='params', key_chosen=True,
                          option_key=f'resume: {ADAPTERS_LABEL}')
