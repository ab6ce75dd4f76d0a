//! What an accept loop does when `accept` fails: wait before trying again, longer each time it
//! fails in a row, and say so at most once per [`LOG_INTERVAL`].
//!
//! Out of file descriptors (`EMFILE`, `ENFILE`), `accept` fails at once every time it is
//! called, and the listening socket stays readable because the connection stays queued: a
//! loop that retries at once pegs a core and, logging every failure, writes a million lines
//! in seconds. Waiting gives the connections in flight time to finish and free descriptors;
//! the queued connection is accepted once one is free.

use std::io;
use std::time::{Duration, Instant};

/// The first wait after a failure.
const FIRST_DELAY: Duration = Duration::from_millis(50);
/// The longest wait: a server out of descriptors starts accepting again within this long of
/// one being freed.
const MAX_DELAY: Duration = Duration::from_secs(1);
/// At most one warning per this interval, counting the failures it did not report.
pub const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// The back-off state of one accept loop.
#[derive(Debug)]
pub struct AcceptBackoff {
    /// What accepts: "port 8080", "admin port", a function's Runtime API.
    what: String,
    delay: Duration,
    last_log: Option<Instant>,
    /// Failures since the last warning.
    unreported: u64,
}

impl AcceptBackoff {
    pub fn new(what: impl Into<String>) -> AcceptBackoff {
        AcceptBackoff {
            what: what.into(),
            delay: Duration::ZERO,
            last_log: None,
            unreported: 0,
        }
    }

    /// An accept succeeded: the next failure waits the shortest time again.
    pub fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }

    /// An accept failed with `e`: warns (at most once per [`LOG_INTERVAL`]) and waits,
    /// 50 ms after the first failure in a row, doubling up to 1 s.
    pub async fn failed(&mut self, e: &io::Error) {
        self.unreported += 1;
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|at| now.duration_since(at) >= LOG_INTERVAL)
        {
            let others = self.unreported - 1;
            let repeated = if others > 0 {
                format!(" ({others} more failures since the last warning)")
            } else {
                String::new()
            };
            tracing::warn!(
                target: "trellis::listener",
                "{}: accept failed: {e}{}{repeated}; retrying with back-off",
                self.what,
                hint(e)
            );
            self.last_log = Some(now);
            self.unreported = 0;
        }
        self.delay = (self.delay * 2).clamp(FIRST_DELAY, MAX_DELAY);
        tokio::time::sleep(self.delay).await;
    }
}

/// What to do about the failures a user can act on.
fn hint(e: &io::Error) -> &'static str {
    // EMFILE (24) and ENFILE (23) on Linux and the BSDs.
    match e.raw_os_error() {
        Some(24) => " (out of file descriptors: raise `ulimit -n`, or lower --max-connections)",
        Some(23) => " (the system is out of file descriptors)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_wait_grows_to_a_cap_and_resets_after_a_success() {
        let mut backoff = AcceptBackoff::new("test");
        let e = io::Error::from_raw_os_error(24);
        let mut waits = Vec::new();
        for _ in 0..7 {
            let start = tokio::time::Instant::now();
            backoff.failed(&e).await;
            waits.push(start.elapsed().as_millis());
        }
        assert_eq!(waits, [50, 100, 200, 400, 800, 1000, 1000]);
        backoff.succeeded();
        let start = tokio::time::Instant::now();
        backoff.failed(&e).await;
        assert_eq!(start.elapsed().as_millis(), 50);
    }

    #[test]
    fn out_of_descriptors_gets_a_hint() {
        assert!(hint(&io::Error::from_raw_os_error(24)).contains("ulimit"));
        assert_eq!(hint(&io::Error::other("x")), "");
    }
}
