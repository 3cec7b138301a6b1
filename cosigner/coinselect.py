"""Coin selection for one account's spend. Pure (no I/O, no clock, no randomness).

Values in satoshis, weights in WU, fee rates in integer sat/kvB (see cosigner.vsize).

`select(candidates, target)` returns a `Selection` whose fee is exact for the estimated
signed weight (`vsize.fee(vsize(weight), rate)`), or raises:
- `InsufficientFunds(shortfall, available, needed)`: the candidates cannot pay the
  outputs plus the fee (shortfall = what is missing, in sat);
- `AmountTooSmall(index)`: with `subtract_fee_from`, an output would fall below dust.

Algorithms, in Bitcoin Core's spirit (wallet/coinselection.cpp):
1. Branch-and-Bound over effective values (value − the fee to spend the input) for a
   changeless solution whose excess is at most the cost of a change output; among the
   solutions found within BNB_MAX_TRIES the least waste wins.
2. Otherwise the better (less waste, then fewer inputs) of "the smallest single coin
   that pays everything with change" and "largest first until it does", with change of
   at least `min_viable_change` (≥ dust and more than it costs to spend it later); when
   no change is affordable the excess goes to the fee (it is then below that threshold).
3. `subtract_fee_from` selects on real values (the outputs pay the fee, so BnB, whose
   point is avoiding change at the sender's cost, is skipped as Core does), splits the fee
   evenly over the named outputs (the first pays the remainder) and, without change,
   gives the excess back to them (Core's negative `to_reduce`).
4. `use_all`: spend every candidate (the recovery sweep).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cosigner import vsize as vs

DUST_SAT = 546                    # the smallest output Custos creates (P2PKH dust at 3 sat/vB)
BNB_MAX_TRIES = 100_000
LONG_TERM_RATE_KVB = 10_000       # Core's -consolidatefeerate: the rate coins are expected to cost later
DISCARD_RATE_KVB = 3_000          # Core's -discardfee: change worth less than spending it at this rate is dropped


class SelectionError(Exception):
    """Root of coin-selection refusals."""


class InsufficientFunds(SelectionError):
    def __init__(self, shortfall: int, available: int, needed: int):
        super().__init__(f"{shortfall} sat short: {available} sat spendable, {needed} sat needed")
        self.shortfall, self.available, self.needed = shortfall, available, needed


class AmountTooSmall(SelectionError):
    def __init__(self, index: int, amount: int):
        super().__init__(f"output {index} would be {amount} sat after paying the fee")
        self.index, self.amount = index, amount


@dataclass(frozen=True)
class Candidate:
    value: int
    weight: int                    # vsize.input_weight of this coin
    ref: object = field(default=None, compare=False)


@dataclass(frozen=True)
class Target:
    amounts: tuple[int, ...]               # requested outputs, in order
    script_lens: tuple[int, ...]           # their scriptPubKey lengths
    rate_kvb: int
    change_script_len: int = vs.P2WSH_SCRIPT_BYTES
    change_input_weight: int = 0           # weight to spend a change coin later
    subtract_fee_from: tuple[int, ...] = ()
    long_term_rate_kvb: int = LONG_TERM_RATE_KVB
    discard_rate_kvb: int = DISCARD_RATE_KVB
    dust: int = DUST_SAT

    @property
    def recipients(self) -> int:
        return sum(self.amounts)

    @property
    def min_viable_change(self) -> int:
        return max(self.dust, vs.weight_fee(self.change_input_weight, self.discard_rate_kvb) + 1)

    @property
    def change_output_fee(self) -> int:
        return vs.weight_fee(vs.WITNESS_SCALE * vs.output_bytes(self.change_script_len), self.rate_kvb)

    @property
    def cost_of_change(self) -> int:
        return self.change_output_fee + vs.weight_fee(self.change_input_weight, self.discard_rate_kvb)


@dataclass(frozen=True)
class Selection:
    inputs: tuple[Candidate, ...]
    amounts: tuple[int, ...]               # final output amounts (after subtract_fee_from)
    change: int                            # 0: no change output
    fee: int
    weight: int                            # of the signed transaction (estimated exactly)
    algorithm: str                         # bnb | single | largest_first | all

    @property
    def vsize(self) -> int:
        return vs.vsize(self.weight)

    @property
    def input_value(self) -> int:
        return sum(c.value for c in self.inputs)


def effective_value(c: Candidate, rate_kvb: int) -> int:
    return c.value - vs.weight_fee(c.weight, rate_kvb)


def _trunc_div(a: int, n: int) -> tuple[int, int]:
    """C++ integer division (toward zero) and remainder."""
    q = abs(a) // n * (1 if a >= 0 else -1)
    return q, a - q * n


def finish(chosen: list[Candidate] | tuple[Candidate, ...], t: Target, algorithm: str) -> Selection | None:
    """The exact transaction for these inputs, or None when they cannot pay for it."""
    weights = [c.weight for c in chosen]
    total = sum(c.value for c in chosen)
    w_change = vs.tx_weight(weights, (*t.script_lens, t.change_script_len))
    w_plain = vs.tx_weight(weights, t.script_lens)
    fee_change, fee_plain = vs.fee(vs.vsize(w_change), t.rate_kvb), vs.fee(vs.vsize(w_plain), t.rate_kvb)
    if not t.subtract_fee_from:
        change = total - t.recipients - fee_change
        if change >= t.min_viable_change:
            return Selection(tuple(chosen), t.amounts, change, fee_change, w_change, algorithm)
        if total - t.recipients >= fee_plain:
            return Selection(tuple(chosen), t.amounts, 0, total - t.recipients, w_plain, algorithm)
        return None
    excess = total - t.recipients
    if excess < 0:
        return None
    if excess >= t.min_viable_change:
        change, fee, weight, to_reduce = excess, fee_change, w_change, fee_change
    else:
        change, fee, weight, to_reduce = 0, fee_plain, w_plain, fee_plain - excess
    amounts = list(t.amounts)
    q, r = _trunc_div(to_reduce, len(t.subtract_fee_from))
    for n, i in enumerate(t.subtract_fee_from):
        amounts[i] -= q + (r if n == 0 else 0)
    for i in t.subtract_fee_from:
        if amounts[i] < t.dust:
            raise AmountTooSmall(i, amounts[i])
    return Selection(tuple(chosen), tuple(amounts), change, fee, weight, algorithm)


def _waste(sel: Selection, t: Target) -> int:
    spend = sum(vs.weight_fee(c.weight, t.rate_kvb) - vs.weight_fee(c.weight, t.long_term_rate_kvb)
                for c in sel.inputs)
    if sel.change:
        return spend + t.cost_of_change
    return spend + (sel.input_value - t.recipients - sel.fee if not t.subtract_fee_from else 0)


def bnb(amounts: list[int], wastes: list[int], target: int, window: int, *,
        max_tries: int = BNB_MAX_TRIES) -> list[int] | None:
    """Indices (into `amounts`, which must be sorted descending) of a subset summing to
    [target, target + window] with the least waste (Σ wastes + excess), or None.
    Depth first, inclusion branch first, at most `max_tries` steps."""
    n = len(amounts)
    available = sum(amounts)
    if available < target or n == 0:
        return None
    selected: list[int] = []
    value = waste = 0
    best, best_waste = None, None
    high_rate = wastes[0] > 0 if wastes else False
    i = 0
    for _ in range(max_tries):
        backtrack = False
        if value + available < target or value > target + window or \
                (high_rate and best_waste is not None and waste > best_waste):
            backtrack = True
        elif value >= target:
            total_waste = waste + value - target
            if best_waste is None or total_waste <= best_waste:
                best, best_waste = list(selected), total_waste
            backtrack = True
        if backtrack:
            if not selected:
                break
            i -= 1
            while i > selected[-1]:
                available += amounts[i]
                i -= 1
            value -= amounts[i]
            waste -= wastes[i]
            selected.pop()
        else:
            available -= amounts[i]
            if not selected or i - 1 == selected[-1] or amounts[i] != amounts[i - 1] or wastes[i] != wastes[i - 1]:
                selected.append(i)
                value += amounts[i]
                waste += wastes[i]
        i += 1
    return best


def select(candidates: list[Candidate], t: Target, *, preselected: tuple[Candidate, ...] = (),
           use_all: bool = False) -> Selection:
    """Choose inputs from `candidates` (plus every `preselected` one) paying `t`."""
    if not t.amounts or len(t.amounts) != len(t.script_lens):
        raise ValueError("amounts and script_lens must be non-empty and of one length")
    if any(not 0 <= i < len(t.amounts) for i in t.subtract_fee_from) or \
            len(set(t.subtract_fee_from)) != len(t.subtract_fee_from):
        raise ValueError("subtract_fee_from names an output twice or one that does not exist")
    pre = list(preselected)
    if use_all:
        sel = finish(pre + list(candidates), t, "all")
        if sel is None:
            raise _short(pre + list(candidates), t)
        return sel
    sel = finish(pre, t, "preselected") if pre else None
    if sel is not None:
        return sel
    sffo = bool(t.subtract_fee_from)

    def amount(c: Candidate) -> int:
        return c.value if sffo else effective_value(c, t.rate_kvb)

    pool = sorted((c for c in candidates if amount(c) > 0), key=lambda c: (-amount(c), c.weight))
    amounts = [amount(c) for c in pool]
    fixed_fee = 0 if sffo else vs.fee(vs.vsize(vs.tx_weight([], t.script_lens)) + 1, t.rate_kvb)
    target = t.recipients + fixed_fee - sum(amount(c) for c in pre)
    results: list[Selection] = []
    if not sffo:
        wastes = [vs.weight_fee(c.weight, t.rate_kvb) - vs.weight_fee(c.weight, t.long_term_rate_kvb) for c in pool]
        idx = bnb(amounts, wastes, target, t.cost_of_change)
        found = finish(pre + [pool[i] for i in idx], t, "bnb") if idx is not None else None
        if found is not None:
            return found
    need = target + (0 if sffo else t.change_output_fee) + t.min_viable_change
    singles = [c for c, a in zip(pool, amounts) if a >= need]
    if singles:
        single = finish(pre + [min(singles, key=amount)], t, "single")
        if single is not None:
            results.append(single)
    chosen, acc = [], 0
    for c, a in zip(pool, amounts):
        chosen.append(c)
        acc += a
        if acc >= need:
            break
    largest = finish(pre + chosen, t, "largest_first")
    if largest is not None:
        results.append(largest)
    if not results:
        raise _short(pre + pool, t)
    return min(results, key=lambda s: (_waste(s, t), len(s.inputs)))


def _short(coins: list[Candidate], t: Target) -> InsufficientFunds:
    """The shortfall when even every coin cannot pay: outputs + the fee of spending all."""
    available = sum(c.value for c in coins)
    fee = 0 if t.subtract_fee_from else vs.fee(vs.vsize(vs.tx_weight([c.weight for c in coins], t.script_lens)),
                                                t.rate_kvb)
    needed = t.recipients + fee
    return InsufficientFunds(max(1, needed - available), available, needed)
