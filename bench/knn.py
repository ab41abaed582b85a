"""The k-NN classifier of the paper's kNN experiments: an unweighted majority vote of neighbour labels."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from bench.errors import UsageError


class Labelled(Protocol):
    labels: np.ndarray


def class_count(*splits: Labelled) -> int:
    """Classes the labels range over: labels are 0..n-1 across the splits together."""
    return int(max(split.labels.max() for split in splits)) + 1


def vote(neighbour_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Unweighted majority vote per row; -1 entries are ignored; ties go to the lowest class."""
    counts = np.zeros((len(neighbour_labels), num_classes), dtype=np.int64)
    rows, columns = np.nonzero(neighbour_labels >= 0)
    np.add.at(counts, (rows, neighbour_labels[rows, columns]), 1)
    return counts.argmax(axis=1)


def correct(rows: np.ndarray, database_labels: np.ndarray, query_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per query, whether the vote of its neighbours (database rows, -1 = none) names its label."""
    neighbour_labels = np.where(rows >= 0, database_labels[np.maximum(rows, 0)], -1)
    return vote(neighbour_labels, num_classes) == query_labels


def accuracy(rows: np.ndarray, database_labels: np.ndarray, query_labels: np.ndarray, num_classes: int) -> float:
    """Top-1 accuracy in % of the vote."""
    return float(100.0 * np.mean(correct(rows, database_labels, query_labels, num_classes)))


def check_shape(task: str, dataset: str, train_images: int, classes: int, k: int) -> None:
    """Refuse a kNN experiment whose numbers would mean nothing: one class, or k beyond the database."""
    if train_images == 0:
        raise UsageError(f"{task} on {dataset}: no train images; a kNN classification needs train (database) and val (query) images")
    if classes < 2:
        raise UsageError(f"{task} on {dataset}: the data has {classes} class(es); a kNN classification needs at least two")
    if k > train_images:
        raise UsageError(f"{task} on {dataset}: --k {k} is larger than the database ({train_images} train images); choose a smaller --k")
