"""Energy accounting (basicsr_snn.analysis): hand-computed counts, spikingjelly agreement, monitors."""
import math

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from spikingjelly.activation_based.op_counter import DispatchCounterMode, SynOpCounter
from torch import nn

import basicsr_snn  # noqa: F401  (host-stack fixes, arch registration)
from basicsr_snn.analysis import (AnalysedNetwork, FiringRateMonitor, aggregate_by_level, analyse_energy,
                                  calibrate_batchnorm, energy_measures, energy_per_op, ratios, summary_table)
from basicsr_snn.archs.ilif_neuron import ILIFNode
from basicsr_snn.archs.quantization import quantize_input, quantize_weights
from basicsr_snn.archs.spikerir_arch import SpikerIR


class TwoLayerSNN(nn.Module):
    """1x1 encoding conv (weights 1 and 0.5, run once) -> neuron (threshold 1, T steps) -> 3x3 conv.

    The neuron is binary IF by default; ``spike_levels=D`` makes it the project's multi-level I-LIF
    (``c = clamp(round(h), 0, D)``, soft reset ``v = h - c``, ``h = v / 2 + x`` with tau 2), or
    spikingjelly's with ``spikingjelly_ilif`` (D declared by its surrogate, not by ``spike_levels``).
    """

    def __init__(self, T=2, spike_levels=None, spikingjelly_ilif=False):
        super().__init__()
        self.T = T
        self.encoder = nn.Conv2d(1, 2, 1, bias=False)
        if spike_levels is None:
            self.neuron = neuron.IFNode(v_threshold=1., v_reset=0., step_mode='m')
        elif spikingjelly_ilif:
            self.neuron = neuron.ILIFNode(tau=2., v_threshold=1., step_mode='m',
                                          surrogate_function=surrogate.MultiLevelSpikeCount(spike_levels))
        else:
            self.neuron = ILIFNode(spike_levels=spike_levels, tau=2., v_threshold=1., step_mode='m')
        self.synapse = layer.SeqToANNContainer(nn.Conv2d(2, 1, 3, padding=1, bias=False))
        with torch.no_grad():
            self.encoder.weight.copy_(torch.tensor([1., 0.5]).view(2, 1, 1, 1))
            self.synapse[0].weight.fill_(0.1)

    def forward(self, x):
        current = self.encoder(x).unsqueeze(0).expand(self.T, -1, -1, -1, -1)
        return self.synapse(self.neuron(current)).mean(0)


def staircase_image(rows=(2.4, 1.2, 0.6, 0.2)):
    """Four rows of the given values: (1, 1, 4, 4)."""
    return torch.tensor(rows).view(1, 1, 4, 1).expand(1, 1, 4, 4).contiguous()


#: rows whose I-LIF counts (D = 4) reach and exceed the top level
COUNT_ROWS = (6.2, 3.4, 1.2, 0.2)


def test_two_layer_network_matches_hand_count():
    report = analyse_energy(TwoLayerSNN(T=2), staircase_image())
    encoder, synapse = report.layers
    # encoder: 2 out channels x 16 pixels x 1 in channel x 1x1 kernel = 32 MACs, run once
    # (before the expand over T), fed the analog image.
    assert (encoder.name, encoder.steps, encoder.macs_per_step, encoder.spike_fed) == ('encoder', 1, 32, False)
    assert (encoder.macs, encoder.sops) == (32, 0)
    # IF neuron (threshold 1, reset to 0) over T=2 steps; channel currents are x and 0.5 x:
    #   x=2.4: 2.4 -> 2 spikes, 1.2 -> 2 spikes       (4 per pixel, 4 pixels: 16)
    #   x=1.2: 1.2 -> 2 spikes, 0.6 -> 1 spike (t=2)  (3 per pixel: 12)
    #   x=0.6: 0.6 -> 1 spike (t=2), 0.3 -> none      (1 per pixel: 4)
    #   x=0.2: none
    # 32 spikes among 2 steps x 2 channels x 16 pixels = 64 entries: rate 0.5.
    # synapse: 1 out channel x 16 pixels x 2 in channels x 9 = 288 MACs per step, 2 steps;
    # SOPs = 0.5 x 2 x 288 = 288.
    assert (synapse.name, synapse.steps, synapse.macs_per_step, synapse.spike_fed) == ('synapse.0', 2, 288, True)
    assert synapse.input_rate == 0.5
    assert (synapse.sops, synapse.macs) == (288, 0)
    assert (report.macs, report.sops, report.other_macs) == (32, 288, {})
    # fp32: 32 x 4.6 + 288 x 0.9 = 147.2 + 259.2 pJ
    assert report.energy_pj == pytest.approx(406.4)
    assert report.mean_input_rate == 0.5
    assert report.neuron_rates == {'neuron': 0.5}
    assert report.time_steps == 2 and report.params == 2 + 18
    # int8: 32 x 0.23 + 288 x 0.03 = 7.36 + 8.64 pJ
    assert analyse_energy(TwoLayerSNN(T=2), staircase_image(), precision='int8').energy_pj == pytest.approx(16.0)


