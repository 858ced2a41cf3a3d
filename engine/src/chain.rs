//! Walking the hash chain: every invariant the log promises, checked event
//! by event, so `verify` can name the first position that breaks.

use crate::codec;
use crate::event::{Hash, InstanceId, RecordedEvent};
use std::collections::HashMap;

/// The first break found in a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("position {position}: {reason}")]
pub struct ChainBreak {
    pub position: u64,
    pub reason: String,
}

/// What a complete walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub events: u64,
    pub instances: u64,
    pub head_hash: Hash,
}

/// Checks events one at a time, in position order.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    position: u64,
    head: Hash,
    sequences: HashMap<InstanceId, u64>,
    started_after: u64,
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts after an existing head instead of from the genesis.
    /// Per-instance sequence checks then start from whatever the instance
    /// reaches first.
    pub fn after(position: u64, head: Hash) -> Self {
        ChainVerifier { position, head, sequences: HashMap::new(), started_after: position }
    }

    /// Checks the next event: contiguous position, link to the previous
    /// hash, its own hash, and a contiguous per-instance sequence.
    pub fn check(&mut self, e: &RecordedEvent) -> Result<(), ChainBreak> {
        let body = &e.event;
        let expected_position = self.position + 1;
        let fail = |reason: String| Err(ChainBreak { position: expected_position, reason });
        if body.position != expected_position {
            return fail(format!("found position {} where {expected_position} was expected", body.position));
        }
        if body.prev_hash != self.head {
            return fail(format!(
                "previous hash {} does not match the hash {} of position {}",
                body.prev_hash, self.head, self.position
            ));
        }
        match codec::reseal(e) {
            Ok(_) => {}
            Err(err) => return fail(format!("event does not match its hash: {err}")),
        }
        let last = self.sequences.get(&body.instance).copied();
        let ok = match last {
            Some(s) => body.sequence == s + 1,
            // Started midway: an instance's first event seen may continue
            // an earlier part of the log.
            None => body.sequence == 1 || self.started_after > 0,
        };
        if !ok {
            return fail(format!(
                "instance {} sequence {} follows {}",
                body.instance,
                body.sequence,
                last.unwrap_or(0)
            ));
        }
        self.sequences.insert(body.instance.clone(), body.sequence);
        self.position = expected_position;
        self.head = e.hash;
        Ok(())
    }

    pub fn finish(self) -> VerifyReport {
        VerifyReport {
            events: self.position - self.started_after,
            instances: self.sequences.len() as u64,
            head_hash: self.head,
        }
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    /// Whether an event of `instance` was checked.
    pub fn saw(&self, instance: &InstanceId) -> bool {
        self.sequences.contains_key(instance)
    }

    pub fn head(&self) -> Hash {
        self.head
    }
}
