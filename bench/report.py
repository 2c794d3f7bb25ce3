#!/usr/bin/env python3
"""Turn bench/run.sh's results.tsv into markdown tables.

Each line of the input: name \t median \t unit \t run values (space separated).
Prints every figure next to the Redis reference it should be read against,
then the targets table.
"""
import math
import sys


def load(path):
    res = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                continue
            try:
                v = float(parts[1])
            except ValueError:
                v = math.nan
            res[parts[0]] = (v, parts[2], parts[3] if len(parts) > 3 else "")
    return res


def fmt(v, unit=""):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if unit in ("ms",):
        return f"{v:.3f} ms"
    if unit in ("cmds/job", "keys"):
        return f"{v:.2f} {unit}"
    if abs(v) >= 100:
        s = f"{v:,.0f}"
    else:
        s = f"{v:.1f}"
    return f"{s} {unit}".strip()


def main():
    r = load(sys.argv[1])

    def g(name):
        return r[name][0] if name in r and not math.isnan(r[name][0]) else None

    def spread(name):
        if name not in r or not r[name][2]:
            return ""
        vals = [float(x) for x in r[name][2].split() if x not in ("", "nan")]
        if len(vals) < 2:
            return ""
        return f"{min(vals):,.0f}–{max(vals):,.0f}" if max(vals) >= 100 else f"{min(vals):.3g}–{max(vals):.3g}"

    ev1 = g("ref_evalsha_return1_P1_c1")
    ev50 = g("ref_evalsha_return1_P1_c50")
    ev16 = g("ref_evalsha_return1_P16")
    lp16, rp16 = g("ref_lpush_P16"), g("ref_rpop_P16")
    listq = 1 / (1 / lp16 + 1 / rp16) if lp16 and rp16 else None
    cmd_enq = g("c_cmds_client_enqueue") or 1.0
    cmd_fa = g("c_cmds_client_fetch_ack")
    per_job_scripts = cmd_enq + cmd_fa if cmd_fa else None
    ceiling = ev16 / per_job_scripts if ev16 and per_job_scripts else None

    def frac(v, ref):
        if v is None or not ref:
            return ""
        return f"{100 * v / ref:.1f} %"

    print("### Reference: this Redis, this machine, this run (redis-benchmark)\n")
    print("| operation | median | runs |")
    print("|---|---:|---|")
    for name, label in [
        ("ref_lpush_P16", "LPUSH, 50 clients, pipeline 16"),
        ("ref_rpop_P16", "RPOP, 50 clients, pipeline 16"),
        ("ref_lpush_P1_c50", "LPUSH, 50 clients, no pipeline"),
        ("ref_rpop_P1_c50", "RPOP, 50 clients, no pipeline"),
        ("ref_lpush_P1_c1", "LPUSH, 1 client, no pipeline"),
        ("ref_rpop_P1_c1", "RPOP, 1 client, no pipeline"),
        ("ref_evalsha_return1_P16", "EVALSHA `return 1`, 50 clients, pipeline 16"),
        ("ref_evalsha_return1_P1_c50", "EVALSHA `return 1`, 50 clients, no pipeline"),
        ("ref_evalsha_return1_P1_c1", "EVALSHA `return 1`, 1 client, no pipeline"),
    ]:
        print(f"| {label} | {fmt(g(name), 'ops/s')} | {spread(name)} |")
    if listq:
        print(f"| plain-list queue ceiling (LPUSH+RPOP per job, pipelined) | {fmt(listq, 'jobs/s')} | |")
    if ceiling:
        print(f"| runq ceiling if every script cost `return 1` ({per_job_scripts:.2f} scripts/job, pipelined) | {fmt(ceiling, 'jobs/s')} | |")
    print()

    rows = [
        ("c_enqueue_b1_t1", "C enqueue, 1 thread, runq_enqueue (one round trip each)", ev1, "EVALSHA 1 client"),
        ("c_enqueue_b1_t8", "C enqueue, 8 threads sharing one client", ev50, "EVALSHA 50 clients"),
        ("c_enqueue_b100_t1", "C enqueue, runq_enqueue_many batches of 100", ev16, "EVALSHA pipelined"),
        ("c_process_w1_c16", "C process, pre-filled queue, 1 worker x 16 handler threads, no-op", ceiling, "script ceiling"),
        ("c_e2e_b100_t1_w1_c16", "C end-to-end, 1 producer thread (batches of 100) + 1 worker x 16", ceiling, "script ceiling"),
        ("c_e2e_b100_t2_w1_c16", "C end-to-end, 2 producer threads (batches of 100) + 1 worker x 16", ceiling, "script ceiling"),
        ("c_e2e_b100_t1_w1_c16_keep", "C end-to-end as above, done jobs kept 1 h (the library default)", ceiling, "script ceiling"),
        ("c_e2e_b1_t8_w1_c16", "C end-to-end, 8 producer threads (single enqueue) + 1 worker x 16", ceiling, "script ceiling"),
        ("py_enqueue", "Python enqueue, task.enqueue() one at a time", ev1, "EVALSHA 1 client"),
        ("py_enqueue_many", "Python enqueue, app.enqueue_many batches of 100", ev16, "EVALSHA pipelined"),
        ("py_process", "Python process, pre-filled, no-op handler", ceiling, "script ceiling"),
        ("py_e2e", "Python end-to-end (producer thread + worker)", ceiling, "script ceiling"),
        ("lua_5.4_enqueue", "Lua 5.4 enqueue one at a time", ev1, "EVALSHA 1 client"),
        ("lua_5.4_enqueue_many", "Lua 5.4 enqueue_many batches of 100", ev16, "EVALSHA pipelined"),
        ("lua_5.4_process", "Lua 5.4 pull-mode process (async acks), pre-filled, no-op", ceiling, "script ceiling"),
        ("lua_jit_enqueue", "LuaJIT enqueue one at a time", ev1, "EVALSHA 1 client"),
        ("lua_jit_enqueue_many", "LuaJIT enqueue_many batches of 100", ev16, "EVALSHA pipelined"),
        ("lua_jit_process", "LuaJIT pull-mode process (async acks), pre-filled, no-op", ceiling, "script ceiling"),
        ("lua_5.4_e2e", "Lua 5.4 end-to-end (producer process, batches of 100 + consumer process)", ceiling, "script ceiling"),
        ("lua_jit_e2e", "LuaJIT end-to-end (producer process, batches of 100 + consumer process)", ceiling, "script ceiling"),
    ]
    for peer in ("celery", "rq", "dramatiq", "bullmq"):
        rows.append((f"peer_{peer}_enqueue", f"{peer}: enqueue", None, ""))
        rows.append((f"peer_{peer}_process", f"{peer}: process pre-filled, no-op", None, ""))
        rows.append((f"peer_{peer}_e2e", f"{peer}: end-to-end", None, ""))

    print("### Throughput (jobs/s, median of runs)\n")
    print("| figure | median | runs (min–max) | reference | runq as % of reference |")
    print("|---|---:|---|---|---:|")
    for name, label, ref, refname in rows:
        if name not in r:
            continue
        v = g(name)
        reftxt = f"{refname} {fmt(ref, '/s')}" if ref else ""
        print(f"| {label} | {fmt(v, 'jobs/s')} | {spread(name)} | {reftxt} | {frac(v, ref)} |")
    for name in sorted(r):
        if name.endswith("skipped"):
            print(f"| {name[:-8]} | skipped (not installed / not importable) | | | |")
    print()

    def handoff(q):
        # The same load without runq: one thread LPUSHes, another BRPOPs.
        v = g(f"c_ref_handoff_latency_{q}")
        return "" if v is None else f"bare LPUSH→BRPOP hand-off: {fmt(v, 'ms')}"

    print("### Latency, memory, commands\n")
    print("| figure | value | runs | reference |")
    print("|---|---:|---|---|")
    for name, label, ref in [
        ("c_latency_p50", "enqueue→handler start p50 at 1 000 jobs/s", handoff("p50")),
        ("c_latency_p99", "enqueue→handler start p99", handoff("p99")),
        ("c_latency_p999", "enqueue→handler start p99.9", handoff("p999")),
        ("c_latency_max", "enqueue→handler start max", handoff("max")),
        ("c_latency_enqueue_call_mean", "runq_enqueue call, mean", f"1/EVALSHA 1 client = {1000 / ev1:.3f} ms" if ev1 else ""),
        ("c_memory_per_job", "Redis used_memory per waiting job (10-byte args)", ""),
        ("c_memory_per_job_beyond_payload", "… beyond its payload", f"plain list element: {fmt(g('c_memory_ref_list_per_item'), 'bytes')}"),
        ("c_keys_per_job", "Redis keys per waiting job", ""),
        ("c_cmds_client_enqueue", "commands sent per job: runq_enqueue", "1 round trip each"),
        ("c_cmds_script_enqueue", "commands run inside scripts per job: enqueue", ""),
        ("c_cmds_client_enqueue_many100", "commands sent per job: enqueue_many(100)", "pipelined: 1/100 round trip per job"),
        ("c_cmds_client_fetch_ack", "commands sent per job: fetch + ack", ""),
        ("c_cmds_script_fetch_ack", "commands run inside scripts per job: fetch + ack", ""),
    ]:
        if name in r:
            print(f"| {label} | {fmt(g(name), r[name][1])} | {spread(name)} | {ref} |")
    for name in sorted(r):
        if name.startswith("c_calls_"):
            phase, _, script = name[len("c_calls_"):].rpartition("_")
            print(f"| `{script}` script calls per job, {phase} | {g(name):.3f} |  | "
                  f"{'pipelined, 1 round trip per 100 jobs' if phase.startswith('enqueue_many') else 'one round trip per call'} |")
    print()

    cpu_e = g("c_redis_cpu_us_enqueue_many100")
    cpu_f = g("c_redis_cpu_us_fetch_ack")
    print("### Redis server CPU per job (INFO cpu deltas; the server-side ceiling)\n")
    print("| path | Redis CPU per job | of which inside EVALSHA | server-side ceiling (1 core) |")
    print("|---|---:|---:|---:|")
    for ph, label in [("enqueue", "runq_enqueue"), ("enqueue_many100", "runq_enqueue_many(100)"),
                      ("fetch_ack", "fetch + ack (push worker)")]:
        v = g(f"c_redis_cpu_us_{ph}")
        sc = g(f"c_redis_script_us_{ph}")
        if v:
            print(f"| {label} | {v:.1f} µs | {sc:.1f} µs | {1e6 / v:,.0f} /s |")
    if cpu_e and cpu_f:
        print(f"| **end-to-end (enqueue_many + fetch + ack)** | {cpu_e + cpu_f:.1f} µs | | **{1e6 / (cpu_e + cpu_f):,.0f} jobs/s** |")
    for peer in ("celery", "rq", "dramatiq", "bullmq"):
        v = g(f"peer_{peer}_redis_cpu_us_e2e")
        if v:
            print(f"| {peer}: end-to-end (its own enqueue + fetch + ack) | {v:.1f} µs | | {1e6 / v:,.0f} jobs/s |")
    for ref, label in [("lpush", "reference: LPUSH, pipelined"), ("rpop", "reference: RPOP, pipelined"),
                       ("evalsha_return1", "reference: EVALSHA `return 1`, pipelined")]:
        v = g(f"c_redis_cpu_us_ref_{ref}")
        if v:
            print(f"| {label} | {v:.2f} µs | | {1e6 / v:,.0f} /s |")
    print()

    print("### Targets\n")
    print("| target | measured | met? |")
    print("|---|---|---|")

    def best(*names):
        vals = [g(n) for n in names if g(n) is not None]
        return max(vals) if vals else None

    c_rows = {"c_e2e_b100_t1_w1_c16": "1 producer thread", "c_e2e_b100_t2_w1_c16": "2 producer threads",
              "c_e2e_b1_t8_w1_c16": "8 producer threads, single enqueue"}
    c_e2e = best(*c_rows)
    c_how = next((how for n, how in c_rows.items() if g(n) is not None and g(n) == c_e2e), "")
    bull = g("peer_bullmq_e2e")
    py = best("py_e2e")
    pyp = best("peer_celery_e2e", "peer_rq_e2e", "peer_dramatiq_e2e")
    lua = best("lua_5.4_e2e", "lua_jit_e2e")
    p50, p99 = g("c_latency_p50"), g("c_latency_p99")
    mem = g("c_memory_per_job_beyond_payload")

    def yes(ok):
        return "n/a" if ok is None else ("yes" if ok else "**no**")

    one = g("c_e2e_b100_t1_w1_c16")
    c_txt = f"{fmt(c_e2e, 'jobs/s')} ({c_how}; 1 producer thread: {fmt(one, 'jobs/s')})"
    print(f"| C end-to-end ≥ 150 000 jobs/s | {c_txt} | {yes(None if c_e2e is None else c_e2e >= 150000)} |")
    ratio = c_e2e / bull if c_e2e and bull else None
    print(f"| C end-to-end ≥ 8× BullMQ | {'n/a' if ratio is None else f'{ratio:.1f}×'} (BullMQ {fmt(bull, 'jobs/s')}) | {yes(None if ratio is None else ratio >= 8)} |")
    print(f"| Python ≥ 50 000 jobs/s | {fmt(py, 'jobs/s')} | {yes(None if py is None else py >= 50000)} |")
    ratio = py / pyp if py and pyp else None
    print(f"| Python ≥ 10× fastest of Celery/RQ/Dramatiq | {'n/a' if ratio is None else f'{ratio:.1f}×'} (fastest {fmt(pyp, 'jobs/s')}) | {yes(None if ratio is None else ratio >= 10)} |")
    print(f"| Lua ≥ 80 000 jobs/s end-to-end | {fmt(lua, 'jobs/s')} | {yes(None if lua is None else lua >= 80000)} |")
    print(f"| latency p50 ≤ 0.5 ms at light load | {fmt(p50, 'ms')} | {yes(None if p50 is None else p50 <= 0.5)} |")
    print(f"| latency p99 ≤ 2 ms at light load | {fmt(p99, 'ms')} | {yes(None if p99 is None else p99 <= 2)} |")
    print(f"| Redis ≤ 200 bytes per waiting job beyond payload | {fmt(mem, 'bytes')} | {yes(None if mem is None else mem <= 200)} |")


if __name__ == "__main__":
    main()