def test_memory_traffic_of_the_two_layer_network_matches_hand_count():
    report = analyse_energy(TwoLayerSNN(T=2), staircase_image())
    # weights, read once per step: encoder 2 x 1 step + synapse 18 x 2 steps = 38 values
    # activations: encoder reads 16 analog pixels, writes 2 x 16; synapse reads 2 steps x 2 x 16 = 64
    #   spikes, writes 2 steps x 16
    # membranes: the IF neuron's 2 x 16 entries carry their potential from step 1 to step 2: written once,
    #   read once (64 values)
    gpu = report.memory('gpu')  # fp32 everywhere, 4 bytes
    assert (gpu.weight_bytes, gpu.activation_bytes, gpu.membrane_bytes) == (38 * 4, (16 + 32 + 64 + 32) * 4, 64 * 4)
    assert gpu.energy_pj == pytest.approx(984 * 24.96)
    neuromorphic = report.memory('neuromorphic')  # spikes as bits: 64 spikes = 8 bytes; membranes local
    assert (neuromorphic.weight_bytes, neuromorphic.activation_bytes, neuromorphic.membrane_bytes) == (
        152, (16 + 32 + 32) * 4 + 8, 0)
    assert report.total_pj('neuromorphic') == pytest.approx(406.4 + 480 * 24.96)
    with pytest.raises(ValueError, match=r"memory assumptions must be one of \('gpu', 'neuromorphic'\)"):
        report.memory('hbm')


@pytest.mark.parametrize('spikingjelly_ilif', [False, True])
def test_two_layer_network_fed_counts_matches_hand_count(spikingjelly_ilif):
    report = analyse_energy(TwoLayerSNN(T=1, spike_levels=4, spikingjelly_ilif=spikingjelly_ilif),
                            staircase_image(COUNT_ROWS))
    encoder, synapse = report.layers
    assert (encoder.spike_fed, encoder.spike_levels, encoder.macs) == (False, None, 32)
    # one step, c = clamp(round(x), 0, 4); channel x:     6.2 -> 4, 3.4 -> 3, 1.2 -> 1, 0.2 -> 0
    #                                      channel 0.5 x: 3.1 -> 3, 1.7 -> 2, 0.6 -> 1, 0.1 -> 0
    # per pixel of each row 7, 5, 2, 0 spikes; 4 pixels a row: 56 spikes among 2 x 16 = 32 entries,
    # a mean count of 1.75. SOPs = 1.75 x 1 step x 288 MACs = 504, as many as 56 binary spikes' fan-outs.
    assert (synapse.spike_fed, synapse.spike_levels, synapse.steps) == (True, 4, 1)
    assert (synapse.input_rate, synapse.sops, synapse.macs) == (1.75, 504, 0)
    assert report.neuron_rates == {'neuron': 1.75} and report.mean_firing_rate == 1.75
    # fp32: 32 MACs x 4.6 + 504 ACs x 0.9
    assert report.energy_pj == pytest.approx(32 * 4.6 + 504 * 0.9)
    # weights 2 + 18 values, one step; activations: encoder reads 16 pixels and writes 32 values, the synapse
    # writes 16 and reads 32 counts: 4 bytes each on a gpu, ceil(log2(4 + 1)) = 3 bits each (12 bytes) on a
    # neuromorphic core; one step carries no membrane, under either assumption set.
    gpu, neuromorphic = report.memory('gpu'), report.memory('neuromorphic')
    assert (gpu.weight_bytes, gpu.activation_bytes, gpu.membrane_bytes) == (80, (16 + 32 + 32 + 16) * 4, 0)
    assert (neuromorphic.weight_bytes, neuromorphic.activation_bytes, neuromorphic.membrane_bytes) == (
        80, (16 + 32 + 16) * 4 + 12, 0)


