//! Escalations out: the outbox relay to the escalations topic, at least once, and the
//! Alertmanager sink driven from its durable queue in Redis.

pub(crate) mod alertmanager;
pub(crate) mod publisher;
pub(crate) mod relay;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::store::OutboxEntry;

/// The processor's producer ([`crate::kafka::Producer`]), whose queued reports are about
/// escalations.
pub(crate) type Producer = crate::kafka::Producer<Arc<OutboxEntry>>;

/// Escalations by their places in outbox entries: a batch's escalations share one entry, so
/// its stream id is copied once an entry, not once an escalation.
#[derive(Debug, Default)]
pub(crate) struct Places(HashMap<String, HashSet<u32>>);

impl Places {
    /// Adds `entry`'s place; how many of its outbox entry's are held then, or `None` when it
    /// was held already.
    pub(crate) fn insert(&mut self, entry: &OutboxEntry) -> Option<usize> {
        let places = match self.0.get_mut(&entry.stream_id) {
            Some(places) => places,
            None => self.0.entry(entry.stream_id.clone()).or_default(),
        };
        places.insert(entry.index).then_some(places.len())
    }

    /// Removes `entry`'s place, and its outbox entry once none is left.
    pub(crate) fn remove(&mut self, entry: &OutboxEntry) {
        if let Some(places) = self.0.get_mut(&entry.stream_id) {
            places.remove(&entry.index);
            if places.is_empty() {
                self.0.remove(&entry.stream_id);
            }
        }
    }

    /// Forgets `stream_id`'s outbox entry; its id, if any place of it was held.
    pub(crate) fn take(&mut self, stream_id: &str) -> Option<String> {
        self.0.remove_entry(stream_id).map(|(id, _)| id)
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(stream_id: &str, index: u32) -> OutboxEntry {
        OutboxEntry {
            stream_id: stream_id.to_owned(),
            index,
            of: 3,
            escalation_id: format!("A-{index}:visit:1"),
            json: "{}".to_owned(),
        }
    }

    #[test]
    fn places_count_by_outbox_entry_once_each() {
        let mut places = Places::default();
        assert_eq!(places.insert(&at("1-0", 0)), Some(1));
        assert_eq!(places.insert(&at("1-0", 2)), Some(2));
        assert_eq!(places.insert(&at("1-0", 0)), None, "held already");
        assert_eq!(places.insert(&at("2-0", 0)), Some(1), "another entry");
        places.remove(&at("1-0", 0));
        assert_eq!(
            places.insert(&at("1-0", 0)),
            Some(2),
            "removed, then held again"
        );
        places.remove(&at("2-0", 0));
        assert_eq!(
            places.take("2-0"),
            None,
            "its last place removed: the entry is gone"
        );
        assert_eq!(places.take("1-0"), Some("1-0".to_owned()));
        assert!(places.is_empty());
    }
}
