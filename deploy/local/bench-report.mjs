// The report of deploy/local/bench.sh: reads what the run wrote (figures.txt, the Kafka reader's
// stamped lines, BullMQ's JSON), prints the table, writes benchmarks/<time>-<host>.json and puts
// the table into BENCHMARKS.md between its results markers. No dependencies beyond Node.
//
//   node deploy/local/bench-report.mjs <run dir> <benchmarks dir> <BENCHMARKS.md>
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

const [dir, outDir, doc] = process.argv.slice(2);
if (!dir || !outDir) {
  console.error('usage: bench-report.mjs <run dir> <benchmarks dir> [BENCHMARKS.md]');
  process.exit(2);
}

// figures.txt: `name value…`, in the order the run wrote them; memory rows repeat their name.
const figs = {};
const memory = [];
for (const line of readFileSync(join(dir, 'figures.txt'), 'utf8').split('\n')) {
  const m = /^(\S+) ?(.*)$/.exec(line);
  if (!m || !m[1]) continue;
  if (m[1] === 'memory.fraud_sla') {
    const [key, keys, bytes] = m[2].split(' ');
    memory.push({ key, keys: keys === '-' ? null : Number(keys), bytes: Number(bytes) });
  } else {
    figs[m[1]] = m[2];
  }
}
const n = (name) => (figs[name] === undefined || figs[name] === '' ? null : Number(figs[name]));

// The reader: `<arrival ms> CreateTime:<ms>\t<fraud-sla watch line>` (display zone UTC, language
// en), the Kafka timestamp being when the processor handed the escalation to its producer.
const LINE = /^(\d+) (?:CreateTime:(\d+)\t)?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC\s+(WARNING|BREACH L\d+|RESOLVED L\d+)\s+(\S+)\s+(\S+)\s.*?(?:\(\+(-?\d+) ms\))?\s+notify/;
const escalations = [];
const seen = new Set();
const readerPath = join(dir, 'reader.txt');
for (const line of existsSync(readerPath) ? readFileSync(readerPath, 'utf8').split('\n') : []) {
  const m = LINE.exec(line);
  if (!m || m[7] === undefined) continue; // resolutions have no due time
  const id = `${m[6]}:${m[5]}:${m[4]}`;
  if (seen.has(id)) continue; // at-least-once: the first arrival counts
  seen.add(id);
  const fired = Date.parse(`${m[3].replace(' ', 'T')}Z`);
  const due = fired - Number(m[7]);
  const produced = m[2] === undefined ? null : Number(m[2]);
  escalations.push({ arrival: Number(m[1]), produced, fired, due, warning: m[4] === 'WARNING' });
}

function stats(values) {
  const v = Float64Array.from(values).sort();
  const at = (p) => (v.length ? v[Math.max(0, Math.ceil((p / 100) * v.length) - 1)] : null);
  return { n: v.length, p50: at(50), p99: at(99), max: v.length ? v[v.length - 1] : null };
}
// The reader's figure split at the Kafka timestamp: the processor's part (due → handed to its
// producer) and the broker's with the reader's (→ read). Null where the lines had none.
const split = (es) => {
  const stamped = es.filter((e) => e.produced !== null);
  return stamped.length ? {
    produced_minus_due_ms: stats(stamped.map((e) => e.produced - e.due)),
    arrival_minus_produced_ms: stats(stamped.map((e) => e.arrival - e.produced)),
  } : { produced_minus_due_ms: null, arrival_minus_produced_ms: null };
};
// `es` in slices of `ms` of due time from the first.
const bySlices = (es, ms) => {
  const from = Math.min(...es.map((e) => e.due));
  const slices = [];
  for (const e of es) (slices[Math.floor((e.due - from) / ms)] ??= []).push(e);
  return Array.from(slices, (s) => s ?? []);
};
const within = (from, to) => escalations.filter((e) => e.due >= from && e.due < to);
const perSecond = (count, ms) => (ms > 0 ? (count * 1000) / ms : null);