def test_counts_over_two_steps_match_hand_count():
    report = analyse_energy(TwoLayerSNN(T=2, spike_levels=4), staircase_image(COUNT_ROWS))
    synapse = report.layers[1]
    # step 1: c1 = clamp(round(x), 0, 4), v1 = x - c1; step 2: h2 = v1 / 2 + x, c2 = clamp(round(h2), 0, 4)
    #   x = 6.2: 4, then 1.1 + 6.2 = 7.3 -> 4 (8)    x = 3.1: 3, then 0.05 + 3.1 = 3.15 -> 3 (6)
    #   x = 3.4: 3, then 0.2 + 3.4 = 3.6 -> 4 (7)    x = 1.7: 2, then -0.15 + 1.7 = 1.55 -> 2 (4)
    #   x = 1.2: 1, then 0.1 + 1.2 = 1.3 -> 1 (2)    x = 0.6: 1, then -0.2 + 0.6 = 0.4 -> 0 (1)
    #   x = 0.2: 0, then 0.1 + 0.2 = 0.3 -> 0 (0)    x = 0.1: 0, then 0.15 -> 0 (0)
    # 4 x (14 + 11 + 3 + 0) = 112 spikes among 2 steps x 32 entries: SOPs = 1.75 x 2 x 288 = 1008
    assert (synapse.spike_levels, synapse.steps, synapse.input_rate, synapse.sops) == (4, 2, 1.75, 1008)
    # the 32 membranes are carried from step 1 to step 2 once: 64 values moved on a gpu, none locally;
    # the synapse reads 64 counts of 3 bits (24 bytes) on a neuromorphic core
    gpu, neuromorphic = report.memory('gpu'), report.memory('neuromorphic')
    assert (gpu.membrane_bytes, neuromorphic.membrane_bytes) == (64 * 4, 0)
    assert (gpu.activation_bytes, neuromorphic.activation_bytes) == ((16 + 32 + 64 + 32) * 4, (16 + 32 + 32) * 4 + 24)


def test_binary_network_at_one_step_moves_no_membranes():
    report = analyse_energy(TwoLayerSNN(T=1), staircase_image())
    assert report.layers[1].spike_levels == 1
    assert report.memory('gpu').membrane_bytes == report.memory('neuromorphic').membrane_bytes == 0


def test_declared_levels_set_the_stored_bits_even_when_only_ones_were_fired():
    # channel x: 0.8 -> 1, 0.6 -> 1, 0.4 -> 0, 0.2 -> 0; channel 0.5 x: 0.4 -> 0, 0.3, 0.2, 0.1 -> 0:
    # 8 ones among 32 entries from a D = 8 neuron: costed as 8 spikes, stored as 4-bit counts (16 bytes)
    report = analyse_energy(TwoLayerSNN(T=1, spike_levels=8), staircase_image((0.8, 0.6, 0.4, 0.2)))
    synapse = report.layers[1]
    assert (synapse.spike_levels, synapse.input_rate, synapse.sops) == (8, 0.25, 0.25 * 288)
    assert report.memory('neuromorphic').activation_bytes == (16 + 32 + 16) * 4 + 16


