// The BullMQ side of deploy/local/bench.sh: fraud-sla's workload in BullMQ's idiom, on a
// redis-server of its own, printing one JSON object on stdout (progress goes to stderr).
//
// An SLA clock is a delayed job: an alert arms one job per stage (jobId `<alert_id>/<stage>`,
// delay = the stage's deadline; BullMQ refuses `:` in a custom id), and a disposition removes the
// jobs of the stages it satisfies (`visited` visit; `met` visit and meet; `feedback` and
// `closed` every stage). The job is the state: no timeline, no duplicate check, no offsets, no
// escalation outbox, so BullMQ does less per message than fraud-sla does.
//
//   drain   ALERTS alerts with dispositions drawn like `fraud-sla simulate` draws them (risk mix,
//           late and missing shares, met at the door, withdrawn, duplicates), applied as fast as
//           BullMQ takes them: alerts/s and messages/s.
//   open    OPEN alerts armed with the production deadlines (1 h / 2 h / 6 h, 30 min visit for
//           high risk), nothing removed: alerts/s and Redis bytes per open alert, by key type.
//   probe   with those still open, a Worker, and PROBE_RATE alerts/s for PROBE_SECONDS whose jobs
//           are due 5 s / 10 s / 15 s later: lateness = processedOn - (timestamp + delay).
//   burst   BURST alerts with nine jobs each (stage x level), all due at the same millisecond.
//
// Environment: BULLMQ_REDIS_PORT (16380), ALERTS, LATE, MISSING, OPEN, OPEN_MAX_SECONDS (cap on
// arming the open set; the figure says how many were armed), PROBE_RATE, PROBE_SECONDS, BURST,
// CONCURRENCY (the Worker's, 100).
import { Queue, Worker } from 'bullmq';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const num = (name, fallback) => {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${v} is not a number`);
  return n;
};
const port = num('BULLMQ_REDIS_PORT', 16380);
const ALERTS = num('ALERTS', 200000);
const LATE = num('LATE', 0.2);
const MISSING = num('MISSING', 0.52);
const OPEN = num('OPEN', 1000000);
const OPEN_MAX_SECONDS = num('OPEN_MAX_SECONDS', 240);
const PROBE_RATE = num('PROBE_RATE', 50);
const PROBE_SECONDS = num('PROBE_SECONDS', 30);
const BURST = num('BURST', 10000);
const CONCURRENCY = num('CONCURRENCY', 100);
const connection = { host: '127.0.0.1', port };

const STAGES = ['visit', 'meet', 'feedback'];
const H = 3600000;
/** The production policy's deadlines (config/default.toml). */
const within = (risk, stage) =>
  ({ visit: risk === 'high' ? H / 2 : H, meet: 2 * H, feedback: 6 * H })[stage];
const JURISDICTIONS = ['620102-GWM', '110105-CYQ', '440305-NSQ', '310115-PDX', '330106-XHQ',
  '510107-WHQ', '420106-WCQ', '320106-GLQ', '500103-YZQ', '610113-YTQ', '440106-THQ', '370102-LXQ'];

const log = (...a) => console.error('   bullmq:', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** mulberry32: a small seeded generator, so every run draws the same load. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One alert and its dispositions' kinds, drawn as src/simulate/generator.rs draws them: risk
 * 20/50/30, MISSING silent, LATE late, met at the door 25%, withdrawn 5%, duplicates 2%.
 */
function plan(r, n, tag, late, missing) {
  const u = r();
  const risk = u < 0.2 ? 'high' : u < 0.7 ? 'medium' : 'low';
  const jurisdiction = JURISDICTIONS[Math.floor(r() * JURISDICTIONS.length)];
  const alert_id = `GA-${jurisdiction.slice(0, 6)}-${tag}-${String(n).padStart(7, '0')}`;
  const kinds = [];
  if (r() >= missing) {
    const isLate = r() < late;
    const steps = ['acknowledged'];
    const atDoor = r() < 0.25;
    if (isLate) {
      steps.push(...(atDoor ? ['met'] : ['visited', 'met']));
    } else {
      // On time: visit at 0.3-0.9 of its deadline, meet at 0.3-0.9 of its (twice as long) one;
      // a meeting no later than the visit is one `met`.
      const visit = 0.3 + 0.6 * r();
      const meet = 2 * (0.3 + 0.6 * r());
      steps.push(...(atDoor || meet <= visit ? ['met'] : ['visited', 'met']));
    }
    if (r() < 0.05) {
      steps.splice(1 + Math.floor(r() * steps.length));
      steps.push('closed');
    } else {
      steps.push('feedback');
    }
    for (const k of steps) {
      kinds.push(k);
      if (r() < 0.02) kinds.push(k);
    }
  }
  return { alert_id, risk, jurisdiction, kinds };
}

/** The stages whose jobs a disposition removes. */
const removes = (kind) =>
  ({ visited: ['visit'], met: ['visit', 'meet'], feedback: STAGES, closed: STAGES })[kind] ?? [];

/**
 * The three delayed jobs of an alert, each due at its stage's deadline and carrying what the
 * escalation needs (the stage is the job's name); `kind` marks the jobs the Worker times.
 */
function jobs(p, now, delays = (s) => within(p.risk, s), kind = undefined) {
  return STAGES.map((stage) => {
    const delay = delays(stage);
    return {
      name: stage,
      data: { kind, alert_id: p.alert_id, jurisdiction: p.jurisdiction, risk: p.risk, due: now + delay },
      opts: { jobId: `${p.alert_id}/${stage}`, timestamp: now, delay, removeOnComplete: true, removeOnFail: true },
    };
  });
}

/** Runs `work(i)` for i in 0..chunks with `window` of them in flight. */
async function windowed(chunks, window, work, stopAt = Infinity) {
  let next = 0;
  let done = 0;
  const lane = async () => {
    while (next < chunks && performance.now() < stopAt) {
      const i = next++;
      await work(i);
      done++;
    }
  };
  await Promise.all(Array.from({ length: window }, lane));
  return done;
}

async function usedMemory(client) {
  const info = await client.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)[1]);
}

/** MEMORY USAGE by key type: job hashes from a sample, the queue's own keys in full. */
async function breakdown(client, queue, jobKeys, perAlert) {
  const prefix = `bull:${queue}:`;
  const own = ['delayed', 'events', 'meta', 'id', 'marker', 'wait', 'active', 'completed', 'failed',
    'prioritized', 'paused', 'stalled-check', 'pc'];
  const rows = [];
  for (const k of own) {
    const bytes = await client.call('MEMORY', 'USAGE', prefix + k, 'SAMPLES', '0');
    if (bytes) rows.push({ key: `${prefix}${k}`, keys: 1, bytes: Number(bytes) });
  }
  const sample = [];
  let cursor = '0';
  do {
    const [c, keys] = await client.scan(cursor, 'MATCH', `${prefix}*/*`, 'COUNT', 1000);
    cursor = c;
    sample.push(...keys);
  } while (cursor !== '0' && sample.length < 3000);
  const sizes = await Promise.all(sample.map((k) => client.call('MEMORY', 'USAGE', k, 'SAMPLES', '0')));
  const avg = sizes.reduce((s, b) => s + Number(b ?? 0), 0) / Math.max(1, sizes.length);
  rows.push({ key: `${prefix}<alert_id>/<stage> (job hashes, ${sizes.length} sampled)`, keys: jobKeys, bytes: Math.round(avg * jobKeys), avg: Math.round(avg) });
  rows.sort((a, b) => b.bytes - a.bytes);
  for (const row of rows) row.per_alert = Math.round(row.bytes / perAlert);
  return rows;
}

function stats(values) {
  const v = Float64Array.from(values).sort();
  const at = (p) => (v.length ? v[Math.max(0, Math.ceil((p / 100) * v.length) - 1)] : null);
  return { n: v.length, p50: at(50), p99: at(99), max: v.length ? v[v.length - 1] : null };
}

async function main() {
  const version = JSON.parse(readFileSync(new URL('./node_modules/bullmq/package.json', import.meta.url))).version;
  const result = { bullmq: version, node: process.version, redis_port: port };
  const drainQ = new Queue('drain', { connection });
  const client = await drainQ.client;
  await client.flushall();
  result.redis_version = /redis_version:(\S+)/.exec(await client.info('server'))[1];

  // --- drain --------------------------------------------------------------------------------
  {
    log(`drain: ${ALERTS} alerts with their dispositions (late ${LATE}, missing ${MISSING})`);
    const r = rng(7);
    const CHUNK = 500;
    const plans = Array.from({ length: ALERTS }, (_, n) => plan(r, n, 'drain', LATE, MISSING));
    const dispositions = plans.reduce((s, p) => s + p.kinds.length, 0);
    const t0 = performance.now();
    await windowed(Math.ceil(ALERTS / CHUNK), 4, async (i) => {
      const chunk = plans.slice(i * CHUNK, (i + 1) * CHUNK);
      const now = Date.now();
      await drainQ.addBulk(chunk.flatMap((p) => jobs(p, now)));
      await Promise.all(chunk.flatMap((p) =>
        p.kinds.flatMap((k) => removes(k).map((s) => drainQ.remove(`${p.alert_id}/${s}`)))));
    });
    const seconds = (performance.now() - t0) / 1000;
    result.drain = {
      alerts: ALERTS, dispositions, messages: ALERTS + dispositions, seconds,
      alerts_per_s: ALERTS / seconds, messages_per_s: (ALERTS + dispositions) / seconds,
    };
    log(`drain: ${ALERTS + dispositions} messages in ${seconds.toFixed(1)} s = ${Math.round(result.drain.messages_per_s)} messages/s`);
  }
  await client.flushall();
  await drainQ.close();

  // --- open: the production policy, nothing removed -------------------------------------------
  const q = new Queue('open', { connection });
  const qc = await q.client;
  {
    const mem0 = await usedMemory(qc);
    log(`open: arming ${OPEN} alerts (three delayed jobs each), at most ${OPEN_MAX_SECONDS} s`);
    const r = rng(9);
    const CHUNK = 1000;
    const t0 = performance.now();
    const chunks = await windowed(Math.ceil(OPEN / CHUNK), 4, async (i) => {
      const n = Math.min(CHUNK, OPEN - i * CHUNK);
      const now = Date.now();
      const batch = [];
      for (let k = 0; k < n; k++) batch.push(...jobs(plan(r, i * CHUNK + k, 'open', 0, 1), now));
      await q.addBulk(batch);
    }, t0 + OPEN_MAX_SECONDS * 1000);
    const seconds = (performance.now() - t0) / 1000;
    const armed = Math.min(OPEN, chunks * CHUNK);
    const mem1 = await usedMemory(qc);
    result.open = {
      alerts: armed, requested: OPEN, seconds, alerts_per_s: armed / seconds,
      used_memory_delta: mem1 - mem0, bytes_per_alert: (mem1 - mem0) / armed,
      breakdown: await breakdown(qc, 'open', armed * 3, armed),
    };
    log(`open: ${armed} alerts in ${seconds.toFixed(1)} s = ${Math.round(armed / seconds)} alerts/s, ${Math.round(result.open.bytes_per_alert)} bytes per alert`);
  }

  // --- a Worker fires what comes due: probes, then the burst ------------------------------------
  const fired = { probe: [], burst: [] };
  const worker = new Worker('open', async (job) => {
    const list = job.data.kind && fired[job.data.kind];
    if (list) list.push(job.processedOn - job.data.due);
  }, { connection, concurrency: CONCURRENCY });
  await worker.waitUntilReady();
  const waitFor = async (list, n, ms) => {
    const until = Date.now() + ms;
    while (list.length < n && Date.now() < until) await sleep(100);
  };
  {
    const total = PROBE_RATE * PROBE_SECONDS;
    log(`probe: ${PROBE_RATE} alerts/s for ${PROBE_SECONDS} s, jobs due 5 s / 10 s / 15 s later`);
    const r = rng(13);
    const probe = { visit: 5000, meet: 10000, feedback: 15000 };
    const start = performance.now();
    for (let n = 0; n < total; n++) {
      const wait = start + (n * 1000) / PROBE_RATE - performance.now();
      if (wait > 0) await sleep(wait);
      await q.addBulk(jobs(plan(r, n, 'probe', 0, 1), Date.now(), (s) => probe[s], 'probe'));
    }
    await waitFor(fired.probe, total * 3, 60000);
    result.probe = { alerts: total, ...stats(fired.probe) };
    log(`probe: lateness p50 ${result.probe.p50} ms, p99 ${result.probe.p99} ms over ${result.probe.n} jobs`);
  }
  {
    const LEVELS = [1, 2, 3];
    const r = rng(11);
    // Due late enough that every job is in Redis before then: the add rate seen while arming,
    // halved, plus five seconds.
    const lead = 5000 + Math.ceil((BURST * 9) / Math.max(1, result.open.alerts_per_s * 3 / 2)) * 1000;
    const due = Date.now() + lead;
    log(`burst: ${BURST} alerts x 9 jobs, all due at once ${lead} ms from now`);
    const t0 = performance.now();
    await windowed(Math.ceil(BURST / 500), 4, async (i) => {
      const now = Date.now();
      const batch = [];
      for (let k = 0; k < Math.min(500, BURST - i * 500); k++) {
        const p = plan(r, i * 500 + k, 'burst', 0, 1);
        for (const stage of STAGES) {
          for (const level of LEVELS) {
            batch.push({
              name: stage,
              data: { kind: 'burst', alert_id: p.alert_id, level, jurisdiction: p.jurisdiction, risk: p.risk, due },
              opts: { jobId: `${p.alert_id}/${stage}/${level}`, timestamp: now, delay: due - now, removeOnComplete: true, removeOnFail: true },
            });
          }
        }
      }
      await q.addBulk(batch);
    });
    const added = Date.now();
    const addSeconds = (performance.now() - t0) / 1000;
    await waitFor(fired.burst, BURST * 9, 600000);
    const s = stats(fired.burst);
    result.burst = {
      alerts: BURST, jobs: BURST * 9, add_seconds: addSeconds,
      added_before_due_ms: due - added, fired_s: (Date.now() - due) / 1000, ...s,
    };
    log(`burst: lateness p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms over ${s.n} jobs`);
  }
  await worker.close();
  await q.close();
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
