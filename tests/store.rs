//! The Redis store against a real redis-server: fencing of stale owners, applied offsets and
//! the escalation outbox written in the same atomic step, the partition hash tag, and the
//! board's stage indexes, station counters and change stream (kept by the same script, read by
//! `list_stages.lua` page by page).

mod common;
use common::*;
use fraud_sla::domain::time::format_utc;
use fraud_sla::domain::validate::{Limits, Source};
use fraud_sla::domain::{Alert, AlertState, Millis, Policies, Risk};
use fraud_sla::partition::plan::{self, Input, Offsets, Progress};
use fraud_sla::store::{
    alert_bucket, day_field, merge_pages, station_field, AlertWrite, Batch, BoardWrite, DayCount,
    Fence, IndexChange, IndexEntry, IndexMatch, IndexQuery, ListedStage, OutboxEntry, RedisConn,
    StageList, Store, StoreError,
};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

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
        alerts: vec![AlertWrite::new(
            id,
            &AlertState::default(),
            &opened(id),
            &Policies::default(),
            true,
        )],
        escalations: vec![(
            format!("{id}:visit:1"),
            format!("{{\"escalation_id\":\"{id}:visit:1\"}}"),
        )],
        notices: vec![],
        policies: vec![],
        board: BoardWrite::default(),
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
async fn a_partition_is_taken_back_only_by_the_instance_id_that_claimed_it_last() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let instance = |id: &str| fraud_sla::store::Owner::new(Some(id.into()));
    let first_run = store(&redis).await.owned_by(instance("station-a"));
    let mut fence = first_run.claim(3).await.unwrap().fence;
    first_run
        .apply(3, &mut fence, &batch("A-1", 10))
        .await
        .unwrap();
    assert_eq!(
        first_run.claimed_by(3).await.unwrap().as_ref(),
        Some(first_run.owner())
    );

    // Another instance id, or none, takes nothing back; nothing changes.
    let before = redis.dump();
    let other = store(&redis).await.owned_by(instance("station-b"));
    assert!(other.take_back(3).await.unwrap().is_none());
    assert!(store(&redis).await.take_back(3).await.unwrap().is_none());
    assert!(
        first_run.take_back(4).await.unwrap().is_none(),
        "a partition never claimed is the group's to assign"
    );
    assert_eq!(redis.dump(), before);

    // The same instance id, restarted (a new process): it takes the partition back with what
    // was applied, and the previous run's fence no longer writes.
    let second_run = store(&redis).await.owned_by(instance("station-a"));
    let back = second_run.take_back(3).await.unwrap().expect("taken back");
    assert!(back.epoch() > fence.epoch);
    assert_eq!(back.applied.get("fraud.alerts"), Some(&10));
    assert!(matches!(
        first_run.apply(3, &mut fence, &batch("A-2", 11)).await,
        Err(StoreError::Fenced { .. })
    ));
    let by = second_run.claimed_by(3).await.unwrap().unwrap();
    assert_eq!(by.instance.as_deref(), Some("station-a"));
    assert_ne!(
        by.process,
        first_run.owner().process,
        "who fenced it is told apart"
    );

    // Once the group gives the partition to another instance, the old id cannot take it back.
    other.claim(3).await.unwrap();
    assert!(second_run.take_back(3).await.unwrap().is_none());
    assert_eq!(
        other
            .claimed_by(3)
            .await
            .unwrap()
            .unwrap()
            .instance
            .as_deref(),
        Some("station-b")
    );
    // A claim without an instance id clears the recorded one.
    let plain = store(&redis).await;
    plain.claim(3).await.unwrap();
    assert_eq!(plain.claimed_by(3).await.unwrap().unwrap().instance, None);
    assert!(other.take_back(3).await.unwrap().is_none());
}

#[tokio::test]
async fn the_open_count_follows_the_batches_and_takes_over_the_earlier_open_zset() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    // An earlier version's partition: its open alerts in a zset.
    let _: () = redis::cmd("ZADD")
        .arg("{t:4}:open")
        .arg(&[(1, "X"), (2, "Y"), (3, "Z")])
        .query(&mut sync(&redis))
        .unwrap();
    let mut fence = s.claim(4).await.unwrap().fence;
    assert_eq!(s.open_count(4).await.unwrap(), 3);
    let exists: bool = redis::cmd("EXISTS")
        .arg("{t:4}:open")
        .query(&mut sync(&redis))
        .unwrap();
    assert!(!exists, "the zset is dropped once counted");

    let applied = s.apply(4, &mut fence, &batch("N-1", 1)).await.unwrap();
    assert_eq!(s.open_count(4).await.unwrap(), 4);
    assert_eq!(
        applied.next_due,
        s.next_due(4).await.unwrap(),
        "the batch answers with the clock's earliest due time"
    );
    assert!(applied.next_due.is_some());
    // A claim by a later owner keeps the count.
    s.claim(4).await.unwrap();
    assert_eq!(s.open_count(4).await.unwrap(), 4);
}

/// A write of `id` (open; `stored`: Redis holds it already) that changes its overdue entry and
/// its clock entry.
fn indexes(id: &str, stored: bool, overdue: IndexChange, clock: IndexChange) -> AlertWrite {
    let before = if stored {
        opened(id)
    } else {
        AlertState::default()
    };
    AlertWrite {
        overdue,
        clock,
        ..AlertWrite::new(id, &before, &opened(id), &Policies::default(), true)
    }
}

#[tokio::test]
async fn a_batch_s_overdue_and_clock_changes_land_together_whatever_their_order() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    let mut fence = s.claim(5).await.unwrap().fence;
    let write = |alerts: Vec<AlertWrite>| Batch {
        alerts,
        ..Default::default()
    };
    // `b`'s clock shares `a`'s bucket: the bucket's time in the clock's directory is the
    // earlier of the two.
    let (a, c) = ("O-1", "O-3");
    let b = (4..)
        .map(|n| format!("O-{n}"))
        .find(|id| alert_bucket(id) == alert_bucket(a))
        .unwrap();
    let b = b.as_str();
    assert_ne!(alert_bucket(c), alert_bucket(a));
    let first = write(vec![
        indexes(a, false, IndexChange::Set(3_000), IndexChange::Set(9_000)),
        indexes(b, false, IndexChange::Set(1_000), IndexChange::Set(7_000)),
        indexes(c, false, IndexChange::Set(2_000), IndexChange::Set(8_000)),
    ]);
    let applied = s.apply(5, &mut fence, &first).await.unwrap();
    let overdue = |v: &[(&str, Millis)]| -> Vec<(String, Millis)> {
        v.iter().map(|(id, at)| (id.to_string(), *at)).collect()
    };
    assert_eq!(
        s.overdue(5, 10).await.unwrap(),
        overdue(&[(b, 1_000), (c, 2_000), (a, 3_000)])
    );
    assert_eq!(
        applied.next_due,
        Some(7_000),
        "the earliest clock of the batch"
    );
    assert_eq!(s.due(5, 8_000, 10).await.unwrap().len(), 2);

    // The next batch removes one entry, moves one and leaves one; the clocks likewise.
    let second = write(vec![
        indexes(a, true, IndexChange::Keep, IndexChange::Set(6_000)),
        indexes(b, true, IndexChange::Remove, IndexChange::Remove),
        indexes(c, true, IndexChange::Set(500), IndexChange::Keep),
    ]);
    let applied = s.apply(5, &mut fence, &second).await.unwrap();
    assert_eq!(
        s.overdue(5, 10).await.unwrap(),
        overdue(&[(c, 500), (a, 3_000)])
    );
    assert!(
        applied.next_due.is_some_and(|at| at <= 6_000),
        "never later than the earliest"
    );
    assert_eq!(s.next_due(5).await.unwrap(), Some(6_000));
    let mut due = s.due(5, 9_000, 10).await.unwrap();
    due.sort();
    assert_eq!(due, [a, c], "b's clock removed, a's moved earlier");
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