def test_spike_expansion_costs_what_the_counts_cost():
    counts = TwoLayerSNN(T=1, spike_levels=4)
    expanded = TwoLayerSNN(T=1, spike_levels=4)
    # count c -> 4 binary maps with c ones, convolved each, summed back over the 4 slots
    expanded.synapse = nn.Sequential(layer.SpikeCountToBinary(4, always_convert=True), expanded.synapse,
                                     layer.TemporalBinSum(4, always_convert=True))
    image = staircase_image(COUNT_ROWS)
    with torch.no_grad():
        assert torch.allclose(expanded(image), counts(image))
    count_report, binary_report = analyse_energy(counts, image), analyse_energy(expanded, image)
    binary = binary_report.layers[1]
    # 56 spikes among 4 slots x 32 entries: binary input at rate 56 / 128, 4 x 288 dense MACs
    assert (binary.spike_levels, binary.steps, binary.input_rate) == (1, 4, 56 / 128)
    assert binary.sops == count_report.layers[1].sops == 504
    # 4 one-bit slots (16 bytes) where the counts take 3 bits (12 bytes)
    assert binary_report.memory('neuromorphic').activation_bytes == (16 + 32) * 4 + 16 + 4 * 16 * 4


def test_integer_values_from_no_neuron_stay_analog():
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    report = analyse_energy(conv, staircase_image((3., 2., 1., 0.)))
    # integer values in [0, 3] that no neuron declared as counts: an analog input, 144 MACs
    assert (report.layers[0].spike_levels, report.sops, report.macs) == (None, 0, 144)


def test_ann_moves_no_membranes_and_no_bits():
    ann = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Conv2d(2, 1, 3, padding=1))
    report = analyse_energy(ann, staircase_image(), spiking=False)
    # weights 2 + 2 biases + 18 + 1 bias; activations (16 + 32) + (32 + 16), all fp32
    expected = ((4 + 19) * 4, 96 * 4, 0)
    for assumptions in ('gpu', 'neuromorphic'):
        traffic = report.memory(assumptions)
        assert (traffic.weight_bytes, traffic.activation_bytes, traffic.membrane_bytes) == expected


def test_measures_and_ratios_of_the_student_against_an_ann():
    student = analyse_energy(TwoLayerSNN(T=2), staircase_image())
    ann = analyse_energy(nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Conv2d(2, 1, 3, padding=1)),
                         staircase_image(), spiking=False)
    # the student: 406.4 pJ of compute, 984 bytes moved on a gpu, 480 on a neuromorphic core (the tests above);
    # the ANN: 32 + 288 MACs x 4.6 pJ, (23 weights + 96 activations) x 4 bytes = 476 bytes under both sets
    byte_pj = 24.96
    assert energy_measures(student.to_dict()) == pytest.approx(
        {'compute': 406.4, 'total gpu': 406.4 + 984 * byte_pj, 'total neuromorphic': 406.4 + 480 * byte_pj})
    networks = {'student': AnalysedNetwork({'type': 'TwoLayerSNN'}, student, {}),
                'twin': AnalysedNetwork({'type': 'Sequential'}, ann, {})}
    ann_total = 1472 + 476 * byte_pj
    assert ratios(networks) == {'student/twin': pytest.approx(
        {'energy': 406.4 / 1472, 'total_gpu': (406.4 + 984 * byte_pj) / ann_total,
         'total_neuromorphic': (406.4 + 480 * byte_pj) / ann_total, 'params': 20 / 23})}
    table = summary_table(networks).splitlines()
    assert table[2].split()[:6] == ['student', 'TwoLayerSNN', '20', '32', '288', '0.5000']
    assert table[3].split()[:6] == ['twin', 'Sequential', '23', '320', '0', '-']


