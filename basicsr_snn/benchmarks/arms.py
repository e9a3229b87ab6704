"""The arms of the ANN-to-SNN gap study: which network, which recipe, which seed.

An arm is named ``teacher`` or ``<design>.<recipe>.s<seed>``:

* designs (:data:`DESIGNS`): changes to the paper's binary student (:data:`BINARY_STUDENT`: the small
  SpikerIR of ``options/train_snn_denoise.yml`` with binary LIF neurons at T = 4), named by what they
  change (``ilif-t1d4``: the multi-level neuron at T = 1 with D = 4 spikes per
  step; ``medium-ilif-t1d4``: the same on the medium preset);
* recipes (:data:`RECIPES`): how the design is trained. ``twin`` trains the design's ReLU twin
  (:class:`SpikerIRReLU`, the same network with ReLU neurons at T = 1), the ceiling of that
  design; ``scratch`` the spiking student alone; the others distil a teacher into it;
* the seed sets the initial weights and the training batches (their order, crops and noise).

Matched precision (:data:`MATCHED_PRECISION_ARMS`): ``w8a8`` is the membrane design with 8-bit weights and 8-bit
analog activations (quantization-aware training); its ReLU twin ``w8a8.twin`` is the W8A8 ANN baseline, and it is
the twin of ``ilif-t1d8-w8`` (the D = 8 student with 8-bit weights, the image and head inputs at 8 bits) and of
nothing else; ``ilif-t1d8-w4`` has 4-bit weights.

Arms with the same seed start from the same weights and see the same batches, so their
difference is the recipe; the spread between scratch seeds is the noise floor.
"""
import copy
import re
from dataclasses import dataclass

# the study's baseline, whatever neuron the option file's student uses
BINARY_STUDENT = {'neuron': 'lif', 'T': 4}
DESIGNS = {
    'spike': {'shortcut': 'spike'},  # the residual shortcut re-quantises to spikes (the previous default)
    'membrane': {'shortcut': 'membrane'},  # identity of the analog input (MS-ResNet)
    'plif': {'shortcut': 'membrane', 'neuron': 'plif'},  # learnable membrane time constants
    't8': {'shortcut': 'membrane', 'T': 8},
    'medium': {'shortcut': 'membrane', 'dim': 14},  # near DnCNN's 0.56M parameters
    # multi-level (I-LIF) neurons: up to D spikes per step, at T steps
    'ilif-t1d4': {'shortcut': 'membrane', 'neuron': 'ilif', 'T': 1, 'spike_levels': 4},
    'ilif-t1d8': {'shortcut': 'membrane', 'neuron': 'ilif', 'T': 1, 'spike_levels': 8},
    'ilif-t2d2': {'shortcut': 'membrane', 'neuron': 'ilif', 'T': 2, 'spike_levels': 2},
    'medium-ilif-t1d4': {'shortcut': 'membrane', 'dim': 14, 'neuron': 'ilif', 'T': 1, 'spike_levels': 4},
    # quantization-aware training (weight_bits, act_bits): before the students, so that it is their twin design
    'w8a8': {'shortcut': 'membrane', 'weight_bits': 8, 'act_bits': 8},
    'ilif-t1d8-w8': {'shortcut': 'membrane', 'neuron': 'ilif', 'T': 1, 'spike_levels': 8, 'weight_bits': 8,
                     'act_bits': 8},
    'ilif-t1d8-w4': {'shortcut': 'membrane', 'neuron': 'ilif', 'T': 1, 'spike_levels': 8, 'weight_bits': 4,
                     'act_bits': 8},
}
# options a ReLU twin ignores: designs that differ only in them share one twin
TWIN_IGNORED = ('neuron', 'T', 'tau', 'detach_reset', 'surrogate', 'surrogate_alpha', 'neuron_backend', 'spike_levels',
                'spike_inference')

