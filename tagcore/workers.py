"""Worker processes for per-file jobs: decoding many files with a timeout.

:func:`map_files` runs any picklable per-file job (a function of a path) in
worker processes started with 'spawn', one file per worker at a time, and
yields the results as they finish: a file that takes longer than the
timeout, or crashes its worker, gets an :class:`~tagcore.audio.AudioError`
and the worker is replaced; closing the iterator kills the workers.
:func:`read_excerpts` is :func:`tagcore.audio.read_excerpt` over many files
this way.

Like :mod:`tagcore.audio`, this module never imports torch, so that the
workers stay light.
"""

from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from tagcore.audio import AudioError, check_excerpt_parameters, read_excerpt

__all__ = ["map_files", "read_excerpts"]

# How long a freshly spawned worker may take to import its modules.
_WORKER_START_LIMIT = 120.0


def read_excerpts(paths: Iterable, *, sample_rate: int = 22050, duration: float | None = None,
                  offset: float | None = None, min_duration: float = 3.0,
                  transform: Callable[[np.ndarray], Any] | None = None, workers: int = 2,
                  timeout: float | None = 30.0) -> Iterator[tuple[int, Any, Any]]:
    """Decode many files in worker processes; yield results as they finish.

    Parameters
    ----------
    paths : iterable of paths
        Read lazily, a few at a time, so it may be a generator of any length.
    sample_rate, duration, offset, min_duration
        As for :func:`tagcore.audio.read_excerpt`.
    transform : callable or None
        Applied to each excerpt inside the worker, e.g. to compute features
        there; must be a picklable top-level function (or a
        ``functools.partial`` of one) that the workers can import.
    workers : int
        Number of worker processes, started with 'spawn' (never 'fork', the
        parent may hold torch threads). ``0`` decodes in this process, one
        file after the other, and cannot enforce ``timeout``.
    timeout : float or None
        Seconds one file may take in a worker; past it the worker is killed
        and replaced, and the file gets an AudioError. ``None``: no limit.

    Yields
    ------
    (index, path, result)
        In completion order. ``index`` is the position of ``path`` in
        ``paths``; ``result`` is the excerpt (float32, shape (samples,)), or
        ``transform(excerpt)``, or an :class:`AudioError` instance (returned,
        not raised) when the file failed; an exception in ``transform``
        becomes an AudioError too.

    Each worker holds one file at a time, so memory stays bounded. Closing
    the iterator (``close()``, garbage collection, ``break`` out of a loop
    over it, KeyboardInterrupt) kills the worker processes.
    """
    check_excerpt_parameters(sample_rate=sample_rate, duration=duration, offset=offset,
                             min_duration=min_duration)
    _check_pool_parameters(workers, timeout)
    options = {"sample_rate": sample_rate, "duration": duration, "offset": offset, "min_duration": min_duration}
    if workers:
        try:
            pickle.dumps(transform)
        except Exception as error:
            raise TypeError(f"transform must be picklable for worker processes: {error}") from error
    job = functools.partial(_excerpt_job, options=options, transform=transform)
    return map_files(paths, job=job, workers=workers, timeout=timeout)


def map_files(paths: Iterable, *, job: Callable[[Any], Any], workers: int = 2,
              timeout: float | None = 30.0) -> Iterator[tuple[int, Any, Any]]:
    """Run ``job(path)`` for many files in worker processes; yield results
    as they finish.

    The machinery under :func:`read_excerpts`, for any per-file work that
    starts by decoding (the analysis pass decodes once and computes several
    features in the same job).

    Parameters
    ----------
    paths : iterable of paths
        Read lazily, a few at a time.
    job : callable
        A picklable top-level function (or ``functools.partial`` of one)
        taking a path. An :class:`AudioError` it raises or returns is the
        file's result; any other exception becomes an AudioError naming the
        file.
    workers, timeout
        As for :func:`read_excerpts`.

    Yields
    ------
    (index, path, result)
        In completion order; ``result`` is what ``job`` returned, or an
        AudioError instance.
    """
    _check_pool_parameters(workers, timeout)
    if workers == 0:
        return _run_in_this_process(paths, job)
    try:
        pickle.dumps(job)
    except Exception as error:
        raise TypeError(f"job must be picklable for worker processes: {error}") from error
    return _read_in_workers(paths, job, workers, timeout)


