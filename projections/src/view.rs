//! The log as known at a moment: every instance folded from the events
//! recorded up to the end of an `as_of` date, with the head they end at.

use engine::{EventId, Hash, InstanceId, RecordedEvent};
use jiff::civil::Date;
use std::collections::BTreeMap;
use workflows::instance::FoldError;
use workflows::Instance;

/// One instance and its events.
#[derive(Debug, Clone)]
pub struct InstanceView {
    pub instance: Instance,
    pub events: Vec<RecordedEvent>,
}

/// The log as it was known at the end of `as_of` (or now).
#[derive(Debug, Clone)]
pub struct LogView {
    pub as_of: Option<Date>,
    /// The last event included: position and hash.
    pub head_position: u64,
    pub head_hash: Hash,
    pub instances: BTreeMap<InstanceId, InstanceView>,
    /// False for a view that folds without keeping events (restored from a
    /// checkpoint, or made with `folded_only`): it serves every report but
    /// the audit trail.
    pub events_kept: bool,
}

/// The civil date in Sweden of an instant.
pub fn swedish_date(ts: jiff::Timestamp) -> Date {
    ts.in_tz("Europe/Stockholm").map(|z| z.date()).unwrap_or_else(|_| ts.to_zoned(jiff::tz::TimeZone::UTC).date())
}

impl LogView {
    pub fn new(as_of: Option<Date>) -> Self {
        LogView { as_of, head_position: 0, head_hash: Hash::default(), instances: BTreeMap::new(), events_kept: true }
    }

    /// A view that folds events without keeping them: every report but the
    /// audit trail, in the memory of the folded state alone.
    pub fn folded_only(as_of: Option<Date>) -> Self {
        LogView { events_kept: false, ..LogView::new(as_of) }
    }

    /// Feeds the next event in position order. Returns false once an event
    /// was recorded after `as_of`: `recorded_at` never decreases along the
    /// log, so nothing after it belongs to the view either.
    pub fn feed(&mut self, e: &RecordedEvent) -> Result<bool, FoldError> {
        if self.as_of.is_some_and(|d| swedish_date(e.event.recorded_at) > d) {
            return Ok(false);
        }
        self.head_position = e.event.position;
        self.head_hash = e.hash;
        match self.instances.get_mut(&e.event.instance) {
            Some(v) => {
                v.instance.apply(e);
                if self.events_kept {
                    v.events.push(e.clone());
                }
            }
            None => {
                let instance = Instance::fold(std::slice::from_ref(e))?;
                let events = if self.events_kept { vec![e.clone()] } else { Vec::new() };
                self.instances.insert(e.event.instance.clone(), InstanceView { instance, events });
            }
        }
        Ok(true)
    }

    /// Instances of one organisation (case-insensitive), or all.
    pub fn select<'a>(&'a self, org: Option<&'a str>) -> impl Iterator<Item = &'a InstanceView> + 'a {
        self.instances
            .values()
            .filter(move |v| org.is_none_or(|o| v.instance.organisation.to_lowercase() == o.to_lowercase()))
    }

    /// The event with this id, in any instance.
    pub fn event(&self, id: &EventId) -> Option<&RecordedEvent> {
        self.instances.values().flat_map(|v| v.events.iter()).find(|e| e.event.event_id == *id)
    }

    /// "Built from log head position N hash H, as known on D".
    pub fn provenance(&self, lang: crate::Lang) -> String {
        let known = match self.as_of {
            Some(d) => lang.t(&format!(", som det var känt {d}"), &format!(", as known on {d}")).to_string(),
            None => String::new(),
        };
        lang.t(
            &format!("Byggd från loggens position {} med hash {}{known}", self.head_position, self.head_hash),
            &format!("Built from log position {} with hash {}{known}", self.head_position, self.head_hash),
        )
        .to_string()
    }
}
