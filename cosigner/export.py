"""Account export: the owner's exit hatch. Pure.

- `descriptors`: receive and change descriptors with checksums and every key origin;
- `bsms`: the BSMS 1.0 descriptor record (BIP-129): header, descriptor with `/**`,
  path restrictions, first address;
- `sparrow`: the Specter-style wallet JSON that Sparrow and Specter import.
"""
from __future__ import annotations

from embit.descriptor.checksum import add_checksum

from cosigner import descriptors as d


def export(account, fmt: str) -> dict | str:
    recv, change = account.receive_descriptor, account.change_descriptor
    first = d.address(recv, 0, account.network) if "*" in recv else None
    if fmt == "descriptors":
        keys = []
        for role in ("platform_key", "recovery_key"):
            if getattr(account, role):
                keys.append({"role": role.split("_")[0], **getattr(account, role)})
        return {"name": account.name, "network": account.network, "template": account.template,
                "receive": recv, "change": change, "keys": keys, "first_address": first}
    if fmt == "bsms":
        if account.template != "2of3":
            raise ValueError("BSMS 1.0 describes plain sortedmulti accounts only")
        multipath = add_checksum(recv.split("#")[0].replace("/0/*", "/**"))
        return "\n".join(["BSMS 1.0", multipath, "/0/*,/1/*", first])
    if fmt == "sparrow":
        return {"label": account.name, "blockheight": 0, "descriptor": recv,
                "change_descriptor": change, "devices": [
                    {"type": "other", "label": role} for role in ("platform", "recovery", "custos")]}
    raise ValueError(f"unknown export format {fmt!r}")