#[tokio::test]
async fn a_batch_s_escalations_share_one_outbox_entry_and_older_versions_entries_are_read_too() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    let mut fence = s.claim(7).await.unwrap().fence;
    // What versions before this one wrote: an entry an escalation, then the batch's escalations
    // in the entry itself.
    let old_id: String = redis::cmd("XADD")
        .arg("{t:7}:outbox")
        .arg("*")
        .arg("id")
        .arg("O-1:visit:1")
        .arg("e")
        .arg(r#"{"escalation_id":"O-1:visit:1"}"#)
        .query(&mut sync(&redis))
        .unwrap();
    let inline_id: String = redis::cmd("XADD")
        .arg("{t:7}:outbox")
        .arg("*")
        .arg("n")
        .arg(2)
        .arg("b")
        .arg("{\"escalation_id\":\"O-2:visit:0\"}\n{\"escalation_id\":\"O-2:visit:1\"}")
        .query(&mut sync(&redis))
        .unwrap();
    let mut b = batch("B-1", 41);
    b.escalations = ["B-1:visit:0", "B-1:visit:1", "B-1:meet:resolved"]
        .map(|id| {
            (
                id.to_owned(),
                format!(r#"{{"escalation_id":"{id}","n":"a\nb"}}"#),
            )
        })
        .to_vec();
    let applied = s.apply(7, &mut fence, &b).await.unwrap();

    let stream_id = &applied
        .outbox
        .expect("an entry for the batch's escalations");
    let ours = OutboxEntry::of_batch(stream_id, b.escalations.clone());
    let places: Vec<_> = ours.iter().map(|e| (e.index, e.of)).collect();
    assert_eq!(places, [(0, 3), (1, 3), (2, 3)]);
    assert_eq!(
        xlen(&redis, 7),
        3,
        "one entry for the whole batch, beside the older ones"
    );
    // The escalations beside the entry, staged by the owner and moved by the script: none left
    // staged.
    assert_eq!(
        outbox_keys(&redis, 7),
        [format!("{{t:7}}:outbox:{stream_id}")]
    );
    // Read back as written, the older entries first.
    let read = s.outbox(7).await.unwrap();
    assert_eq!(read[0].stream_id, old_id);
    assert_eq!((read[0].index, read[0].of), (0, 1));
    assert_eq!(read[0].escalation_id, "O-1:visit:1");
    let inline: Vec<_> = read[1..3]
        .iter()
        .map(|e| {
            (
                e.stream_id.as_str(),
                e.index,
                e.of,
                e.escalation_id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        inline,
        [
            (inline_id.as_str(), 0, 2, "O-2:visit:0"),
            (inline_id.as_str(), 1, 2, "O-2:visit:1")
        ]
    );
    assert_eq!(read[3..], ours[..]);
    // A batch with no escalation adds no entry.
    let mut quiet = batch("B-2", 42);
    quiet.escalations.clear();
    assert_eq!(s.apply(7, &mut fence, &quiet).await.unwrap().outbox, None);
    assert_eq!(xlen(&redis, 7), 3);

    // Acknowledged: each entry goes with its escalations.
    s.ack(7, &[old_id, stream_id.clone()]).await.unwrap();
    assert_eq!(s.outbox(7).await.unwrap().len(), 2);
    assert!(outbox_keys(&redis, 7).is_empty());
    s.ack(7, &[inline_id]).await.unwrap();
    assert!(s.outbox(7).await.unwrap().is_empty());
    assert_eq!(xlen(&redis, 7), 0);
}

/// The keys beside a partition's outbox stream: its entries' escalations, and any staged.
fn outbox_keys(redis: &Redis, partition: i32) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{{t:{partition}}}:outbox:*"))
        .query(&mut sync(redis))
        .unwrap()
}

fn xlen(redis: &Redis, partition: i32) -> i64 {
    redis::cmd("XLEN")
        .arg(format!("{{t:{partition}}}:outbox"))
        .query(&mut sync(redis))
        .unwrap()
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

/// `batch` with every alert taken as new, unread (as the owner takes an alert whose own
/// message is in its batch).
fn taken_as_new(mut batch: Batch) -> Batch {
    for a in &mut batch.alerts {
        a.unread = true;
    }
    batch
}

/// An alert the owner took as new without reading it is written as any new alert is. If
/// Redis holds a record of it after all, in its bucket (an open alert's) or under its own
/// key (one with a TTL: a closed alert's, or dispositions held for their alert), the batch
/// is refused as HELD and Redis is left exactly as it was: the records of the batch's other
/// unread alerts, written by then, are taken out again, and the owner's next batch is
/// accepted (its write sequence did not move).
#[tokio::test]
async fn an_alert_taken_as_new_is_checked_and_a_batch_that_meets_a_record_writes_nothing() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    let mut fence = s.claim(3).await.unwrap().fence;
    s.apply(3, &mut fence, &taken_as_new(batch("U-1", 1)))
        .await
        .unwrap();
    assert_eq!(s.get(3, "U-1").await.unwrap(), Some(opened("U-1")));
    assert_eq!(s.open_count(3).await.unwrap(), 1);

    let kept = AlertWrite {
        ttl_ms: Some(600_000),
        opened: 0,
        ..AlertWrite::new(
            "U-2",
            &AlertState::default(),
            &opened("U-2"),
            &Policies::default(),
            true,
        )
    };
    let mut with_ttl = batch("U-2", 2);
    with_ttl.alerts = vec![kept];
    s.apply(3, &mut fence, &with_ttl).await.unwrap();
    assert!(
        exists(&redis, "{t:3}:a:U-2"),
        "a record with a TTL has its own key"
    );

    // Each batch: a new alert first (its record written before the held one is met), then one
    // Redis holds.
    for held in ["U-1", "U-2"] {
        let mut both = batch("U-3", 3);
        both.alerts.extend(batch(held, 3).alerts);
        let before = redis.dump();
        match s.apply(3, &mut fence.clone(), &taken_as_new(both)).await {
            Err(StoreError::Held { partition: 3 }) => {}
            other => panic!("{held} is held: the batch must be refused, got {other:?}"),
        }
        assert_eq!(redis.dump(), before, "the refused batch changed nothing");
    }

    // Planned again with the held alert read: accepted.
    let mut read = batch("U-3", 3);
    read.alerts.push(AlertWrite::new(
        "U-1",
        &opened("U-1"),
        &opened("U-1"),
        &Policies::default(),
        true,
    ));
    s.apply(3, &mut fence, &read).await.unwrap();
    assert_eq!(s.get(3, "U-3").await.unwrap(), Some(opened("U-3")));
    assert_eq!(s.open_count(3).await.unwrap(), 2);
}

/// A batch whose reply is lost is sent again with the same fence, as the partition worker does.
/// Redis ran it the first time; the second call answers as the first would have and writes
/// nothing: no second outbox entry (its escalations published twice), no count moved twice,
/// no second handle for the alert, and the code and handle it gave are not taken for a rollback.
/// The reply is lost for real: `CLIENT PAUSE WRITE` holds the script past the connection's 5 s
/// response timeout, then Redis runs it.
#[tokio::test]
async fn a_batch_sent_again_after_its_reply_was_lost_is_applied_once() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    let mut fence = s.claim(6).await.unwrap().fence;
    s.apply(6, &mut fence, &batch("E-0", 1)).await.unwrap();
    let seq = |redis: &Redis| -> i64 {
        redis::cmd("HGET")
            .arg("{t:6}:owner")
            .arg("seq")
            .query(&mut sync(redis))
            .unwrap()
    };
    let written = seq(&redis);

    // A new alert in a new jurisdiction, with an escalation: the batch gives a code and a handle.
    let mut lost = alert_in("E-1", "110101-NEW", 2);
    lost.escalations = batch("E-1", 2).escalations;
    let _: () = redis::cmd("CLIENT")
        .arg(&["PAUSE", "6000", "WRITE"])
        .query(&mut sync(&redis))
        .unwrap();
    match s.apply(6, &mut fence, &lost).await {
        Err(e) if e.is_transient() => {}
        other => panic!("the paused write must time out, got {other:?}"),
    }
    // The pause ends and Redis runs the batch whose reply nobody reads.
    wait_until(Duration::from_secs(10), "the lost batch to run", || {
        seq(&redis) > written
    });
    let after = redis.dump();
    assert_eq!(s.outbox(6).await.unwrap().len(), 2);

    let again = s.apply(6, &mut fence, &lost).await.unwrap();
    assert_eq!(redis.dump(), after, "the batch sent again wrote nothing");
    let outbox = s.outbox(6).await.unwrap();
    assert_eq!(outbox.len(), 2, "one outbox entry for the batch");
    assert_eq!(again.outbox.as_ref(), Some(&outbox[1].stream_id));
    assert_eq!(again.next_due, s.next_due(6).await.unwrap());
    assert_eq!(s.open_count(6).await.unwrap(), 2);

    // The owner goes on as if the first reply had come: its next batch gives the next handle.
    s.apply(6, &mut fence, &alert_in("E-2", "110101-NEW", 3))
        .await
        .unwrap();
    assert_eq!(s.open_count(6).await.unwrap(), 3);
    assert_eq!(seq(&redis), written + 2);
    let ids: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg("{t:6}:ids:#6.")
        .query(&mut sync(&redis))
        .unwrap();
    assert_eq!(ids.get("#6.3").map(String::as_str), Some("E-2"));
    // A fence two writes behind cannot be a lost reply: Redis holds a write the owner does not
    // know of. Refused; the owner reads the partition again.
    let mut stale = fence.clone();
    stale.seq -= 2;
    refused_as_rollback(&s, &redis, 6, &stale, &batch("E-3", 4)).await;
}

fn dictionary(redis: &Redis, partition: i32) -> BTreeMap<String, String> {
    redis::cmd("HGETALL")
        .arg(format!("{{t:{partition}}}:names"))
        .query(&mut sync(redis))
        .unwrap()
}

/// `batch` is refused as a rollback, and Redis holds exactly what it held before.
async fn refused_as_rollback(
    s: &Store,
    redis: &Redis,
    partition: i32,
    fence: &Fence,
    batch: &Batch,
) {
    let before = redis.dump();
    match s.apply(partition, &mut fence.clone(), batch).await {
        Err(StoreError::Rollback { partition: p, .. }) if p == partition => {}
        other => panic!("a write sequence Redis does not match must be a rollback, got {other:?}"),
    }
    assert_eq!(redis.dump(), before, "the refused write changed nothing");
}

/// The write of a new alert of `jurisdiction` (a record name).
fn alert_in(id: &str, jurisdiction: &str, offset: i64) -> Batch {
    let mut state = AlertState::default();
    let mut alert = opened(id).alert.unwrap();
    alert.jurisdiction = jurisdiction.into();
    state.apply_alert(alert, &Policies::default(), 1_795_000_000_000);
    one_write(("fraud.alerts", offset), id, &AlertState::default(), &state)
}

/// A batch of one message, `(topic, offset)`, that changes `id` from `before` to `after`.
fn one_write(
    (topic, offset): (&str, i64),
    id: &str,
    before: &AlertState,
    after: &AlertState,
) -> Batch {
    Batch {
        offsets: vec![(topic.into(), offset)],
        alerts: vec![AlertWrite::new(
            id,
            before,
            after,
            &Policies::default(),
            true,
        )],
        ..Default::default()
    }
}

#[tokio::test]
async fn the_owner_codes_names_from_the_dictionary_it_read_at_its_claim() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let first = store(&redis).await;
    let mut first_fence = first.claim(6).await.unwrap().fence;
    first
        .apply(6, &mut first_fence, &alert_in("N-1", "620102-GWM", 1))
        .await
        .unwrap();
    let after_first = dictionary(&redis, 6);
    let code = &after_first["=620102-GWM"];
    assert_eq!(after_first[&format!("#{code}")], "620102-GWM");
    // The jurisdiction and the policy version: two names, two codes.
    assert_eq!(after_first["n"], "2");

    // A new owner codes the same name with the same code: it gives none.
    let second = store(&redis).await;
    let mut fence = second.claim(6).await.unwrap().fence;
    second
        .apply(6, &mut fence, &alert_in("N-2", "620102-GWM", 2))
        .await
        .unwrap();
    assert_eq!(dictionary(&redis, 6), after_first);
    // A new name takes the next code, once, though two alerts of one batch name it.
    let mut two = alert_in("N-3", "330100-XYZ", 3);
    two.alerts.extend(alert_in("N-4", "330100-XYZ", 4).alerts);
    second.apply(6, &mut fence, &two).await.unwrap();
    let dict = dictionary(&redis, 6);
    assert_eq!((dict.len(), &dict["n"]), (7, &"3".to_owned()), "{dict:?}");
    assert_eq!(dict[&format!("#{}", dict["=330100-XYZ"])], "330100-XYZ");
    let ids = ["N-1", "N-2", "N-3", "N-4"].map(String::from);
    let loaded = second.load(6, &ids).await.unwrap();
    let jurisdictions: Vec<_> = loaded
        .iter()
        .map(|s| {
            s.as_ref()
                .unwrap()
                .alert
                .as_ref()
                .unwrap()
                .jurisdiction
                .as_str()
        })
        .collect();
    assert_eq!(
        jurisdictions,
        ["620102-GWM", "620102-GWM", "330100-XYZ", "330100-XYZ"]
    );
    // The owner gives the names back from its own copy of the dictionary: the same states.
    assert_eq!(second.load_as_owner(6, &fence, &ids).await.unwrap(), loaded);
    // So does the owner fenced out since, though its copy lacks the code given after it.
    assert_eq!(
        first.load_as_owner(6, &first_fence, &ids).await.unwrap(),
        loaded
    );

    // A dictionary that lost the owner's last code (its counter is not where the owner's
    // codes start): giving codes is refused as a rollback, and nothing is written.
    let _: () = redis::pipe()
        .hdel("{t:6}:names", &["=330100-XYZ", "#3"])
        .hset("{t:6}:names", "n", 2)
        .query(&mut sync(&redis))
        .unwrap();
    let batch = alert_in("N-5", "510100-CD", 5);
    refused_as_rollback(&second, &redis, 6, &fence, &batch).await;
    // The claim that follows reads the dictionary as it is, and codes from there.
    let mut fence = second.claim(6).await.unwrap().fence;
    second
        .apply(6, &mut fence, &alert_in("N-5", "510100-CD", 5))
        .await
        .unwrap();
    let dict = dictionary(&redis, 6);
    assert_eq!(dict["n"], "3");
    assert_eq!(dict["=510100-CD"], "3");
    let loaded = second.load(6, &["N-5".to_owned()]).await.unwrap();
    assert_eq!(
        loaded[0]
            .as_ref()
            .unwrap()
            .alert
            .as_ref()
            .unwrap()
            .jurisdiction,
        "510100-CD"
    );
}

