//! A node that submits tasks: callers waiting for outcomes, and submissions to publish to the
//! masters over pubsub (from a node that is not a master itself).

use crate::service;
use std::collections::HashMap;

use ipfsbench_protocols::task::{Message, Outcome, Report, TaskId};

use crate::master::State;
use crate::service::{Finished, Reply, Submitted};

/// Callers waiting for tasks to finish, at most.
pub(crate) const MAX_WAITERS: usize = 10_000;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Submitter {
    waiters: HashMap<TaskId, Vec<Reply<Finished>>>,
    count: usize,
    /// Submissions to publish, each answered once it is published (or failed to be).
    sends: Vec<(Reply<Submitted>, Submitted, Message)>,
}

impl Submitter {
    /// `reply` waits for `id` to finish; refused past [`MAX_WAITERS`].
    pub(crate) fn wait(&mut self, id: TaskId, reply: Reply<Finished>) {
        if self.count >= MAX_WAITERS {
            let _ = reply.send(Err(service::Error::Refused(format!(
                "{MAX_WAITERS} callers already wait for tasks"
            ))));
            return;
        }
        self.count += 1;
        self.waiters.entry(id).or_default().push(reply);
    }

    /// Answers everyone waiting for `finished.id`.
    pub(crate) fn wake(&mut self, finished: &Finished) {
        if let Some(waiters) = self.waiters.remove(&finished.id) {
            self.count -= waiters.len();
            for w in waiters {
                let _ = w.send(Ok(finished.clone()));
            }
        }
    }

    /// Queues a submission to publish; `reply` gets `submitted` once it is out.
    pub(crate) fn send(&mut self, reply: Reply<Submitted>, submitted: Submitted, message: Message) {
        self.sends.push((reply, submitted, message));
    }

    /// The submissions to publish now.
    pub(crate) fn take_sends(&mut self) -> Vec<(Reply<Submitted>, Submitted, Message)> {
        std::mem::take(&mut self.sends)
    }

    /// Callers waiting.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.count
    }
}

/// A trusted master's word that a task is over.
pub(crate) fn finished_by(report: &Report) -> Finished {
    match &report.outcome {
        Outcome::Done { record, .. } => Finished {
            id: report.task,
            state: State::Succeeded,
            result: Some(record.0),
            error: None,
        },
        Outcome::Failed { error } => Finished {
            id: report.task,
            state: State::Failed,
            result: None,
            error: Some(error.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipfsbench_core::network::PeerId;
    use ipfsbench_protocols::task::WireCid;
    use tokio::sync::oneshot;

    #[test]
    fn waiters_are_woken_by_the_outcome_and_bounded() {
        let me = PeerId::random();
        let (a, b) = (TaskId::derive(&me, "a"), TaskId::derive(&me, "b"));
        let mut s = Submitter::default();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        s.wait(a, tx1);
        s.wait(b, tx2);
        assert_eq!(s.waiting(), 2);
        let report = Report {
            task: a,
            attempt: 1,
            started_unix_ms: 0,
            outcome: Outcome::Done {
                record: WireCid(cid::Cid::default()),
                figures: Vec::new(),
            },
        };
        s.wake(&finished_by(&report));
        let got = rx1.try_recv().unwrap().unwrap();
        assert_eq!(got.state, State::Succeeded);
        assert!(rx2.try_recv().is_err(), "b still waits");
        assert_eq!(s.waiting(), 1);

        for _ in 1..MAX_WAITERS {
            s.wait(b, oneshot::channel().0);
        }
        let (tx, mut rx) = oneshot::channel();
        s.wait(b, tx);
        assert!(matches!(rx.try_recv(), Ok(Err(service::Error::Refused(_)))));
    }
}
