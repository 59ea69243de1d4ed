//! A node that submits tasks: callers waiting for outcomes, and submissions to publish to the
//! masters over pubsub (from a node that is not a master itself). A master's refusal of a
//! submission sent from here answers its waiters at once with
//! [`crate::service::Error::Refused`], and is remembered for a while for callers that start
//! waiting after it came.

use std::collections::{HashMap, VecDeque};

use ipfsbench_core::network::PeerId;
use ipfsbench_protocols::task::{Message, Outcome, Report, TaskId};

use crate::master::State;
use crate::service::command::Reply;
use crate::service::views::{Error, Finished, Submitted};

/// Callers waiting for tasks to finish, at most.
pub(crate) const MAX_WAITERS: usize = 10_000;
/// Submissions sent from here, and refusals of them, remembered at most.
pub(crate) const MAX_REMEMBERED: usize = 1024;

/// The last [`MAX_REMEMBERED`] entries put in, by task.
#[derive(Debug)]
struct Recent<V> {
    map: HashMap<TaskId, V>,
    order: VecDeque<TaskId>,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<V> Recent<V> {
    fn put(&mut self, id: TaskId, value: V) {
        if self.map.insert(id, value).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > MAX_REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    fn get(&self, id: &TaskId) -> Option<&V> {
        self.map.get(id)
    }

    fn forget(&mut self, id: &TaskId) {
        if self.map.remove(id).is_some() {
            self.order.retain(|o| o != id);
        }
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Submitter {
    waiters: HashMap<TaskId, Vec<Reply<Finished>>>,
    count: usize,
    /// Submissions to publish, each answered once it is published (or failed to be).
    sends: Vec<(Reply<Submitted>, Submitted, Message)>,
    /// Tasks submitted from here lately.
    sent: Recent<()>,
    /// Why a master refused tasks submitted from here.
    refused: Recent<String>,
}

impl Submitter {
    /// `reply` waits for `id` to finish; refused past [`MAX_WAITERS`].
    pub(crate) fn wait(&mut self, id: TaskId, reply: Reply<Finished>) {
        if let Some(why) = self.refused.get(&id) {
            let _ = reply.send(Err(Error::Refused(why.clone())));
            return;
        }
        if self.count >= MAX_WAITERS {
            let _ = reply.send(Err(Error::Refused(format!(
                "{MAX_WAITERS} callers already wait for tasks"
            ))));
            return;
        }
        self.count += 1;
        self.waiters.entry(id).or_default().push(reply);
    }

    /// Whether this node submitted `id` lately (it may still be on its way to the master).
    pub(crate) fn was_sent(&self, id: &TaskId) -> bool {
        self.sent.get(id).is_some()
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

    /// Answers everyone waiting for `task` with `master`'s refusal of it, and remembers the
    /// refusal when the task was submitted from here.
    pub(crate) fn refused(&mut self, task: TaskId, master: PeerId, reason: &str) {
        let why = format!("master {master} refused task {task}: {reason}");
        if let Some(waiters) = self.waiters.remove(&task) {
            self.count -= waiters.len();
            for w in waiters {
                let _ = w.send(Err(Error::Refused(why.clone())));
            }
        }
        if self.sent.get(&task).is_some() {
            self.refused.put(task, why);
        }
    }

    /// Queues a submission to publish; `reply` gets `submitted` once it is out.
    pub(crate) fn send(&mut self, reply: Reply<Submitted>, submitted: Submitted, message: Message) {
        // Sent again: an earlier refusal no longer answers for it.
        self.refused.forget(&submitted.id);
        self.sent.put(submitted.id, ());
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
        assert!(matches!(rx.try_recv(), Ok(Err(Error::Refused(_)))));
    }

    fn submitted(id: TaskId) -> (Submitted, Message) {
        let spec = ipfsbench_protocols::task::Spec::new(ipfsbench_protocols::task::Kind::Noop);
        let message = Message::Submit(ipfsbench_protocols::task::Submit {
            key: "k".into(),
            spec,
        });
        (
            Submitted {
                id,
                new: true,
                record: None,
            },
            message,
        )
    }

    #[test]
    fn a_refusal_answers_waiters_at_once_and_later_ones_too() {
        let (me, master) = (PeerId::random(), PeerId::random());
        let (a, other) = (TaskId::derive(&me, "a"), TaskId::derive(&me, "other"));
        let mut s = Submitter::default();
        let (sub, msg) = submitted(a);
        s.send(oneshot::channel().0, sub, msg);
        let (tx, mut rx) = oneshot::channel();
        s.wait(a, tx);
        s.refused(a, master, "not listed");
        match rx.try_recv() {
            Ok(Err(Error::Refused(why))) => {
                assert!(why.contains("not listed") && why.contains(&master.to_string()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.waiting(), 0);
        // A caller that starts waiting after the refusal came is answered at once.
        let (tx, mut rx) = oneshot::channel();
        s.wait(a, tx);
        assert!(matches!(rx.try_recv(), Ok(Err(Error::Refused(_)))));
        // A refusal of a task not sent from here is not kept.
        s.refused(other, master, "not listed");
        let (tx, mut rx) = oneshot::channel();
        s.wait(other, tx);
        assert!(rx.try_recv().is_err(), "still waiting");
        // Only what was sent from here is known as sent (a master that starts leading waits
        // for such a task instead of saying it has none).
        assert!(s.was_sent(&a) && !s.was_sent(&other));
        // Sent again, the task waits for its new answer.
        let (sub, msg) = submitted(a);
        s.send(oneshot::channel().0, sub, msg);
        let (tx, mut rx) = oneshot::channel();
        s.wait(a, tx);
        assert!(rx.try_recv().is_err(), "waiting again");
    }

    #[test]
    fn what_is_remembered_is_bounded() {
        let me = PeerId::random();
        let mut s = Submitter::default();
        for i in 0..MAX_REMEMBERED * 3 {
            let id = TaskId::derive(&me, &i.to_string());
            let (sub, msg) = submitted(id);
            s.send(oneshot::channel().0, sub, msg);
            s.refused(id, me, "no");
        }
        assert_eq!(s.sent.map.len(), MAX_REMEMBERED);
        assert_eq!(s.refused.order.len(), MAX_REMEMBERED);
        assert!(s.take_sends().len() == MAX_REMEMBERED * 3);
    }
}