def _check_pool_parameters(workers, timeout) -> None:
    if not (isinstance(workers, int) and workers >= 0):
        raise ValueError(f"workers must be an int >= 0, not {workers!r}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be None or > 0 seconds, not {timeout!r}")


def _excerpt_job(path, *, options: dict, transform) -> Any:
    """read_excerpt then ``transform``; a failing transform is an AudioError."""
    excerpt = read_excerpt(path, **options)
    if transform is None:
        return excerpt
    try:
        return transform(excerpt)
    except Exception as error:
        return AudioError(path, f"transform failed: {type(error).__name__}: {error}")


def _run_job(job, path) -> Any:
    """``job(path)``, with every failure turned into an AudioError."""
    try:
        return job(path)
    except AudioError as error:
        return error
    except Exception as error:  # a bug, but one file must not stop a batch
        return AudioError(path, f"unexpected {type(error).__name__}: {error}")


def _run_in_this_process(paths, job):
    for index, path in enumerate(paths):
        yield index, path, _run_job(job, path)


def _worker_main(conn) -> None:
    """Body of a worker process: run the job on the paths the parent sends.

    Messages from the parent: first the job, then ``(index, path)`` tasks,
    one at a time (``None`` stops the worker, but the parent usually just
    kills it). Messages to the parent: ``("ready", None)``, ``("result",
    result)`` or ``("broken", text)``.
    """
    # Ctrl-C reaches the whole process group; the parent decides what to do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        job = conn.recv()
    except EOFError:
        return
    except Exception as error:  # e.g. the job's module is not importable
        conn.send(("broken", f"cannot load the job: {type(error).__name__}: {error}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if task is None:
            return
        _, path = task
        result = _run_job(job, path)
        try:
            conn.send(("result", result))
        except Exception as error:  # the result could not be pickled
            conn.send(("result", AudioError(path, f"result cannot be sent back: {error}")))


# Thread-count variables of the maths libraries numpy may load.
_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def _single_threaded_maths():
    """Start child processes with one BLAS/OpenMP thread each.

    The workers already run in parallel; a multi-threaded BLAS in each one
    oversubscribes the cores (measured here: the log-mel matrix product went
    from 7 ms to 26 ms per track with two workers on two cores). A spawned
    child copies the environment at start, before it imports numpy.
    """
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: "1" for name in _THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _Worker:
    """One worker process and the pipe to it, with the task it is working on."""

    def __init__(self, context, setup):
        self.conn, child_conn = context.Pipe(duplex=True)
        self.process = context.Process(target=_worker_main, args=(child_conn,),
                                       name="tagcore-audio-worker", daemon=True)
        with _single_threaded_maths():
            self.process.start()
        child_conn.close()  # so that our recv() sees EOF if the worker dies
        self.started = time.monotonic()
        self.ready = False
        self.task = None  # (index, path) being decoded
        self.deadline = None  # monotonic time when the task times out
        self.stopped = False
        self.conn.send(setup)

    def give(self, index, path, timeout) -> None:
        self.conn.send((index, os.fspath(path) if _is_path(path) else path))
        self.task = (index, path)
        self._arm(timeout)

    def _arm(self, timeout) -> None:
        # The clock starts when the worker is ready, so that its start-up
        # (importing numpy, av...) never counts against a file.
        if self.task is not None and self.ready and timeout is not None:
            self.deadline = time.monotonic() + timeout

    def receive(self, timeout) -> list[tuple[str, Any]]:
        """Messages waiting in the pipe; ``("died", exitcode)`` if it broke."""
        messages = []
        try:
            while self.conn.poll():
                kind, value = self.conn.recv()
                if kind == "ready":
                    self.ready = True
                    self._arm(timeout)
                else:
                    messages.append((kind, value))
        except (EOFError, OSError):
            self.process.join(timeout=1.0)
            messages.append(("died", self.process.exitcode))
        return messages

    def stop(self) -> None:
        """Kill the process (it holds nothing worth saving) and reap it."""
        if self.stopped:
            return
        self.stopped = True
        try:
            if self.process.is_alive():
                self.process.kill()
            self.process.join(timeout=5.0)
        finally:
            self.conn.close()
            if self.process.exitcode is not None:
                self.process.close()


def _is_path(path) -> bool:
    return isinstance(path, (str, bytes, os.PathLike))


def _read_in_workers(paths, job, workers, timeout):
    context = multiprocessing.get_context("spawn")
    setup = job
    slots: list[_Worker | None] = [None] * workers  # workers start when needed
    pending = enumerate(paths)
    exhausted = False
    try:
        while True:
            # 1. Give every idle slot a path (one at a time per worker).
            for slot, worker in enumerate(slots):
                if exhausted:
                    break
                if worker is not None and worker.task is not None:
                    continue
                item = next(pending, None)
                if item is None:
                    exhausted = True
                    break
                slots[slot] = _give_to_live_worker(worker, item, context, setup, timeout)

            busy = [worker for worker in slots if worker is not None and worker.task is not None]
            if not busy:
                return

            # 2. Wait for a result, a dead worker or the nearest deadline.
            multiprocessing.connection.wait(
                [w.conn for w in busy] + [w.process.sentinel for w in busy],
                timeout=_time_to_next_deadline(busy))

            # 3. Collect what happened, then yield it (state is consistent
            #    at every yield, so closing the generator there is safe).
            finished = []
            for slot, worker in enumerate(slots):
                if worker is None or worker.task is None:
                    continue
                result = _outcome(worker, timeout)
                if result is _STILL_WORKING:
                    continue
                index, path = worker.task
                worker.task = worker.deadline = None
                finished.append((index, path, result))
                if worker.stopped:
                    slots[slot] = None  # replaced when there is a path for it
            yield from finished
    finally:
        for worker in slots:
            if worker is not None:
                worker.stop()


_STILL_WORKING = object()


def _outcome(worker: _Worker, timeout):
    """The result of a busy worker's task: what it sent back, or an AudioError
    when it died or ran past its deadline (then it is stopped), or
    ``_STILL_WORKING``. Raises RuntimeError when workers cannot work at all."""
    _, path = worker.task
    for kind, value in worker.receive(timeout):
        if kind == "result":
            return value
        if kind == "broken":
            raise RuntimeError(f"read_excerpts worker failed: {value}")
        # "died": a crash in a decoder, or a kill from outside.
        if not worker.ready:
            raise RuntimeError(f"read_excerpts worker process failed to start (exit code {value})")
        worker.stop()
        return AudioError(path, f"decoder process died (exit code {value})")
    now = time.monotonic()
    if worker.deadline is not None and now >= worker.deadline:
        worker.stop()
        return AudioError(path, f"decoding took longer than {timeout} s")
    if not worker.ready and now - worker.started > _WORKER_START_LIMIT:
        raise RuntimeError(
            f"read_excerpts worker process did not start within {_WORKER_START_LIMIT:.0f} s")
    return _STILL_WORKING


def _give_to_live_worker(worker, item, context, setup, timeout) -> _Worker:
    """Send ``item`` to ``worker``, or to a new worker if it is gone or
    missing; return the worker that has it."""
    if worker is not None and worker.process.is_alive():
        try:
            worker.give(*item, timeout)
            return worker
        except OSError:
            pass  # it died just now
    if worker is not None:
        worker.stop()
    worker = _Worker(context, setup)
    worker.give(*item, timeout)
    return worker


def _time_to_next_deadline(busy: list[_Worker]) -> float | None:
    """Seconds until the earliest deadline or start-up limit; None if none."""
    moments = [w.deadline for w in busy if w.deadline is not None]
    moments += [w.started + _WORKER_START_LIMIT for w in busy if not w.ready]
    if not moments:
        return None
    return max(0.0, min(moments) - time.monotonic())
