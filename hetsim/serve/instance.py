"""One serving-engine instance: its queue, its running batch and its KV cache, one iteration at a time.

An instance is a group of units running one copy of the model (tensor parallel over its units).
Its *role* says which phases it runs:

* ``both`` — a colocated engine (vLLM, Sarathi): prefill chunks and decodes share iterations;
* ``prefill`` — a disaggregated prompt instance (DistServe, Splitwise): it runs prefill only; a
  request whose prefill ends emits its first token and is *held* here, its KV cache still
  reserved, until the cluster ships that cache to a decode instance;
* ``decode`` — a disaggregated token instance: requests arrive with their KV cache and decode
  until done. A request it preempts leaves for a prefill instance, which recomputes its KV.

Each continuous-batching iteration (:meth:`Instance.plan`):

1. every running request that has finished its prefill decodes one token (one budget token each);
   if the KV cache cannot take one more token per decoder, the newest running request is
   preempted (recompute: its KV is freed and it must prefill prompt + generated tokens again);
2. the rest of ``token_budget`` goes to prefill chunks: first the running requests still
   prefilling, then waiting requests admitted FCFS while ``max_batch`` allows and their whole KV
   (prompt + output so far) fits in the free cache; admission stops at the first that does not fit;
3. the iteration lasts :meth:`IterationModel.iteration`; a request whose prefill completes emits
   a token at the end of the iteration (the first token, or the next one after a recompute).

Static batching (``both`` only) waits for the batch to drain, admits up to ``max_batch`` waiting
requests that fit, prefills them together in one iteration, then decodes until the last one finishes.

With a :class:`Swap` (vLLM's swap preemption mode), a preempted request's KV cache is copied to
host memory instead of dropped, when the host has room: it waits at the front of the queue and,
once its cache fits again, is copied back and decodes on, with no recompute. Both copies stall
the iteration in which they happen (the engine waits for them, as vLLM does), at the instance's
static power; a decode instance keeps the requests it swaps out.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from hetsim.serve.iteration import IterationModel
from hetsim.serve.workload import Request

ROLES = ("both", "prefill", "decode")


@dataclass
class Live:
    """A request in the system: what it has generated and what it holds."""

    req: Request
    generated: int = 0  # output tokens emitted so far
    need: int = 0  # prefill tokens still to run since the last admission
    kv: int = 0  # tokens held in a KV cache (reserved for the whole prefill at admission)
    first_token_s: float = math.nan
    finish_s: float = math.nan
    preemptions: int = 0
    prefill_on: str = ""  # the instance that ran its (last) prefill
    decode_on: str = ""  # the decode instance of a disaggregated run
    transfer_s: float = 0.0  # seconds its KV cache spent on the interconnect
    swapped: int = 0  # tokens of its KV cache in host memory (swap preemption)

    @property
    def decoding(self) -> bool:
        return self.need == 0

    @property
    def done(self) -> bool:
        return self.generated >= self.req.output_tokens


@dataclass
class Swap:
    """Where an instance swaps preempted KV caches out to, and what a copy costs.

    Attributes
    ----------
    host : str
        The host memory.
    room : dict
        Free tokens per host memory, shared by the instances that swap there.
    seconds, joules : callable
        Time and link energy of copying ``n`` cached tokens one way.
    """

    host: str
    room: dict[str, int]
    seconds: Callable[[int], float]
    joules: Callable[[int], float]


@dataclass
class Step:
    """One planned iteration: who decodes, which prefill chunks run, how long and how much energy."""

    decoders: list[Live]
    chunks: list[tuple[Live, int]]
    time_s: float
    energy_j: float


@dataclass
class Instance:
    """One engine instance; :class:`hetsim.serve.simulator` drives it through time.

    Attributes
    ----------
    name : str
        ``"prefill0"``, ``"decode1"``, ``"engine0"``…
    units : tuple of str
        Its units, one tensor-parallel rank each.
    role : {"both", "prefill", "decode"}
    model : IterationModel
    capacity : int
        KV-cache tokens it can hold.
    """

    name: str
    units: tuple[str, ...]
    role: str
    model: IterationModel
    capacity: int
    batching: str = "continuous"
    token_budget: int = 2048
    max_batch: int = 256
    idle_power_w: float = 0.0
    swap: Swap | None = None
    waiting: deque[Live] = field(default_factory=deque)
    running: list[Live] = field(default_factory=list)  # in admission order: the last is the newest
    held: list[Live] = field(default_factory=list)  # prefill role: prefilled, waiting for a decode instance
    evicted: list[Live] = field(default_factory=list)  # decode role: preempted, to recompute on a prefill instance
    arriving: int = 0  # decode role: requests whose KV is on its way here (reserved in ``used``)
    used: int = 0
    step: Step | None = None
    until: float = math.inf  # end of the running iteration
    iterations: int = 0
    busy_s: float = 0.0
    energy_j: float = 0.0

    @property
    def busy(self) -> bool:
        return self.step is not None

    @property
    def load_tokens(self) -> int:
        """Prefill tokens queued or running here: the router sends a new request to the least loaded."""
        queued = sum(x.req.prompt_tokens + x.generated for x in self.waiting)
        return queued + sum(x.need for x in self.running) + len(self.running)

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def accepts(self, live: Live) -> bool:
        """Decode role: whether ``live``'s KV cache (and its batch slot) fit here now."""
        return (self.used + live.kv <= self.capacity
                and len(self.running) + self.arriving < self.max_batch)

    def plan(self, t: float) -> Step | None:
        """Choose the next iteration's work at time ``t``; None when nothing can run."""
        stall = joules = 0.0  # swap copies this iteration waits for
        decoders = [x for x in self.running if x.decoding]
        while decoders and self.used + len(decoders) > self.capacity:  # preempt the newest until each fits
            victim = self.running.pop()
            self.used -= victim.kv
            victim.preemptions += 1
            if self.swap is not None and self.swap.room[self.swap.host] >= victim.kv:
                victim.swapped = victim.kv
                self.swap.room[self.swap.host] -= victim.kv
                stall += self.swap.seconds(victim.kv)
                joules += self.swap.joules(victim.kv)
                self.waiting.appendleft(victim)
            elif self.role == "decode":
                self.evicted.append(victim)
            else:
                self.waiting.appendleft(victim)
            victim.kv = 0
            decoders = [x for x in self.running if x.decoding]
        while self.waiting and self.waiting[0].swapped and len(self.running) < self.max_batch \
                and self.used + self.waiting[0].swapped + len(decoders) + 1 <= self.capacity:  # swap back in
            x = self.waiting.popleft()
            x.kv, x.need, x.swapped = x.swapped, 0, 0
            self.swap.room[self.swap.host] += x.kv
            stall += self.swap.seconds(x.kv)
            joules += self.swap.joules(x.kv)
            self.used += x.kv
            self.running.append(x)
            decoders.append(x)
        static = self.batching == "static"
        budget = math.inf if static else self.token_budget - len(decoders)
        chunks: list[tuple[Live, int]] = []
        for x in self.running:
            if not x.decoding and budget > 0:
                n = int(min(x.need, budget))
                chunks.append((x, n))
                budget -= n
        if self.role != "decode" and (not static or not self.running):
            while self.waiting and len(self.running) < self.max_batch and budget > 0:
                x = self.waiting[0]
                if x.swapped or self.used + x.req.prompt_tokens + x.generated > self.capacity:
                    break
                self.waiting.popleft()
                x.kv = x.need = x.req.prompt_tokens + x.generated  # recompute prefills the output so far too
                x.prefill_on = self.name
                self.used += x.kv
                self.running.append(x)
                n = int(min(x.need, budget))
                chunks.append((x, n))
                budget -= n
        if not chunks and not decoders:
            return None
        context = sum(x.kv for x in decoders)
        cached = [x.kv - x.need for x, _ in chunks]  # this admission's tokens already prefilled
        dt, de = self.model.iteration([n for _, n in chunks], len(decoders), context, cached)
        return Step(decoders, chunks, dt + stall, de + joules + self.idle_power_w * stall)

    def start(self, t: float, step: Step) -> None:
        self.step, self.until = step, t + step.time_s
        self.iterations += 1
        self.busy_s += step.time_s
        self.energy_j += step.energy_j

    def complete(self) -> tuple[list[Live], list[Live]]:
        """End the running iteration at :attr:`until`; return (finished, newly held for a decode instance)."""
        step, t = self.step, self.until
        self.step, self.until = None, math.inf
        for x in step.decoders:
            x.generated += 1
            x.kv += 1
            self.used += 1
        prefilled = []
        for x, n in step.chunks:
            x.need -= n
            if x.decoding:
                x.generated += 1  # the prefill's last position emits a token; its KV comes with its decode step
                if math.isnan(x.first_token_s):
                    x.first_token_s = t
                prefilled.append(x)
        finished = [x for x in self.running if x.done]
        for x in finished:
            self.used -= x.kv
        held = []
        if self.role == "prefill":
            held = [x for x in prefilled if not x.done]
            self.held.extend(held)
        gone = {id(x) for x in finished} | {id(x) for x in held}
        if gone:
            self.running = [x for x in self.running if id(x) not in gone]
        return finished, held

    def receive(self, live: Live) -> None:
        """Decode role: ``live``'s KV cache has arrived (it was reserved by :meth:`reserve`); decode it."""
        self.arriving -= 1
        live.decode_on = self.name
        self.running.append(live)

    def reserve(self, live: Live) -> None:
        """Decode role: hold room for ``live``'s KV cache while it is on its way."""
        self.used += live.kv
        self.arriving += 1

    def release(self, live: Live) -> None:
        """Prefill role: ``live``'s KV cache has left; free it."""
        self.held.remove(live)
        self.used -= live.kv


__all__ = ["ROLES", "Instance", "Live", "Step", "Swap"]
