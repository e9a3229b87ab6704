"""The README's set-up commands install the tested versions, CI runs exactly its test command, and the
constraints file pins every distribution the project needs."""
import ast
import re
from importlib.metadata import version

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pipeline_utils import REPO_ROOT, load_script


def readme_set_up_commands():
    text = (REPO_ROOT / 'README.md').read_text()
    return [line for block in re.findall(r'```bash\n(.*?)```', text, re.S) for line in block.splitlines()
            if line.startswith('pip install')]


def readme_test_command():
    commands = [line for line in readme_set_up_commands() if "-e '.[test]'" in line]
    assert len(commands) == 1, commands
    return commands[0]


def setup_requirements():
    """install_requires and the test extra of setup.py, as Requirements."""
    call = next(node for node in ast.walk(ast.parse((REPO_ROOT / 'setup.py').read_text()))
                if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'setup')
    keywords = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords
                if keyword.arg in ('install_requires', 'extras_require')}
    return [Requirement(line) for line in keywords['install_requires'] + keywords['extras_require']['test']]


def pinned_versions():
    lines = [line for line in (REPO_ROOT / 'constraints.txt').read_text().splitlines() if not line.startswith('#')]
    pins = dict(line.split('==') for line in lines)
    assert all(re.fullmatch(r'[\w.-]+==[\w.+-]+', line) for line in lines), lines
    return {canonicalize_name(name): pin for name, pin in pins.items()}


def test_ci_runs_exactly_the_readme_test_command():
    ci = (REPO_ROOT / '.ci' / 'run').read_text().strip().splitlines()
    assert ci[-1] == readme_test_command()


def test_parallel_workers_come_with_the_test_extras():
    command = readme_test_command()
    assert ' -n auto ' in command
    assert 'pytest-xdist' in {requirement.name for requirement in setup_requirements()}


def test_both_set_up_commands_install_the_tested_versions():
    commands = readme_set_up_commands()
    assert len(commands) == 2 and any('scripts/run_demo.py' in command for command in commands)
    installs = [part.strip() for command in commands for part in command.split('&&') if 'pip install' in part]
    assert len(installs) == 4 and all(install.startswith('pip install -c constraints.txt ') for install in installs)


def test_constraints_pin_every_requirement_inside_its_bounds():
    pins = pinned_versions()
    for requirement in setup_requirements():
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f'constraints.txt does not pin {requirement.name}'
        assert requirement.specifier.contains(pin, prereleases=True), (requirement, pin)
    assert {'torch', 'torchvision', 'torchaudio'} <= set(pins)


def test_freeze_lists_what_the_project_needs_with_the_installed_versions(capsys):
    freeze = load_script('freeze_constraints')
    needed = freeze.needed_distributions()
    names = {canonicalize_name(name) for name in needed}
    assert {canonicalize_name(requirement.name) for requirement in setup_requirements()} <= names
    assert 'basicsr-snn' not in names and 'torchaudio' in names  # through spikingjelly
    assert all(needed[name] == version(name) for name in needed)
    freeze.main([])
    printed = [line for line in capsys.readouterr().out.splitlines() if not line.startswith('#')]
    assert printed == [f'{name}=={needed[name]}' for name in sorted(needed, key=str.lower)]
