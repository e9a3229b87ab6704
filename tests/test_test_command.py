"""The README's test command is what CI runs, and the test extras install what it needs."""
import re

from pipeline_utils import REPO_ROOT


def readme_test_command():
    text = (REPO_ROOT / 'README.md').read_text()
    commands = [line for block in re.findall(r'```bash\n(.*?)```', text, re.S) for line in block.splitlines()
                if "-e '.[test]'" in line]
    assert len(commands) == 1, commands
    return commands[0]


def test_ci_runs_exactly_the_readme_test_command():
    ci = (REPO_ROOT / '.ci' / 'run').read_text().strip().splitlines()
    assert ci[-1] == readme_test_command()


def test_parallel_workers_come_with_the_test_extras():
    command = readme_test_command()
    assert ' -n auto ' in command
    assert re.search(r"extras_require=\{'test': \[[^]]*'pytest-xdist'", (REPO_ROOT / 'setup.py').read_text())
