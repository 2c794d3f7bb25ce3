// BullMQ side of the runq peer benchmark (run by bench/run.sh).
//
//   node bullmq_bench.js PORT [N=20000] [MAX_SECONDS=25] [CONCURRENCY=100] [WORKER_PROCS=1]
//
// Same three figures as the other runners: enqueue (Queue.addBulk in
// batches of 100, no worker running), process (worker processes started on
// the pre-filled queue; the clock starts at the first completed job), e2e
// (warm workers, the producer adds N jobs; the clock runs until the N-th
// completes). Workers run in child processes so that the producer and the
// worker do not share one event loop. Jobs use removeOnComplete: true.
'use strict';
const { fork } = require('child_process');
const path = require('path');
const { Queue, Worker } = require(path.join(__dirname, 'node_modules', 'bullmq'));

const port = Number(process.argv[2] || 6379);
const connection = { host: '127.0.0.1', port };
const QNAME = 'bench';

if (process.argv[3] === '--worker') {
  // Child: a Worker with a no-op processor; report completions every 20 ms.
  const concurrency = Number(process.argv[4] || 100);
  let done = 0;
  let sent = 0;
  const w = new Worker(QNAME, async () => {}, { connection, concurrency });
  w.on('completed', () => { done++; });
  w.on('error', (e) => { process.stderr.write(`worker error: ${e}\n`); });
  setInterval(() => {
    if (done !== sent) { process.send(done - sent); sent = done; }
  }, 20);
  process.on('message', async (m) => {
    if (m === 'stop') { await w.close(); process.exit(0); }
  });
  return;
}

const n = Number(process.argv[3] || 20000);
const maxSeconds = Number(process.argv[4] || 25);
const concurrency = Number(process.argv[5] || 100);
const nprocs = Number(process.argv[6] || 1);

const now = () => Number(process.hrtime.bigint()) / 1e9;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const result = (name, v, unit = 'jobs/s') => console.log(`RESULT ${name} ${v.toPrecision(6)} ${unit}`);

// Redis server CPU seconds (user + sys), for the per-job server cost.
async function redisCpu(q) {
  const info = await (await q.client).info('cpu');
  const f = (k) => Number((info.match(new RegExp(`${k}:([0-9.]+)`)) || [0, 0])[1]);
  return f('used_cpu_user') + f('used_cpu_sys');
}

async function produce(q, count) {
  for (let s = 0; s < count; s += 100) {
    const jobs = [];
    for (let i = s; i < Math.min(count, s + 100); i++) {
      jobs.push({ name: 'noop', data: { i }, opts: { removeOnComplete: true } });
    }
    await q.addBulk(jobs);
  }
}

(async () => {
  const q = new Queue(QNAME, { connection });
  await q.waitUntilReady();
  let t0 = now();
  await produce(q, n);
  result('enqueue', n / (now() - t0));

  let done = 0;
  const kids = [];
  for (let k = 0; k < nprocs; k++) {
    const c = fork(__filename, [String(port), '--worker', String(concurrency)]);
    c.on('message', (d) => { done += d; });
    kids.push(c);
  }
  let ok = true;
  try {
    const startBy = now() + maxSeconds + 15;
    while (done === 0 && now() < startBy) await sleep(2);
    t0 = now();
    while (done < n && now() - t0 < maxSeconds) await sleep(5);
    result('process', done / (now() - t0));
    ok = done >= n;

    const base = done;
    const cpu0 = await redisCpu(q);
    t0 = now();
    await produce(q, n);
    while (done - base < n && now() - t0 < maxSeconds) await sleep(5);
    result('e2e', (done - base) / (now() - t0));
    await sleep(100);
    result('redis_cpu_us_e2e', ((await redisCpu(q)) - cpu0) * 1e6 / Math.max(1, done - base), 'us/job');
    ok = ok && done - base >= n;
  } finally {
    for (const c of kids) c.send('stop');
    await Promise.all(kids.map((c) => new Promise((r) => c.on('exit', r))));
    await q.close();
  }
  process.exit(ok ? 0 : 1);
})().catch((e) => { console.error(e); process.exit(1); });
