"""Run any BasicSR script with this plugin registered and BasicSR's pipeline made to run on CPU and torchrun.

    basicsr-snn-run SCRIPT [ARGS ...]          (or: python -m basicsr_snn.run SCRIPT [ARGS ...])

    # in a BasicSR checkout
    basicsr-snn-run basicsr/train.py -opt options/distill_denoise.yml
    basicsr-snn-run scripts/metrics/calculate_psnr_ssim.py --gt datasets/Set12 --restored results/x

It prints its torch thread count first (see :mod:`basicsr_snn.utils.threads`), as the other entry
points do. The script runs as ``__main__`` with ``sys.argv = [SCRIPT, ARGS ...]``, its folder first on
``sys.path`` (as ``python SCRIPT`` does), after ``import basicsr_snn`` (the plugin's archs, models,
datasets and losses are registered) and the pipeline fixes. BasicSR's own ``basicsr/train.py`` and
``basicsr/test.py`` define their pipeline functions anew when run as scripts, which would bypass the
fixes; they run the installed BasicSR's ``train_pipeline`` / ``test_pipeline`` instead, rooted where
the script would root them (the checkout holding ``basicsr/``).
"""
import runpy
import sys
from pathlib import Path

BASICSR_PIPELINES = {('basicsr', 'train.py'): 'train', ('basicsr', 'test.py'): 'test'}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(__doc__.strip())
        return 0 if argv else 2
    script = Path(argv[0])
    if not script.is_file():
        print(f'basicsr-snn-run: no such script {script}', file=sys.stderr)
        return 2
    from basicsr_snn._compat import apply_pipeline_fixes
    from basicsr_snn.cli import is_main_process
    from basicsr_snn.pipeline import normalise_launcher_argv
    from basicsr_snn.utils.threads import apply_thread_policy
    threads = apply_thread_policy()
    if is_main_process():
        print(threads, flush=True)
    sys.argv = [str(script), *normalise_launcher_argv(argv[1:])]
    apply_pipeline_fixes(sys.argv)
    pipeline = BASICSR_PIPELINES.get((script.resolve().parent.name, script.name))
    if pipeline:
        import importlib
        root = str(script.resolve().parents[1])
        getattr(importlib.import_module(f'basicsr.{pipeline}'), f'{pipeline}_pipeline')(root)
        return 0
    sys.path.insert(0, str(script.resolve().parent))
    runpy.run_path(str(script), run_name='__main__')
    return 0


if __name__ == '__main__':
    sys.exit(main())
