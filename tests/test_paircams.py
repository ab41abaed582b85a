"""PairCams recall@1 against a plain per-query reimplementation of docs/protocol.md#paircams."""

from __future__ import annotations

import numpy as np
import pytest

from bench.tasks.paircams import PairCamsDataError, pair_rows, recall_at_1


def reference(vectors: np.ndarray, subjects: np.ndarray, cameras: np.ndarray) -> dict[str, dict[int, float]]:
    """Per query: build the collection as a list, score every member, hit when the target beats all others."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    out: dict[str, dict[int, float]] = {"same": {}, "different": {}}
    for camera in (0, 1):
        queries = [i for i in range(len(subjects)) if cameras[i] == camera]
        hits = {"same": 0, "different": 0}
        for q in queries:
            target = next(i for i in range(len(subjects)) if subjects[i] == subjects[q] and cameras[i] != camera)
            collections = {
                "same": [i for i in range(len(subjects)) if cameras[i] == camera and i != q] + [target],
                "different": [i for i in range(len(subjects)) if cameras[i] != camera],
            }
            for name, members in collections.items():
                target_score = float(unit[q] @ unit[target])
                others = [float(unit[q] @ unit[i]) for i in members if i != target]
                hits[name] += all(target_score > score for score in others)
        for name in hits:
            out[name][camera] = 100.0 * hits[name] / len(queries)
    return out


def shuffled_pairs(
    rng: np.random.Generator, subjects: int, dim: int, noise: float, camera_shift: float, separate: bool = False
):
    """Subject vectors + per-camera offset + noise, rows in a random order. With `separate`, the
    subject signal uses the first half of the dimensions and each camera offset its own quarter."""
    base = rng.normal(size=(subjects, dim))
    offset = rng.normal(size=(2, dim)) * camera_shift
    if separate:
        half, quarter = dim // 2, dim // 4
        base[:, half:] = 0.0
        offset[0, : half] = offset[0, half + quarter :] = 0.0
        offset[1, : half + quarter] = 0.0
    vectors = np.concatenate([base + offset[0], base + offset[1]]) + rng.normal(size=(2 * subjects, dim)) * noise
    subject_ids = np.concatenate([np.arange(subjects), np.arange(subjects)]) * 7 + 3  # ids need not be 0..n-1
    cameras = np.repeat([0, 1], subjects)
    order = rng.permutation(2 * subjects)
    return vectors[order].astype(np.float32), subject_ids[order], cameras[order]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("noise,camera_shift", [(0.3, 0.0), (1.0, 0.5), (1.0, 3.0), (2.5, 1.0)])
def test_recall_matches_plain_reference(seed: int, noise: float, camera_shift: float) -> None:
    """Both collections and both directions equal the per-query reference, rows in any order."""
    vectors, subjects, cameras = shuffled_pairs(np.random.default_rng(seed), 40, 16, noise, camera_shift)
    found = recall_at_1(vectors, subjects, cameras)
    want = reference(vectors, subjects, cameras)
    assert found.pairs == 40
    assert found.same == pytest.approx({"dslr_compact": want["same"][0], "phone": want["same"][1]}, abs=1e-9)
    assert found.different == pytest.approx({"dslr_compact": want["different"][0], "phone": want["different"][1]}, abs=1e-9)


def test_same_camera_distractors_win_when_the_camera_trace_dominates() -> None:
    """A strong camera offset makes the query's own camera class the nearest: 'same' collapses, 'different' holds."""
    vectors, subjects, cameras = shuffled_pairs(np.random.default_rng(5), 30, 32, noise=0.05, camera_shift=3.0, separate=True)
    found = recall_at_1(vectors, subjects, cameras)
    assert found.same == {"dslr_compact": 0.0, "phone": 0.0}
    assert found.different == {"dslr_compact": 100.0, "phone": 100.0}
    metrics = found.metrics()
    assert metrics["gap_same_minus_different"] == -100.0
    assert metrics["chance"] == pytest.approx(100.0 / 30)
    want = reference(vectors, subjects, cameras)
    assert want == {"same": {0: 0.0, 1: 0.0}, "different": {0: 100.0, 1: 100.0}}


def test_known_answers_by_hand() -> None:
    """Three subjects in 2-D with every score worked out; one direction differs from the other."""
    a = np.array([1.0, 0.0])
    vectors = np.array([
        a,                        # subject 0, camera 0
        [0.8, 0.6],               # subject 0, camera 1: cos 0.8 to its partner
        [0.0, 1.0],               # subject 1, camera 0
        [0.6, 0.8],               # subject 1, camera 1: cos 0.8 to its partner
        [0.95, 0.3122499],        # subject 2, camera 0: nearer to subject 0/cam 0 (0.95) than to its partner
        [-1.0, 0.0],              # subject 2, camera 1
    ], dtype=np.float32)
    subjects = np.array([0, 0, 1, 1, 2, 2])
    cameras = np.array([0, 1, 0, 1, 0, 1])
    found = recall_at_1(vectors, subjects, cameras)
    want = reference(vectors, subjects, cameras)
    assert found.same["dslr_compact"] == pytest.approx(want["same"][0])
    assert found.different["phone"] == pytest.approx(want["different"][1])
    # subject 0 cam 0: same collection {s1c0 (0.0), s2c0 (0.95), target 0.8} -> miss
    # subject 1 cam 0: same {s0c0 0.0, s2c0 0.31, target 0.8} -> hit; subject 2 cam 0: target -0.95 -> miss
    assert found.same["dslr_compact"] == pytest.approx(100.0 / 3)


def test_a_tie_with_a_distractor_is_a_miss() -> None:
    """An exact duplicate of the target in the collection means no unique top-1: counted as a miss."""
    vectors = np.array([[1, 0], [1, 0], [0, 1], [1, 0]], dtype=np.float32)  # s0c0, s0c1, s1c0, s1c1 = copy of s0c1
    found = recall_at_1(vectors, np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))
    assert found.different["dslr_compact"] == 0.0  # s0c0's target ties with s1c1; s1c0's target scores 0 vs 1


@pytest.mark.parametrize(
    "subjects,cameras,message",
    [
        ([0, 0, 1], [0, 1, 0], "lack a partner"),
        ([0, 0, 0, 1, 1], [0, 1, 0, 0, 1], "more than one"),
        ([0, 0], [0, 2], "camera_class"),
        ([0, 0], [0, 1], "at least two"),
    ],
)
def test_unpairable_rows_are_refused(subjects: list[int], cameras: list[int], message: str) -> None:
    with pytest.raises(PairCamsDataError, match=message):
        pair_rows(np.array(subjects), np.array(cameras))