// CPU over a phase (`<phase>.cpu_s`: processor, Redis, tansu, in seconds): a unit's share of each,
// and, over a phase that is all work (`ms`), how much of a core each kept busy.
function cpu(phase, units, ms) {
  const s = (figs[`${phase}.cpu_s`] ?? '').split(' ').filter(Boolean).map(Number);
  if (s.length !== 3 || !units) return null;
  const names = ['processor', 'redis', 'tansu'];
  const per = (i) => (s[i] * 1e6) / units;
  return Object.fromEntries(names.flatMap((name, i) => [
    [`${name}_s`, s[i]],
    [`${name}_us_per_unit`, per(i)],
    ...(ms ? [[`${name}_cores`, s[i] / (ms / 1000)]] : []),
  ]));
}
// `INFO commandstats` over a phase (`<phase>.redis_us_by_command`): Redis µs a unit by command,
// the six that took most, a script's inner commands counted in it and again on their own.
const byCommand = (phase) => (figs[`${phase}.redis_us_by_command`]
  ? Object.fromEntries(figs[`${phase}.redis_us_by_command`].split(',').map((kv) => kv.split('='))
    .map(([k, v]) => [k, Number(v)]))
  : null);
const restartFrom = n('restart.due_from_ms') ?? Infinity;
const fs = {
  drain: {
    alerts: n('drain.alerts'), dispositions: n('drain.dispositions'), messages: n('drain.messages'),
    ms: n('drain.ms'), startup_ms: n('drain.startup_ms'),
    messages_per_s: perSecond(n('drain.messages'), n('drain.ms')),
    alerts_per_s: perSecond(n('drain.alerts'), n('drain.ms')),
    cpu: cpu('drain', n('drain.messages'), n('drain.ms')),
    sse_bytes: n('drain.sse_bytes'),
    escalations: n('drain.escalations'), published_ms: n('drain.published_ms'),
    processor_hwm_mib: n('drain.processor_hwm_kib') === null ? null : n('drain.processor_hwm_kib') / 1024,
    redis_peak_mib: n('drain.redis_peak_bytes') === null ? null : n('drain.redis_peak_bytes') / 1048576,
  },
  open: {
    alerts: n('open.alerts'), ms: n('open.ms'), startup_ms: n('open.startup_ms'),
    messages_per_s: perSecond(n('open.alerts'), n('open.ms')),
    used_memory_delta: n('open.used_memory_delta'), bytes_per_alert: n('open.bytes_per_alert'),
    memory: memory.map((r) => ({ ...r, per_alert: n('open.alerts') ? r.bytes / n('open.alerts') : null })),
    cpu: cpu('open', n('open.alerts'), n('open.ms')),
    redis_us_by_command: byCommand('open'),
  },
};
if (n('probe.start_ms') !== null) {
  const probe = within(n('probe.start_ms'), n('overload.probes_ms') ?? n('burst.start_ms') ?? Infinity);
  fs.probe = {
    alerts: n('probe.alerts'), expected: n('probe.expected'), read: probe.length,
    fired_minus_due_ms: stats(probe.map((e) => e.fired - e.due)),
    arrival_minus_due_ms: stats(probe.map((e) => e.arrival - e.due)),
    ...split(probe),
    // tansu's memory storage lists every batch of a partition on each fetch (BENCHMARKS.md):
    // the broker's part grows as the phase fills the escalations topic.
    arrival_minus_produced_p99_by_10s: bySlices(probe, 10000)
      .map((es) => stats(es.filter((e) => e.produced !== null).map((e) => e.arrival - e.produced)).p99),
  };
}
if (n('overload.probes_ms') !== null) {
  const overload = within(n('overload.probes_ms'), n('burst.start_ms') ?? Infinity);
  const start = n('overload.start_ms');
  fs.overload = {
    alerts: n('overload.alerts'), probe_alerts: n('overload.probe_alerts'), expected: n('overload.expected'),
    read: overload.length, warnings_read: overload.filter((e) => e.warning).length,
    produced_per_s: perSecond(n('overload.alerts'), n('overload.produced_ms') - start),
    applied_per_s: perSecond(n('overload.alerts'), n('overload.applied_ms') - start),
    applied_after_start_ms: n('overload.applied_ms') - start,
    fired_minus_due_ms: stats(overload.map((e) => e.fired - e.due)),
    arrival_minus_due_ms: stats(overload.map((e) => e.arrival - e.due)),
  };
}
if (n('burst.start_ms') !== null) {
  const burst = within(n('burst.start_ms'), restartFrom - 1000);
  const dues = burst.map((e) => e.due);
  fs.burst = {
    alerts: n('burst.alerts'), expected: n('burst.expected'), read: burst.length,
    due_window_ms: burst.length ? Math.max(...dues) - Math.min(...dues) : null,
    fired_minus_due_ms: stats(burst.map((e) => e.fired - e.due)),
    arrival_minus_due_ms: stats(burst.map((e) => e.arrival - e.due)),
    ...split(burst),
    sse_escalations: n('burst.sse_escalations'), sse_resyncs: n('burst.sse_resyncs'),
    sse_changed: n('burst.sse_changed'), sse_bytes: n('burst.sse_bytes'),
    cpu: cpu('burst', n('burst.expected'), null),
    redis_us_by_command: byCommand('burst'),
  };
}
if (n('restart.restart_ms') !== null) {
  const restart = within(restartFrom - 100, n('restart.due_to_ms') + 100);
  const t0 = n('restart.restart_ms');
  const arrivals = restart.map((e) => e.arrival - t0).sort((a, b) => a - b);
  const fired = restart.map((e) => e.fired - t0).sort((a, b) => a - b);
  fs.restart = {
    alerts: n('restart.alerts'), expected: n('restart.expected'), read: restart.length,
    outbox_at_kill: n('restart.outbox_at_kill'), dead_ms: t0 - n('restart.kill_ms'), ready_after_restart_ms: n('restart.ready_ms') - t0,
    first_published_s: arrivals.length ? arrivals[0] / 1000 : null,
    last_published_s: arrivals.length ? arrivals[arrivals.length - 1] / 1000 : null,
    first_fired_s: fired.length ? fired[0] / 1000 : null,
    last_fired_s: fired.length ? fired[fired.length - 1] / 1000 : null,
  };
}
const bullPath = join(dir, 'bullmq.json');
const bull = existsSync(bullPath) ? JSON.parse(readFileSync(bullPath, 'utf8')) : null;

