//! The API's calls as the loop answers them.

use ipfsbench_protocols::task::{Message, Spec, Submit, TaskId};

use super::owned::{Ack, Actor};
use crate::clock::now_ms;
use crate::master::duty::Duty;
use crate::master::reads;
use crate::service::command::{Command, Reply};
use crate::service::views::{Error, Finished, Submitted};

impl Actor {
    pub(super) fn on_command(&mut self, command: Command, now: u64) {
        match command {
            Command::Submit { key, spec, reply } => self.submit(key, spec, reply, now),
            Command::Wait { id, reply } => self.wait(id, reply),
            Command::Status { id, reply } => {
                // The leader's own table first; the state for the rest (tasks another master
                // ran, on the other side of a partition).
                let mine = self.scheduling().map(|m| m.get(&id)).transpose();
                let result = match mine {
                    Ok(Some(Some(record))) => Ok(Some(record)),
                    Ok(_) => self.read_task(&id),
                    Err(e) => Err(e.into()),
                };
                let result = match result {
                    Ok(None) if self.master.is_none() && self.state.is_none() => {
                        Err(self.not_master())
                    }
                    other => other.and_then(|r| r.ok_or(Error::NotFound(id))),
                };
                let _ = reply.send(result);
            }
            Command::List {
                state,
                after,
                limit,
                reply,
            } => {
                let result = match self.scheduling() {
                    Some(m) => m.list(state, after, limit).map_err(Error::from),
                    None => Ok(reads::list(
                        self.state.as_ref(),
                        self.master.as_ref().map(Duty::table),
                        state,
                        after,
                        limit,
                    )),
                };
                let _ = reply.send(result);
            }
            Command::Cancel { id, reply } => self.cancel(id, reply, now),
            Command::Peers { reply } => {
                let _ = reply.send(Ok(self.peer_views(now)));
            }
            Command::Stats { reply } => {
                let _ = reply.send(Ok(self.stats()));
            }
            Command::Master { reply } => {
                let _ = reply.send(Ok(self.master_view(now)));
            }
        }
    }

    fn submit(&mut self, key: String, spec: Spec, reply: Reply<Submitted>, now: u64) {
        if let Some(master) = &mut self.master {
            let held = master.submit(&self.peers, key, spec, reply, &mut self.turn, now);
            if let Some((reply, result)) = held {
                self.acks.push(Ack::Submitted(reply, result));
            }
            return;
        }
        // Not a master: the submission goes to the masters over pubsub; the id is known
        // here because it derives from this node and the key.
        let id = TaskId::derive(&self.me, &key);
        let message = Message::Submit(Submit { key, spec });
        match message.check() {
            Ok(()) => {
                let submitted = Submitted {
                    id,
                    new: true,
                    record: None,
                };
                self.submitter.send(reply, submitted, message);
            }
            Err(e) => {
                let _ = reply.send(Err(Error::Refused(e.to_string())));
            }
        }
    }

    fn cancel(&mut self, id: TaskId, reply: Reply<crate::master::TaskRecord>, now: u64) {
        let refusal = self.not_master();
        let result = match self.scheduling() {
            None => Err(refusal),
            Some(master) => match master.cancel(&id, now) {
                Ok((record, stop)) => {
                    self.turn.outbox.extend(stop);
                    self.turn.dirty = true;
                    Ok(record)
                }
                Err(e) => Err(e.into()),
            },
        };
        self.acks.push(Ack::Record(reply, result));
    }

    fn wait(&mut self, id: TaskId, reply: Reply<Finished>) {
        let Some(table) = self.master.as_ref().and_then(Duty::schedules) else {
            if let Ok(Some(r)) = self.read_task(&id) {
                if r.state.is_terminal() {
                    let _ = reply.send(Ok(Finished::from(&r)));
                    return;
                }
            }
            self.submitter.wait(id, reply);
            return;
        };
        match table.get(&id) {
            Ok(Some(r)) if r.state.is_terminal() => {
                let _ = reply.send(Ok(Finished::from(&r)));
            }
            Ok(Some(_)) => self.submitter.wait(id, reply),
            // Submitted from here while another master led: it reaches this table when the
            // state hands it over, or finishes there and is reported.
            Ok(None) if self.submitter.was_sent(&id) => self.submitter.wait(id, reply),
            Ok(None) => {
                let _ = reply.send(Err(Error::NotFound(id)));
            }
            Err(e) => {
                let _ = reply.send(Err(e.into()));
            }
        }
    }

    fn not_master(&self) -> Error {
        if self.master.is_some() {
            let active = self.master_view(now_ms()).active;
            return Error::WrongRole(format!(
                "this master stands by; the master that schedules is {}",
                active.as_deref().unwrap_or("not heard yet")
            ));
        }
        Error::WrongRole(format!(
            "this node is a {}: tasks are changed by the master that schedules; ask its API",
            self.settings.role
        ))
    }
}
