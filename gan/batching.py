"""Concurrent sampling calls on one generator, run as one batch.

A sampling step costs a fixed amount of Python and small-tensor work plus a part that grows
with the rows, so one batch of 400 rows costs far less than four of 100. A server answering
concurrent requests from one generator merges them here: a call that finds the generator idle runs at once, taking along every
waiting call with the same sampling settings; calls that arrive meanwhile wait and run
together next. Nobody waits for a timer, so a lone call is not slowed down.

Each call's rows draw from the call's own random generator (``RandomStreams``), so what a
call gets does not depend on what it was merged with: a seeded request is reproducible on a
busy server.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from gan.generator import Generator, SamplingTables
from gan.sampling import RandomStreams, SamplingConfig


@dataclass(eq=False)
class _Call:
    intents: torch.Tensor
    languages: torch.Tensor
    config: SamplingConfig
    random: torch.Generator
    done: bool = False
    result: tuple[torch.Tensor, torch.Tensor] | None = None
    error: BaseException | None = None


class SharedSampler:
    """``sample`` for many threads on one generator whose weights no longer change."""

    def __init__(self, generator: Generator):
        self.generator = generator
        self.batches_run = 0  # how many batches ran (calls / batches = merging)
        self._tables: SamplingTables | None = None
        self._condition = threading.Condition()
        self._waiting: list[_Call] = []
        self._running = False

    @property
    def waiting(self) -> int:
        """Calls waiting for the next batch."""
        with self._condition:
            return len(self._waiting)

    def sample(self, intents: torch.Tensor, languages: torch.Tensor, config: SamplingConfig,
               random: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``Generator.sample`` for these rows, drawing from ``random`` only (see module doc)."""
        call = _Call(intents, languages, config, random)
        with self._condition:
            self._waiting.append(call)
            while not call.done and self._running:
                self._condition.wait()
            if not call.done:  # idle generator: this thread runs the next batch
                self._running = True
                batch = [waiting for waiting in self._waiting if waiting.config == config]
                self._waiting = [waiting for waiting in self._waiting if waiting.config != config]
        if not call.done:
            try:
                self._run(batch)
            finally:
                with self._condition:
                    self._running = False
                    self._condition.notify_all()
        if call.error is not None:
            raise call.error
        return call.result

    def _run(self, batch: list[_Call]) -> None:
        try:
            if self._tables is None:
                self._tables = self.generator.sampling_tables()
            sizes = [call.intents.numel() for call in batch]
            streams = torch.repeat_interleave(torch.arange(len(batch)), torch.tensor(sizes))
            tokens, tags = self.generator.sample(
                torch.cat([call.intents for call in batch]),
                torch.cat([call.languages for call in batch]), batch[0].config,
                tables=self._tables,
                generator=RandomStreams([call.random for call in batch], streams))
            self.batches_run += 1
            for call, call_tokens, call_tags in zip(batch, tokens.split(sizes),
                                                    tags.split(sizes)):
                call.result = call_tokens, call_tags
        except BaseException as error:  # every caller of the batch raises it
            for call in batch:
                call.error = error
        finally:
            for call in batch:
                call.done = True