// --- the table -----------------------------------------------------------------------------------
const int = (v) => (v === null || v === undefined ? '—' : Math.round(v).toLocaleString('en-US'));
const ms = (v) => (v === null || v === undefined ? '—' : `${Math.round(v).toLocaleString('en-US')} ms`);
const sec = (v) => (v === null || v === undefined ? '—' : `${v.toFixed(1)} s`);
const ratio = (a, b) => (a === null || a === undefined || !b ? '—' : `${(a / b).toFixed(a / b < 0.1 ? 3 : 2)}`);
const cpuUs = (c) => (c ? `${c.processor_us_per_unit.toFixed(1)} / ${c.redis_us_per_unit.toFixed(1)} / ${c.tansu_us_per_unit.toFixed(1)} µs` : null);
const cores = (c) => (c ? `${c.processor_cores.toFixed(2)} / ${c.redis_cores.toFixed(2)} / ${c.tansu_cores.toFixed(2)}` : null);
const asIs = (v) => v ?? '—';
const rows = [];
const row = (figure, f, b, show, target, met) => rows.push({
  figure, fraud_sla: f ?? null, bullmq: b ?? null, ratio: f != null && b ? f / b : null, target,
  met: target ? (f == null ? null : met(f)) : null, show,
});
const bOpen = bull?.open;
const bOpenNote = bOpen && bOpen.alerts < bOpen.requested ? ` (BullMQ at ${int(bOpen.alerts)})` : '';
row('drain: messages/s, durable', fs.drain.messages_per_s, bull?.drain?.messages_per_s, int, '≥ 100,000', (v) => v >= 100000);
row('drain: alerts/s', fs.drain.alerts_per_s, bull?.drain?.alerts_per_s, int);
row('drain: CPU a message, processor / Redis / tansu', cpuUs(fs.drain.cpu), null, asIs);
row('drain: cores busy, processor / Redis / tansu', cores(fs.drain.cpu), null, asIs);
if (fs.drain.escalations !== null) {
  row('drain: escalations fired / all with the broker, s after ready',
    `${int(fs.drain.escalations)} / ${(fs.drain.published_ms / 1000).toFixed(1)} s`, null, asIs);
  row('drain: processor peak resident memory, MiB', fs.drain.processor_hwm_mib, null, int);
  if (fs.drain.redis_peak_mib !== null) row('drain: Redis peak used_memory, MiB', fs.drain.redis_peak_mib, null, int);
}
const perMessage = (bytes, count) => (bytes === null || !count ? null : bytes / count);
if (fs.drain.sse_bytes !== null) {
  row('drain: bytes to the board page a message (BOARD_OPEN=1)', perMessage(fs.drain.sse_bytes, fs.drain.messages), null, int);
}
row(`${int(fs.open.alerts)} open: messages/s${bOpenNote}`, fs.open.messages_per_s, bOpen?.alerts_per_s, int, '≥ 100,000', (v) => v >= 100000);
row('open: CPU a message, processor / Redis / tansu', cpuUs(fs.open.cpu), null, asIs);
row('open: cores busy, processor / Redis / tansu', cores(fs.open.cpu), null, asIs);
row(`Redis bytes per open alert${bOpenNote}`, fs.open.bytes_per_alert, bOpen?.bytes_per_alert, int, '≤ 300', (v) => v <= 300);
row('probe: fired − due p50', fs.probe?.fired_minus_due_ms.p50, bull?.probe?.p50, ms);
row('probe: fired − due p99', fs.probe?.fired_minus_due_ms.p99, bull?.probe?.p99, ms, '≤ 2 ms', (v) => v <= 2);
row('probe: at a Kafka reader − due p50', fs.probe?.arrival_minus_due_ms.p50, null, ms);
row('probe: at a Kafka reader − due p99', fs.probe?.arrival_minus_due_ms.p99, null, ms, '≤ 20 ms', (v) => v <= 20);
row('probe: handed to the producer (Kafka timestamp) − due p99', fs.probe?.produced_minus_due_ms?.p99, null, ms);
row('probe: at a Kafka reader − Kafka timestamp p99', fs.probe?.arrival_minus_produced_ms?.p99, null, ms);
row('probe: at a Kafka reader − Kafka timestamp p99, each 10 s of the phase',
  fs.probe?.arrival_minus_produced_p99_by_10s?.filter((v) => v !== null).map((v) => `${int(v)}`).join(' / ') || null, null,
  (v) => (v == null ? '—' : `${v} ms`));
