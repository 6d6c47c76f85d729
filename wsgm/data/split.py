"""The held-out split of every dataset store: rows of ``x`` in three disjoint parts.

    train      rows [0, n_train)                 what decompose (hence training) reads, and nothing else
    reference  rows [n_train, n_train + n_test)  the reference statistics (``wsgm reference``)
    floor      the last n_floor rows             the data floors (a real held-out set of the same n as
                                                 the samples, scored exactly like them), the truths of
                                                 inverse problems and held-out likelihoods

No model trains on the reference or floor rows, and the floor rows are not in the reference
statistics either, so a floor is what a perfect sampler would score: a real set the reference has
never seen. Simulated datasets draw their n training images and then n_test + n_floor more,
independently (``total``); fetched and converted datasets hold out the last n_test + n_floor
images of their source order. Each dataset writer records the layout in the store's attrs
(``split``, from :func:`layout`), and every reader takes its rows from there (:func:`rows`), so the parts cannot drift.
"""

from __future__ import annotations

from wsgm.data.store import StoreError

PARTS = ("train", "reference", "floor")


def total(dataset: dict) -> int:
    """Images a simulated dataset draws: its n training images plus the held-out ones."""
    return int(dataset["n"]) + int(dataset["n_test"]) + int(dataset["n_floor"])


def layout(n_images: int, n_test: int, n_floor: int, name: str = "") -> dict[str, list[int]]:
    """{part: [start, stop)} for a store of ``n_images`` rows; refuses a train part of < 2 images."""
    n_train = n_images - n_test - n_floor
    if n_train < 2:
        raise StoreError(f"dataset {name!r} has {n_images} images, too few to hold out n_test = {n_test} "
                         f"and n_floor = {n_floor} and still train on ≥ 2. Fix: lower "
                         f"datasets.{name}.n_test / n_floor, or use more images (raise limit or n)")
    return {"train": [0, n_train], "reference": [n_train, n_train + n_test],
            "floor": [n_train + n_test, n_images]}


def rows(group, part: str, path=None) -> slice:
    """The rows of ``part`` in a dataset store opened with :func:`wsgm.data.store.open_group`."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; use one of {PARTS}")
    parts = dict(group.attrs).get("split")
    if not parts or part not in parts:
        where = path or getattr(group, "store", "the dataset store")
        raise StoreError(f"{where} has no held-out split (made by an older wsgm, or not a dataset store). "
                         "Fix: rerun its dataset stage (`snakemake --forcerun make_dataset`, or `wsgm dataset`)")
    start, stop = parts[part]
    return slice(int(start), int(stop))

