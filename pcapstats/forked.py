"""One function run in a forked copy of this process while this one goes on.

After a parallel run the work left (the affinity attribution, the summary, the
reports) ran in one process while the other cores idled. Two pieces of it read
the same finished rows and neither needs the other: the summary and the
affinity attribution. A child made with ``fork`` has the rows already (the
pages are shared until written), computes one piece and sends back only its
result, which is small; this process computes the other meanwhile.

Only where that is safe and worth it: ``fork`` exists, this process runs no
other thread (a child of a threaded process can inherit a lock held forever),
and the caller has found the work large enough. Otherwise, or when the child
fails in any way, the function runs here when its result is asked for: the
result is the same either way, only the time differs.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
from typing import Any, Callable


class Forked:
    """``fn(*args)``, computed in a child process from now on (see the module
    docstring; with ``fork=False``, here when asked for); :meth:`result` waits for
    it. Use as a context manager, so that a child whose result is never asked for
    is stopped."""

    def __init__(self, fn: Callable[..., Any], *args: Any, fork: bool = True) -> None:
        self._call = (fn, args)
        self._pid: int | None = None
        self._fd = -1
        if not fork or not hasattr(os, "fork") or threading.active_count() > 1:
            return
        try:
            rfd, wfd = os.pipe()
        except OSError:
            return
        try:
            pid = os.fork()
        except OSError:
            os.close(rfd)
            os.close(wfd)
            return
        if pid == 0:    # the child: never returns to the caller's code
            code = 1
            try:
                os.close(rfd)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                data = pickle.dumps(fn(*args), protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(wfd, "wb") as out:
                    out.write(data)
                code = 0
            finally:
                os._exit(code)
        os.close(wfd)
        self._pid, self._fd = pid, rfd

    @property
    def forked(self) -> bool:
        """Whether a child is computing the result (else it is computed when asked for)."""
        return self._pid is not None

    def result(self) -> Any:
        """The function's result: the child's, else computed here."""
        if self._pid is not None:
            try:
                with os.fdopen(self._fd, "rb") as src:
                    self._fd = -1
                    data = src.read()
            except OSError:
                data = b""
            ok = self._reap(kill=False) and data
            if ok:
                try:
                    return pickle.loads(data)
                except Exception:   # a cut message: compute it here
                    pass
        fn, args = self._call
        return fn(*args)

    def _reap(self, kill: bool) -> bool:
        """Wait for the child (stopped first when ``kill``); whether it succeeded."""
        pid, self._pid = self._pid, None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if pid is None:
            return False
        if kill:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return False
        return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0

    def __enter__(self) -> "Forked":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pid is not None:
            self._reap(kill=True)