row('overload: input produced, alerts/s', fs.overload?.produced_per_s, null, int);
row('overload: input applied, alerts/s', fs.overload?.applied_per_s, null, int);
row(`overload: probes' warnings sent, of ${int(fs.overload ? fs.overload.expected / 3 : null)} (late ones are superseded)`, fs.overload?.warnings_read, null, int);
row('overload: probes fired − due p50', fs.overload?.fired_minus_due_ms.p50, null, ms);
row('overload: probes fired − due p99', fs.overload?.fired_minus_due_ms.p99, null, ms);
row('overload: probes fired − due max', fs.overload?.fired_minus_due_ms.max, null, ms);
row(`burst of ${int(fs.burst?.expected)}: fired − due p50`, fs.burst?.fired_minus_due_ms.p50, bull?.burst?.p50, ms);
row(`burst of ${int(fs.burst?.expected)}: fired − due p99`, fs.burst?.fired_minus_due_ms.p99, bull?.burst?.p99, ms, '≤ 50 ms', (v) => v <= 50);
row(`burst of ${int(fs.burst?.expected)}: fired − due max`, fs.burst?.fired_minus_due_ms.max, bull?.burst?.max, ms);
row(`burst of ${int(fs.burst?.expected)}: at a Kafka reader − due p99`, fs.burst?.arrival_minus_due_ms.p99, null, ms);
row(`burst of ${int(fs.burst?.expected)}: handed to the producer − due p99`, fs.burst?.produced_minus_due_ms?.p99, null, ms);
row('burst: CPU an escalation, processor / Redis / tansu', cpuUs(fs.burst?.cpu), null, asIs);
row('burst: escalations reaching an SSE client', fs.burst?.sse_escalations, null, int, `${int(fs.burst?.expected)}, 0 resyncs`,
  (v) => v >= fs.burst.expected && fs.burst.sse_resyncs === 0);
