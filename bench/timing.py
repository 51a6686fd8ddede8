"""Shared timing for the benchmarks: warm up, then alternate the contenders, report medians and the ratio."""

import statistics
import time


def compare(contenders: dict, items: int, runs: int, unit: str) -> dict:
    """Time each callable `runs` times (interleaved), print items/s medians and the first-to-second ratio."""
    for fn in contenders.values():
        fn()  # warm-up: sessions, kernels, caches
    rates = {name: [] for name in contenders}
    for _ in range(runs):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            rates[name].append(items / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in rates.items()}
    for name, values in rates.items():
        print(f"{name:12s} median {med[name]:9.2f} {unit}/s   runs: {', '.join(f'{v:.2f}' for v in values)}")
    first, second = list(med)
    print(f"ratio {first} / {second}: {med[first] / med[second]:.2f}x")
    return med