/// What Redis holds of alert `id` of partition 7: its record (bucket or own key) as stored.
fn stored_record(redis: &Redis, id: &str) -> Vec<u8> {
    let in_bucket: Option<Vec<u8>> = redis::cmd("HGET")
        .arg(format!("{{t:7}}:r:{}", alert_bucket(id)))
        .arg(id)
        .query(&mut sync(redis))
        .unwrap();
    in_bucket.unwrap_or_else(|| {
        redis::cmd("GET")
            .arg(format!("{{t:7}}:a:{id}"))
            .query(&mut sync(redis))
            .unwrap()
    })
}

/// The write of `id` again, unchanged, as its owner would after loading it.
fn rewrite(id: &str, state: &AlertState, offset: i64) -> Batch {
    one_write(("fraud.dispositions", offset), id, state, state)
}

#[tokio::test]
async fn the_owner_gives_handles_from_the_counter_it_read_and_a_stored_alert_keeps_its_own() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let handles = |redis: &Redis| -> Option<String> {
        redis::cmd("HGET")
            .arg("{t:7}:owner")
            .arg("handles")
            .query(&mut sync(redis))
            .unwrap()
    };
    let starts =
        |record: Vec<u8>, handle: &str| record.starts_with(format!("{handle} ").as_bytes());
    let first = store(&redis).await;
    let mut fence = first.claim(7).await.unwrap().fence;
    first
        .apply(7, &mut fence, &alert_in("H-1", "620102-GWM", 1))
        .await
        .unwrap();
    assert_eq!(handles(&redis).as_deref(), Some("1"));
    assert!(starts(stored_record(&redis, "H-1"), "#7.1"));
    let id_of: Option<String> = redis::cmd("HGET")
        .arg("{t:7}:ids:#7.")
        .arg("#7.1")
        .query(&mut sync(&redis))
        .unwrap();
    assert_eq!(id_of.as_deref(), Some("H-1"));

    // A new owner reads the counter at its claim and gives the next handle; an alert it loaded
    // keeps its handle, and so does one written without its load (the store reads it first).
    let second = store(&redis).await;
    let mut fence = second.claim(7).await.unwrap().fence;
    let ids = ["H-1".to_owned()];
    let loaded = second.load_as_owner(7, &fence, &ids).await.unwrap()[0]
        .clone()
        .unwrap();
    second
        .apply(7, &mut fence, &rewrite("H-1", &loaded, 2))
        .await
        .unwrap();
    assert!(starts(stored_record(&redis, "H-1"), "#7.1"));
    second
        .apply(7, &mut fence, &rewrite("H-1", &loaded, 3))
        .await
        .unwrap();
    assert!(starts(stored_record(&redis, "H-1"), "#7.1"));
    second
        .apply(7, &mut fence, &alert_in("H-2", "620102-GWM", 4))
        .await
        .unwrap();
    assert!(starts(stored_record(&redis, "H-2"), "#7.2"));
    assert_eq!(handles(&redis).as_deref(), Some("2"));
    assert_eq!(
        second.load(7, &ids).await.unwrap()[0].as_ref(),
        Some(&loaded)
    );

    // A counter that is not where the owner's handles start (Redis lost the last one): giving
    // a handle is refused as a rollback, and nothing is written.
    let _: () = redis::cmd("HSET")
        .arg("{t:7}:owner")
        .arg("handles")
        .arg(1)
        .query(&mut sync(&redis))
        .unwrap();
    let batch = alert_in("H-3", "620102-GWM", 5);
    refused_as_rollback(&second, &redis, 7, &fence, &batch).await;
    // A batch that gives no handle does not depend on the counter.
    second
        .apply(7, &mut fence, &rewrite("H-1", &loaded, 5))
        .await
        .unwrap();
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
    let raw: Vec<u8> = redis::cmd("GET")
        .arg("{t:0}:a:A-1")
        .query(&mut redis.client().get_connection().unwrap())
        .unwrap();
    assert!(
        !raw.windows(14).any(|w| w == b"escalate_after") && raw.len() < 100,
        "the alert record names its policy, it does not copy it: {raw:?}"
    );
}

const T0: Millis = 1_795_000_000_000;
const MIN: Millis = 60_000;
const HOUR: Millis = 60 * MIN;
const LIMITS: Limits = Limits {
    max_message_bytes: 65_536,
    max_clock_skew_ms: 5 * MIN,
};

fn zone() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()
}

fn alert_msg(id: &str, issued_at: Millis, jurisdiction: &str, risk: &str) -> (String, String) {
    let json = serde_json::json!({
        "alert_id": id, "issued_at": format_utc(issued_at), "jurisdiction": jurisdiction,
        "risk": risk,
    });
    (id.to_owned(), json.to_string())
}

fn disposition_msg(id: &str, event: &str, kind: &str, at: Millis) -> (String, String) {
    let json = serde_json::json!({
        "event_id": event, "alert_id": id, "kind": kind, "occurred_at": format_utc(at),
        "outcome": "dissuaded",
    });
    (id.to_owned(), json.to_string())
}

/// One partition's owner driving the real plan and script, as the partition task does.
struct Owner<'a> {
    store: &'a Store,
    partition: i32,
    fence: Fence,
    applied: Offsets,
    policies: Policies,
}

impl<'a> Owner<'a> {
    async fn claim(store: &'a Store, partition: i32) -> Owner<'a> {
        let claim = store.claim(partition).await.unwrap();
        Owner {
            store,
            partition,
            fence: claim.fence,
            applied: claim.applied.into_iter().collect(),
            policies: Policies::default(),
        }
    }

    /// Applies `(source, offset, (key, value), record time)` messages at `now`; a replay of
    /// what this process had applied up to `replay_to`.
    async fn ingest(
        &mut self,
        msgs: &[(Source, i64, (String, String), Millis)],
        now: Millis,
        replay_to: Option<&Offsets>,
    ) -> plan::Outcome {
        let inputs: Vec<Input<'_>> = msgs
            .iter()
            .map(|(source, offset, (key, value), ts)| Input {
                source: *source,
                topic: source.as_str(),
                offset: *offset,
                key: Some(key.as_bytes()),
                payload: Some(value.as_bytes()),
                timestamp: Some(*ts),
            })
            .collect();
        let progress = Progress {
            applied: &self.applied,
            replay_to,
        };
        // As the partition task does: the batch's alerts taken as new, and if Redis holds
        // one, planned again with every alert read.
        let sorted = plan::sort(&inputs, progress, now, LIMITS);
        let unread = sorted.taken_as_new(|_| false);
        let outcome = match self.plan_and_apply(sorted, &unread, now).await {
            Err(StoreError::Held { .. }) => {
                let progress = Progress {
                    applied: &self.applied,
                    replay_to,
                };
                let sorted = plan::sort(&inputs, progress, now, LIMITS);
                self.plan_and_apply(sorted, &Default::default(), now)
                    .await
                    .unwrap()
            }
            outcome => outcome.unwrap(),
        };
        self.applied.extend(outcome.batch.offsets.iter().cloned());
        outcome
    }

    async fn plan_and_apply(
        &mut self,
        sorted: plan::Sorted,
        unread: &std::collections::BTreeSet<String>,
        now: Millis,
    ) -> Result<plan::Outcome, StoreError> {
        let read = self
            .store
            .load(self.partition, &sorted.to_read(unread))
            .await?;
        let outcome = plan::apply(sorted, read, unread, &self.policies, now, &zone());
        self.store
            .apply(self.partition, &mut self.fence, &outcome.batch)
            .await?;
        Ok(outcome)
    }

    /// A firing round at `now` over every clock due.
    async fn fire(&mut self, now: Millis) -> plan::Outcome {
        let ids = self.store.due(self.partition, now, 500).await.unwrap();
        let states = self.store.load(self.partition, &ids).await.unwrap();
        let outcome = plan::fire(&ids, states, &self.policies, now, &zone());
        self.store
            .apply(self.partition, &mut self.fence, &outcome.batch)
            .await
            .unwrap();
        outcome
    }
}

fn sync(redis: &Redis) -> redis::Connection {
    redis.client().get_connection().unwrap()
}

/// `(member, deadline)` of a whole bucketed index (buckets.lua), in order: its buckets in
/// directory order, each in its own.
fn index(redis: &Redis, base: &str) -> Vec<(String, Millis)> {
    let names = names(redis, base);
    stored_index(redis, base)
        .into_iter()
        .map(|(short, d)| (names(&short), d))
        .collect()
}

/// Every stage the `due` indexes of partition `p` hold, as the list script reads them
/// (lua/list_stages.lua): `(deadline, short member, member)` in the lists' order. The entries
/// of `{t:<p>}:due` as they are; each shared entry (`IndexEntry::shared`) of the indexes
/// `{t:<p>}:due:shared` names once a stage: its first at its score, named as it is stored,
/// its k-th after the first `after` ms later (the index's k-th offset), named `<stored>k`.
fn due_stages(redis: &Redis, p: i32) -> Vec<(Millis, String, String)> {
    let base = format!("{{t:{p}}}:due");
    let names = names(redis, &base);
    let mut out: Vec<(Millis, String, String)> = stored_index(redis, &base)
        .into_iter()
        .map(|(short, d)| (d, short.clone(), names(&short)))
        .collect();
    let shared: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{base}:shared"))
        .query(&mut sync(redis))
        .unwrap();
    for index in shared {
        let offsets: Vec<Millis> = index
            .split('+')
            .skip(1)
            .map(|after| after.parse().unwrap())
            .collect();
        for (short, d) in stored_index(redis, &format!("{base}:{index}")) {
            let long = names(&short);
            let parts: Vec<&str> = long.split('\x1f').collect();
            let [j, r, shape, id, "v"] = parts.as_slice() else {
                panic!("{index} holds {long:?}, not a shared entry");
            };
            let stages: Vec<&str> = shape.split('\x1e').collect();
            assert_eq!(stages.len(), offsets.len() + 1, "{index} holds {long:?}");
            for (k, stage) in stages.iter().enumerate() {
                let (stage, after, suffix) = match k {
                    0 => (*stage, 0, String::new()),
                    _ => {
                        let (stage, after) = stage.rsplit_once('+').unwrap();
                        assert_eq!(after.parse::<Millis>().unwrap(), offsets[k - 1], "{index}");
                        (stage, offsets[k - 1], k.to_string())
                    }
                };
                out.push((
                    d + after,
                    format!("{short}{suffix}"),
                    format!("{j}\x1f{r}\x1f{stage}\x1f{id}\x1f0"),
                ));
            }
        }
    }
    out.sort();
    out
}

/// The stages partition `p`'s `due` indexes hold (`due_stages`), decoded, by deadline and
/// member.
fn due_index(redis: &Redis, p: i32) -> Vec<(String, Millis)> {
    let mut out: Vec<(Millis, String)> = due_stages(redis, p)
        .into_iter()
        .map(|(d, _, member)| (d, member))
        .collect();
    out.sort();
    out.into_iter().map(|(d, m)| (m, d)).collect()
}

/// A bucketed index's members as Redis holds them (short), in order.
fn stored_index(redis: &Redis, base: &str) -> Vec<(String, Millis)> {
    buckets(redis, base).into_iter().flatten().collect()
}

/// Decodes the short members of the index `base` (`{t:<p>}:due`) with its partition's
/// dictionary, as the list script does (lua/names.lua); anything else stays as it is.
fn names(redis: &Redis, base: &str) -> impl Fn(&str) -> String {
    let tag = &base[..base.find('}').unwrap() + 1];
    let dictionary: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{tag}:names"))
        .query(&mut sync(redis))
        .unwrap();
    let redis = redis.client();
    let tag = tag.to_owned();
    move |short: &str| {
        let parts: Vec<&str> = short.split('\x1f').collect();
        match (parts.as_slice(), dictionary.get(&format!("#{}", parts[0]))) {
            ([_, id, x], Some(triple)) => {
                let id = if id.starts_with('#') {
                    redis::cmd("HGET")
                        .arg(format!("{tag}:ids:{}", &id[..id.len() - 1]))
                        .arg(id)
                        .query::<String>(&mut redis.get_connection().unwrap())
                        .unwrap()
                } else {
                    id.to_string()
                };
                format!("{triple}\x1f{id}\x1f{x}")
            }
            _ => short.to_owned(),
        }
    }
}

/// The buckets of a bucketed index in directory order, each `(member, deadline)` in order.
fn buckets(redis: &Redis, base: &str) -> Vec<Vec<(String, Millis)>> {
    let mut c = sync(redis);
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{base}:dir"))
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .unwrap();
    ids.iter()
        .map(|id| {
            let rows: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(format!("{base}:{id}"))
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query(&mut c)
                .unwrap();
            assert!(!rows.is_empty(), "bucket {base}:{id} is listed but empty");
            rows.into_iter().map(|(m, s)| (m, s as Millis)).collect()
        })
        .collect()
}

fn hash(redis: &Redis, key: &str) -> BTreeMap<String, i64> {
    redis::cmd("HGETALL")
        .arg(key)
        .query(&mut sync(redis))
        .unwrap()
}

fn m(jurisdiction: &str, risk: &str, stage: &str, id: &str, last: u8) -> String {
    format!("{jurisdiction}\x1f{risk}\x1f{stage}\x1f{id}\x1f{last}")
}

/// The open counts move by what the indexes held: of a group of removals in one bucket, an
/// entry the index never held (a replay's, a record that went ahead of its index) counts nothing.
#[tokio::test]
async fn removing_an_entry_the_index_does_not_hold_moves_no_count() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    let mut fence = s.claim(8).await.unwrap().fence;
    let entry = |id: &str, deadline: Millis| IndexEntry {
        list: StageList::Due,
        deadline,
        member: m("620102-GWM", "high", "visit", id, 0),
        station: station_field("620102-GWM", "visit"),
    };
    let board = |remove: Vec<IndexEntry>, add: Vec<IndexEntry>| Batch {
        board: BoardWrite {
            remove,
            add,
            ..Default::default()
        },
        ..Default::default()
    };
    let (r1, r2, r3) = (entry("R-1", T0), entry("R-2", T0 + 2), entry("R-3", T0 + 1));
    let station = station_field("620102-GWM", "visit");
    s.apply(8, &mut fence, &board(vec![], vec![r1.clone(), r2.clone()]))
        .await
        .unwrap();
    assert_eq!(hash(&redis, "{t:8}:openstat").get(&station), Some(&2));

