//! One instance's status on a given day: what is done, what can be done
//! now, what waits for earlier steps, what is overdue, and what is due next.

use crate::instance::{Instance, NoticeStatus};
use crate::reminders::{self, AfterFailure};
use jiff::civil::Date;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Recorded (and, for repeating steps, nothing due).
    Done,
    /// Its earlier steps are recorded: it can be recorded now.
    Open,
    /// Waits for earlier steps.
    Waiting,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Done {
    pub event_id: String,
    pub occurred_on: Date,
    pub deviation: Option<String>,
    pub days_late: Option<u32>,
    pub corrections: u32,
    /// The year it counts for, where the step is due once a year.
    pub for_year: Option<i16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepStatus {
    pub id: String,
    pub title: String,
    pub kind: &'static str,
    pub state: StepState,
    pub done: Vec<Done>,
    pub deadline: Option<Date>,
    pub overdue: bool,
    pub escalate_to: Option<String>,
    /// The years whose deadline was waived, where the step is due once a
    /// year.
    pub waived_years: Vec<i16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceStatus {
    pub instance: String,
    pub workflow: String,
    pub definition_version: u32,
    pub definition_hash: String,
    pub organisation: String,
    pub case_number: Option<String>,
    pub today: Date,
    pub steps: Vec<StepStatus>,
    /// Reminders and escalations delivered, on every channel.
    pub notices_delivered: u32,
    /// Notices not (yet) delivered: failed, given up, or in doubt.
    pub notice_problems: Vec<NoticeProblem>,
}

/// A reminder or escalation that did not go out as it should.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeProblem {
    pub step: String,
    pub deadline: Date,
    /// `reminder:N` or `missed`.
    pub notice: String,
    pub channel: String,
    pub attempt: u32,
    /// `failed` (retried with backoff), `given_up` (every attempt failed,
    /// or refused for good), `superseded` (no longer due: a later notice
    /// replaced it, or the step was recorded; not retried), or `in_doubt`
    /// (claimed, no outcome recorded: maybe sent, not resent).
    pub state: &'static str,
    pub error: Option<String>,
    /// For `superseded`: the notice that replaced it, if any
    /// (`reminder:1`, `missed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
}

impl InstanceStatus {
    pub fn of(inst: &Instance, today: Date) -> InstanceStatus {
        let steps = inst
            .definition
            .steps
            .iter()
            .map(|step| {
                let done: Vec<Done> = inst
                    .occurrences_by_year(step)
                    .into_iter()
                    .map(|(o, for_year)| Done {
                        for_year,
                        event_id: o.event_id.to_hex(),
                        occurred_on: o.occurred_on,
                        deviation: o.deviation.clone(),
                        days_late: o.late.map(|l| l.days_late),
                        corrections: o.corrections,
                    })
                    .collect();
                let deadline = inst.next_deadline(step);
                let ready = step.after.iter().all(|a| inst.occurrences_of(a).next().is_some());
                let state = if !done.is_empty() && (deadline.is_none() || !step.repeat) {
                    StepState::Done
                } else if ready {
                    StepState::Open
                } else {
                    StepState::Waiting
                };
                StepStatus {
                    id: step.id.clone(),
                    title: step.title.sv.clone(),
                    kind: step.kind.name(),
                    overdue: state != StepState::Done && deadline.is_some_and(|d| d < today),
                    state,
                    done,
                    deadline,
                    escalate_to: step.deadline.as_ref().and_then(|d| d.escalate_to.clone()),
                    waived_years: inst.years_waived(step),
                }
            })
            .collect();
        InstanceStatus {
            instance: inst.id.to_string(),
            workflow: inst.definition.id.clone(),
            definition_version: inst.definition.version,
            definition_hash: inst.definition.hash.to_hex(),
            organisation: inst.organisation.clone(),
            case_number: inst.case_number.clone(),
            today,
            steps,
            notices_delivered: inst.notices.values().filter(|n| n.status == NoticeStatus::Delivered).count() as u32,
            notice_problems: inst
                .notices
                .iter()
                .filter_map(|((key, channel), n)| {
                    let mut superseded_by = None;
                    let (state, error) = match &n.status {
                        NoticeStatus::Delivered => return None,
                        NoticeStatus::Claimed => ("in_doubt", None),
                        NoticeStatus::Failed(e) => match reminders::after_failure(inst, key, n, today) {
                            AfterFailure::GivenUp => ("given_up", Some(e.clone())),
                            AfterFailure::Superseded { by } => {
                                superseded_by = by;
                                ("superseded", Some(e.clone()))
                            }
                            AfterFailure::Retried => ("failed", Some(e.clone())),
                        },
                    };
                    Some(NoticeProblem {
                        step: n.step.clone(),
                        deadline: n.deadline,
                        notice: n.notice.clone(),
                        channel: channel.clone(),
                        attempt: n.attempt,
                        state,
                        error,
                        superseded_by,
                    })
                })
                .collect(),
        }
    }

    pub fn overdue(&self) -> impl Iterator<Item = &StepStatus> {
        self.steps.iter().filter(|s| s.overdue)
    }

    /// Pending deadlines from today on, soonest first.
    pub fn upcoming(&self) -> Vec<&StepStatus> {
        let mut v: Vec<&StepStatus> = self
            .steps
            .iter()
            .filter(|s| s.state != StepState::Done && s.deadline.is_some_and(|d| d >= self.today))
            .collect();
        v.sort_by_key(|s| s.deadline);
        v
    }
}