def test_time_steps_follow_the_network():
    report = analyse_energy(TwoLayerSNN(T=3), staircase_image())
    # Spikes per pixel over 3 steps (channel x + channel 0.5 x):
    #   x=2.4: 3 + 3 = 6; x=1.2: 3 + 1 (t=2) = 4; x=0.6: 1 (t=2) + 0 (0.3 x 3 = 0.9) = 1; x=0.2: 0
    # 4 x (6 + 4 + 1) = 44 spikes among 3 x 2 x 16 = 96 entries; SOPs = 44 / 96 x 3 x 288 = 396.
    assert report.time_steps == 3
    assert report.layers[1].sops == pytest.approx(396)


class SpikeFedDepthwiseAndLinear(nn.Module):
    """A binary image repeated over T=3 steps into a depthwise 3x3 conv and a linear readout with bias."""

    T = 3

    def __init__(self):
        super().__init__()
        self.depthwise = layer.Conv2d(2, 2, 3, padding=1, groups=2, bias=False, step_mode='m')
        self.readout = layer.Linear(2 * 4 * 4, 5, step_mode='m')

    def forward(self, x):
        spikes = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        return self.depthwise(spikes).mean(0).sum() + self.readout(spikes.flatten(2)).mean(0).sum()


def test_depthwise_and_linear_counts():
    image = torch.zeros(1, 2, 4, 4)
    image.view(-1)[::4] = 1  # 8 ones among 32 entries: rate 0.25
    depthwise, readout = analyse_energy(SpikeFedDepthwiseAndLinear(), image).layers
    # depthwise: 2 out channels x 16 pixels x (2 / 2 groups) x 9 = 288 MACs per step, 3 steps:
    # SOPs = 0.25 x 3 x 288 = 216.
    assert (depthwise.steps, depthwise.macs_per_step, depthwise.input_rate, depthwise.sops) == (3, 288, 0.25, 216)
    # linear: 32 inputs x 5 outputs = 160 MACs per step (bias not counted): SOPs = 0.25 x 3 x 160 = 120.
    assert (readout.steps, readout.macs_per_step, readout.sops) == (3, 160, 120)
    ann = analyse_energy(SpikeFedDepthwiseAndLinear(), image, spiking=False)
    assert (ann.sops, ann.macs) == (0, 3 * 288 + 3 * 160)
    assert ann.energy_pj == pytest.approx((3 * 288 + 3 * 160) * 4.6)


def test_presets_and_bad_input():
    assert energy_per_op('fp16') == (1.5, 0.4)
    assert energy_per_op('int8', ac_pj=0.05) == (0.23, 0.05)
    assert energy_per_op('custom', mac_pj=2., ac_pj=0.1) == (2., 0.1)
    with pytest.raises(ValueError, match="'fp32', 'int4', 'int8'"):
        energy_per_op('fp64')
    with pytest.raises(ValueError, match='custom'):
        energy_per_op('custom', mac_pj=2.)
    with pytest.raises(ValueError, match='images'):
        analyse_energy(TwoLayerSNN(), torch.zeros(4, 4))


def test_firing_rate_monitor_records_only_inside_with():
    model = TwoLayerSNN(T=2)
    with FiringRateMonitor(model) as monitor:
        model(staircase_image())
    functional.reset_net(model)
    model(torch.full((1, 1, 4, 4), 5.))  # all spikes; not recorded
    assert monitor.rates() == {'neuron': 0.5}
    assert monitor.counts() == {'neuron': 64}
    assert monitor.steps() == {'neuron': 2}
    assert monitor.mean_rate() == 0.5
    monitor.reset()
    assert math.isnan(monitor.mean_rate())


def test_aggregate_by_level_weights_by_elements():
    rates = {'encoder1.0.neuron1': 0.5, 'encoder1.1.neuron2': 0.1, 'latent.0.neuron1': 0.4}
    counts = {'encoder1.0.neuron1': 10, 'encoder1.1.neuron2': 30, 'latent.0.neuron1': 5}
    # encoder1: (0.5 x 10 + 0.1 x 30) / 40 = 0.2
    assert aggregate_by_level(rates, counts) == pytest.approx({'encoder1': 0.2, 'latent': 0.4})
    assert aggregate_by_level(rates, counts, depth=2) == pytest.approx(
        {'encoder1.0': 0.5, 'encoder1.1': 0.1, 'latent.0': 0.4})


