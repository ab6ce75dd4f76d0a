//! The life of one invocation, in a task of its own: queued, handed to an environment (by
//! [`Shared::dispatch`]), answered or expired at its deadline, and reported (END/REPORT).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{Outcome, Pending, Retire, Shared, trace_id};
use crate::pool::{Invocation, RETURN_GRACE};
use crate::{FunctionError, log};

/// What [`Shared::expire`] decided.
enum Expiry {
    Expired(Outcome),
    /// Not yet: look again at this instant.
    Later(Instant),
    /// It has been answered; the outcome is on its way.
    Answered,
}

impl Shared {
    /// The life of one invocation, in its own task: queue it, wait for its outcome or its
    /// deadline, log END/REPORT, and pass the result to the caller.
    pub(in crate::pool) async fn run(
        self: Arc<Self>,
        invocation: Invocation,
        mut answer: oneshot::Sender<Result<Bytes, FunctionError>>,
    ) {
        let Invocation {
            payload,
            ctx,
            client_context,
            cognito_identity,
        } = invocation;
        let request_id = ctx.request_id;
        // What `Timeout` reports: the time this invocation was given, to the centisecond
        // (the caller computed the deadline a moment before it got here).
        let allowed = ctx.deadline.saturating_duration_since(Instant::now());
        let allowed = Duration::from_millis((allowed.as_millis() as u64).div_ceil(10) * 10);
        let (done_tx, mut done_rx) = oneshot::channel();
        let pending = Pending {
            request_id: request_id.clone(),
            payload,
            deadline: ctx.deadline,
            trace_id: trace_id(),
            client_context,
            cognito_identity,
            done: done_tx,
            retried: false,
            timeout: ctx.deadline.saturating_duration_since(Instant::now()),
            limit: ctx.deadline + self.config.init_timeout,
        };
        if let Err(e) = self.enqueue(pending) {
            let _ = answer.send(Err(e));
            return;
        }
        let deadline = tokio::time::sleep_until(ctx.deadline.into());
        tokio::pin!(deadline);
        let mut caller_waits = true;
        // While it waits, look again now and then: an environment counted on to poll again
        // soon (see `Slot::will_poll`) may not, and then another one should start.
        let mut recheck =
            tokio::time::interval_at((Instant::now() + RETURN_GRACE).into(), RETURN_GRACE);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut queued = true;
        let lost = || Outcome {
            result: Err(FunctionError::Crashed("the invocation was lost".into())),
            run: None,
        };
        let outcome = loop {
            tokio::select! {
                outcome = &mut done_rx => break outcome.unwrap_or_else(|_| lost()),
                _ = &mut deadline => {
                    match self.expire(&request_id, allowed) {
                        Expiry::Expired(outcome) => break outcome,
                        Expiry::Later(at) => deadline.as_mut().reset(at.into()),
                        // It was answered just now: the outcome is in the channel already.
                        Expiry::Answered => break (&mut done_rx).await.unwrap_or_else(|_| lost()),
                    }
                }
                _ = recheck.tick(), if queued => queued = self.recheck(&request_id),
                _ = answer.closed(), if caller_waits => {
                    if self.withdraw(&request_id) {
                        return;
                    }
                    // Already running: let it finish (as Lambda does) and log its REPORT.
                    caller_waits = false;
                }
            }
        };
        self.report(&request_id, &outcome);
        let _ = answer.send(outcome.result);
    }

    fn enqueue(self: &Arc<Self>, pending: Pending) -> Result<(), FunctionError> {
        let mut state = self.lock();
        if state.closed {
            return Err(FunctionError::Crashed(format!(
                "function {} is shutting down",
                self.config.name
            )));
        }
        state.queue.push_back(pending);
        self.dispatch(&mut state);
        Ok(())
    }

    /// Re-runs the dispatch for a still-waiting invocation; `false` once it is not waiting.
    fn recheck(self: &Arc<Self>, request_id: &str) -> bool {
        let mut state = self.lock();
        let waiting = state.queue.iter().any(|p| p.request_id == request_id);
        if waiting {
            self.dispatch(&mut state);
        }
        waiting
    }

    /// Removes a still-waiting invocation whose caller went away; `false` if it already runs.
    fn withdraw(&self, request_id: &str) -> bool {
        let mut state = self.lock();
        match state.queue.iter().position(|p| p.request_id == request_id) {
            Some(i) => {
                state.queue.remove(i);
                self.publish(&state);
                true
            }
            None => false,
        }
    }

    /// The caller's deadline passed: a waiting invocation leaves the queue (unless an
    /// environment is starting: see "Deadlines" in the module documentation); a running one is
    /// taken from its environment, which is killed (and replaced on demand), unless a cold start
    /// moved its deadline later.
    fn expire(&self, request_id: &str, allowed: Duration) -> Expiry {
        let timeout = Err(FunctionError::Timeout(allowed));
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(i) = state.queue.iter().position(|p| p.request_id == request_id) {
            let limit = state.queue[i].limit;
            let starting = state
                .envs
                .values()
                .any(|slot| !slot.ready && slot.retire.is_none());
            if starting && now < limit {
                return Expiry::Later(limit.min(now + RETURN_GRACE));
            }
            state.queue.remove(i);
            self.publish(&state);
            return Expiry::Expired(Outcome {
                result: timeout,
                run: None,
            });
        }
        for slot in state.envs.values_mut() {
            let Some(inflight) = slot
                .current
                .as_ref()
                .filter(|c| c.pending.request_id == request_id)
            else {
                continue;
            };
            if inflight.pending.deadline > now {
                return Expiry::Later(inflight.pending.deadline);
            }
            let run = slot.current.take().map(|c| c.run);
            slot.kill(Retire::TimedOut);
            return Expiry::Expired(Outcome {
                result: timeout,
                run,
            });
        }
        Expiry::Answered
    }

    /// The END and REPORT lines of an invocation that ran, with Lambda's wording for timeouts
    /// and runtime exits; a note for one that timed out waiting.
    fn report(&self, request_id: &str, outcome: &Outcome) {
        let name = &self.config.name;
        let Some(run) = outcome.run else {
            if let Err(FunctionError::Timeout(t)) = &outcome.result {
                log::line(
                    name,
                    &format!(
                        "{request_id} Task timed out after {:.2} seconds waiting for an execution environment (concurrency {})",
                        t.as_secs_f64(),
                        self.config.concurrency
                    ),
                );
            }
            return;
        };
        match &outcome.result {
            Err(FunctionError::Timeout(t)) => log::line(
                name,
                &format!(
                    "{request_id} Task timed out after {:.2} seconds",
                    t.as_secs_f64()
                ),
            ),
            Err(FunctionError::Crashed(message)) => {
                log::line(name, &format!("RequestId: {request_id} Error: {message}"))
            }
            _ => {}
        }
        log::end(name, request_id);
        log::report(
            name,
            request_id,
            run.started.elapsed(),
            self.config.memory_size_mb,
            run.init,
        );
    }
}
