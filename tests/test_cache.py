"""The user cache: damaged files are detected and rebuilt, its size is bounded, it can be shown and cleared."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from gantools import cache


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANTOOLS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _features(seed, rows=100):
    return np.random.default_rng(seed).normal(size=(rows, 16)).astype(np.float32)


def test_features_round_trip_and_a_damaged_file_is_removed_with_a_notice(empty_cache, capsys):
    f = _features(0)
    cache.store_features("k", [f[:40], f[40:]])
    np.testing.assert_array_equal(cache.load_features("k"), f)
    (path,) = (empty_cache / "features").glob("k-*.npy")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # one flipped byte in the last feature
    path.write_bytes(bytes(data))
    assert cache.load_features("k") is None and not path.exists()
    assert "damaged" in capsys.readouterr().err
    cache.store_features("k", [f])
    (path,) = (empty_cache / "features").glob("k-*.npy")
    path.write_bytes(path.read_bytes()[:200])  # truncated, as by a full disk
    assert cache.load_features("k") is None and "unreadable" in capsys.readouterr().err


def test_a_damaged_model_is_rebuilt(empty_cache, capsys):
    built = cache.store_model("m", lambda tmp: tmp.write_bytes(b"model bytes" * 100))
    assert cache.find_model("m") == built
    built.write_bytes(built.read_bytes()[:50])
    assert cache.find_model("m") is None and not built.exists()
    assert "incomplete or damaged" in capsys.readouterr().err


def test_a_model_is_found_by_its_own_prefix_only(empty_cache):
    half = cache.store_model("inception-v2-fp16", lambda tmp: tmp.write_bytes(b"half" * 100))
    assert cache.find_model("inception-v2") is None  # the fp32 model is not the fp16 one
    full = cache.store_model("inception-v2", lambda tmp: tmp.write_bytes(b"full" * 100))
    assert cache.find_model("inception-v2") == full and cache.find_model("inception-v2-fp16") == half


def test_the_feature_cache_keeps_the_most_recent_entries_within_its_limit(empty_cache, monkeypatch):
    one = 100 * 16 * 4 + 128  # bytes of one entry (.npy header included)
    monkeypatch.setenv("GANTOOLS_CACHE_LIMIT", str(2 * one + 10))
    for key in ("a", "b", "c"):
        cache.store_features(key, [_features(ord(key))])
    assert cache.load_features("a") is None  # the oldest went
    assert cache.load_features("b") is not None and cache.load_features("c") is not None
    monkeypatch.setenv("GANTOOLS_CACHE_LIMIT", "lots")
    with pytest.raises(Exception, match="GANTOOLS_CACHE_LIMIT"):
        cache.size_limit()


def test_two_processes_filling_the_same_entry_both_succeed(empty_cache):
    f = _features(1, rows=20000)
    errors = []

    def fill():
        try:
            cache.store_features("same", [f])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=fill) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    np.testing.assert_array_equal(cache.load_features("same"), f)


def test_cache_command_shows_and_clears(empty_cache, cli):
    cache.store_features("k", [_features(0)])
    cache.store_model("inception-test", lambda tmp: tmp.write_bytes(b"x" * 1000))
    code, out, _ = cli("cache")
    assert code == 0 and "2 files" in out and "features" in out and "model" in out
    code, out, _ = cli("cache", "--clear")
    assert code == 0 and "removed 2 files" in out
    assert cache.entries() == []
