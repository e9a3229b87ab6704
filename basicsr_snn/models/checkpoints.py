"""How SNNModel loads and saves weights and training states: BasicSR's files and names, written atomically,
never from non-finite weights, and loaded with errors that name the option."""
from os import path as osp

from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only

from basicsr_snn.models.training_guard import TrainingDiverged
from basicsr_snn.utils.checkpoint import DEFAULT_PARAM_KEY, atomic_save, load_weights, state_dict_for_saving


class CheckpointsMixin:
    """BasicSR's ``BaseModel`` checkpoint methods for :class:`~basicsr_snn.models.snn_model.SNNModel` (the model
    defines ``loss_guard`` and ``last_checkpoint``)."""

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
