"""``FuturesList``: a list of futures that waits, fetches results and chains jobs, as in Lithops."""

from __future__ import annotations

from typing import Any, Callable

from lithops_bridge.constants import ALL_COMPLETED


class FuturesList(list):
    """A list of futures that can wait, fetch its results and feed further jobs, as in
    Lithops: with an executor these delegate to it (so ``map_reduce(...).get_result()``
    is the reducer's single value); without one, to the module-level functions."""

    def __init__(self, futures=(), executor=None):
        super().__init__(futures)
        self.executor = executor
        self.alt_list: list | None = None  # every future, once map()/map_reduce() extended the list

    def _all(self) -> list:
        return self.alt_list if self.alt_list is not None else list(self)

    # What a list made without an executor (by wait(), unpickled, by hand) runs its next job
    # on: a new FunctionExecutor. lithops_bridge.executor hands its class in when it is
    # imported (it imports this module; this module never imports it back).
    new_executor: Callable[[], Any] | None = None

    def _executor(self):
        if self.executor is None:
            if FuturesList.new_executor is None:
                raise RuntimeError("no executor to run the next job on: import lithops_bridge (it registers FunctionExecutor)")
            self.executor = FuturesList.new_executor()
        return self.executor

    def _extend_futures(self, fs: list) -> "FuturesList":
        """Lithops: the list now holds the new job's futures; ``alt_list`` keeps every one."""
        for fut in self:
            fut._produce_output = False
        if self.alt_list is None:
            self.alt_list = list(self)
        self.alt_list.extend(fs)
        self.clear()
        self.extend(fs)
        return self

    def map(self, map_function, sync: bool = False, **kwargs: Any) -> "FuturesList":
        """Run ``map_function`` over this list's results (one call per future)."""
        fexec = self._executor()
        if sync:
            fexec.wait(self)
        return self._extend_futures(fexec.map(map_function, FuturesList(self), **kwargs))

    def map_reduce(self, map_function, reduce_function, sync: bool = False, **kwargs: Any) -> "FuturesList":
        fexec = self._executor()
        if sync:
            fexec.wait(self)
        return self._extend_futures(fexec.map_reduce(map_function, FuturesList(self), reduce_function, **kwargs))

    def wait(
        self,
        throw_except: bool = True,
        return_when: Any = None,
        download_results: bool = False,
        timeout: float | None = None,
        **kwargs: Any,
    ):
        return_when = ALL_COMPLETED if return_when is None else return_when
        if self.executor is not None:
            return self.executor.wait(
                self._all(),
                throw_except=throw_except,
                return_when=return_when,
                download_results=download_results,
                timeout=timeout,
            )
        from lithops_bridge.wait import wait  # circle: wait.py builds FuturesLists

        return wait(
            self._all(), throw_except=throw_except, return_when=return_when, download_results=download_results, timeout=timeout
        )

    def get_result(self, throw_except: bool = True, timeout: float | None = None, **kwargs: Any):
        if self.executor is not None:
            return self.executor.get_result(self._all(), throw_except=throw_except, timeout=timeout)
        from lithops_bridge.wait import get_result  # circle: wait.py builds FuturesLists

        return get_result(self._all(), throw_except=throw_except, timeout=timeout)

    def __reduce__(self):
        return FuturesList, (list(self),)
