//! What a run did.

use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Alerts handed to the producer.
    pub alerts: u64,
    /// Dispositions handed to the producer, duplicates included.
    pub dispositions: u64,
    /// Dispositions sent a second time with the same `event_id`.
    pub duplicates: u64,
    /// Dispositions sent before their alert.
    pub before_alert: u64,
    /// Messages the broker acknowledged.
    pub delivered: u64,
    /// Messages the producer could not deliver (or not confirm before shutdown).
    pub failed: u64,
    /// Planned messages never sent (the run stopped before they were due).
    pub unsent: u64,
    /// From the first message to the last acknowledgement.
    pub elapsed: Duration,
    /// Stopped by Ctrl-C / SIGTERM.
    pub interrupted: bool,
}

impl Summary {
    /// Acknowledged messages per second.
    pub fn events_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.delivered as f64 / secs
        } else {
            0.0
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "alerts {}, dispositions {} ({} duplicates, {} before their alert), delivery failures {}, unsent {}, elapsed {:.1}s, {:.0} events/s",
            self.alerts,
            self.dispositions,
            self.duplicates,
            self.before_alert,
            self.failed,
            self.unsent,
            self.elapsed.as_secs_f64(),
            self.events_per_sec(),
        )?;
        if self.interrupted {
            f.write_str(" (interrupted)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_one_line() {
        let s = Summary {
            alerts: 100,
            dispositions: 380,
            duplicates: 7,
            before_alert: 8,
            delivered: 480,
            failed: 0,
            unsent: 0,
            elapsed: Duration::from_secs(2),
            interrupted: false,
        };
        assert_eq!(s.events_per_sec(), 240.0);
        assert_eq!(
            s.to_string(),
            "alerts 100, dispositions 380 (7 duplicates, 8 before their alert), delivery failures 0, unsent 0, elapsed 2.0s, 240 events/s"
        );
    }
}