    // R-1 is held, R-3 never was: one bucket, one group of two removals.
    s.apply(8, &mut fence, &board(vec![r1, r3], vec![]))
        .await
        .unwrap();
    assert_eq!(hash(&redis, "{t:8}:openstat").get(&station), Some(&1));
    assert_eq!(
        index(&redis, "{t:8}:due"),
        [(r2.member.clone(), r2.deadline)]
    );
}

/// docs/contract.md §10.4: the lists' indexes, the open counts and the day counters follow the
/// records through a whole life (open, warned, breached, satisfied late, closed), written by the
/// batch script from the plan's differences; the change stream names every changed alert.
#[tokio::test]
async fn the_board_indexes_and_counters_follow_the_records_through_an_alerts_life() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    let mut o = Owner::claim(&s, 0).await;
    let (late, openstat) = ("{t:0}:late", "{t:0}:openstat");

    o.ingest(
        &[
            (
                Source::Alerts,
                0,
                alert_msg("A", T0, "620102-GWM", "high"),
                T0,
            ),
            (Source::Alerts, 1, alert_msg("B", T0, "330100", "low"), T0),
        ],
        T0 + MIN,
        None,
    )
    .await;
    assert_eq!(
        due_index(&redis, 0),
        [
            (m("330100", "low", "visit", "B", 0), T0 + HOUR),
            (m("620102-GWM", "high", "visit", "A", 0), T0 + HOUR),
            (m("330100", "low", "meet", "B", 0), T0 + 2 * HOUR),
            (m("620102-GWM", "high", "meet", "A", 0), T0 + 2 * HOUR),
            (m("330100", "low", "feedback", "B", 0), T0 + 6 * HOUR),
            (m("620102-GWM", "high", "feedback", "A", 0), T0 + 6 * HOUR),
        ],
        "by deadline, ties by member"
    );
    assert!(index(&redis, late).is_empty());
    let counts = |pairs: &[(&str, &str, i64)]| -> BTreeMap<String, i64> {
        pairs
            .iter()
            .map(|(j, st, n)| (station_field(j, st), *n))
            .collect()
    };
    assert_eq!(
        hash(&redis, openstat),
        counts(&[
            ("330100", "feedback", 1),
            ("330100", "meet", 1),
            ("330100", "visit", 1),
            ("620102-GWM", "feedback", 1),
            ("620102-GWM", "meet", 1),
            ("620102-GWM", "visit", 1),
        ])
    );

    // 1 h in: both visits breach (level 1): from due to late, counted as breached once.
    o.fire(T0 + HOUR).await;
    assert_eq!(
        index(&redis, late),
        [
            (m("330100", "low", "visit", "B", 1), T0 + HOUR),
            (m("620102-GWM", "high", "visit", "A", 1), T0 + HOUR),
        ]
    );
    assert_eq!(due_index(&redis, 0).len(), 4);
    // A is met late (visit late, meet on time); B closes: every stage of B leaves.
    o.ingest(
        &[
            (
                Source::Dispositions,
                0,
                disposition_msg("A", "e1", "met", T0 + 70 * MIN),
                T0 + 70 * MIN,
            ),
            (
                Source::Dispositions,
                1,
                disposition_msg("B", "e2", "closed", T0 + 71 * MIN),
                T0 + 71 * MIN,
            ),
        ],
        T0 + 72 * MIN,
        None,
    )
    .await;
    assert!(index(&redis, late).is_empty());
    assert_eq!(
        due_index(&redis, 0),
        [(m("620102-GWM", "high", "feedback", "A", 0), T0 + 6 * HOUR)]
    );
    assert_eq!(
        hash(&redis, openstat),
        counts(&[("620102-GWM", "feedback", 1)]),
        "a field at 0 is deleted"
    );
    // T0 is 19:06 in Shanghai: 1 h later is still 2026-11-18 there.
    let day = hash(&redis, "{t:0}:day:2026-11-18");
    let want: BTreeMap<String, i64> = [
        (day_field("620102-GWM", "visit", DayCount::Breached), 1),
        (day_field("330100", "visit", DayCount::Breached), 1),
        (day_field("620102-GWM", "visit", DayCount::Late), 1),
        (day_field("620102-GWM", "meet", DayCount::OnTime), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(day, want);
    let ttl: i64 = redis::cmd("TTL")
        .arg("{t:0}:day:2026-11-18")
        .query(&mut sync(&redis))
        .unwrap();
    assert!((8 * 24 * 3600 - 60..=8 * 24 * 3600).contains(&ttl), "{ttl}");

    // The change stream: one entry per batch, naming each changed alert.
    let changes = s.changes(0, "", 100).await.unwrap().entries;
    let named: Vec<Vec<(String, String)>> = changes.iter().map(|(_, c)| c.clone()).collect();
    let pair = |a: &str, j: &str| (a.to_owned(), j.to_owned());
    assert_eq!(
        named,
        [
            vec![pair("A", "620102-GWM"), pair("B", "330100")],
            vec![pair("A", "620102-GWM"), pair("B", "330100")],
            vec![pair("A", "620102-GWM"), pair("B", "330100")],
        ]
    );
    let after_first = s.changes(0, &changes[0].0, 100).await.unwrap();
    assert_eq!(after_first.entries, changes[1..], "after an id: exclusive");
    assert!(!after_first.gap);
    assert!(s
        .changes(0, &changes[2].0, 100)
        .await
        .unwrap()
        .entries
        .is_empty());
    let raw: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("{t:0}:events")
        .arg("-")
        .arg("+")
        .query(&mut sync(&redis))
        .unwrap();
    assert_eq!(
        raw[0].1,
        [(
            "c".to_owned(),
            r#"[["A","620102-GWM"],["B","330100"]]"#.to_owned()
        )],
        "exactly the field the live events read"
    );

    // A batch of duplicates changes no record: nothing on the stream.
    o.ingest(
        &[(
            Source::Alerts,
            2,
            alert_msg("A", T0, "620102-GWM", "high"),
            T0,
        )],
        T0 + 73 * MIN,
        None,
    )
    .await;
    assert_eq!(s.changes(0, "", 100).await.unwrap().entries.len(), 3);
}

/// The change stream keeps the last seconds by Redis's clock, not the last batches: what a quiet
/// partition wrote long ago goes with the next batch. A reader is told it missed something only
/// when an entry after its place was trimmed, not when its place was (on a quiet partition,
/// every reader's place is the last entry, soon older than the window).
#[tokio::test]
async fn the_change_stream_keeps_only_its_window() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    let mut o = Owner::claim(&s, 0).await;
    let now: Vec<String> = redis::cmd("TIME").query(&mut sync(&redis)).unwrap();
    let redis_ms: u64 = now[0].parse::<u64>().unwrap() * 1000;
    let window = fraud_sla::store::EVENTS_WINDOW_MS;
    let old = |ago: u64| format!("{}-0", redis_ms - ago);
    let (oldest, outside, inside) = (
        old(window + 9_000),
        old(window + 5_000),
        old(window - 5_000),
    );
    for id in [&oldest, &outside, &inside] {
        let _: String = redis::cmd("XADD")
            .arg("{t:0}:events")
            .arg(id)
            .arg("c")
            .arg(r#"[["OLD","620102"]]"#)
            .query(&mut sync(&redis))
            .unwrap();
    }
    let msg = |offset, id| {
        (
            Source::Alerts,
            offset,
            alert_msg(id, T0, "620102-GWM", "high"),
            T0,
        )
    };
    o.ingest(&[msg(0, "A")], T0 + MIN, None).await;

    let kept: Vec<String> = s
        .changes(0, "0-0", 100)
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(kept[0], inside, "the entry within the window stays");
    let trimmed: String = redis::cmd("GET")
        .arg("{t:0}:events:trimmed")
        .query(&mut sync(&redis))
        .unwrap();
    assert_eq!(trimmed, outside, "the newest entry trimmed");

    let from_oldest = s.changes(0, &oldest, 100).await.unwrap();
    assert!(from_oldest.gap, "`outside` was trimmed unread");
    assert_eq!(from_oldest.entries.len(), 2);
    let from_outside = s.changes(0, &outside, 100).await.unwrap();
    assert!(
        !from_outside.gap,
        "its place was trimmed after it read it, nothing after"
    );
    assert_eq!(from_outside.entries.len(), 2);
    assert!(!s.changes(0, &inside, 100).await.unwrap().gap);

    // A quiet partition: two batches in a row after a long pause trim its last entry, which a
    // reader that read everything is still at.
    let _: () = redis::cmd("DEL")
        .arg("{t:0}:events")
        .query(&mut sync(&redis))
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg("{t:0}:events")
        .arg(&outside)
        .arg("c")
        .arg(r#"[["OLD","620102"]]"#)
        .query(&mut sync(&redis))
        .unwrap();
    o.ingest(&[msg(1, "B")], T0 + MIN, None).await;
    o.ingest(&[msg(2, "C")], T0 + MIN, None).await;
    let quiet = s.changes(0, &outside, 100).await.unwrap();
    assert!(!quiet.gap);
    assert_eq!(quiet.entries.len(), 2, "B and C");
}

/// A replay after a Redis rollback goes through the same plan from what Redis still holds:
/// the board ends exactly as after the first run (partition 1 is the first run, partition 2
/// the one whose Redis lost the second batch).
#[tokio::test]
async fn a_replay_after_a_rollback_leaves_the_board_as_the_first_run_did() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    let first = [
        (
            Source::Alerts,
            0,
            alert_msg("A", T0, "620102-GWM", "medium"),
            T0,
        ),
        (
            Source::Alerts,
            1,
            alert_msg("B", T0 + MIN, "620102-GWM", "high"),
            T0 + MIN,
        ),
    ];
    let second = [
        (
            Source::Dispositions,
            0,
            disposition_msg("A", "e1", "visited", T0 + 50 * MIN),
            T0 + 50 * MIN,
        ),
        (
            Source::Alerts,
            2,
            alert_msg("C", T0 + 40 * MIN, "330100", "low"),
            T0 + 50 * MIN,
        ),
        (
            Source::Dispositions,
            1,
            disposition_msg("B", "e2", "met", T0 + 75 * MIN),
            T0 + 75 * MIN,
        ),
    ];
    let mut run = Owner::claim(&s, 1).await;
    run.ingest(&first, T0 + MIN, None).await;
    run.ingest(&second[..2], T0 + 50 * MIN, None).await;
    run.fire(T0 + 61 * MIN).await;
    run.ingest(&second[2..], T0 + 75 * MIN, None).await;

    let mut lost = Owner::claim(&s, 2).await;
    lost.ingest(&first, T0 + MIN, None).await;
    // Redis forgot everything after the first batch; the rebuild re-reads the rest 2 h later,
    // each message as of its record time, firing nothing on the way.
    let replay_to: Offsets = [("alerts".to_owned(), 2), ("dispositions".to_owned(), 1)]
        .into_iter()
        .collect();
    lost.ingest(&second, T0 + 3 * HOUR, Some(&replay_to)).await;

    assert!(!index(&redis, "{t:1}:due").is_empty());
    assert!(!hash(&redis, "{t:1}:openstat").is_empty());
    assert!(!hash(&redis, "{t:1}:day:2026-11-18").is_empty());
    for k in ["due", "late"] {
        let (a, b) = (format!("{{t:1}}:{k}"), format!("{{t:2}}:{k}"));
        assert_eq!(index(&redis, &a), index(&redis, &b), "{k}");
    }
    for k in ["openstat", "day:2026-11-18"] {
        let (a, b) = (format!("{{t:1}}:{k}"), format!("{{t:2}}:{k}"));
        assert_eq!(hash(&redis, &a), hash(&redis, &b), "{k}");
    }
    // The breach of B's visit happened in both: as fired by the loop, and on replay before
    // its late `met` was applied.
    assert_eq!(
        hash(&redis, "{t:2}:day:2026-11-18").get(&day_field(
            "620102-GWM",
            "visit",
            DayCount::Breached
        )),
        Some(&1)
    );
    assert!(!hash(&redis, "{t:2}:openstat").is_empty());
}

/// Pages through one list over both partitions with `limit` and `budget`, as the handler does;
/// returns the decoded items and the number of pages.
async fn page_through(s: &Store, list: StageList, q: IndexQuery<'_>) -> (Vec<ListedStage>, usize) {
    let mut out = Vec::new();
    let mut after: Option<(Millis, String)> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 10_000, "paging ends");
        let mut parts = Vec::new();
        for p in 0..2 {
            let q = IndexQuery {
                after: after.as_ref().map(|(d, m)| (*d, m.as_str())),
                ..q.clone()
            };
            parts.push((p, s.list_stages(p, list, &q).await.unwrap()));
        }
        let merged = merge_pages(parts, q.limit);
        assert!(merged.items.len() <= q.limit);
        out.extend(
            merged
                .items
                .iter()
                .map(|(_, m)| ListedStage::decode(list, m.deadline, &m.member).unwrap()),
        );
        match merged.next {
            None => return (out, pages),
            Some(next) => {
                assert!(
                    after.as_ref().is_none_or(|a| next > *a),
                    "every page moves forward"
                );
                after = Some(next);
            }
        }
    }
}

