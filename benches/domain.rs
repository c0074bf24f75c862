//! The pure core's cost per message: decode + validate, the state machine, and the stored JSON.
//! Run: `cargo bench --bench domain`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fraud_sla::partition::plan::{self, Input, Offsets, Progress};
use fraud_sla::store::{alert_bucket, record};
use jiff::tz::TimeZone;
use std::hint::black_box;

/// The processor's allocator (src/main.rs): a batch's cost is much of it allocation.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use fraud_sla::domain::validate::{decode, Limits, Source};
use fraud_sla::domain::{Alert, AlertState, Disposition, DispositionKind, Effect, Policies, Risk};

const NOW: i64 = 1_795_000_000_000;
const LIMITS: Limits = Limits {
    max_message_bytes: 65_536,
    max_clock_skew_ms: 300_000,
};
const ALERT: &str = r#"{"alert_id":"GA-620102-20261122-000123","issued_at":"2026-11-18T19:06:40+08:00","jurisdiction":"620102-GWM","risk":"high","channel":"96110","fraud_type":"impersonating_police","amount_cents":5000000,"subject":{"name":"张*","phone":"13800001234"}}"#;
const DISPOSITION: &str = r#"{"event_id":"app-7f3c-0001","alert_id":"GA-620102-20261122-000123","kind":"met","occurred_at":"2026-11-18T19:46:40+08:00","officer_id":"620102-0457","note":"家属在场"}"#;
const KEY: &[u8] = b"GA-620102-20261122-000123";

fn alert() -> Alert {
    Alert {
        alert_id: "GA-620102-20261122-000123".into(),
        issued_at: NOW,
        jurisdiction: "620102-GWM".into(),
        risk: Risk::High,
        channel: Some("96110".into()),
        fraud_type: Some("impersonating_police".into()),
        amount_cents: Some(5_000_000),
    }
}

fn met(at: i64) -> Disposition {
    Disposition {
        event_id: "app-7f3c-0001".into(),
        alert_id: "GA-620102-20261122-000123".into(),
        kind: DispositionKind::Met,
        occurred_at: at,
        officer_id: Some("620102-0457".into()),
        outcome: None,
    }
}

fn opened(policy: &Policies) -> AlertState {
    let mut s = AlertState::default();
    s.apply_alert(alert(), policy, NOW);
    s
}

fn bench(c: &mut Criterion) {
    let policy = Policies::default();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("alert", |b| {
        b.iter(|| {
            decode(
                Source::Alerts,
                Some(KEY),
                Some(black_box(ALERT.as_bytes())),
                NOW,
                LIMITS,
            )
        })
    });
    g.bench_function("disposition", |b| {
        b.iter(|| {
            decode(
                Source::Dispositions,
                Some(KEY),
                Some(black_box(DISPOSITION.as_bytes())),
                NOW,
                LIMITS,
            )
        })
    });
    g.finish();

    let mut g = c.benchmark_group("sla");
    g.throughput(Throughput::Elements(1));
    g.bench_function("apply_alert", |b| {
        b.iter_batched(
            AlertState::default,
            |mut s| s.apply_alert(alert(), &policy, NOW),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("apply_disposition", |b| {
        b.iter_batched(
            || opened(&policy),
            |mut s| s.apply_disposition(met(NOW + 60_000), &policy, NOW + 60_000),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("fire_silent_alert_every_level", |b| {
        b.iter_batched(
            || opened(&policy),
            |mut s| s.fire(&policy, NOW + 24 * 3_600_000),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("next_due", |b| {
        let s = opened(&policy);
        b.iter(|| black_box(&s).next_due(&policy))
    });
    g.finish();

    // An escalation's §4 JSON, once for every escalation published (more than one a message in
    // bench.sh's drain).
    let mut g = c.benchmark_group("escalation");
    let escalation = opened(&policy)
        .fire(&policy, NOW + 24 * 3_600_000)
        .into_iter()
        .find_map(|e| match e {
            Effect::Escalate(e) if e.due_at.is_some() => Some(e),
            _ => None,
        })
        .expect("a silent alert breaches");
    g.throughput(Throughput::Bytes(escalation.to_json().len() as u64));
    g.bench_function("to_json", |b| b.iter(|| black_box(&escalation).to_json()));
    g.finish();

    let mut g = c.benchmark_group("state_json");
    let mut s = opened(&policy);
    s.apply_disposition(met(NOW + 60_000), &policy, NOW + 60_000);
    s.fire(&policy, NOW + 3 * 3_600_000);
    let text = serde_json::to_string(&s).unwrap();
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("serialize", |b| {
        b.iter(|| serde_json::to_string(black_box(&s)).unwrap())
    });
    g.bench_function("deserialize", |b| {
        b.iter(|| serde_json::from_str::<AlertState>(black_box(&text)).unwrap())
    });
    g.finish();

    // The stored form since issue 12: what the processor writes and reads per alert.
    let mut g = c.benchmark_group("state_record");
    let id = s.alert.as_ref().unwrap().alert_id.clone();
    let bytes = record::encode(&id, &s);
    println!(
        "state_record: {} bytes (JSON: {} bytes)",
        bytes.len(),
        text.len()
    );
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| {
        b.iter(|| record::encode(black_box(&id), black_box(&s)))
    });
    g.bench_function("decode", |b| {
        b.iter(|| record::decode(black_box(&id), black_box(&bytes)).unwrap())
    });
    g.finish();

    // A batch of new alerts as a partition plans it (the 1M-open phase of bench.sh): sorted,
    // taken as new, applied, and its writes and board entries built.
    let mut g = c.benchmark_group("plan");
    const BATCH: usize = 500;
    let messages: Vec<(String, String)> = (0..BATCH)
        .map(|i| {
            let id = format!("GA-620102-20261122-{i:06}");
            let alert = ALERT
                .replace("GA-620102-20261122-000123", &id)
                .replace("620102-GWM", &format!("620{:03}-GWM", i % 97));
            (id, alert)
        })
        .collect();
    let inputs: Vec<Input<'_>> = messages
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Input {
            source: Source::Alerts,
            topic: "alerts",
            offset: i as i64,
            key: Some(key.as_bytes()),
            payload: Some(value.as_bytes()),
            timestamp: Some(NOW),
        })
        .collect();
    let applied = Offsets::new();
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("new_alerts", |b| {
        b.iter(|| {
            let progress = Progress {
                applied: &applied,
                replay_to: None,
            };
            let sorted = plan::sort(black_box(&inputs), progress, NOW, LIMITS);
            let unread = sorted.taken_as_new(|_| false);
            plan::apply(sorted, Vec::new(), &unread, &policy, NOW, &TimeZone::UTC)
        })
    });
    g.finish();

    // Where an alert's record lives: twice a message (the load and the write).
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(1));
    g.bench_function("alert_bucket", |b| b.iter(|| alert_bucket(black_box(&id))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
