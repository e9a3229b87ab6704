"""basicsr-snn: spiking image-restoration networks for BasicSR, distilled from ANN teachers."""
from pathlib import Path

from setuptools import find_packages, setup

setup(
    name='basicsr-snn',
    version='0.1.0',
    description='BasicSR plugin: train spiking restoration networks by distilling ANN teachers (SpikerIR, H-KD)',
    long_description=Path(__file__).with_name('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.11',
    packages=find_packages(include=['basicsr_snn', 'basicsr_snn.*']),
    # Upper bounds: the next major release above the tested one (constraints.txt holds the tested set);
    # docs/compatibility.md says how to move them.
    install_requires=[
        'torch>=2.1',
        'torchvision>=0.16',
        'basicsr==1.4.2',
        'spikingjelly==2.0.0',
        'mmengine>=0.10,<1',
        'opencv-python<6',
        'lmdb',
        'numpy<3',
        'scipy<2',
        'pyyaml',
        'scikit-image<1',
        'matplotlib<4',
        'tensorboard',
        'tqdm',
        'setuptools',
    ],
    extras_require={'test': ['pytest', 'pytest-xdist']},
    entry_points={
        'console_scripts': [
            'basicsr-snn-train=basicsr_snn.train:main',
            'basicsr-snn-test=basicsr_snn.test:main',
            'basicsr-snn-run=basicsr_snn.run:main',
        ],
    },
)