/// Every entry of both partitions' `due` indexes, by the order of the lists: (deadline, short
/// member), with the member decoded.
fn all_due_entries(redis: &Redis) -> Vec<(Millis, String, String)> {
    let mut all: Vec<(Millis, String, String)> =
        (0..2).flat_map(|p| due_stages(redis, p)).collect();
    all.sort();
    all
}

/// Every item of both partitions' `due` indexes, by the order of the lists.
fn all_due(redis: &Redis) -> Vec<ListedStage> {
    all_due_entries(redis)
        .iter()
        .map(|(d, _, m)| ListedStage::decode(StageList::Due, *d, m).unwrap())
        .collect()
}

/// `/v1/open`'s paging on real Redis: every filter, every page size, scan budgets down to 1
/// entry (short pages whose cursor goes on), a cursor whose entry left the index meanwhile:
/// always every matching item exactly once, in order.
#[tokio::test]
async fn paging_with_filters_and_small_budgets_yields_every_match_once_in_order() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    let jurisdictions = [
        "620102-GWM",
        "620102-QLH",
        "620103-X",
        "330100",
        "110000-ONLY0",
    ];
    let risks = ["high", "medium", "low"];
    // Partition 0 holds more, and alone holds one jurisdiction; deadlines tie within a
    // partition (every fifth alert shares the issued_at of the one before) and across
    // partitions (odd alerts), so cursors land among ties of entries they are not.
    // Enough entries for several buckets per index.
    for (p, n) in [(0, 400), (1, 140)] {
        let mut o = Owner::claim(&s, p).await;
        let msgs: Vec<_> = (0..n)
            .map(|i| {
                let issued = T0 + (i - i % 5 / 4) * 700 + i64::from(p) * 300 * (i % 2);
                let id = format!("P{p}-{i:02}");
                let j = jurisdictions[(i as usize + p as usize) % (5 - p as usize)];
                (
                    Source::Alerts,
                    i,
                    alert_msg(&id, issued, j, risks[i as usize % 3]),
                    T0,
                )
            })
            .collect();
        o.ingest(&msgs, T0 + 10 * MIN, None).await;
        // Every fourth visited: its meet and feedback share an entry of other offsets. The
        // first minute's warned at 45 minutes: an entry a stage. The rest share one of three.
        let visits: Vec<_> = (0..n)
            .filter(|i| i % 4 == 1)
            .map(|i| {
                let id = format!("P{p}-{i:02}");
                let msg = disposition_msg(&id, &format!("v{i}"), "visited", T0 + 10 * MIN);
                (Source::Dispositions, i, msg, T0 + 10 * MIN)
            })
            .collect();
        o.ingest(&visits, T0 + 10 * MIN, None).await;
        o.fire(T0 + 46 * MIN).await;
    }
    let all = all_due(&redis);
    let visited = (0..400).filter(|i| i % 4 == 1).count() + (0..140).filter(|i| i % 4 == 1).count();
    assert_eq!(all.len(), (400 + 140) * 3 - visited);
    for p in 0..2 {
        let mut c = sync(&redis);
        let shared: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{{t:{p}}}:due:shared"))
            .query(&mut c)
            .unwrap();
        let mut shared = shared;
        shared.sort();
        assert_eq!(shared, ["+14400000", "+3600000+18000000"]);
        let base = format!("{{t:{p}}}:due");
        for index in [
            base.clone(),
            format!("{base}:+14400000"),
            format!("{base}:+3600000+18000000"),
        ] {
            let in_buckets: Vec<(Millis, String)> = stored_index(&redis, &index)
                .into_iter()
                .map(|(m, d)| (d, m))
                .collect();
            assert!(!in_buckets.is_empty(), "{index}");
            let first_wrong = in_buckets.windows(2).position(|w| w[0] >= w[1]);
            assert_eq!(
                first_wrong, None,
                "the buckets in order are the index in order"
            );
        }
    }
    let prefixes = vec!["620102".to_owned()];
    let two = vec!["620103".to_owned(), "3301".to_owned()];
    let only0 = vec!["1100".to_owned()];
    type Filter = fn(&ListedStage) -> bool;
    let cases: Vec<(IndexQuery<'_>, Filter)> = vec![
        (IndexQuery::default(), |_| true),
        (
            IndexQuery {
                prefixes: Some(&prefixes),
                ..Default::default()
            },
            |i| i.jurisdiction.starts_with("620102"),
        ),
        (
            IndexQuery {
                prefixes: Some(&two),
                risk: Some(Risk::High),
                ..Default::default()
            },
            |i| {
                (i.jurisdiction.starts_with("620103") || i.jurisdiction.starts_with("3301"))
                    && i.risk == Risk::High
            },
        ),
        (
            IndexQuery {
                stage: Some("meet"),
                ..Default::default()
            },
            |i| i.stage == "meet",
        ),
        (
            IndexQuery {
                max_deadline: Some(T0 + 90 * MIN),
                ..Default::default()
            },
            |i| i.deadline <= T0 + 90 * MIN,
        ),
        (
            IndexQuery {
                prefixes: Some(&only0),
                ..Default::default()
            },
            |i| i.jurisdiction.starts_with("1100"),
        ),
        (
            IndexQuery {
                prefixes: Some(&[]),
                ..Default::default()
            },
            |_| false,
        ),
    ];
    for (q, keep) in &cases {
        let want: Vec<ListedStage> = all.iter().filter(|i| keep(i)).cloned().collect();
        for (limit, budget) in [(1000, 2000), (7, 2000), (3, 2000), (7, 3), (1, 1), (50, 10)] {
            let q = IndexQuery {
                limit,
                budget,
                ..q.clone()
            };
            let (got, pages) = page_through(&s, StageList::Due, q.clone()).await;
            assert_eq!(got, want, "{q:?}");
            let filtered = q.prefixes.is_some() || q.risk.is_some() || q.stage.is_some();
            if !filtered && budget >= limit {
                assert_eq!(
                    pages,
                    want.len().div_ceil(limit).max(1),
                    "unfiltered, every page is full and none follows the last: {q:?}"
                );
            }
        }
    }

    // A cursor whose entry left the index (its stage satisfied) meanwhile still continues at
    // the right place, in every partition: an entry of its own, then a shared entry's third
    // stage (its alert visited: its entry moves to the index of other offsets).
    let q = IndexQuery {
        limit: 5,
        budget: 2000,
        ..Default::default()
    };
    let mut parts = Vec::new();
    for p in 0..2 {
        parts.push((p, s.list_stages(p, StageList::Due, &q).await.unwrap()));
    }
    let first = merge_pages(parts, 5);
    let (last_p, last) = first.items.last().unwrap().clone();
    let own = (last_p, first.next.clone().unwrap(), last.member.clone());
    let third = due_stages(&redis, 1)
        .into_iter()
        .find(|(_, short, _)| short.ends_with("v2"))
        .map(|(d, short, member)| (1, (d, short), member))
        .unwrap();
    for (n, (p, (cursor_d, cursor_m), member)) in [own, third].into_iter().enumerate() {
        let gone = ListedStage::decode(StageList::Due, 0, &member).unwrap();
        let mut o = Owner::claim(&s, p).await;
        let visit = disposition_msg(&gone.alert_id, "e1", "visited", T0 + 11 * MIN);
        o.ingest(
            &[(Source::Dispositions, 1_000 + n as i64, visit, T0)],
            T0 + 11 * MIN,
            None,
        )
        .await;
        let mut parts = Vec::new();
        for p in 0..2 {
            let q = IndexQuery {
                after: Some((cursor_d, cursor_m.as_str())),
                ..q.clone()
            };
            parts.push((p, s.list_stages(p, StageList::Due, &q).await.unwrap()));
        }
        let second = merge_pages(parts, 5);
        let now_all: Vec<(Millis, String)> = all_due_entries(&redis)
            .into_iter()
            .map(|(d, short, _)| (d, short))
            .collect();
        assert!(
            !now_all.contains(&(cursor_d, cursor_m.clone())),
            "the cursor's entry left"
        );
        let at = now_all
            .iter()
            .position(|e| *e > (cursor_d, cursor_m.clone()))
            .unwrap();
        let got: Vec<(Millis, String)> = second
            .items
            .iter()
            .map(|(_, m)| (m.deadline, m.key.clone()))
            .collect();
        assert_eq!(got, now_all[at..at + 5]);
    }
}

