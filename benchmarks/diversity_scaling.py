"""Time and peak memory of blocked vs naive Remote-Clique + Chamfer on random unit embeddings.

Each (size, variant) runs in a fresh child process, so one run's memory cannot hide another's. The child
builds the embeddings (seeded, so both variants see the same data), records its current RSS, computes
Remote-Clique and Chamfer, then reads ``ru_maxrss`` (the high-water mark). Peak MiB = high-water mark - RSS
before the computation: the extra memory the metrics needed on top of the embeddings. tracemalloc is not used
because it misses BLAS work buffers.

Usage: python benchmarks/diversity_scaling.py [--sizes 2000,8000,20000] [--dim 384] [--block-size 2048]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import time

import numpy as np

from synthbench.analysis.diversity import chamfer, chamfer_naive, remote_clique, remote_clique_naive

MIB = 1024 * 1024


def current_rss_bytes() -> int:
    """Resident set size now (Linux /proc), unlike ru_maxrss which is the high-water mark."""
    with open("/proc/self/statm") as handle:
        resident_pages = int(handle.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if platform.system() == "Darwin" else peak * 1024


def random_unit_embeddings(n: int, dim: int, seed: int = 0, block: int = 4096) -> np.ndarray:
    """float32 (n, dim), rows of unit norm; normalised in place block by block so no temporary copy inflates
    the child's high-water mark before the measurement starts."""
    embeddings = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    for start in range(0, n, block):
        rows = embeddings[start : start + block]
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return embeddings


def measure(variant: str, n: int, dim: int, block_size: int, results: multiprocessing.Queue) -> None:
    """Child process body: put (seconds, peak extra bytes, remote_clique, chamfer) on ``results``."""
    embeddings = random_unit_embeddings(n, dim)
    before = current_rss_bytes()
    start = time.perf_counter()
    if variant == "blocked":
        values = (
            remote_clique(embeddings, block_size=block_size),
            chamfer(embeddings, block_size=block_size),
        )
    else:
        values = (remote_clique_naive(embeddings), chamfer_naive(embeddings))
    seconds = time.perf_counter() - start
    results.put((seconds, max(peak_rss_bytes() - before, 0), *values))


def run_in_child(variant: str, n: int, dim: int, block_size: int) -> tuple[float, int, float, float]:
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited high-water mark
    results = context.Queue()
    child = context.Process(target=measure, args=(variant, n, dim, block_size, results))
    child.start()
    outcome = results.get()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"{variant} n={n} child exited with code {child.exitcode}")
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,8000,20000", help="comma-separated numbers of embeddings")
    parser.add_argument("--dim", type=int, default=384, help="embedding dimension (all-MiniLM-L6-v2: 384)")
    parser.add_argument("--block-size", type=int, default=2048, help="rows per block for the blocked variant")
    parser.add_argument(
        "--naive-limit-gib",
        type=float,
        default=6.0,
        help="skip the naive variant when its n×n float32 matrix would exceed this many GiB",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    print(
        f"dim={args.dim} block_size={args.block_size} float32 cpus={os.cpu_count()} "
        "(Remote-Clique + Chamfer together; peak MiB = extra RSS over the embeddings)"
    )
    print_row("n", "variant", "seconds", "peak MiB", "ratio blocked/naive")
    print_row("---:", "---", "---:", "---:", "---")
    for n in sizes:
        blocked = run_in_child("blocked", n, args.dim, args.block_size)
        matrix_gib = n * n * 4 / 1024**3
        if matrix_gib > args.naive_limit_gib:
            note = f"naive skipped: n×n float32 = {matrix_gib:.1f} GiB > {args.naive_limit_gib:g} GiB"
            print_row(n, "naive", "-", "-", note)
            print_row(n, "blocked", f"{blocked[0]:.2f}", f"{blocked[1] / MIB:.1f}", "-")
            continue
        naive = run_in_child("naive", n, args.dim, args.block_size)
        if not np.allclose(blocked[2:], naive[2:]):
            raise AssertionError(f"n={n}: blocked {blocked[2:]} and naive {naive[2:]} metrics disagree")
        ratio = f"time {blocked[0] / naive[0]:.2f}, memory {blocked[1] / max(naive[1], 1):.3f}"
        print_row(n, "naive", f"{naive[0]:.2f}", f"{naive[1] / MIB:.1f}", "")
        print_row(n, "blocked", f"{blocked[0]:.2f}", f"{blocked[1] / MIB:.1f}", ratio)


def print_row(*cells: object) -> None:
    widths = (6, 7, 8, 9, 28)
    print("| " + " | ".join(f"{cell!s:<{width}}" for cell, width in zip(cells, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
