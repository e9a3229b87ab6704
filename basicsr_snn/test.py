"""Test through :mod:`basicsr_snn.pipeline`, BasicSR's layout and this plugin's registered classes.

    python basicsr_snn/test.py -opt options/test_denoise.yml

``results/<name>/`` (log, metrics, images) is created in the current directory.
"""
import sys
from pathlib import Path

if __package__ in (None, ''):
    # Run as a file: import the package from the repository, not this folder (whose test.py would
    # shadow the standard library's `test`).
    sys.path[0] = str(Path(__file__).resolve().parents[1])


def main(argv: list[str] | None = None) -> int:
    """Run ``basicsr-snn-test ARGV`` (default: the command line) in this process; return its exit code."""
    from basicsr_snn.cli import run_pipeline  # imports the package: registers the plugin
    return run_pipeline('test', argv)


if __name__ == '__main__':
    sys.exit(main())