/// Index members are stored short: the jurisdiction, risk and stage they share with every
/// stage of that station, risk and stage become a code (lua/names.lua). An earlier version's
/// long members are rewritten at the first claim; a list reads them back as they were written,
/// and a removal by the long member finds the short one.
#[tokio::test]
async fn index_members_are_stored_short_and_an_earlier_versions_long_ones_are_rewritten() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    let mut c = sync(&redis);
    let long = [
        (
            m(
                "620102-GWM",
                "high",
                "visit",
                "GA-620102-20261202-000001-3f9a",
                0,
            ),
            10,
        ),
        (
            m(
                "620102-GWM",
                "high",
                "meet",
                "GA-620102-20261202-000001-3f9a",
                1,
            ),
            20,
        ),
        (
            m(
                "330106-XHQ",
                "low",
                "visit",
                "GA-330106-20261202-000002-3f9a",
                0,
            ),
            10,
        ),
        (
            m(
                "620102-GWM",
                "high",
                "visit",
                "GA-620102-20261202-000003-3f9a",
                0,
            ),
            30,
        ),
    ];
    for (member, deadline) in &long {
        let _: () = redis::cmd("ZADD")
            .arg("{t:0}:due")
            .arg(deadline)
            .arg(member)
            .query(&mut c)
            .unwrap();
    }
    s.claim(0).await.unwrap();

    let stored = stored_index(&redis, "{t:0}:due");
    assert_eq!(stored.len(), long.len());
    for (short, _) in &stored {
        assert_eq!(short.matches('\x1f').count(), 2, "{short:?} is short");
        assert!(
            short.len() <= "GA-620102-20261202-000001-3f9a".len() + 5,
            "{short:?}"
        );
    }
    let codes: std::collections::HashSet<&str> = stored
        .iter()
        .map(|(m, _)| m.split('\x1f').next().unwrap())
        .collect();
    assert_eq!(codes.len(), 3, "one code per (jurisdiction, risk, stage)");
    let mut want: Vec<(String, Millis)> = long.iter().map(|(m, d)| (m.clone(), *d)).collect();
    want.sort();
    let mut got = index(&redis, "{t:0}:due");
    got.sort();
    assert_eq!(got, want, "decoded, the members are the long ones");

    let q = IndexQuery {
        limit: 10,
        budget: 100,
        risk: Some(Risk::High),
        stage: Some("visit"),
        prefixes: Some(&["6201".to_owned()]),
        ..Default::default()
    };
    let page = s.list_stages(0, StageList::Due, &q).await.unwrap();
    let members: Vec<(Millis, &str)> = page
        .matches
        .iter()
        .map(|m| (m.deadline, m.member.as_str()))
        .collect();
    assert_eq!(
        members,
        [(10, long[0].0.as_str()), (30, long[3].0.as_str())],
        "the filters read the decoded members"
    );
    assert!(page.matches.iter().all(|m| m.key.len() < m.member.len()));

    // The batch script removes by the member as written: it finds the short one.
    let remove = |(member, deadline): &(String, Millis)| IndexEntry {
        list: StageList::Due,
        deadline: *deadline,
        member: member.clone(),
        station: station_field("620102-GWM", "visit"),
    };
    let mut fence = s.claim(0).await.unwrap().fence;
    s.apply(
        0,
        &mut fence,
        &Batch {
            board: BoardWrite {
                remove: vec![remove(&long[0]), remove(&long[3])],
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut got = index(&redis, "{t:0}:due");
    got.sort();
    let mut want = vec![long[1].clone(), long[2].clone()];
    want.sort();
    assert_eq!(got, want);
}

/// Entries this version does not write never pass for list items, and a change entry whose
/// `c` is not the JSON the script writes is an error naming it, never a panic.
#[tokio::test]
async fn alien_index_entries_do_not_decode_and_an_unreadable_change_entry_is_an_error() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    let mut c = sync(&redis);
    let _: () = redis::cmd("ZADD")
        .arg("{t:0}:late")
        .arg(5)
        .arg("no separators")
        .query(&mut c)
        .unwrap();
    // Written as an earlier version's plain zset: the claim moves it into buckets.
    s.claim(0).await.unwrap();
    assert_eq!(
        index(&redis, "{t:0}:late"),
        [("no separators".to_owned(), 5)]
    );
    let q = IndexQuery {
        limit: 10,
        budget: 10,
        ..Default::default()
    };
    let page = s.list_stages(0, StageList::Late, &q).await.unwrap();
    assert_eq!(
        page.matches,
        [IndexMatch {
            deadline: 5,
            key: "no separators".to_owned(),
            member: "no separators".to_owned()
        }]
    );
    assert!(page.exhausted);
    assert!(ListedStage::decode(StageList::Late, 5, "no separators").is_none());
    assert!(
        ListedStage::decode(StageList::Late, 5, &m("6201", "high", "visit", "A", 0)).is_none(),
        "level 0 is never late"
    );
    let filtered = IndexQuery {
        risk: Some(Risk::High),
        ..q.clone()
    };
    assert!(s
        .list_stages(0, StageList::Late, &filtered)
        .await
        .unwrap()
        .matches
        .is_empty());
    let _: String = redis::cmd("XADD")
        .arg("{t:0}:events")
        .arg("*")
        .arg("c")
        .arg("{not json")
        .query(&mut c)
        .unwrap();
    match s.changes(0, "-", 10).await {
        Err(e @ StoreError::CorruptChange { partition: 0, .. }) => {
            assert!(e.to_string().contains("unreadable"), "{e}")
        }
        other => panic!("an unreadable change entry is an error, got {other:?}"),
    }
    let empty: HashMap<String, i64> = HashMap::new();
    assert_eq!(s.stations(0, "2026-11-18").await.unwrap().day, empty);
}

/// The stage indexes are bucketed (buckets.lua). Thousands of entries with ties, added (some
/// again) and removed in random batches, stay in `(deadline, member)` order across buckets;
/// every bucket stays small enough to be a listpack unless it holds one deadline only; a list
/// page walks from bucket to bucket; and an index emptied leaves no bucket behind.
#[tokio::test]
async fn a_bucketed_index_keeps_its_order_and_small_buckets_through_adds_and_removes() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    let mut fence = s.claim(0).await.unwrap().fence;
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let entry = |deadline: Millis, n: u64| IndexEntry {
        list: StageList::Due,
        deadline,
        member: m(
            &format!("6201{:02}", n % 7),
            "high",
            "visit",
            &format!("A{n}"),
            0,
        ),
        station: station_field(&format!("6201{:02}", n % 7), "visit"),
    };
    // The index holds the model's entries, in (deadline, short member) order, and openstat
    // counts them.
    let holds = |model: &std::collections::BTreeSet<(Millis, u64)>, what: &str| {
        let by_deadline =
            |a: &(String, Millis), b: &(String, Millis)| (a.1, &a.0).cmp(&(b.1, &b.0));
        let mut want: Vec<(String, Millis)> = model
            .iter()
            .map(|(d, n)| (entry(*d, *n).member, *d))
            .collect();
        want.sort_by(by_deadline);
        let stored = stored_index(&redis, "{t:0}:due");
        let first_wrong = stored
            .windows(2)
            .position(|w| by_deadline(&w[0], &w[1]).is_ge());
        assert_eq!(
            first_wrong, None,
            "{what}: the buckets in order are the index in order"
        );
        let mut got = index(&redis, "{t:0}:due");
        got.sort_by(by_deadline);
        assert_eq!(got, want, "{what}");
        let open: i64 = hash(&redis, "{t:0}:openstat").values().sum();
        assert_eq!(open, model.len() as i64, "{what}");
    };
    let mut model: std::collections::BTreeSet<(Millis, u64)> = Default::default();
    let mut serial = 0;
    for round in 0..24 {
        let mut board = BoardWrite::default();
        // Deadlines from a few hundred values, so ties are common; round 5 adds 300 entries
        // of one deadline, a bucket that cannot split; every fourth round writes a handful,
        // spread over many buckets (each found on its own, not from one directory read).
        let few = round % 4 == 3;
        let adds = if round == 5 {
            300
        } else if few {
            3
        } else {
            150
        };
        // Entries the index holds already, added again (as a replay does): neither stored nor
        // counted twice, in the buckets the batch overfills too.
        let again: Vec<(Millis, u64)> = if few || model.is_empty() {
            Vec::new()
        } else {
            (0..20)
                .map(|_| *model.iter().nth(next(model.len() as u64) as usize).unwrap())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        board.add.extend(again.iter().map(|(d, n)| entry(*d, *n)));
        for _ in 0..adds {
            serial += 1;
            let deadline = if round == 5 {
                T0 + 77 * MIN
            } else {
                T0 + next(400) as Millis * MIN
            };
            model.insert((deadline, serial));
            board.add.push(entry(deadline, serial));
        }
        let removes = if few {
            3
        } else if round < 12 {
            90
        } else {
            250
        };
        for _ in 0..removes.min(model.len()) {
            let k = next(model.len() as u64) as usize;
            let gone = *model.iter().nth(k).unwrap();
            if board
                .add
                .iter()
                .any(|e| e.member == entry(gone.0, gone.1).member)
            {
                continue;
            }
            model.remove(&gone);
            board.remove.push(entry(gone.0, gone.1));
        }
        let batch = Batch {
            board,
            ..Default::default()
        };
        s.apply(0, &mut fence, &batch).await.unwrap();

        holds(&model, &format!("round {round}"));
        for (i, b) in buckets(&redis, "{t:0}:due").iter().enumerate() {
            let one_deadline = b.iter().all(|(_, d)| *d == b[0].1);
            assert!(
                b.len() <= 128 || one_deadline,
                "round {round}: bucket {i} holds {} entries",
                b.len()
            );
        }
    }
    // A directory longer than a page of bounds (64): a batch spread over it finds each bucket
    // beyond the page afresh.
    let mut board = BoardWrite::default();
    for _ in 0..5000 {
        serial += 1;
        let deadline = T0 + next(50_000) as Millis * 1_000;
        model.insert((deadline, serial));
        board.add.push(entry(deadline, serial));
    }
    let batch = Batch {
        board,
        ..Default::default()
    };
    s.apply(0, &mut fence, &batch).await.unwrap();
    let mut board = BoardWrite::default();
    let spread: Vec<(Millis, u64)> = model.iter().step_by(250).copied().collect();
    for gone in &spread {
        model.remove(gone);
        board.remove.push(entry(gone.0, gone.1));
    }
    for k in 0..20 {
        serial += 1;
        let deadline = T0 + k * 2_500_000 + 500;
        model.insert((deadline, serial));
        board.add.push(entry(deadline, serial));
    }
    let batch = Batch {
        board,
        ..Default::default()
    };
    s.apply(0, &mut fence, &batch).await.unwrap();
    holds(&model, "a batch spread over many pages");

    let n_buckets = buckets(&redis, "{t:0}:due").len();
    assert!(
        n_buckets > 64,
        "the index spans pages of buckets: {n_buckets}"
    );
    let mut c = sync(&redis);
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg("{t:0}:due:dir")
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .unwrap();
    let listpacks = ids
        .iter()
        .filter(|id| {
            let enc: String = redis::cmd("OBJECT")
                .arg("ENCODING")
                .arg(format!("{{t:0}}:due:{id}"))
                .query(&mut c)
                .unwrap();
            enc == "listpack"
        })
        .count();
    assert!(
        listpacks + 1 >= ids.len(),
        "every bucket but the one of ties is a listpack: {listpacks} of {}",
        ids.len()
    );

    // A list page walks the buckets: pages of 37, and a page after a cursor in the middle.
    let all: Vec<(Millis, String)> = index(&redis, "{t:0}:due")
        .into_iter()
        .map(|(m, d)| (d, m))
        .collect();
    let mut got = Vec::new();
    let mut after: Option<(Millis, String)> = None;
    loop {
        let q = IndexQuery {
            after: after.as_ref().map(|(d, m)| (*d, m.as_str())),
            limit: 37,
            budget: 1000,
            ..Default::default()
        };
        let page = s.list_stages(0, StageList::Due, &q).await.unwrap();
        got.extend(page.matches.iter().map(|m| (m.deadline, m.member.clone())));
        if page.exhausted {
            break;
        }
        after = page.frontier;
    }
    assert_eq!(got, all);

    // Emptied, the index leaves nothing but its id counter.
    let board = BoardWrite {
        remove: model.iter().map(|(d, n)| entry(*d, *n)).collect(),
        ..Default::default()
    };
    s.apply(
        0,
        &mut fence,
        &Batch {
            board,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("{t:0}:due*").query(&mut c).unwrap();
    assert_eq!(keys, ["{t:0}:due:n"]);
    assert!(hash(&redis, "{t:0}:openstat").is_empty());
}

/// New alerts' entries are appended to the stage indexes (buckets.lua's `append`): batch after
/// batch of later deadlines fill the last bucket of each stage's stretch and go on in new full
/// buckets, ties never cut; a batch of earlier deadlines goes in among them. Every open stage
/// is in the index once, in order, counted once, and every entry is found again by its score
/// (an entry in a bucket its score does not lead to could not be removed).
#[tokio::test]
async fn new_alerts_entries_are_appended_in_full_buckets_and_found_again_by_their_score() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    let mut o = Owner::claim(&s, 0).await;
    let batch = |from: i64, n: i64, issued: &dyn Fn(i64) -> Millis| {
        (from..from + n)
            .map(|i| {
                let j = ["620102-GWM", "620102-QLH"][i as usize % 2];
                (
                    Source::Alerts,
                    i,
                    alert_msg(&format!("N-{i:04}"), issued(i), j, "high"),
                    T0,
                )
            })
            .collect::<Vec<_>>()
    };
    // Four batches of later deadlines, three alerts a second (ties, two of the batches begin
    // inside a second the batch before ended in), 0.5 to 2.3 buckets a stage each; then one of
    // deadlines among the first batch's.
    for (from, n) in [(0, 30), (30, 100), (130, 130), (260, 40)] {
        o.ingest(&batch(from, n, &|i| T0 + i / 3 * 1000), T0 + 5 * MIN, None)
            .await;
    }
    o.ingest(
        &batch(300, 20, &|i| T0 + (i - 300) * 700 + 1),
        T0 + 5 * MIN,
        None,
    )
    .await;

    // Not yet warned: one entry an alert, in the index of shared entries of their offsets.
    let shared = "{t:0}:due:+3600000+18000000";
    assert_eq!(stored_index(&redis, "{t:0}:due"), []);
    let stored = stored_index(&redis, shared);
    assert_eq!(stored.len(), 320, "one entry an alert");
    assert_eq!(
        due_stages(&redis, 0).len(),
        320 * 3,
        "three open stages an alert"
    );
    let first_wrong = stored
        .windows(2)
        .position(|w| (w[0].1, &w[0].0) >= (w[1].1, &w[1].0));
    assert_eq!(
        first_wrong, None,
        "the buckets in order are the index in order"
    );
    let buckets = buckets(&redis, shared);
    for (i, b) in buckets.iter().enumerate() {
        assert!(b.len() <= 64, "bucket {i} holds {} entries", b.len());
        if let Some(next) = buckets.get(i + 1) {
            assert!(
                b.last().unwrap().1 < next[0].1,
                "a tie is cut between buckets {i} and {}",
                i + 1
            );
        }
    }
    // Appended, not one bucket a batch: 320 entries in at most 8 buckets.
    assert!(buckets.len() <= 8, "{} buckets", buckets.len());
    // Counted by the owner, per station and stage: 160 alerts a station, three stages each.
    let open = hash(&redis, "{t:0}:openstat");
    assert_eq!(open.len(), 6, "{open:?}");
    assert!(open.values().all(|n| *n == 160), "{open:?}");

    // Every alert closed: each of its entries is removed, found by its score, and the index
    // and its counts are left empty.
    let closed: Vec<_> = (0..320)
        .map(|i| {
            let close = disposition_msg(
                &format!("N-{i:04}"),
                &format!("c{i}"),
                "closed",
                T0 + 9 * MIN,
            );
            (Source::Dispositions, i, close, T0)
        })
        .collect();
    o.ingest(&closed, T0 + 10 * MIN, None).await;
    assert_eq!(stored_index(&redis, shared), []);
    assert_eq!(stored_index(&redis, "{t:0}:due"), []);
    let named: Vec<String> = redis::cmd("SMEMBERS")
        .arg("{t:0}:due:shared")
        .query(&mut sync(&redis))
        .unwrap();
    assert!(
        named.is_empty(),
        "an emptied index is no longer read: {named:?}"
    );
    assert!(hash(&redis, "{t:0}:openstat").is_empty());
}

/// An earlier version kept the id map by a handle's last two characters and a clock entry
/// named by a handle in the alert id's bucket. The first claim by this version moves both to the
/// handles' ranges; a clock entry named by an alert id (an alert without a handle) stays in its
/// id's bucket.
#[tokio::test]
async fn a_claim_moves_an_earlier_versions_id_map_and_clock_entries_to_the_handles_ranges() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let s = store(&redis).await;
    let mut c = sync(&redis);
    // (name in the clock, alert id, due): handles #2.1 and #2.A of range #2., #2.10 of range
    // #2.1, and N-4, which has none.
    let entries = [
        ("#2.1", "M-1", 1_000),
        ("#2.A", "M-2", 2_000),
        ("#2.10", "M-3", 3_000),
        ("N-4", "N-4", 4_000),
    ];
    let mut buckets: Vec<u32> = entries.iter().map(|e| alert_bucket(e.1)).collect();
    buckets.sort_unstable();
    buckets.dedup();
    assert_eq!(buckets.len(), 4, "the alerts' buckets differ");
    for (name, id, due) in entries {
        if name.starts_with('#') {
            let _: () = redis::cmd("HSET")
                .arg(format!("{{t:2}}:ids:{}", &name[name.len() - 2..]))
                .arg(name)
                .arg(id)
                .query(&mut c)
                .unwrap();
        }
        let _: () = redis::cmd("ZADD")
            .arg(format!("{{t:2}}:clock:{}", alert_bucket(id)))
            .arg(due)
            .arg(name)
            .query(&mut c)
            .unwrap();
        let _: () = redis::cmd("ZADD")
            .arg("{t:2}:clock:dir")
            .arg(due)
            .arg(alert_bucket(id))
            .query(&mut c)
            .unwrap();
    }

    s.claim(2).await.unwrap();
    for old in [".1", ".A", "10"] {
        assert!(!exists(&redis, &format!("{{t:2}}:ids:{old}")), "{old}");
    }
    let range = |key: &str| -> BTreeMap<String, String> {
        redis::cmd("HGETALL")
            .arg(key)
            .query(&mut sync(&redis))
            .unwrap()
    };
    assert_eq!(
        range("{t:2}:ids:#2."),
        BTreeMap::from([("#2.1".into(), "M-1".into()), ("#2.A".into(), "M-2".into())])
    );
    assert_eq!(
        range("{t:2}:ids:#2.1"),
        BTreeMap::from([("#2.10".into(), "M-3".into())])
    );
    let dir: BTreeMap<String, i64> = redis::cmd("ZRANGE")
        .arg("{t:2}:clock:dir")
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        dir,
        BTreeMap::from([
            ("#2.".into(), 1_000),
            ("#2.1".into(), 3_000),
            (alert_bucket("N-4").to_string(), 4_000)
        ]),
        "the handles' entries left their ids' buckets, which are gone"
    );
    assert_eq!(
        s.due(2, 4_000, 10).await.unwrap(),
        ["M-1", "M-2", "M-3", "N-4"]
    );
    assert_eq!(s.due(2, 2_000, 10).await.unwrap(), ["M-1", "M-2"]);
}

