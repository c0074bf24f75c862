//! One way to retry: exponential backoff with jitter, forever unless the error is final, and
//! never past shutdown. Every loop that waits for Redis, the brokers or Alertmanager uses it.

use backon::{ExponentialBuilder, Retryable};
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long to wait between attempts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) first: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// Redis and broker calls: 50 ms doubling to 5 s.
    pub(crate) const STORE: Backoff = Backoff {
        first: Duration::from_millis(50),
        max: Duration::from_secs(5),
    };
    /// Connecting at start-up: 200 ms doubling to 5 s.
    pub(crate) const CONNECT: Backoff = Backoff {
        first: Duration::from_millis(200),
        max: Duration::from_secs(5),
    };
    /// An HTTP peer (Alertmanager): 200 ms doubling to 30 s.
    pub(crate) const PEER: Backoff = Backoff {
        first: Duration::from_millis(200),
        max: Duration::from_secs(30),
    };

    fn builder(self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.first)
            .with_max_delay(self.max)
            .with_jitter()
            .without_max_times()
    }
}

/// Why [`retry`] gave up.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GaveUp<E> {
    /// Shutdown came first.
    Cancelled,
    /// `retryable` said this error is final.
    Final(E),
}

/// Runs `op` until it succeeds, waiting `backoff` between attempts and calling `on_retry` with
/// each error that is retried. Errors for which `retryable` is false end the loop at once.
///
/// # Cancel safety
/// Returns [`GaveUp::Cancelled`] as soon as `cancel` fires, dropping the attempt in progress:
/// use it only for operations that are safe to abandon midway (idempotent, or atomic in Redis).
pub(crate) async fn retry<T, E, Op, Fut>(
    cancel: &CancellationToken,
    backoff: Backoff,
    op: Op,
    retryable: impl FnMut(&E) -> bool,
    on_retry: impl FnMut(&E, Duration),
) -> Result<T, GaveUp<E>>
where
    Op: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let attempts = op.retry(backoff.builder()).when(retryable).notify(on_retry);
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(GaveUp::Cancelled),
        result = attempts => result.map_err(GaveUp::Final),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const FAST: Backoff = Backoff {
        first: Duration::from_millis(1),
        max: Duration::from_millis(2),
    };

    #[tokio::test]
    async fn retries_until_the_operation_succeeds() {
        let calls = AtomicU32::new(0);
        let mut retried = 0;
        let got = retry(
            &CancellationToken::new(),
            FAST,
            || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0..=2 => Err("down"),
                    n => Ok(n),
                }
            },
            |_| true,
            |_, _| retried += 1,
        )
        .await;
        assert_eq!(got, Ok(3));
        assert_eq!(retried, 3);
    }

    #[tokio::test]
    async fn a_final_error_ends_the_loop_at_once() {
        let calls = AtomicU32::new(0);
        let got: Result<(), _> = retry(
            &CancellationToken::new(),
            FAST,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("fenced")
            },
            |e| *e != "fenced",
            |_, _| {},
        )
        .await;
        assert_eq!(got, Err(GaveUp::Final("fenced")));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn shutdown_stops_the_waiting() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let got: Result<(), GaveUp<&str>> = retry(
            &cancel,
            Backoff::STORE,
            || async { Err("down") },
            |_| true,
            |_, _| {},
        )
        .await;
        assert_eq!(got, Err(GaveUp::Cancelled));
    }
}