def camera_image(size):
    from skimage import data
    camera = data.camera().astype(np.float32) / 255.
    step = camera.shape[0] // size
    return torch.from_numpy(camera[:size * step:step, :size * step:step].copy()).view(1, 1, size, size)


def test_sops_agree_with_spikingjelly_synop_counter():
    torch.manual_seed(0)
    # the 'small' preset with binary spikes: spikingjelly's counter takes only binary inputs for spikes
    model = SpikerIR(in_ch=1, out_ch=1, neuron='lif')
    image = camera_image(96)
    calibrate_batchnorm(model, image)  # untrained statistics leave the network almost silent
    report = analyse_energy(model, image)
    assert 0.05 < report.mean_input_rate < 0.5
    counter = SynOpCounter()
    with torch.no_grad(), DispatchCounterMode([counter]):
        model(image)
    # spikingjelly counts each spike's exact fan-out; rate x dense MACs also counts the taps
    # that fall on zero padding, a border effect of about 3% at 96x96.
    assert report.sops == pytest.approx(counter.get_total(), rel=0.05)


@pytest.mark.parametrize('shortcut', ['membrane', 'spike'])
def test_residual_and_skip_additions_cost_one_accumulate_per_element(shortcut):
    from basicsr_snn.archs.spikerir_arch import SpikerIR
    network = SpikerIR(in_ch=1, out_ch=1, dim=2, T=2, attention=False, shortcut=shortcut)
    report = analyse_energy(network, torch.rand(2, 1, 16, 16))
    # per time step: the 7 block outputs (widths 2, 4, 8, 16 at 16, 8, 4, 2 pixels a side) and the 3 skips
    blocks = 2 * 256 + 4 * 64 + 8 * 16 + 16 * 4 + 8 * 16 + 4 * 64 + 2 * 256
    skips = 8 * 16 + 4 * 64 + 2 * 256
    assert report.additions == 2 * (blocks + skips)
    assert report.energy_pj == pytest.approx((report.sops + report.additions) * report.ac_pj +
                                             report.macs * report.mac_pj)
    assert report.to_dict()['additions'] == report.additions


def test_spikerir_ilif_convs_read_counts_and_cost_what_their_binary_expansion_costs():
    torch.manual_seed(0)
    network = SpikerIR(in_ch=1, out_ch=1, dim=4, T=1, neuron='ilif', spike_levels=4, attention=False)
    image = camera_image(32)
    calibrate_batchnorm(network, image)
    counts = analyse_energy(network, image)
    binary = analyse_energy(network.set_spike_inference('binary'), image)
    analog = {'embed.0', 'head'}  # fed the image / the analog residual stream
    assert {layer.name: layer.spike_levels for layer in counts.layers} == {
        layer.name: None if layer.name in analog else 4 for layer in counts.layers}
    assert {layer.name: layer.spike_levels for layer in binary.layers} == {
        layer.name: None if layer.name in analog else 1 for layer in counts.layers}
    assert 0.05 < counts.mean_input_rate < 4
    # a count of k is k binary spikes: the same SOPs, read from 4 binary maps per count map
    assert binary.sops == pytest.approx(counts.sops)
    for count_layer, binary_layer in zip(counts.layers, binary.layers):
        if count_layer.spike_fed:
            assert binary_layer.input_elements == 4 * count_layer.input_elements
    assert counts.memory('gpu').membrane_bytes == 0


class TwoLayerInt8SNN(TwoLayerSNN):
    """:class:`TwoLayerSNN` at T = 1 with D = 4, int8 weights on both layers, the image quantized to 8 bits."""

    act_bits = 8

    def __init__(self):
        super().__init__(T=1, spike_levels=4)
        quantize_input(quantize_weights(self.encoder, 8), 8)
        quantize_weights(self.synapse[0], 8)