row('burst: SSE resyncs', fs.burst?.sse_resyncs, null, int);
row('burst: bytes to an SSE client an escalation (with its changed events)', perMessage(fs.burst?.sse_bytes ?? null, fs.burst?.expected), null, int);
row('restart: first overdue escalation published', fs.restart?.first_published_s, null, sec);
row('restart: last overdue escalation published', fs.restart?.last_published_s, null, sec, '≤ 3 s', (v) => v <= 3);

const table = [
  '| figure | fraud-sla | BullMQ | ratio | target |',
  '|---|---:|---:|---:|---|',
  ...rows.map((r) => `| ${r.figure} | ${r.show(r.fraud_sla)} | ${r.bullmq == null ? '—' : r.show(r.bullmq)} | ${ratio(r.fraud_sla, r.bullmq)} | ${r.target ? `${r.target} ${r.met === null ? '' : r.met ? '✓' : '✗'}` : ''} |`),
].join('\n');

const date = new Date();
const stamp = date.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z').replace(/^(\d{4})(\d\d)(\d\d)/, '$1-$2-$3');
const host = figs['machine.hostname'] ?? 'unknown';
const file = join(outDir, `${stamp}-${host}.json`);
const machine = {
  hostname: host, nproc: n('machine.nproc'), cpu: figs['machine.cpu'], ram_gib: n('machine.ram_gib'),
  kernel: figs['machine.kernel'], redis_server: figs['machine.redis'], tansu: figs['machine.tansu'],
  node: figs['machine.node'], bullmq: bull?.bullmq ?? null, redis_persistence: figs['machine.redis_persistence'],
  redis_hash_max_listpack_value: figs['machine.redis_listpack_value'] ?? null,
  kafka_client: figs.kafka_client ?? null,
};
const load = Object.fromEntries(Object.entries(figs).filter(([k]) => k.startsWith('load.')).map(([k, v]) => [k.slice(5), v]));
const record = {
  date: date.toISOString(),
  git: { commit: figs['git.commit'], dirty_files: n('git.dirty') },
  machine,
  sizes: Object.fromEntries((figs.sizes ?? '').split(' ').filter(Boolean).map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)])),
  load_average: load,
  fraud_sla: fs,
  bullmq: bull,
  table: rows.map(({ show, ...r }) => r),
};
writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);

const loads = Object.entries(load).map(([k, v]) => `${k} ${v.split(' ')[0]}`).join(', ');
const summary = [
  `Run of ${record.date.slice(0, 16).replace('T', ' ')} UTC on ${host}: ${machine.cpu}, ${machine.nproc} cores, ` +
    `${machine.ram_gib} GiB, ${machine.kernel}; redis-server ${machine.redis_server}, tansu ${machine.tansu}, ` +
    `node ${machine.node}, BullMQ ${machine.bullmq ?? '(skipped)'}; commit ${String(record.git.commit).slice(0, 7)}` +
    `${record.git.dirty_files ? ' (with uncommitted changes)' : ''}.`,
  `Sizes: ${figs.sizes}. Redis persistence: ${machine.redis_persistence}; hash-max-listpack-value ${machine.redis_hash_max_listpack_value ?? 64}.` +
    `${machine.kafka_client ? ` Every [kafka.client] adds: ${machine.kafka_client}.` : ''} Load average (1 min) at each phase: ${loads}.`,
  `Ratio = fraud-sla ÷ BullMQ. Record: \`benchmarks/${basename(file)}\`.`,
].join('\n');
console.log(`\n${table}\n\n${summary}\n`);

if (doc && existsSync(doc)) {
  const text = readFileSync(doc, 'utf8');
  const begin = '<!-- results:begin -->';
  const end = '<!-- results:end -->';
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) {
    writeFileSync(doc, `${text.slice(0, i + begin.length)}\n${summary}\n\n${table}\n${text.slice(j)}`);
    console.log(`${basename(doc)}: last results updated; ${basename(file)} written.`);
  }
}
