//! A reason the whole process must stop, raised where it is noticed and acted on by the app:
//! another process took this one's `group.instance.id`, or the Kafka consumer failed fatally
//! (librdkafka's `FENCED_INSTANCE_ID` among others). A process that goes on after either would
//! own partitions beside their rightful owner.

use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;

/// Why the process stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Fatal {
    #[error(
        "another process ({process}) started with group.instance.id {instance:?} and took partition {partition}; \
         an instance id belongs to one process at a time, so this one stops (give each instance its own id)"
    )]
    InstanceTaken {
        instance: String,
        process: String,
        partition: i32,
    },
    #[error("the Kafka consumer failed and cannot go on: {0}")]
    Kafka(String),
}

/// Raised once, seen by all clones; the first reason wins.
#[derive(Debug, Clone, Default)]
pub(crate) struct FatalSignal {
    reason: Arc<OnceLock<Fatal>>,
    raised: CancellationToken,
}

impl FatalSignal {
    pub(crate) fn raise(&self, fatal: Fatal) {
        if self.reason.get().is_none() {
            tracing::error!(error = %fatal, "Stopping the process.");
        }
        let _ = self.reason.set(fatal);
        self.raised.cancel();
    }

    /// Resolves once raised.
    pub(crate) async fn raised(&self) {
        self.raised.cancelled().await
    }

    pub(crate) fn reason(&self) -> Option<Fatal> {
        self.reason.get().cloned()
    }
}