# Recipes name teacher modules by the student's level names; each teacher maps them to its own.
LEVELS = ('encoder1', 'encoder2', 'encoder3', 'latent', 'decoder3', 'decoder2', 'decoder1')
TEACHERS = {
    # a ReLU UNet of DnCNN's size (SpikerIRReLU, dim 14): quick on a CPU and well above the small twins
    'relu-medium': {'network': {'type': 'SpikerIRReLU', 'in_ch': 1, 'out_ch': 1, 'dim': 14},
                    'levels': {level: level for level in LEVELS}},
    # the paper's teacher architecture at its CPU-sized preset
    'restormer-small': {'network': {'type': 'Restormer', 'inp_channels': 1, 'out_channels': 1, 'dim': 8,
                                    'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1, 'heads': [1, 2, 4, 8],
                                    'LayerNorm_type': 'BiasFree'},
                        'levels': {'encoder1': 'encoder_level1', 'encoder2': 'encoder_level2',
                                   'encoder3': 'encoder_level3', 'latent': 'latent', 'decoder3': 'decoder_level3',
                                   'decoder2': 'decoder_level2', 'decoder1': 'decoder_level1'}},
}
DECODER_HINTS = (('dec3', 'decoder3'), ('dec2', 'decoder2'), ('dec1', 'decoder1'))
# gamma of the normalised recipes: their hint losses are O(1) per level, about 30x the paper's MSE
NORMALISED_GAMMA = 0.02


def _decoder_hints(**extra):
    return [dict({'name': name, 'student': level, 'teacher': level, 'loss': {'type': 'MSELoss'}}, **extra)
            for name, level in DECODER_HINTS]


@dataclass(frozen=True)
class Recipe:
    """How an arm trains. ``teacher``: None, ``'teacher'`` (the study's teacher) or ``'twin'``.

    Hints name teacher modules by the student's level names (``decoder1``); the study maps them to
    the teacher's own names (:data:`TEACHERS`).
    """
    description: str
    teacher: object = None
    distill: object = None  # train.distill options
    init_from_twin: bool = False


RECIPES = {
    'twin': Recipe('the ReLU twin (ANN ceiling)'),
    'scratch': Recipe('task loss only (L1 + 0.1 FFT)'),
    'hkd': Recipe("the paper's H-KD: decoder hints, MSE, gamma 0.12", 'teacher',
                  {'hints': _decoder_hints(), 'schedule': {'type': 'constant', 'gamma': 0.12}}),
    'hkd-std': Recipe(f'decoder hints standardised per channel, MSE, gamma {NORMALISED_GAMMA}', 'teacher',
                      {'hints': _decoder_hints(normalize='channel'),
                       'schedule': {'type': 'constant', 'gamma': NORMALISED_GAMMA}}),
    'hkd-cos': Recipe(f'decoder hints standardised per channel, cosine, gamma {NORMALISED_GAMMA}', 'teacher',
                      {'hints': [dict(hint, loss={'type': 'CosineFeatureLoss'})
                                 for hint in _decoder_hints(normalize='channel')],
                       'schedule': {'type': 'constant', 'gamma': NORMALISED_GAMMA}}),
    'hkd-membrane': Recipe('decoder hints from the membrane potential of each decoder level\'s first neuron, '
                           'MSE, gamma 0.12', 'teacher',
                           {'hints': [{'name': name, 'student': f'{level}.0.neuron1', 'teacher': level,
                                       'loss': {'type': 'MSELoss'}, 'reduce': 'membrane'}
                                      for name, level in DECODER_HINTS],
                            'schedule': {'type': 'constant', 'gamma': 0.12}}),
    'twin-teacher': Recipe('the trained ReLU twin as teacher: all 7 levels, same paths, no adapters, MSE, gamma 0.12',
                           'twin', {'hints': [{'name': level, 'student': level, 'teacher': level,
                                               'loss': {'type': 'MSELoss'}}
                                              for level in LEVELS],
                                    'schedule': {'type': 'constant', 'gamma': 0.12}}),
    'twin-init': Recipe('scratch, initialised from the trained ReLU twin (strict_load_g: false)', init_from_twin=True),
}

