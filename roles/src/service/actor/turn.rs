//! The loop: each turn takes one input and whatever else is ready, applies them, makes the
//! master's changes durable, then answers and publishes.

use std::time::Duration;

use ipfsbench_core::network::PubsubMessage;
use ipfsbench_protocols::task::{self, Message, Outcome, TaskId, Topic};
use tokio::sync::{mpsc, oneshot};

use super::owned::{Ack, Actor, Inputs};
use crate::clock::now_ms;
use crate::service::command::Command;
use crate::service::views::Error;

/// Inputs taken in one turn, at most.
const BATCH: usize = 256;
/// Task messages buffered per topic between the host and the service.
const GOSSIP_QUEUE: usize = 8192;
/// How often the master looks at leases and the queue without other cause. Milliseconds.
const SCHEDULE_TICK_MS: u64 = 50;

/// One input of the loop.
enum Input {
    Gossip(PubsubMessage),
    Command(Command),
    Done(TaskId, u32, Outcome),
    Out(Message),
    Heartbeat,
    Tick,
}

impl Actor {
    /// Runs until `stopped` fires (or the service is dropped).
    pub(in crate::service) async fn run(
        mut self,
        inputs: Inputs,
        mut commands: mpsc::Receiver<Command>,
        mut stopped: oneshot::Receiver<()>,
    ) {
        let Inputs { mut done, mut out } = inputs;
        let mut gossip = match self.subscribe().await {
            Ok(rx) => rx,
            Err(e) => {
                tracing::error!(error = %e, "role service cannot subscribe to its topics");
                return;
            }
        };
        let mut heartbeat = tokio::time::interval(self.settings.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick = tokio::time::interval(Duration::from_millis(SCHEDULE_TICK_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                _ = &mut stopped => break,
                Some(m) = gossip.recv() => Input::Gossip(m),
                Some(c) = commands.recv() => Input::Command(c),
                Some((t, a, o)) = done.recv() => Input::Done(t, a, o),
                Some(m) = out.recv() => Input::Out(m),
                _ = heartbeat.tick() => Input::Heartbeat,
                _ = tick.tick() => Input::Tick,
            };
            self.handle(first);
            for _ in 0..BATCH {
                let next = if let Ok(m) = gossip.try_recv() {
                    Input::Gossip(m)
                } else if let Ok(c) = commands.try_recv() {
                    Input::Command(c)
                } else if let Ok((t, a, o)) = done.try_recv() {
                    Input::Done(t, a, o)
                } else if let Ok(m) = out.try_recv() {
                    Input::Out(m)
                } else {
                    break;
                };
                self.handle(next);
            }
            self.schedule();
            self.commit().await;
        }
        if let Some(worker) = &mut self.worker {
            worker.stop();
        }
        if let Some(master) = &self.master {
            if let Err(e) = master.table().flush().await {
                tracing::error!(error = %e, "flushing the task table");
            }
        }
    }

    /// Subscribes to every cluster topic, merging them into one receiver.
    async fn subscribe(&self) -> Result<mpsc::Receiver<PubsubMessage>, Error> {
        let (tx, rx) = mpsc::channel(GOSSIP_QUEUE);
        for topic in Topic::ALL {
            let mut sub = self
                .client
                .subscribe_with_capacity(topic.name(&self.settings.cluster), GOSSIP_QUEUE)
                .await
                .map_err(Error::from)?;
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(m) = sub.recv().await {
                    if tx.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
        Ok(rx)
    }

    fn handle(&mut self, input: Input) {
        let now = now_ms();
        match input {
            Input::Gossip(m) => self.on_gossip(&m, now),
            Input::Command(c) => self.on_command(c, now),
            Input::Done(task, attempt, outcome) => {
                let worker = self.worker.as_mut();
                if let Some(report) = worker.and_then(|w| w.finished(task, attempt, outcome, now)) {
                    self.turn.outbox.push(report);
                }
            }
            Input::Out(m) => self.turn.outbox.push(m),
            Input::Heartbeat => {
                let hb = self.heartbeat(now);
                self.turn.outbox.push(Message::Heartbeat(hb));
                if let Some(worker) = &mut self.worker {
                    self.turn.outbox.extend(worker.repeats(now));
                }
            }
            Input::Tick => {}
        }
    }

    /// A master follows leadership (one that takes over says so at once) and, while it
    /// leads, schedules; see [`crate::master::duty::Duty::schedule`].
    fn schedule(&mut self) {
        let now = now_ms();
        let Some(master) = &mut self.master else {
            return;
        };
        if master.lead_tick(&self.settings, &mut self.turn, now) {
            let hb = self.heartbeat(now);
            self.turn.outbox.push(Message::Heartbeat(hb));
        }
        if let Some(master) = &mut self.master {
            master.schedule(&self.peers, &mut self.turn, &mut self.submitter, now);
        }
    }

    /// Flushes the master's changes, then answers and publishes.
    async fn commit(&mut self) {
        let changed = self
            .master
            .as_ref()
            .is_some_and(|m| m.table().has_changes());
        let mut saved = true;
        if std::mem::take(&mut self.turn.dirty) || changed {
            if let Some(master) = &self.master {
                if let Err(error) = master.table().flush().await {
                    saved = false;
                    tracing::error!(%error, "flushing the task table");
                    let why = format!("the task table could not be saved: {error}");
                    for ack in self.acks.drain(..) {
                        match ack {
                            Ack::Submitted(r, _) => {
                                let _ = r.send(Err(Error::Refused(why.clone())));
                            }
                            Ack::Record(r, _) => {
                                let _ = r.send(Err(Error::Refused(why.clone())));
                            }
                        }
                    }
                }
            }
        }
        if saved {
            // What the table made durable goes to the cluster state.
            if let Some(master) = &mut self.master {
                master.replicate();
            }
        }
        for ack in self.acks.drain(..) {
            match ack {
                Ack::Submitted(r, result) => {
                    let _ = r.send(result);
                }
                Ack::Record(r, result) => {
                    let _ = r.send(result);
                }
            }
        }
        for (reply, submitted, message) in self.submitter.take_sends() {
            let result = match message.encode() {
                Ok(bytes) => self
                    .client
                    .publish(message.topic().name(&self.settings.cluster), bytes)
                    .await
                    .map(|()| submitted)
                    .map_err(Error::from),
                Err(e) => Err(Error::Refused(e.to_string())),
            };
            let _ = reply.send(result);
        }
        // What the turn says goes out as one payload per topic (one signature for all).
        let packed = task::pack(std::mem::take(&mut self.turn.outbox));
        for (message, error) in packed.refused {
            tracing::error!(%error, ?message, "task message not sent");
        }
        for (topic, bytes) in packed.payloads {
            let topic = topic.name(&self.settings.cluster);
            if let Err(error) = self.client.publish(topic, bytes).await {
                tracing::warn!(%error, "publishing task messages");
            }
        }
    }
}
