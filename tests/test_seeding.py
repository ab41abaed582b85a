"""Randomness keyed by (seed, image_id, purpose): the fast per-id draw equals its definition."""

from __future__ import annotations

import numpy as np

from bench.seeding import stable_int, uniform_choice


def test_uniform_choice_is_the_hash_of_seed_purpose_and_id() -> None:
    ids = [f"n{c:04d}/img_{i:05d}.JPEG" for c in range(7) for i in range(40)] + ["café/été.jpg", "雪/1.png", ""]
    for seed, choices, purpose in ((0, 6, "knn-influence uniform"), (9, 3, "probe assignment"), (2**40, 1000, "x")):
        expected = [stable_int(f"{seed}|{purpose}|{image_id}") % choices for image_id in ids]
        assert uniform_choice(seed, ids, choices, purpose).tolist() == expected
        assert uniform_choice(seed, np.array(ids), choices, purpose).tolist() == expected
        assert uniform_choice(seed, ids[::-1], choices, purpose).tolist() == expected[::-1]  # a draw follows its id, not its place
    assert uniform_choice(0, [], 6, "empty").shape == (0,)
