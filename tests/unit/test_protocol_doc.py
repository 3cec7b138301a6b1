"""docs/PROTOCOL.md's test vectors are what the code does (issue #15): each is recomputed
from its fixed inputs with the reference client and verified with the server's code;
the randomized sealed box must open to its documented plaintext."""
from __future__ import annotations

from tools import protocol_vectors as pv


def test_every_vector_in_the_document_matches_the_code():
    documented = pv.documented()
    fresh = pv.vectors(documented)
    assert set(documented) == set(fresh)
    for name, body in fresh.items():
        assert documented[name] == body, f"docs/PROTOCOL.md vector {name!r} drifted: run python -m tools.protocol_vectors --write"


def test_a_drifted_vector_is_noticed():
    documented = pv.documented()
    tampered = dict(documented, verification_phrase=documented["verification_phrase"].replace("say", "sea"))
    assert pv.vectors(tampered)["verification_phrase"] != tampered["verification_phrase"]
    box = documented["sealed_share"].split("sealed_b64: ")[1]
    flipped = box[:20] + ("A" if box[20] != "A" else "B") + box[21:]
    broken_box = dict(documented, sealed_share=documented["sealed_share"].replace(box, flipped))
    assert pv.vectors(broken_box)["sealed_share"] != broken_box["sealed_share"]   # it no longer opens
