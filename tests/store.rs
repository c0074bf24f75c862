//! The Redis store against a real redis-server: fencing of stale owners, applied offsets and
//! the escalation outbox written in the same atomic step, and the partition hash tag.

mod common;
use common::*;
use fraud_sla::domain::{Alert, AlertState, Policy, Risk};
use fraud_sla::store::{AlertWrite, Batch, RedisConn, Store, StoreError};

fn opened(id: &str) -> AlertState {
    let mut s = AlertState::default();
    let alert = Alert {
        alert_id: id.into(),
        issued_at: 1_795_000_000_000,
        jurisdiction: "620102-GWM".into(),
        risk: Risk::Medium,
        channel: None,
        fraud_type: None,
        amount_cents: None,
    };
    s.apply_alert(alert, &Policy::default(), 1_795_000_000_000);
    s
}

fn batch(id: &str, offset: i64) -> Batch {
    Batch {
        offsets: vec![("fraud.alerts".into(), offset)],
        alerts: vec![AlertWrite::from_state(id, &opened(id), &Policy::default())],
        escalations: vec![(
            format!("{id}:visit:1"),
            format!("{{\"escalation_id\":\"{id}:visit:1\"}}"),
        )],
    }
}

async fn store(redis: &Redis) -> Store {
    Store::new(RedisConn::connect(&redis.url(), false).await.unwrap(), "t")
}

#[tokio::test]
async fn a_stale_owner_is_fenced_and_cannot_overwrite_the_new_owners_state() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let old_owner = store(&redis).await;
    let new_owner = store(&redis).await;

    let old = old_owner.claim(3).await.unwrap();
    old_owner
        .apply(3, old.epoch, &batch("A-1", 10))
        .await
        .unwrap();
    // The partition moves: the new owner claims it and sees what the old one applied.
    let new = new_owner.claim(3).await.unwrap();
    assert!(new.epoch > old.epoch);
    assert_eq!(new.applied.get("fraud.alerts"), Some(&10));
    new_owner
        .apply(3, new.epoch, &batch("A-2", 11))
        .await
        .unwrap();

    // The old owner wakes up from a long pause and tries to write: refused, nothing changed.
    let before = redis.dump();
    match old_owner.apply(3, old.epoch, &batch("A-3", 12)).await {
        Err(StoreError::Fenced { .. }) => {}
        other => panic!("a stale epoch must be fenced, got {other:?}"),
    }
    assert_eq!(redis.dump(), before, "the fenced write changed nothing");
    assert!(new_owner.get(3, "A-3").await.unwrap().is_none());
    assert_eq!(
        new_owner
            .claim(3)
            .await
            .unwrap()
            .applied
            .get("fraud.alerts"),
        Some(&11)
    );
}

#[tokio::test]
async fn state_offsets_and_outbox_are_written_together_under_one_hash_tag() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    let claim = s.claim(7).await.unwrap();
    s.apply(7, claim.epoch, &batch("B-1", 41)).await.unwrap();

    let entries = s.outbox(7).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].escalation_id, "B-1:visit:1");
    assert!(s
        .get(7, "B-1")
        .await
        .unwrap()
        .is_some_and(|st| st.is_open()));
    assert_eq!(
        s.claim(7).await.unwrap().applied.get("fraud.alerts"),
        Some(&41)
    );
    // Acknowledged after the broker's ack: gone from the outbox, state untouched.
    s.ack(7, &[entries[0].stream_id.clone()]).await.unwrap();
    assert!(s.outbox(7).await.unwrap().is_empty());
    assert!(s.get(7, "B-1").await.unwrap().is_some());
    // Every key of partition 7 carries the same hash tag, so one script touches one slot.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut redis.client().get_connection().unwrap())
        .unwrap();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| k.starts_with("{t:7}")), "{keys:?}");
}
