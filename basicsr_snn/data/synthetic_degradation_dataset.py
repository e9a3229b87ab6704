"""Clean images with synthetic rain streaks or synthetic haze made on the fly."""
from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_snn.data.gaussian_noise_dataset import GaussianNoiseDataset
from basicsr_snn.data.synthetic_degradations import SYNTHETIC_DEGRADATIONS
from basicsr_snn.utils.checks import check_choice, check_int


@DATASET_REGISTRY.register()
class SyntheticDegradationDataset(GaussianNoiseDataset):
    """Clean images (folder, meta_info file or LMDB) degraded by synthetic rain or synthetic haze.

    An offline stand-in for Rain100L / SOTS (see ``basicsr_snn/data/synthetic_degradations.py``);
    its scores are not the papers'. Image sources, cropping, flips, ``color`` and the randomness
    (train: from torch's RNG, seeded per rank and worker; val/test: per image key) are
    ``GaussianNoiseDataset``'s.

    Args:
        opt (dict): ``GaussianNoiseDataset``'s options without ``sigma``, ``sigma_choices``,
            ``clip_noisy`` and ``noise_seed``, plus:
            degradation (str): 'synthetic-rain' or 'synthetic-haze'. Required.
            degradation_seed (int): Base seed of validation/test degradations. Default: 0.

    Returns (per item):
        dict: 'lq' (Tensor (C, H, W), float32 in [0, 1], degraded, RGB order), 'gt' (the clean image,
        same layout), 'lq_path' and 'gt_path' (the image file or LMDB key), 'degradation' (str).
    """

    def _setup_degradation(self, opt):
        if 'degradation' not in opt:
            raise KeyError(f'SyntheticDegradationDataset needs the option degradation, one of '
                           f'{tuple(SYNTHETIC_DEGRADATIONS)}.')
        self.degradation = check_choice('degradation', opt['degradation'], SYNTHETIC_DEGRADATIONS)
        noise_options = sorted({'sigma', 'sigma_choices', 'clip_noisy', 'noise_seed'} & set(opt))
        if noise_options:
            raise ValueError(f'{noise_options} are GaussianNoiseDataset options; {self.degradation} does not use them.')
        self.eval_seed = check_int('degradation_seed', opt.get('degradation_seed', 0))

    def _degrade(self, img_gt, rng):
        return SYNTHETIC_DEGRADATIONS[self.degradation](img_gt, rng), {'degradation': self.degradation}