def test_two_layer_network_at_int8_matches_hand_count():
    report = analyse_energy(TwoLayerInt8SNN(), staircase_image())
    encoder, synapse = report.layers
    # the weights (1, 0.5 and 0.1 everywhere) are the top level of their channels: exact at int8. The image's
    # quantizer calibrates on it: step 2.4 / 255, so the rows read 2.4, 1.2047, 0.6024, 0.1976.
    # Counts (threshold 1, D = 4): channel 1 (x):     2, 1, 1, 0 per row -> 16 over 16 pixels
    #                              channel 2 (x / 2): 1, 1, 0, 0 per row ->  8; 24 / 32 entries = 0.75.
    assert (encoder.precision, encoder.weight_bits, encoder.input_bits) == ('int8', 8, 8)
    assert (synapse.precision, synapse.spike_levels, synapse.input_rate) == ('int8', 4, 0.75)
    assert (encoder.macs, synapse.sops) == (32, 216)  # 0.75 x 288
    # int8: 32 MACs x 0.23 pJ + 216 ACs x 0.03 pJ
    assert report.energy_pj == pytest.approx(32 * 0.23 + 216 * 0.03)
    gpu, neuromorphic = report.memory('gpu'), report.memory('neuromorphic')
    # weights: 2 + 18 int8 values, 1 byte each, one step
    assert gpu.weight_bytes == neuromorphic.weight_bytes == 20
    # encoder: 16 image values in (1 byte each) and 32 out (1 byte, act_bits); synapse: 16 out (1 byte) and
    # 32 counts in: 1 byte each under gpu, ceil(log2(4 + 1)) = 3 bits under neuromorphic
    assert gpu.activation_bytes == 16 + 32 + 32 + 16
    assert neuromorphic.activation_bytes == 16 + 32 + 32 * 3 / 8 + 16
    assert gpu.membrane_bytes == neuromorphic.membrane_bytes == 0  # T = 1
    assert report.total_pj('gpu') == pytest.approx(report.energy_pj + 116 * gpu.pj_per_byte)
    # the same network without quantization moves 4 bytes per value and computes at fp32
    float_report = analyse_energy(TwoLayerSNN(T=1, spike_levels=4), staircase_image())
    assert float_report.memory('gpu').weight_bytes == 80 and float_report.layers[0].precision == 'fp32'
    what_if = analyse_energy(TwoLayerInt8SNN(), staircase_image(), precision='fp32')
    assert what_if.precision == 'fp32 (what-if)' and what_if.energy_pj == pytest.approx(32 * 4.6 + 216 * 0.9)


def test_int4_figures_are_derived_from_int8():
    # multiplier ~ bits^2 (0.2 pJ -> 0.05), adder ~ bits (0.03 pJ -> 0.015)
    assert energy_per_op('int4') == pytest.approx((0.065, 0.015))
    with pytest.raises(ValueError, match='give precision too'):
        analyse_energy(TwoLayerSNN(), staircase_image(), mac_pj=1.)


class _FirstForward(Exception):
    """Stops an analysis at the network's first forward, once its input's device is recorded."""


@pytest.mark.parametrize('tool', ['analyse_energy', 'network_energy'])
def test_the_image_is_moved_to_the_networks_device(tool):
    """A study on another device (``--device cuda``) feeds its CPU energy image to the network there;
    ``meta`` stands for that device (the analysis cannot read counts back from it, so it stops at the forward)."""
    from basicsr_snn.benchmarks.study_report import network_energy
    with torch.device('meta'):
        network = SpikerIR(in_ch=1, out_ch=1, dim=4, T=2, attention=False)
    seen = []

    def record_and_stop(module, args):
        seen.append(args[0].device)
        raise _FirstForward

    network.register_forward_pre_hook(record_and_stop)
    image = torch.rand(1, 1, 16, 16)
    with pytest.raises(_FirstForward):
        if tool == 'analyse_energy':
            analyse_energy(network, image)
        else:
            network_energy(network, image, spiking=True)
    assert seen == [torch.device('meta')] and image.device.type == 'cpu'
