"""The fork server of python_processes.py starts programs as a new interpreter would run them."""
import os
import signal
import sys
import textwrap

import pytest

from python_processes import run_python, start_python


def write_script(folder, code):
    script = folder / 'program.py'
    script.write_text(textwrap.dedent(code))
    return script


def test_arguments_folder_environment_and_exit_status_are_the_programs_own(tmp_path):
    script = write_script(tmp_path, '''
        import os, sys
        print(sys.argv[1:], os.getcwd(), os.environ.get('GIVEN'), sys.path[0], __name__)
        print('to stderr', file=sys.stderr)
        sys.exit(3)
    ''')
    (tmp_path / 'work').mkdir()
    result = run_python(script, 'a', 1, cwd=tmp_path / 'work', env=dict(os.environ, GIVEN='yes'))
    assert result.returncode == 3
    assert result.stdout == f"['a', '1'] {tmp_path / 'work'} yes {tmp_path} __main__\n"
    assert result.stderr == 'to stderr\n'
    assert result.args == [sys.executable, str(script), 'a', '1']


def test_a_message_exit_and_an_uncaught_error_end_as_they_do_in_a_new_interpreter(tmp_path):
    message = run_python(write_script(tmp_path, 'import sys\nsys.exit("cannot go on")\n'), cwd=tmp_path)
    assert (message.returncode, message.stderr) == (1, 'cannot go on\n')
    error = run_python(write_script(tmp_path, 'raise RuntimeError("boom")\n'), cwd=tmp_path)
    assert error.returncode == 1
    assert error.stderr.startswith('Traceback (most recent call last):\n  File "' + str(tmp_path / 'program.py'))
    assert error.stderr.endswith('RuntimeError: boom\n')


def test_each_program_draws_its_own_random_numbers_and_runs_its_exit_functions(tmp_path):
    script = write_script(tmp_path, '''
        import atexit, random
        import numpy
        atexit.register(lambda: print('exit function ran'))
        print(numpy.random.randint(1 << 30), random.randrange(1 << 30))
    ''')
    first, second = (run_python(script, cwd=tmp_path).stdout.splitlines() for _ in range(2))
    assert first[1] == second[1] == 'exit function ran'
    assert first[0].split()[0] != second[0].split()[0] and first[0].split()[1] != second[0].split()[1]


def test_a_signal_reaches_the_program_and_its_output_is_followed_as_it_is_written(tmp_path):
    script = write_script(tmp_path, '''
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(75))
        print('ready', flush=True)
        time.sleep(60)
    ''')
    process = start_python(script, cwd=tmp_path, new_session=True)
    lines = process.output_lines()
    assert next(lines) == 'ready\n'
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=30) == 75 and list(lines) == []


def test_variables_only_a_new_interpreter_reads_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\['PYTHONHASHSEED'\]: only a new interpreter reads these"):
        run_python(write_script(tmp_path, 'pass\n'), cwd=tmp_path, env=dict(os.environ, PYTHONHASHSEED='1'))
