"""``maxrf cluster DATASTACK``: material classes of pixels from their component abundances."""

from __future__ import annotations

import argparse

from maxrf.cli.decompose import add_options
from maxrf.cli.decompose import run as run_decompose


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "cluster", help="material classes of pixels (Gaussian mixture on component abundances)",
        description="Decompose the scan (see 'maxrf decompose') and classify every pixel into "
                    "material classes, with each class's mean spectrum; stored as the 'clusters' layer.")
    add_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    return run_decompose(args)  # the same pass; classes are always computed here
