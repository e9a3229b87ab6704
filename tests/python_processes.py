"""Python programs started as a user starts them (``python script.py ARGS``), each in a process of its
own, without paying for the imports in every one.

Every entry point and script first imports torch, torchvision, BasicSR and this package: about 5 s of
CPU, more than most of the runs the tests make. So the tests start those programs as forks of a
server process that has made those imports once per test worker (:mod:`multiprocessing`'s
forkserver, with ``basicsr_snn`` preloaded). Each program still runs as ``__main__`` in a process of
its own, with its arguments, working directory, environment, output files, signals and exit code.
What a new interpreter would do differently is redone in the child: NumPy's global random state is
drawn afresh (Python's ``random`` is reseeded by every fork), :mod:`multiprocessing` starts its own
processes the platform's way, ``$OMP_NUM_THREADS`` sets torch's threads, and the ``atexit`` functions
run at the end. One difference remains: the programs share the
server's string-hash seed.

What only a new interpreter shows (what ``import basicsr_snn`` changes, spawned workers, the random
state of another process) is tested with ``subprocess``, and so are torchrun's workers, which torchrun
starts itself.
"""
import atexit
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

TESTS_DIR = str(Path(__file__).resolve().parent)

_FORKSERVER = multiprocessing.get_context('forkserver')
_FORKSERVER.set_forkserver_preload(['basicsr_snn', __name__])


class PythonProcess:
    """A program started by :func:`start_python`: ``pid``, ``poll``, ``wait``, ``send_signal``, ``kill``, like
    :class:`subprocess.Popen`, and its output, read from the file the program writes."""

    def __init__(self, command, process, folder, output, errors):
        self.args, self._process, self.output_path, self.errors_path = command, process, output, errors
        self._folder = folder  # removed with this object

    @property
    def pid(self):
        return self._process.pid

    def poll(self):
        return self._process.exitcode

    def wait(self, timeout=None):
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._process.exitcode

    def send_signal(self, signum):
        os.kill(self.pid, signum)

    def kill(self):
        if self._process.exitcode is None:
            self._process.kill()
            self._process.join()

    def output_lines(self, poll_s=0.05):
        """The program's output (stdout, and stderr where it was not kept apart) line by line as it is
        written, until the program has ended."""
        with open(self.output_path, encoding='utf-8', errors='replace') as output:
            partial = ''
            while True:
                ended = self.poll() is not None  # before reading: what was written before the end is read
                partial += output.readline()
                if partial.endswith('\n'):
                    yield partial
                    partial = ''
                elif ended:
                    if partial:
                        yield partial
                    return
                else:
                    time.sleep(poll_s)


def start_python(script, *args, cwd, env=None, new_session=False, separate_stderr=False):
    """Start ``python script ARGS`` in ``cwd`` with ``env`` (default: this process's environment);
    ``new_session``: as ``subprocess.Popen(start_new_session=True)``, so that ``os.killpg(pid, ...)`` reaches
    the program and its children; stderr goes with stdout unless ``separate_stderr``. ``env`` may not change
    the ``$PYTHON...`` variables that the interpreter reads at its start (``$PYTHONUNBUFFERED`` is honoured)."""
    env = dict(os.environ if env is None else env)
    unread = sorted(key for key in {*env, *os.environ} if key.startswith('PYTHON') and key != 'PYTHONUNBUFFERED'
                    and env.get(key) != os.environ.get(key))
    if unread:
        raise ValueError(f'{unread}: only a new interpreter reads these at its start; run the program with '
                         'subprocess instead')
    folder = tempfile.TemporaryDirectory(prefix='python_process_')
    output = Path(folder.name) / 'stdout.txt'
    errors = Path(folder.name) / 'stderr.txt' if separate_stderr else None
    for path in (output, errors):
        if path:
            path.touch()
    command = [sys.executable, str(script), *map(str, args)]
    process = _FORKSERVER.Process(
        target=_run_as_main,
        args=(str(Path(script).resolve()), command[2:], str(cwd), env, str(output), errors and str(errors),
              new_session))
    process.start()
    return PythonProcess(command, process, folder, output, errors)


def run_python(script, *args, cwd, env=None, timeout=600):
    """Run ``python script ARGS`` to its end, as ``subprocess.run(capture_output=True, text=True)`` does."""
    process = start_python(script, *args, cwd=cwd, env=env, separate_stderr=True)
    try:
        returncode = process.wait(timeout)
    finally:
        process.kill()
    read = lambda path: path.read_text(encoding='utf-8', errors='replace')  # noqa: E731
    return subprocess.CompletedProcess(process.args, returncode, read(process.output_path),
                                       read(process.errors_path))


def _run_as_main(script, args, cwd, env, output, errors, new_session):
    """In the forked child: what ``python script ARGS`` does after its imports, then exit with its status."""
    if new_session:
        os.setsid()
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, output), (2, errors or output)):
        opened = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.dup2(opened, fd)
        os.close(opened)
    if env.get('PYTHONUNBUFFERED'):
        sys.stdout.reconfigure(write_through=True)
    sys.argv = [script, *args]
    sys.path[:] = [os.path.dirname(script)] + [entry for entry in sys.path if entry not in ('', TESTS_DIR)]
    _start_as_a_new_interpreter(env)
    try:
        runpy.run_path(script, run_name='__main__')
        status = 0
    except SystemExit as stop:
        status = _exit_status(stop.code)
    except BaseException as error:  # noqa: BLE001  (what the interpreter does with an uncaught exception)
        trace = error.__traceback__
        while trace is not None and trace.tb_frame.f_code.co_filename != script:  # from the script's frame on
            trace = trace.tb_next
        traceback.print_exception(type(error), error, trace or error.__traceback__)
        status = 1
    atexit._run_exitfuncs()  # a multiprocessing child ends in os._exit, which skips them
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _start_as_a_new_interpreter(env):
    import numpy
    import torch
    numpy.random.seed()  # the server's state, shared by every fork, would otherwise repeat in each
    multiprocessing.set_start_method(None, force=True)  # the platform's default, not the forkserver that made us
    if env.get('OMP_NUM_THREADS'):
        torch.set_num_threads(int(env['OMP_NUM_THREADS']))


def _exit_status(code):
    """The exit status of ``sys.exit(code)``: None is 0, a number itself, anything else is printed and is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1
