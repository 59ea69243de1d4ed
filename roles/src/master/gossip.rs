//! What a master does with the cluster's task messages (heartbeats aside, which every node
//! takes): submissions from listed submitters, claims, progress and reports from its
//! workers, cancels from the submitter of a task. Each handler says whether it acted; what
//! to publish goes to the outbox, and `dirty` asks for a flush before anything is published.

use ipfsbench_core::network::PeerId;
use ipfsbench_protocols::task::{Cancel, Message, Report, Submit};

use super::Master;
use crate::cluster::Counters;
use crate::settings::Settings;

/// What handling one message may change besides the master.
#[derive(Debug)]
pub(crate) struct Effects<'a> {
    /// Messages to publish once the changes are durable.
    pub(crate) outbox: &'a mut Vec<Message>,
    /// Set when the table changed and must be flushed.
    pub(crate) dirty: &'a mut bool,
    /// The service's counters.
    pub(crate) counters: &'a mut Counters,
}

impl Master {
    /// Handles `message` from `from` at `now`; whether it concerned this master.
    pub(crate) fn on_gossip(
        &mut self,
        settings: &Settings,
        from: PeerId,
        message: Message,
        now: u64,
        fx: &mut Effects<'_>,
    ) -> bool {
        match message {
            Message::Submit(Submit { key, spec }) => {
                if !settings.submitters.contains(&from) {
                    fx.counters.unauthorised += 1;
                    tracing::debug!(%from, "submission from a peer not listed as a submitter");
                    return true;
                }
                match self.submit(from, &key, spec, now) {
                    Ok(_) => *fx.dirty = true,
                    Err(error) => tracing::info!(%from, %error, "submission refused"),
                }
                true
            }
            Message::Cancel(c) => self.cancel_by_submitter(from, &c, now, fx),
            Message::Claim(c) => {
                let taken = self.on_claim(from, &c, now).unwrap_or(false);
                *fx.dirty |= taken;
                taken
            }
            Message::Progress(p) => self.on_progress(from, &p),
            Message::Report(r) => self.take_report(from, &r, now, false, fx),
            Message::Repeat(r) => self.take_report(from, &r.report, now, true, fx),
            Message::Assign(_) | Message::Heartbeat(_) => false,
        }
    }

    /// A submitter may cancel what it submitted.
    fn cancel_by_submitter(
        &mut self,
        from: PeerId,
        c: &Cancel,
        now: u64,
        fx: &mut Effects<'_>,
    ) -> bool {
        match self.get(&c.task) {
            Ok(Some(r)) if r.submitter == from => {
                if let Ok((_, stop)) = self.cancel(&c.task, now) {
                    fx.outbox.extend(stop);
                    *fx.dirty = true;
                }
                true
            }
            Ok(Some(_)) => {
                fx.counters.unauthorised += 1;
                true
            }
            _ => false,
        }
    }

    /// A worker's report (first sent or repeated). A report that does not end the task (a
    /// failed attempt that will be retried) is acknowledged by cancelling the attempt; one
    /// that ends it, by the outcome published for it. A repeated report that comes too late
    /// is answered the same way, so that the worker stops repeating it.
    fn take_report(
        &mut self,
        from: PeerId,
        report: &Report,
        now: u64,
        repeated: bool,
        fx: &mut Effects<'_>,
    ) -> bool {
        match self.on_report(from, report, now) {
            Ok(true) => {
                *fx.dirty = true;
                if self.is_open(&report.task) {
                    fx.outbox.push(Message::Cancel(Cancel {
                        task: report.task,
                        attempt: report.attempt,
                    }));
                }
                true
            }
            Ok(false) if repeated => match self.stale_report(report) {
                Ok(Some(stop)) => {
                    fx.outbox.push(stop);
                    true
                }
                _ => false,
            },
            Ok(false) => false,
            Err(error) => {
                tracing::error!(%error, "task table");
                false
            }
        }
    }
}
