"""What every action and CLI command works with: the config, and the storage,
ledger and engine it names, built lazily (an action that never touches the engine
never imports a cloud SDK)."""

from __future__ import annotations

from functools import cached_property

from ephemera.assembly import load_config
from ephemera.config import Config
from ephemera.engines import get_engine
from ephemera.model.ledger import Ledger
from ephemera.secrets import Scrubber
from ephemera.storage import get_storage
from ephemera.timeutil import Budget


class Context:
    def __init__(self, config: Config | dict | str | None = None, *, storage=None, engine=None):
        self.config = load_config(config)
        self.budget = Budget()  # the invocation's time left; actions set it from their platform's limit
        if storage is not None:
            self.__dict__["storage"] = storage
        if engine is not None:
            self.__dict__["engine"] = engine

    @cached_property
    def storage(self):
        return get_storage(self.config)

    @cached_property
    def engine(self):
        return get_engine(self.config)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.storage, self.config.state_bucket, scrubber=self.scrubber, on_transition=self._on_transition)

    def _on_transition(self, record, previous) -> None:
        from ephemera.notify import on_transition  # cold start: smtplib, ssl and urllib only once a run changes state

        on_transition(self, record, previous)

    @cached_property
    def scrubber(self) -> Scrubber:
        return Scrubber(self.config.secret_values())
