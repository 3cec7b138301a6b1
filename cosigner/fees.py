"""The fee rate of a spend being built: explicit, or a confirmation target estimated by
the chain source, never below the floor.

Rates are integer sat/kvB (cosigner.vsize). Bitcoin Core's wallet did this for
`walletcreatefundedpsbt` until Custos built its own PSBTs; the same rules, from node RPCs
only:
- explicit `fee_rate` (sat/vB): refused below the floor (`fee_rate_too_low`, like Core's
  "Fee rate … is lower than the minimum fee rate setting");
- `conf_target` (default DEFAULT_CONF_TARGET, Core's -txconfirmtarget): `estimatesmartfee
  <target> economical`; with no estimate, the configured fallback (`FEE_FALLBACK_RATE`,
  Core's -fallbackfee; 0 disables it → `fee_estimate_unavailable`);
- the floor is max(`FEE_FLOOR_RATE`, the node's `mempoolminfee`, `minrelaytxfee`), so a
  built spend is never refused by the mempool for its rate.

`getmempoolinfo` is cached MEMPOOL_INFO_CACHE_SECONDS per node (it changes slowly);
estimates are not cached here (cosigner.history caches the public /v1/fees view).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from chain.rpc import btc_to_sat
from cosigner.errors import FundingError, InvalidDescriptor
from cosigner.vsize import kvb_to_rate, rate_to_kvb

DEFAULT_CONF_TARGET = 6
MEMPOOL_INFO_CACHE_SECONDS = 30.0
_cache: dict[str, tuple[float, dict]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class FeeChoice:
    rate_kvb: int
    source: str                    # explicit | estimate | fallback
    conf_target: int | None = None

    @property
    def sat_per_vb(self) -> float:
        return kvb_to_rate(self.rate_kvb)


def btc_kvb_to_kvb(value) -> int:
    """A BTC/kvB amount from bitcoind → integer sat/kvB."""
    return btc_to_sat(value)


def mempool_info(node) -> dict:
    """{'floor_kvb': max(mempoolminfee, minrelaytxfee), 'incremental_kvb': incrementalrelayfee}."""
    key = getattr(node, "endpoint", "node")
    with _lock:
        hit = _cache.get(key)
        if hit and time.monotonic() - hit[0] < MEMPOOL_INFO_CACHE_SECONDS:
            return hit[1]
    info = node.call("getmempoolinfo")
    result = {"floor_kvb": max(btc_kvb_to_kvb(info.get("mempoolminfee", 0)),
                               btc_kvb_to_kvb(info.get("minrelaytxfee", 0))),
              "incremental_kvb": btc_kvb_to_kvb(info.get("incrementalrelayfee", "0.00001"))}
    with _lock:
        _cache[key] = (time.monotonic(), result)
    return result


def choose(node, *, fee_rate=None, conf_target: int | None = None, fallback_kvb: int,
           floor_kvb: int) -> FeeChoice:
    """The rate to build at. Raises InvalidDescriptor(fee_rate_too_low) for an explicit
    rate under the floor and FundingError(fee_estimate_unavailable) when the node has no
    estimate and the fallback is disabled."""
    floor = max(floor_kvb, mempool_info(node)["floor_kvb"])
    if fee_rate is not None:
        rate = rate_to_kvb(fee_rate)
        if rate < floor:
            raise InvalidDescriptor(f"fee rate {kvb_to_rate(rate)} sat/vB is below the minimum of "
                                    f"{kvb_to_rate(floor)} sat/vB", code="fee_rate_too_low",
                                    details={"minimum_sat_vb": kvb_to_rate(floor)})
        return FeeChoice(rate, "explicit")
    target = conf_target or DEFAULT_CONF_TARGET
    estimate = node.call("estimatesmartfee", target, "economical")
    if "feerate" in estimate:
        return FeeChoice(max(floor, btc_kvb_to_kvb(estimate["feerate"])), "estimate", target)
    if fallback_kvb > 0:
        return FeeChoice(max(floor, fallback_kvb), "fallback", target)
    raise FundingError("the node has no fee estimate yet and no fallback fee rate is configured; "
                       "give fee_rate_sat_vb", code="fee_estimate_unavailable", details={"conf_target": target})
