"""Packet loss models: Bernoulli and Gilbert-Elliott (netem ``gemodel``).

A model is stateful (Gilbert-Elliott remembers its state), so every link direction owns
its own instance, built from a frozen :class:`LossSpec` by :meth:`LossSpec.build`.
"""

from __future__ import annotations

import random
from typing import Protocol

import attrs


class LossModel(Protocol):
    def lost(self, rng: random.Random) -> bool:
        """Decide the fate of the next packet."""
        ...


class BernoulliLoss:
    """Every packet is lost independently with probability ``rate``."""

    __slots__ = ("rate",)

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def lost(self, rng: random.Random) -> bool:
        return rng.random() < self.rate


class GilbertElliottLoss:
    """Two-state Markov loss, exactly netem's ``loss gemodel p r 1-h 1-k``.

    ``p`` is P(good -> bad), ``r`` is P(bad -> good), ``1-h`` the loss probability in the bad
    state and ``1-k`` in the good state. Like netem, each packet first draws the state
    transition and is then lost with the probability of the state it was in.
    """

    __slots__ = ("bad", "bad_loss", "good_loss", "p", "r")

    def __init__(self, p: float, r: float, bad_loss: float = 1.0, good_loss: float = 0.0) -> None:
        self.p = p
        self.r = r
        self.bad_loss = bad_loss
        self.good_loss = good_loss
        self.bad = False

    def lost(self, rng: random.Random) -> bool:
        if self.bad:
            if rng.random() < self.r:
                self.bad = False
            return rng.random() < self.bad_loss
        if rng.random() < self.p:
            self.bad = True
        return self.good_loss > 0.0 and rng.random() < self.good_loss

    @property
    def stationary_loss(self) -> float:
        return gilbert_elliott_stationary_loss(self.p, self.r, self.bad_loss, self.good_loss)


def gilbert_elliott_stationary_loss(
    p: float, r: float, bad_loss: float = 1.0, good_loss: float = 0.0
) -> float:
    """Long-run loss rate: pi_bad * (1-h) + pi_good * (1-k), pi_bad = p / (p + r)."""
    if p + r == 0:
        return good_loss
    pi_bad = p / (p + r)
    return pi_bad * bad_loss + (1.0 - pi_bad) * good_loss


def _probability(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


@attrs.frozen
class LossSpec:
    """How a link direction loses packets. ``model`` is ``"none"``, ``"bernoulli"`` or ``"ge"``.

    For ``"ge"`` netem's defaults apply: ``r`` defaults to ``1 - p``, ``bad_loss`` (1-h) to 1
    and ``good_loss`` (1-k) to 0.
    """

    model: str = "none"
    rate: float = 0.0
    p: float = 0.0
    r: float | None = None
    bad_loss: float = 1.0
    good_loss: float = 0.0

    def __attrs_post_init__(self) -> None:
        if self.model not in ("none", "bernoulli", "ge"):
            raise ValueError(f"loss model must be none, bernoulli or ge, got {self.model!r}")
        for name in ("rate", "p", "bad_loss", "good_loss"):
            _probability(name, getattr(self, name))
        if self.r is not None:
            _probability("r", self.r)

    @classmethod
    def bernoulli(cls, rate: float) -> LossSpec:
        return cls(model="bernoulli" if rate > 0 else "none", rate=rate)

    @classmethod
    def gemodel(
        cls, p: float, r: float | None = None, bad_loss: float = 1.0, good_loss: float = 0.0
    ) -> LossSpec:
        return cls(model="ge", p=p, r=r, bad_loss=bad_loss, good_loss=good_loss)

    @property
    def expected_loss(self) -> float:
        if self.model == "bernoulli":
            return self.rate
        if self.model == "ge":
            return gilbert_elliott_stationary_loss(
                self.p, 1.0 - self.p if self.r is None else self.r, self.bad_loss, self.good_loss
            )
        return 0.0

    def build(self) -> LossModel | None:
        if self.model == "bernoulli" and self.rate > 0:
            return BernoulliLoss(self.rate)
        if self.model == "ge":
            r = 1.0 - self.p if self.r is None else self.r
            return GilbertElliottLoss(self.p, r, self.bad_loss, self.good_loss)
        return None