/// How many handles partition `p`'s id map holds.
fn id_map_len(redis: &Redis, p: i32) -> usize {
    let mut c = sync(redis);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{t:{p}}}:ids:*"))
        .query(&mut c)
        .unwrap();
    keys.iter()
        .map(|k| redis::cmd("HLEN").arg(k).query::<usize>(&mut c).unwrap())
        .sum()
}

fn exists(redis: &Redis, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query(&mut sync(redis))
        .unwrap()
}

fn encoding(redis: &Redis, key: &str) -> String {
    redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(key)
        .query(&mut sync(redis))
        .unwrap()
}

/// Open alerts' records live in per-alert buckets and their clock entries in their handles'
/// ranges, all listpacks: a record no longer than the server's `hash-max-listpack-value` goes
/// to its bucket hash, a
/// closed one to its own key with the retention as TTL; the clock is read across buckets,
/// earliest first; and an earlier version's clock zset and record keys are taken over.
#[tokio::test]
async fn records_and_clock_entries_live_in_buckets_that_stay_listpacks() {
    let dir = tmpdir();
    let redis = Redis::start_with(dir.path(), &["--hash-max-listpack-value", "128"]);
    let s = store(&redis).await.fit_to_server().await;
    assert_eq!(s.record_limit(), 128);
    let mut fence = s.claim(0).await.unwrap().fence;
    let policies = Policies::default();

    // 600 alerts, issued a second apart: their clocks (the visit warnings) in that order.
    let ids: Vec<String> = (0..600).map(|i| format!("GA-620102-{i:06}")).collect();
    let issued = |i: usize| 1_795_000_000_000 + i as Millis * 1_000;
    let states: Vec<AlertState> = (0..600)
        .map(|i| {
            let mut st = AlertState::default();
            let alert = Alert {
                alert_id: ids[i].clone(),
                issued_at: issued(i),
                jurisdiction: "620102-GWM".into(),
                risk: Risk::High,
                channel: Some("96110".into()),
                fraud_type: Some("impersonating_police".into()),
                amount_cents: Some(5_000_000),
            };
            st.apply_alert(alert, &policies, issued(i));
            st
        })
        .collect();
    let empty = AlertState::default();
    let write = |i: usize, before: &AlertState, after: &AlertState| {
        AlertWrite::new(&ids[i], before, after, &policies, true)
    };
    let batch = Batch {
        alerts: (0..600).map(|i| write(i, &empty, &states[i])).collect(),
        ..Default::default()
    };
    let record_len = fraud_sla::store::record::stored_len(&batch.alerts[0].state);
    assert!(
        (65..=116).contains(&record_len),
        "a record longer than Redis's default limit, within this server's with its handle: {record_len}"
    );
    s.apply(0, &mut fence, &batch).await.unwrap();

    let bucket = |id: &str| format!("{{t:0}}:r:{}", alert_bucket(id));
    for id in &ids {
        let kept: bool = redis::cmd("HEXISTS")
            .arg(bucket(id))
            .arg(id)
            .query(&mut sync(&redis))
            .unwrap();
        assert!(kept && !exists(&redis, &format!("{{t:0}}:a:{id}")), "{id}");
    }
    assert_eq!(encoding(&redis, &bucket(&ids[0])), "listpack");
    let loaded = s.load(0, &ids).await.unwrap();
    assert!(loaded
        .iter()
        .zip(&states)
        .all(|(l, st)| l.as_ref() == Some(st)));
    // The clock names each alert by its handle, not its 16-character id, in the handle's
    // range (the handle but its last character: #0.1 to #0.9g in 10 ranges of at most 62); the
    // id map holds every open alert's, by range too (lua/names.lua).
    let ranges: Vec<String> = redis::cmd("ZRANGE")
        .arg("{t:0}:clock:dir")
        .arg(0)
        .arg(-1)
        .query(&mut sync(&redis))
        .unwrap();
    assert_eq!(ranges.len(), 10, "{ranges:?}");
    let mut clocked = 0;
    for range in &ranges {
        let key = format!("{{t:0}}:clock:{range}");
        assert_eq!(encoding(&redis, &key), "listpack");
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query(&mut sync(&redis))
            .unwrap();
        assert!(
            members
                .iter()
                .all(|m| m.len() <= 5 && m[..m.len() - 1] == *range),
            "{range}: {members:?}"
        );
        clocked += members.len();
        let ids_of_range: usize = redis::cmd("HLEN")
            .arg(format!("{{t:0}}:ids:{range}"))
            .query(&mut sync(&redis))
            .unwrap();
        assert_eq!(ids_of_range, members.len(), "{range}");
    }
    assert_eq!(clocked, 600);
    assert_eq!(id_map_len(&redis, 0), 600);
    // The strings every alert repeats are stored as codes of the partition's dictionary.
    let stored: Vec<u8> = redis::cmd("HGET")
        .arg(bucket(&ids[0]))
        .arg(&ids[0])
        .query(&mut sync(&redis))
        .unwrap();
    let has = |s: &str| stored.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(
        !has("620102-GWM") && !has("impersonating_police") && !has("96110"),
        "{stored:?}"
    );
    assert!(
        stored.len() <= record_len + 6,
        "with its handle, within the length the batch was sized by: {} bytes",
        stored.len()
    );
    let dictionary: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg("{t:0}:names")
        .query(&mut sync(&redis))
        .unwrap();
    for name in ["620102-GWM", "impersonating_police", "96110"] {
        let code = &dictionary[&format!("={name}")];
        let back: String = redis::cmd("HGET")
            .arg("{t:0}:names")
            .arg(format!("#{code}"))
            .query(&mut sync(&redis))
            .unwrap();
        assert_eq!(back, name);
    }

    // The clock across buckets: the earliest first, and only what is due.
    let first_due = states[0].next_due(&policies).unwrap();
    assert_eq!(s.next_due(0).await.unwrap(), Some(first_due));
    let due = s.due(0, first_due + 99_500, 50).await.unwrap();
    assert_eq!(due, ids[..50], "the 50 earliest of 100 due, in order");
    assert_eq!(
        s.due(0, first_due + 9_500, 500).await.unwrap(),
        ids[..10],
        "no more than is due"
    );

    // Alert 0 closes: its record moves to its own key, which expires; its clock entry goes.
    let mut closed = states[0].clone();
    closed.closed_at = Some(issued(0) + 60_000);
    let w = write(0, &states[0], &closed);
    assert!(w.ttl_ms.is_some() && w.clock == IndexChange::Remove);
    s.apply(
        0,
        &mut fence,
        &Batch {
            alerts: vec![w],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{{t:0}}:a:{}", ids[0]))
        .query(&mut sync(&redis))
        .unwrap();
    assert!(ttl > 0, "the closed record expires: {ttl}");
    let kept: bool = redis::cmd("HEXISTS")
        .arg(bucket(&ids[0]))
        .arg(&ids[0])
        .query(&mut sync(&redis))
        .unwrap();
    assert!(!kept);
    // One load of records in their buckets, in their own keys and nowhere, in any order.
    let some = [&ids[1], &ids[0], "none-such", &ids[2]].map(str::to_owned);
    assert_eq!(
        s.load(0, &some).await.unwrap(),
        [
            Some(states[1].clone()),
            Some(closed.clone()),
            None,
            Some(states[2].clone())
        ]
    );
    assert_eq!(s.get(0, &ids[0]).await.unwrap(), Some(closed));
    assert_eq!(
        id_map_len(&redis, 0),
        599,
        "a closed alert leaves the id map"
    );
    // The clock's directory may still name alert 0's time (early, never late); looking for
    // what is due then puts it right.
    let next = s.next_due(0).await.unwrap().unwrap();
    assert!(next <= first_due + 1_000, "{next}");
    assert!(s.due(0, first_due, 10).await.unwrap().is_empty());
    assert_eq!(s.next_due(0).await.unwrap(), states[1].next_due(&policies));

    // A dictionary that lost a name (a Redis that lost writes and not the records after them,
    // which should not happen): the record is corrupt, never taken for no record.
    let _: () = redis::cmd("HDEL")
        .arg("{t:0}:names")
        .arg(format!("#{}", dictionary["=96110"]))
        .query(&mut sync(&redis))
        .unwrap();
    assert!(matches!(
        s.get(0, &ids[1]).await,
        Err(StoreError::Corrupt { alert_id, .. }) if alert_id == ids[1]
    ));

    // An earlier version's partition 1: a clock zset and a (JSON) record key. The claim moves the
    // clock into the buckets Rust names (buckets.lua computes alert_bucket too); the record
    // loads from its key and moves to its bucket when next written.
    let old = &states[7];
    let old_due = old.next_due(&policies).unwrap();
    let mut c = sync(&redis);
    let _: () = redis::cmd("ZADD")
        .arg("{t:1}:clock")
        .arg(old_due)
        .arg(&ids[7])
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{{t:1}}:a:{}", ids[7]))
        .arg(serde_json::to_vec(old).unwrap())
        .query(&mut c)
        .unwrap();
    let mut fence1 = s.claim(1).await.unwrap().fence;
    assert!(!exists(&redis, "{t:1}:clock"));
    assert_eq!(s.due(1, old_due, 10).await.unwrap(), [ids[7].clone()]);
    assert_eq!(s.get(1, &ids[7]).await.unwrap().as_ref(), Some(old));
    let w = AlertWrite {
        alert_id: ids[7].clone(),
        state: fraud_sla::store::record::encode(&ids[7], old),
        clock: IndexChange::Remove,
        overdue: IndexChange::Keep,
        ttl_ms: None,
        opened: 0,
        stored: true,
        unread: false,
    };
    s.apply(
        1,
        &mut fence1,
        &Batch {
            alerts: vec![w],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!exists(&redis, &format!("{{t:1}}:a:{}", ids[7])));
    assert!(
        s.due(1, old_due, 10).await.unwrap().is_empty(),
        "its clock entry removed from the bucket Rust names"
    );
    assert_eq!(s.next_due(1).await.unwrap(), None);
    assert!(!exists(&redis, "{t:1}:clock:dir"));
}
