"""``sr1step benchmark``: the papers' evaluation protocol and speed/size, in one table.

For every (method, test set): SR images are made with the shared engine, scored per image with
the requested metrics (scores cached in ``OUTPUT/cache/``, so an interrupted run resumes and a
new metric only scores what is missing), then averaged; FID compares the SR and HR folders.
``--speed`` times every method in the same process at a fixed input size. Results go to
``results.json``, ``results.csv`` and ``results.md`` with the environment they were made in.
"""

from .cache import ScoreCache, pair_fingerprint, weights_fingerprint
from .options import BenchOptions, MethodRef, Row, unique_labels
from .published import published, reference_rows
from .results import dataset_provenance, environment, write_results
from .runner import Benchmark, load_dataset
from .speed import SpeedRow, measure_speed
from .tables import fmt, markdown, result_notes, result_tables

__all__ = [
    "BenchOptions",
    "Benchmark",
    "MethodRef",
    "Row",
    "ScoreCache",
    "SpeedRow",
    "dataset_provenance",
    "environment",
    "fmt",
    "load_dataset",
    "markdown",
    "measure_speed",
    "pair_fingerprint",
    "published",
    "reference_rows",
    "result_notes",
    "result_tables",
    "unique_labels",
    "weights_fingerprint",
    "write_results",
]
