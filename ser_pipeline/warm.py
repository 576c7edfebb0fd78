"""Warm job processes: a job forks from an interpreter that has already imported torch.

Why: a training job's own work is often a few seconds, but a fresh ``python -m
ser_pipeline train`` spends about 2 s importing torch (its shared libraries) and another
1 s importing ``torch._dynamo`` (sympy, triton), which ``torch.optim`` pulls in on its
first step. Over the default run's ~200 training, table and cross-corpus jobs that fixed
cost was a third of the run on two cores (benchmarks/bench_default_run.py prints it).

How: the first such job on a machine starts a server (``serve``) that imports the heavy
*third-party* modules once and listens on a Unix socket. Every job's command line stays
``python -m ser_pipeline <stage> ...``: ``__main__`` calls :func:`run_warm`, which sends
the job's arguments, working directory, environment and its stdin/stdout/stderr file
descriptors to the server; the server forks a child that becomes the job (same fds, so the
job's log and exit status are exactly those of a plain run) and the client waits for it,
forwarding SIGTERM/SIGINT/SIGHUP to it. If the client dies, the child ends too.

What keeps this from changing results:
* The server imports no ``ser_pipeline`` module but this one and ``allocator`` (whose
  malloc settings its children inherit, as a plain run sets them): each job imports the
  package's code from disk after the fork, so an edit takes effect in the next job
  exactly as in a plain run (and the import records of the rerun tests stay the same).
* The socket name is a digest of everything the server fixed at start: the interpreter,
  this file and allocator.py, the environment variables that libraries read when they load
  (thread pools, OMP_WAIT_POLICY, CUDA, hash seed) and the installed files of the preloaded
  packages. Any change starts a new server; an idle server exits after ``IDLE_SECONDS``.
* It is not used where forking a preloaded process is unsafe or pointless: on a machine
  with a GPU device node (CUDA must not be initialised before a fork), under SLURM (one
  job per allocation), on platforms without fork or Unix sockets, or with SER_WARM=0.
  Any failure before the job starts falls back to a plain run.
Measured effect and the one thing it changes (a benchmark file's memory and CPU columns
then measure only the client; its seconds stay right): docs/design.md, "Warm job processes".

Only the standard library is imported here: the client must start in milliseconds.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import struct
import sys
import tempfile
import time

# Stages that run many short jobs. Extraction and corpus preparation run once per corpus,
# may use a GPU and start their own worker threads, so they always run plainly.
WARM_COMMANDS = frozenset({"train", "export", "crosscorpus", "probe", "table", "plot", "summary"})
# Third-party modules a job of those stages imports (the slow part of its start).
PRELOAD = ("numpy", "pandas", "torch", "torch.nn", "torch.optim", "torch._dynamo", "scipy.signal",
           "sklearn.linear_model", "sklearn.svm", "sklearn.model_selection", "sklearn.preprocessing",
           "zarr", "click", "yaml", "matplotlib")
# Environment variables that libraries read once, when they load: a server started with
# other values would run jobs with other settings, so they are part of the socket's name.
LOAD_TIME_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                 "OPENBLAS_CORETYPE", "PYTHONHASHSEED", "CUDA_VISIBLE_DEVICES", "PYTHONPATH",
                 "LD_LIBRARY_PATH", "LD_PRELOAD", "MPLBACKEND", "SER_KEEP_FREED_MEMORY")
IDLE_SECONDS = 120.0
START_TIMEOUT = 120.0
GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")
# The folder holding this package: a server imports the package from here, and its children
# import every other module of it from here too, so each copy of the code has its own server.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
_HEADER = struct.Struct("!Q")


def supported() -> bool:
    """Whether this machine can run warm jobs safely (fork, Unix sockets, no GPU node)."""
    if not hasattr(os, "fork") or not hasattr(socket, "AF_UNIX") or not hasattr(socket, "send_fds"):
        return False
    return not any(os.path.exists(p) for p in GPU_NODES)


def enabled(argv: list[str]) -> bool:
    """Whether this invocation should run in a warm child (see the module docstring)."""
    if not argv or argv[0] not in WARM_COMMANDS or any(a in ("-h", "--help") for a in argv):
        return False
    if os.environ.get("SER_WARM", "1").strip().lower() in ("0", "false", "no", "off", ""):
        return False
    return "SLURM_JOB_ID" not in os.environ and supported()


def _package_stamps() -> list[str]:
    """Where each preloaded package is installed and when its entry file was written, found
    without importing it (importlib.metadata took 45 ms, a fifth of a warm job's start)."""
    import importlib.util

    out = []
    for name in sorted({m.split(".")[0] for m in PRELOAD}):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            out.append(f"{name}: absent")
            continue
        st = os.stat(spec.origin)
        out.append(f"{name}: {spec.origin} {st.st_mtime_ns} {st.st_size}")
    return out


def server_key() -> str:
    """Digest of what a server fixes when it starts (module docstring)."""
    h = hashlib.sha256()
    h.update(os.path.realpath(sys.executable).encode())
    h.update(f"\0{PACKAGE_PARENT}".encode())
    for module in (__file__, os.path.join(os.path.dirname(__file__), "allocator.py")):
        with open(module, "rb") as f:  # the code a server runs before it forks
            h.update(f.read())
    for var in LOAD_TIME_ENV:
        h.update(f"\0{var}={os.environ.get(var, '<unset>')}".encode())
    h.update("\0".join(_package_stamps()).encode())
    h.update(f"\0{os.getuid()}".encode())
    return h.hexdigest()[:16]


def socket_path(key: str | None = None) -> str:
    """$SER_WARM_DIR (default: the temp folder) / serwarm-<uid>-<key>.sock; Unix socket paths
    are limited to about 100 bytes, so a folder too deep for one falls back to /tmp."""
    name = f"serwarm-{os.getuid()}-{key or server_key()}.sock"
    path = os.path.join(os.environ.get("SER_WARM_DIR") or tempfile.gettempdir(), name)
    return path if len(path.encode()) <= 100 else os.path.join("/tmp", name)


# ---------------------------------------------------------------- client


def run_warm(argv: list[str]) -> int | None:
    """Run ``python -m ser_pipeline <argv>`` in a warm child; its exit status, or None when
    this invocation should run plainly (not enabled, or no server could be reached)."""
    if not enabled(argv):
        return None
    try:
        conn = _connect_or_start(socket_path())
    except OSError as e:
        print(f"ser_pipeline: warm start unavailable ({e}); running plainly", file=sys.stderr)
        return None
    with conn:
        try:
            request = json.dumps({"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
            socket.send_fds(conn, [_HEADER.pack(len(request))], [0, 1, 2])
            conn.sendall(request)
            reader = conn.makefile("rb")
            first = reader.readline()
        except OSError as e:
            print(f"ser_pipeline: warm start failed ({e}); running plainly", file=sys.stderr)
            return None
        try:
            started = json.loads(first) if first else {}
        except ValueError:
            started = {}
        if "pid" not in started:  # the fork or the hand-over failed: nothing of the job has run
            print("ser_pipeline: the warm server did not start the job; running plainly", file=sys.stderr)
            return None
        child = int(started["pid"])

        def forward(signum, frame):
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, forward)
        last = reader.readline()
        if not last:
            print(f"ser_pipeline: the job process (pid {child}) ended without an exit status "
                  f"(killed by a signal?)", file=sys.stderr)
            return 1
        return int(json.loads(last)["exit"])


def _connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError:
        s.close()
        raise
    return s


def _connect_or_start(path: str) -> socket.socket:
    try:
        return _connect(path)
    except OSError:
        pass
    import fcntl
    import subprocess

    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time; the others then connect
        try:
            return _connect(path)
        except OSError:
            pass
        log = open(path + ".log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[2]); "
             "from ser_pipeline.warm import serve; serve(sys.argv[1])", path, PACKAGE_PARENT],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                return _connect(path)
            except OSError:
                if proc.poll() is not None:
                    raise OSError(f"the warm server exited with status {proc.returncode} (see {path}.log)")
                if time.monotonic() > deadline:
                    raise OSError(f"the warm server did not start within {START_TIMEOUT:.0f} s (see {path}.log)")
                time.sleep(0.05)


# ---------------------------------------------------------------- server


def serve(path: str, idle: float | None = None) -> None:
    """Import the heavy modules once, then fork one child per connection until idle
    (``IDLE_SECONDS``, or $SER_WARM_IDLE) with no job running."""
    import importlib

    from ser_pipeline.allocator import keep_freed_memory

    keep_freed_memory()  # inherited by every child, as a plain run sets it in __main__
    idle = float(idle if idle is not None else os.environ.get("SER_WARM_IDLE") or IDLE_SECONDS)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as ser_pipeline.device.set_threads
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    tmp = f"{path}.{os.getpid()}.tmp"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(tmp)
    server.listen(64)
    os.replace(tmp, path)  # appears only when ready to accept
    ours = os.stat(path).st_ino
    server.settimeout(1.0)
    children: set[int] = set()
    last = time.monotonic()
    print(f"{time.strftime('%F %T')} warm server {os.getpid()} ready on {path}", flush=True)
    try:
        while True:
            _reap(children)
            if children:
                last = time.monotonic()
            elif time.monotonic() - last > idle:
                break
            try:
                if os.stat(path).st_ino != ours:
                    break  # replaced by another server
            except FileNotFoundError:
                break
            try:
                conn, _ = server.accept()
            except socket.timeout:
                continue
            last = time.monotonic()
            pid = os.fork()
            if pid == 0:
                server.close()
                _child(conn)  # never returns
            conn.close()
            children.add(pid)
    finally:
        try:
            if os.stat(path).st_ino == ours:
                os.unlink(path)
        except FileNotFoundError:
            pass
        server.close()
        print(f"{time.strftime('%F %T')} warm server {os.getpid()} exits (idle)", flush=True)


def _reap(children: set[int]) -> None:
    for pid in list(children):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            children.discard(pid)


def _recv_request(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
    if len(data) != _HEADER.size or len(fds) != 3:
        raise OSError("malformed request")
    (size,) = _HEADER.unpack(data)
    body = bytearray()
    while len(body) < size:
        more = conn.recv(size - len(body))
        if not more:
            raise OSError("request cut short")
        body += more
    return json.loads(body), fds


def _child(conn: socket.socket) -> None:
    """Become the job: its fds, directory, environment and argv; report its exit status."""
    import threading
    import traceback

    code = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        request, fds = _recv_request(conn)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "__main__.py")] + request["argv"]
        conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")

        def watch():  # the client went away (killed): end the job as a plain one would end
            try:
                while conn.recv(1):
                    pass
            except OSError:
                pass
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
        try:
            from ser_pipeline.cli import main

            main(args=request["argv"], prog_name="python -m ser_pipeline")
            code = 0
        except SystemExit as e:
            code = _exit_code(e.code)
        except BaseException:
            traceback.print_exc()
            code = 1
        try:
            import atexit

            atexit._run_exitfuncs()
        except BaseException:
            traceback.print_exc()
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        try:
            conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
        except BaseException:
            pass
        os._exit(code)


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message") prints it and exits with 1
    return 1


if __name__ == "__main__":  # pragma: no cover - manual use: python -m ser_pipeline.warm <socket>
    serve(sys.argv[1] if len(sys.argv) > 1 else socket_path())
