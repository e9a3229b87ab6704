"""How SNNModel validates and tests: the bare (or EMA) network at rest, BasicSR's metrics through
:func:`basicsr_snn.evaluation.evaluate`, and the firing rates of each validation set."""
import math
from os import path as osp

from basicsr.utils import get_root_logger, imwrite

from basicsr_snn.analysis import FiringRateMonitor
from basicsr_snn.evaluation import evaluate
from basicsr_snn.models import log_messages
from basicsr_snn.utils.hooks import evaluating


class ValidationMixin:
    """BasicSR's ``SRModel`` test and validation methods for :class:`~basicsr_snn.models.snn_model.SNNModel`."""

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
