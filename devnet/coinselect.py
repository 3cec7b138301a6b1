"""Coin selection over effective values (value − fee to spend the input).

Pure functions; sizes in vbytes, fee rates in sat/vB (Decimal/float ok), values in sat.
`select` raises InsufficientFunds when no subset of the candidates pays target + fees.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

TX_OVERHEAD_VSIZE = 11          # version, locktime, counts, segwit marker (rounded up)
CHANGE_SPEND_VSIZE = 68         # typical cost to spend change later (p2wpkh)
MIN_CHANGE = 1000               # sat; smaller change is added to the fee instead


class InsufficientFunds(Exception):
    """Candidates cannot pay the target plus fees."""


@dataclass
class Candidate:
    value: int
    vsize: int          # input vsize including witness/4
    ref: Any            # caller's handle (e.g. WOut)


@dataclass
class Selection:
    chosen: list[Candidate]
    fee: int
    change: int         # 0 = no change output


def fee_for(vsize: float, rate) -> int:
    return math.ceil(vsize * float(rate))


def select(cands: list[Candidate], target: int, rate, fixed_vsize: int, change_vsize: int,
           preselected: list[Candidate] = ()) -> Selection:
    """Pick inputs paying `target` + fee at `rate` for a tx of `fixed_vsize` (outputs and
    overhead) plus the inputs, with a change output of `change_vsize` if worthwhile."""
    base = list(preselected)
    have = sum(c.value for c in base)
    used_vsize = fixed_vsize + sum(c.vsize for c in base)

    def done(chosen):
        vs = used_vsize + sum(c.vsize for c in chosen)
        total = have + sum(c.value for c in chosen)
        fee_nochange = fee_for(vs, rate)
        fee_change = fee_for(vs + change_vsize, rate)
        change = total - target - fee_change
        if change >= MIN_CHANGE:
            return Selection(base + chosen, fee_change, change)
        if total - target >= fee_nochange:
            return Selection(base + chosen, total - target, 0)
        return None

    first = done([])
    if first is not None:
        return first
    eff = [(c.value - fee_for(c.vsize, rate), c) for c in cands]
    eff = [(e, c) for e, c in eff if e > 0]
    need = target + fee_for(used_vsize + change_vsize, rate) + MIN_CHANGE - have
    need_exact = target + fee_for(used_vsize, rate) - have
    # 1. one coin that pays everything without change (smallest waste)
    exact = [(e, c) for e, c in eff if need_exact <= e < need]
    if exact:
        return done([min(exact, key=lambda x: x[0])[1]])
    # 2. smallest single coin that covers the target with change
    singles = [(e, c) for e, c in eff if e >= need]
    if singles:
        return done([min(singles, key=lambda x: x[0])[1]])
    # 3. largest first until covered
    chosen, acc = [], 0
    for e, c in sorted(eff, key=lambda x: x[0], reverse=True):
        chosen.append(c)
        acc += e
        if acc >= need_exact:
            result = done(chosen)
            if result is not None:
                return result
    raise InsufficientFunds()
