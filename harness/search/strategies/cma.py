"""pycma for the search strategies: options checked as values, draws from the search's seed.

Any :class:`cma.CMAOptions` key passes through (:func:`check_cma_options`) except
:data:`RESERVED_CMA_OPTIONS`: the search's ``numpy.random.Generator`` draws every
sample (:class:`Sampler`), so a seed decides a run and ``--resume`` replays it.
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import cma
import numpy as np

from symloss.harness.search.strategies.protocol import MAX_POPULATION, check_population
from symloss.rules import unknown_name

#: pycma options the search sets itself: the search's seed decides every draw.
RESERVED_CMA_OPTIONS = ("seed", "randn")


class Sampler:
    """pycma's ``randn`` option drawing from our Generator (so the seed decides every draw)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape)


@contextlib.contextmanager
def pycma_quiet() -> Iterator[None]:
    """pycma's ``InjectionWarning`` ("orphanated injected solution") left unprinted.

    With fewer than 6 per generation pycma samples mirrored pairs and archives them as
    injected; the search tells back exactly the vectors it was asked about, but as lists,
    which pycma's archive does not recognise, so it warns after two generations. Handing
    back its own arrays would silence it, and would also change every later generation
    (pycma then updates differently): stored runs could no longer be replayed, so the
    warning is filtered instead; nothing else from pycma is.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cma.evolution_strategy.InjectionWarning)
        yield


def _plain(value: object) -> bool:
    """Whether ``value`` is a JSON number, boolean or null, or a (nested) list of them."""
    if isinstance(value, (list, tuple)):
        return all(_plain(item) for item in value)
    return value is None or isinstance(value, (bool, int, float))


def check_cma_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` as a plain dict of pycma options, or a one-line ``ValueError``.

    Any :class:`cma.CMAOptions` key passes through to pycma, over the search's own
    settings (``popsize``, ``tolfun``, ...), except :data:`RESERVED_CMA_OPTIONS`. Values
    must be numbers, booleans, ``None`` or lists of them: they are recorded in the run's
    config (so ``--resume`` compares them), and pycma evaluates a string as Python code.
    pycma's termination options do not end a search: it runs its generations. GLO's
    coefficient count is known only after its GP phase, so its options are tried on two
    coordinates up front (per-coordinate lists do not fit it).

    >>> check_cma_options({"popsize": 12, "bounds": (-5, 5)})
    {'popsize': 12, 'bounds': [-5, 5]}
    >>> check_cma_options({"pop_size": 12})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown pycma option 'pop_size' (did you mean 'popsize'?); choose from ...
    """
    known = sorted(cma.CMAOptions(), key=str.lower)
    checked: dict[str, Any] = {}
    for key, value in (options or {}).items():
        if key in RESERVED_CMA_OPTIONS:
            raise ValueError(f"pycma option {key!r} is the search's own (its seed decides every "
                             "draw); set the search's seed instead")
        if key == "sigma0":  # pycma's constructor argument, not an option
            raise ValueError("sigma0 is not a pycma option but the search's own setting: "
                             "pass sigma0= (symloss search --sigma0)")
        if key not in known:
            raise unknown_name("pycma option", key, [k for k in known
                                                  if k not in RESERVED_CMA_OPTIONS])
        if not _plain(value):
            raise ValueError(f"pycma option {key!r} must be a number, boolean, None or a list "
                             f"of them, got {value!r}")
        checked[key] = json.loads(json.dumps(value))
    return checked


def make_cma(x0: np.ndarray, sigma0: float, popsize: int, rng: np.random.Generator,
             extra: Mapping[str, Any] | None = None):
    """pycma's CMA-ES drawing from ``rng``, with ``extra`` options over the search's own."""
    options = {"popsize": popsize, "seed": np.nan, "randn": Sampler(rng), "verbose": -9,
               "CMA_diagonal": False, "tolfun": 0, "tolx": 0, "tolfunhist": 0,
               "tolstagnation": 10**9, **check_cma_options(extra)}
    check_population(popsize)
    if isinstance(options["popsize"], int) and options["popsize"] > MAX_POPULATION:
        check_population(options["popsize"], "pycma option 'popsize'")
    try:
        return cma.CMAEvolutionStrategy(list(map(float, x0)), sigma0, options)
    except MemoryError:
        raise ValueError(f"CMA-ES with population {options['popsize']} over {len(x0)} "
                         "coordinates does not fit in memory") from None
    except Exception as error:  # pycma's own messages span many lines
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        given = (f"the options {dict(extra)}" if extra else
                 f"population {popsize} and sigma0 {sigma0!r}")
        raise ValueError(f"pycma refused {given}: {type(error).__name__}: {detail}") from None


def ask_vectors(es) -> list[list[float]]:
    """One generation of pycma's samples, as lists of floats (what candidates carry)."""
    with pycma_quiet():
        asked = np.asarray(es.ask(), dtype=float)
    return [list(map(float, v)) for v in asked]


def tell_vectors(es, vectors: list[list[float]], fitnesses: list[float]) -> None:
    """Tell pycma the fitnesses (maximized) of the vectors it proposed (it minimizes)."""
    with pycma_quiet():
        es.tell(vectors, [-f for f in fitnesses])


def number(value: float) -> float | str:
    """A float for a JSON snapshot: itself when finite, else its ``repr`` (``'inf'``)."""
    value = float(value)
    return value if math.isfinite(value) else repr(value)


def es_summary(es, chosen: bool = False) -> dict[str, Any] | None:
    """CMA-ES's mean, σ and counts for a snapshot; without one, ``{"none": True}`` where
    the strategy decided it has nothing to tune (``chosen``), else ``None``."""
    if es is None:
        return {"none": True} if chosen else None
    return {"mean": [number(v) for v in es.mean], "sigma": number(es.sigma),
            "iteration": int(es.countiter), "evaluations": int(es.countevals)}
