//! The Redis store against a real redis-server: fencing of stale owners, applied offsets and
//! the escalation outbox written in the same atomic step, and the partition hash tag.

mod common;
use common::*;
use fraud_sla::domain::{Alert, AlertState, Policies, Risk};
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
    s.apply_alert(alert, &Policies::default(), 1_795_000_000_000);
    s
}

fn batch(id: &str, offset: i64) -> Batch {
    Batch {
        offsets: vec![("fraud.alerts".into(), offset)],
        alerts: vec![AlertWrite::from_state(
            id,
            &opened(id),
            &Policies::default(),
        )],
        escalations: vec![(
            format!("{id}:visit:1"),
            format!("{{\"escalation_id\":\"{id}:visit:1\"}}"),
        )],
        notices: vec![],
        policies: vec![],
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

    let mut old = old_owner.claim(3).await.unwrap().fence;
    old_owner
        .apply(3, &mut old, &batch("A-1", 10))
        .await
        .unwrap();
    // The partition moves: the new owner claims it and sees what the old one applied.
    let new = new_owner.claim(3).await.unwrap();
    assert!(new.epoch() > old.epoch);
    assert_eq!(new.applied.get("fraud.alerts"), Some(&10));
    let mut fence = new.fence;
    new_owner
        .apply(3, &mut fence, &batch("A-2", 11))
        .await
        .unwrap();

    // The old owner wakes up from a long pause and tries to write: refused, nothing changed.
    let before = redis.dump();
    match old_owner.apply(3, &mut old, &batch("A-3", 12)).await {
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
    let mut fence = s.claim(7).await.unwrap().fence;
    s.apply(7, &mut fence, &batch("B-1", 41)).await.unwrap();

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

fn owner_hash(redis: &Redis, partition: i32) -> Vec<(String, String)> {
    redis::cmd("HGETALL")
        .arg(format!("{{t:{partition}}}:owner"))
        .query(&mut redis.client().get_connection().unwrap())
        .unwrap()
}

fn set_owner_hash(redis: &Redis, partition: i32, fields: &[(String, String)]) {
    let mut c = redis.client().get_connection().unwrap();
    let key = format!("{{t:{partition}}}:owner");
    let _: () = redis::cmd("DEL").arg(&key).query(&mut c).unwrap();
    if !fields.is_empty() {
        let _: () = redis::cmd("HSET")
            .arg(&key)
            .arg(fields)
            .query(&mut c)
            .unwrap();
    }
}

#[tokio::test]
async fn a_redis_that_lost_writes_refuses_the_owner_with_rollback_and_changes_nothing() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    let mut fence = s.claim(5).await.unwrap().fence;
    s.apply(5, &mut fence, &batch("C-1", 1)).await.unwrap();
    let snapshot = owner_hash(&redis, 5);
    s.apply(5, &mut fence, &batch("C-2", 2)).await.unwrap();
    s.check(5, &mut fence).await.unwrap();

    // Redis goes back to the state after the first write (a replica that lagged, promoted).
    set_owner_hash(&redis, 5, &snapshot);
    let before = redis.dump();
    match s.apply(5, &mut fence.clone(), &batch("C-3", 3)).await {
        Err(StoreError::Rollback { partition: 5, .. }) => {}
        other => panic!("a lower write sequence must be a rollback, got {other:?}"),
    }
    assert!(matches!(
        s.check(5, &mut fence.clone()).await,
        Err(StoreError::Rollback { .. })
    ));
    assert_eq!(redis.dump(), before, "the refused write changed nothing");

    // Redis lost everything: also a rollback, not a fence.
    let _: () = redis::cmd("FLUSHALL")
        .query(&mut redis.client().get_connection().unwrap())
        .unwrap();
    assert!(matches!(
        s.check(5, &mut fence).await,
        Err(StoreError::Rollback { .. })
    ));
}

#[tokio::test]
async fn two_owners_never_share_an_epoch_after_redis_forgot_a_claim() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let a = store(&redis).await;
    let b = store(&redis).await;
    let before_claim = owner_hash(&redis, 2);
    let mut a_fence = a.claim(2).await.unwrap().fence;
    // Redis forgets A's claim; B claims and gets the very same epoch number.
    set_owner_hash(&redis, 2, &before_claim);
    let mut b_fence = b.claim(2).await.unwrap().fence;
    assert_eq!(a_fence.epoch, b_fence.epoch);
    match a.apply(2, &mut a_fence, &batch("D-1", 1)).await {
        Err(StoreError::Fenced { .. }) => {}
        other => panic!("same epoch, other token: fenced, got {other:?}"),
    }
    b.apply(2, &mut b_fence, &batch("D-2", 1)).await.unwrap();
}

/// docs/contract.md §10.2: a policy snapshot is stored once per version, with the first batch whose
/// alerts name it, and never overwritten; the alert records only name it.
#[tokio::test]
async fn a_policy_snapshot_is_stored_once_per_version_and_alerts_only_name_it() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    let policies = Policies::default();
    let policy = policies.current().clone();
    let mut fence = s.claim(0).await.unwrap().fence;
    let mut first = batch("A-1", 1);
    first.policies = vec![(policy.version().to_owned(), policy.snapshot_json())];
    s.apply(0, &mut fence, &first).await.unwrap();
    // A later batch naming the same version with other content cannot replace it.
    let mut again = batch("A-2", 2);
    again.policies = vec![(policy.version().to_owned(), "{}".into())];
    s.apply(0, &mut fence, &again).await.unwrap();

    let stored = s.policies(0).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0],
        (policy.version().to_owned(), policy.snapshot_json())
    );
    let back = fraud_sla::domain::Policy::from_snapshot(&stored[0].0, &stored[0].1).unwrap();
    assert_eq!(&back, policy.as_ref());
    let a = s.get(0, "A-1").await.unwrap().unwrap();
    assert_eq!(a.policy_version.as_deref(), Some(policy.version()));
    let raw: String = redis::cmd("GET")
        .arg("{t:0}:a:A-1")
        .query(&mut redis.client().get_connection().unwrap())
        .unwrap();
    assert!(
        !raw.contains("escalate_after") && raw.len() < 400,
        "the alert record names its policy, it does not copy it: {raw}"
    );
}