# the order a full study runs in: the questions first, the variations after
DEFAULT_ARMS = (
    'teacher', 'membrane.twin.s0', 'membrane.scratch.s0', 'membrane.scratch.s1', 'membrane.hkd.s0',
    'membrane.hkd-std.s0', 'membrane.twin-teacher.s0', 'membrane.twin-init.s0', 'spike.twin.s0', 'spike.scratch.s0',
    'membrane.hkd-cos.s0', 'membrane.hkd-membrane.s0', 'plif.scratch.s0', 't8.scratch.s0', 'medium.twin.s0',
    'medium.scratch.s0', 'ilif-t1d4.scratch.s0', 'ilif-t1d8.scratch.s0', 'ilif-t2d2.scratch.s0',
    'ilif-t1d4.twin-init.s0', 'ilif-t1d4.hkd-std.s0', 'ilif-t1d4.scratch.s1', 'medium-ilif-t1d4.scratch.s0',
)
# the matched-precision study, most important first: the W8A8 ANN, the W8 student from scratch and initialised
# from it (the headline pair, then their second seeds), the W4 student
MATCHED_PRECISION_ARMS = (
    'w8a8.twin.s0', 'ilif-t1d8-w8.scratch.s0', 'ilif-t1d8-w8.twin-init.s0', 'ilif-t1d8-w8.scratch.s1',
    'ilif-t1d8-w8.twin-init.s1', 'ilif-t1d8-w4.scratch.s0',
)
#: names ``--arms`` accepts for a whole set of arms
ARM_GROUPS = {'gap': DEFAULT_ARMS, 'matched-precision': MATCHED_PRECISION_ARMS}
_ARM_NAME = re.compile(r'^(?P<design>[\w-]+)\.(?P<recipe>[\w-]+)\.s(?P<seed>\d+)$')


@dataclass(frozen=True)
class Arm:
    name: str
    design: str = None
    recipe: str = None
    seed: int = 0

    @classmethod
    def parse(cls, name: str) -> 'Arm':
        """``'teacher'`` or ``'<design>.<recipe>.s<seed>'``; the error lists the valid parts."""
        if name == 'teacher':
            return cls(name)
        match = _ARM_NAME.match(name)
        if not match or match['design'] not in DESIGNS or match['recipe'] not in RECIPES:
            raise ValueError(f'arm {name!r}: write teacher or <design>.<recipe>.s<seed> with design in '
                             f'{sorted(DESIGNS)} and recipe in {sorted(RECIPES)} (e.g. membrane.hkd.s0)')
        return cls(name, match['design'], match['recipe'], int(match['seed']))

    @property
    def is_teacher(self):
        return self.design is None

    @property
    def is_twin(self):
        return self.recipe == 'twin'

    @property
    def twin(self):
        """The arm of this design's ReLU twin (same seed), whose twin may belong to another design."""
        return Arm.parse(f'{twin_design(self.design)}.twin.s{self.seed}')

    def dependencies(self) -> tuple['Arm', ...]:
        """Arms whose checkpoints this arm needs."""
        if self.is_teacher or self.is_twin:
            return ()
        recipe = RECIPES[self.recipe]
        needs = []
        if recipe.teacher == 'teacher':
            needs.append(Arm.parse('teacher'))
        if recipe.teacher == 'twin' or recipe.init_from_twin:
            needs.append(self.twin)
        return tuple(needs)


def twin_design(design: str) -> str:
    """The first design whose ReLU twin equals ``design``'s (options the twin ignores left out)."""
    relevant = {key: value for key, value in DESIGNS[design].items() if key not in TWIN_IGNORED}
    return next(name for name, options in DESIGNS.items()
                if {k: v for k, v in options.items() if k not in TWIN_IGNORED} == relevant)


def student_network(base_network: dict, arm: Arm) -> dict:
    """``network_g`` options of an arm: the base SpikerIR with the design's changes (twins: SpikerIRReLU)."""
    network = copy.deepcopy(base_network)
    network.pop('spike_levels', None)
    network.update(BINARY_STUDENT, **DESIGNS[arm.design])
    if arm.is_twin:
        network.update(type='SpikerIRReLU', T=1)
        for key in TWIN_IGNORED:
            network.pop(key, None)
    return network
