"""Run a bench mode: worker processes, a progress line, statistics."""

from __future__ import annotations

import multiprocessing as mp
import queue
import sys
import time

from pyggy.bench import workload as w
from pyggy.bench.cost import CpuMeter, cost, listening_pids


class BenchError(RuntimeError):
    pass


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def _stats(role: str, rows: list[tuple], lat_index: int) -> dict:
    messages = sum(r[2] for r in rows)
    nbytes = sum(r[3] for r in rows)
    seconds = max(r[5] for r in rows) - min(r[4] for r in rows) if rows else 0.0
    lat = sorted(x for r in rows for x in r[lat_index])
    out = {"role": role, "actors": len(rows), "messages": messages, "bytes": nbytes,
           "seconds": seconds,
           "msgs_per_s": messages / seconds if seconds else 0.0,
           "mb_per_s": nbytes / seconds / 1e6 if seconds else 0.0,
           "latency_samples": len(lat)}
    for name, q in (("p50", .5), ("p90", .9), ("p99", .99), ("p999", .999)):
        out[f"{name}_ms"] = percentile(lat, q) / 1000
    out["max_ms"] = lat[-1] / 1000 if lat else float("nan")
    return out


def server_pids(p: w.Params) -> tuple[int, ...]:
    """The processes whose CPU time the cost figure counts: `p.server_pids`, else every
    process on this machine listening on the port of any node's address (every node of a
    cluster on this machine; none for remote ones)."""
    if p.server_pids:
        return p.server_pids
    pids: set[int] = set()
    for address in p.node_addresses():
        try:
            pids.update(listening_pids(int(address.rsplit(":", 1)[1])))
        except (OSError, ValueError, IndexError):
            continue
    return tuple(sorted(pids))


def _phase(p: w.Params, n_prod: int, n_cons: int, progress: bool, label: str) -> dict:
    ctx = mp.get_context("spawn")
    meter = CpuMeter(server_pids(p))
    native = p.protocol == "native"
    prod_fn = w.native_producer if native else w.kafka_producer
    cons_fn = w.native_consumer if native else w.kafka_consumer
    counters = ctx.Array("q", n_prod + n_cons + 1)
    go, ready, results = ctx.Event(), ctx.Semaphore(0), ctx.Queue()
    stop_at = ctx.Value("d", 0.0, lock=False)
    procs = [ctx.Process(target=prod_fn, args=(p, i, counters, go, ready, results, stop_at),
                         daemon=True) for i in range(n_prod)]
    procs += [ctx.Process(target=cons_fn,
                          args=(p, j, n_prod + j, counters, go, ready, results, stop_at),
                          daemon=True) for j in range(n_cons)]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            if not ready.acquire(timeout=120):
                raise BenchError("workers did not get ready: "
                                 + ", ".join(str(x.exitcode) for x in procs))
        if p.duration:
            stop_at.value = time.time() + p.duration
        meter.start()
        go.set()
        t0 = time.perf_counter()
        series: list[tuple[float, int, int]] = [(0.0, 0, 0)]
        rows: list[tuple] = []
        next_tick = t0 + 0.25
        want = (n_prod * p.batches_per_producer * p.messages_per_batch if n_prod
                else sum(p.expected().values()))
        while len(rows) < len(procs):
            try:
                rows.append(results.get(timeout=max(0.0, next_tick - time.perf_counter())))
            except queue.Empty:
                pass
            now = time.perf_counter()
            if now >= next_tick:
                next_tick = now + 0.25
                produced = sum(counters[:n_prod])
                consumed = sum(counters[n_prod:n_prod + n_cons])
                series.append((now - t0, produced, consumed))
                if progress:
                    _progress(label, now - t0, produced, consumed, want, p)
                dead = [x for x in procs if x.exitcode not in (None, 0)]
                if dead:
                    raise BenchError(f"a worker failed (exit code {dead[0].exitcode})")
        meter.stop()
        now = time.perf_counter()
        series.append((now - t0, sum(counters[:n_prod]), sum(counters[n_prod:n_prod + n_cons])))
        if progress:
            _progress(label, now - t0, series[-1][1], series[-1][2], want, p)
            sys.stderr.write("\n")
        for proc in procs:
            proc.join(30)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
    prods = [r for r in rows if r[0] == "producer"]
    conss = [r for r in rows if r[0] == "consumer"]
    stats = []
    if prods:
        stats.append(_stats("producers", prods, 6))
    if conss:
        stats.append(_stats("consumers", conss, 6))
        if p.mode == "end-to-end":
            stats.append(_stats("end-to-end", conss, 7))
    out: dict = {"stats": stats, "series": series}
    if meter.pids:  # server CPU from the go signal to the last worker's report
        out["cost"] = {**cost(meter.seconds, sum(r[3] for r in prods), sum(r[3] for r in conss)),
                       "server_pids": list(meter.pids)}
    return out


def _progress(label: str, t: float, produced: int, consumed: int, want: int,
              p: w.Params) -> None:
    done = max(produced, consumed)
    frac = 1.0 if p.duration is None and want and done >= want else (
        min(1.0, t / p.duration) if p.duration else (done / want if want else 0.0))
    bar = "#" * int(frac * 24)
    mb = p.message_size / 1e6
    sys.stderr.write(f"\r{label:<18}[{bar:<24}] {t:6.1f}s  produced {produced:>11,} "
                     f"({produced * mb / max(t, 1e-9):7.1f} MB/s)  consumed {consumed:>11,} "
                     f"({consumed * mb / max(t, 1e-9):7.1f} MB/s)")
    sys.stderr.flush()


def produce_then_consume(p: w.Params, progress: bool = True) -> tuple[dict, dict]:
    """Set up topics, produce (producers alone), then consume it all (consumers alone);
    return both phases' results (what pinned-consumer does, keeping the fill's figures)."""
    (w.native_setup if p.protocol == "native" else w.kafka_setup)(p)
    produced = _phase(p, p.producers, 0, progress, "produce")
    return produced, _phase(p, 0, p.consumers, progress, "consume")


def run(p: w.Params, progress: bool = True) -> dict:
    """Set up topics, run the mode's phases; return {"stats": [...], "series": [...]}."""
    (w.native_setup if p.protocol == "native" else w.kafka_setup)(p)
    if p.mode == "pinned-producer":
        return _phase(p, p.producers, 0, progress, p.mode)
    if p.mode in ("pinned-consumer", "consumer-group"):
        # fill first (untimed in the summary), then the consumers alone
        fill = p.duration
        p.duration = None
        _phase(p, p.producers, 0, progress, "fill")
        p.duration = fill
        out = _phase(p, 0, p.consumers, progress, p.mode)
        return out
    if p.mode in ("producer-consumer", "end-to-end"):
        return _phase(p, p.producers, p.consumers, progress, p.mode)
    raise BenchError(f"unknown mode {p.mode}")
