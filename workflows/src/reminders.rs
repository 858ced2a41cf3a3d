//! Which notices are due on a day: reminders before a deadline (at the
//! offsets the definition gives) and the escalation after a missed one.
//! Pure: the reminder service decides what to send from this and from the
//! notices already recorded in the instance.

use crate::instance::{Instance, NoticeState, NoticeStatus};
use jiff::civil::Date;
use jiff::ToSpan;

/// Which notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Notice {
    /// N days before the last day (0: on the last day).
    Reminder { days_before: u32 },
    /// The last day passed without the step.
    Missed,
}

impl Notice {
    pub fn code(self) -> String {
        match self {
            Notice::Reminder { days_before } => format!("reminder:{days_before}"),
            Notice::Missed => "missed".into(),
        }
    }
}

/// A notice due for one step of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub step: String,
    pub deadline: Date,
    pub notice: Notice,
    /// The roles to tell: those who record the step; for a missed deadline
    /// the escalation role as well.
    pub roles: Vec<String>,
    /// Earlier steps still missing, so the text can say what is needed.
    pub missing_before: Vec<String>,
}

impl Due {
    /// The same for every channel and every sender: instance, step,
    /// deadline and notice.
    pub fn key(&self, inst: &Instance) -> String {
        format!("{}:{}:{}:{}", inst.id, self.step, self.deadline, self.notice.code())
    }
}

/// The notices due on `today`. A reminder is due from its day up to the
/// deadline; when several offsets have passed (a service that was down)
/// only the nearest one is due, so a late start catches up once.
pub fn due(inst: &Instance, today: Date) -> Vec<Due> {
    let mut out = Vec::new();
    for step in &inst.definition.steps {
        let Some(d) = &step.deadline else { continue };
        if !step.repeat && inst.occurrences_of(&step.id).next().is_some() {
            continue;
        }
        let Some(last_day) = inst.next_deadline(step) else { continue };
        let missing_before = step.after.iter().filter(|a| inst.occurrences_of(a).next().is_none()).cloned().collect();
        if today > last_day {
            let mut roles = step.recorded_by.clone();
            if let Some(e) = &d.escalate_to {
                if !roles.contains(e) {
                    roles.push(e.clone());
                }
            }
            out.push(Due { step: step.id.clone(), deadline: last_day, notice: Notice::Missed, roles, missing_before });
            continue;
        }
        let nearest = d
            .remind_days_before
            .iter()
            .filter(|o| last_day.checked_sub(i64::from(**o).days()).is_ok_and(|on| on <= today))
            .min();
        if let Some(o) = nearest {
            out.push(Due {
                step: step.id.clone(),
                deadline: last_day,
                notice: Notice::Reminder { days_before: *o },
                roles: step.recorded_by.clone(),
                missing_before,
            });
        }
    }
    out
}

/// The first day after `today` on which a new notice becomes due, if any
/// (given what is recorded now).
pub fn next_due_day(inst: &Instance, today: Date) -> Option<Date> {
    let mut next: Option<Date> = None;
    let mut consider = |d: Date| {
        if d > today && next.is_none_or(|n| d < n) {
            next = Some(d);
        }
    };
    for step in &inst.definition.steps {
        let Some(d) = &step.deadline else { continue };
        if !step.repeat && inst.occurrences_of(&step.id).next().is_some() {
            continue;
        }
        let Some(last_day) = inst.next_deadline(step) else { continue };
        for o in &d.remind_days_before {
            if let Ok(on) = last_day.checked_sub(i64::from(*o).days()) {
                consider(on);
            }
        }
        if let Ok(after) = last_day.tomorrow() {
            consider(after);
        }
    }
    next
}

/// The start of the error recorded for a notice that the receiving end
/// refused for good (an SMTP 5xx reply): it is given up at once.
pub const REFUSED_FOR_GOOD: &str = "refused for good: ";

/// Whether a recorded send error is a refusal for good: ours, or lettre's
/// own text for a 5xx reply in logs written before it was marked.
pub fn refused_for_good(error: &str) -> bool {
    error.starts_with(REFUSED_FOR_GOOD) || error.starts_with("permanent error (5")
}

/// Whether a failed notice is given up: every attempt failed, or the
/// receiving end refused it for good.
pub fn given_up(state: &NoticeState) -> bool {
    match &state.status {
        NoticeStatus::Failed(e) => state.attempt >= engine::limits::NOTICE_ATTEMPTS_MAX || refused_for_good(e),
        _ => false,
    }
}

/// What becomes of a notice whose last attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// It is still due: tried again after the backoff.
    Retried,
    /// Every attempt failed, or the receiving end refused it for good.
    GivenUp,
    /// No longer due, so never tried again: a later notice replaced it
    /// (`by`: `reminder:1`, `missed`, with the deadline when that moved),
    /// or the step was recorded or its deadline waived (`by` is None).
    Superseded { by: Option<String> },
}

/// What becomes of the notice `key` (as [`Due::key`]) in `state` on
/// `today`, if its last attempt failed.
pub fn after_failure(inst: &Instance, key: &str, state: &NoticeState, today: Date) -> AfterFailure {
    if given_up(state) {
        return AfterFailure::GivenUp;
    }
    let now_due = due(inst, today);
    if now_due.iter().any(|d| d.key(inst) == key) {
        return AfterFailure::Retried;
    }
    let by = now_due.iter().find(|d| d.step == state.step).map(|d| {
        if d.deadline == state.deadline {
            d.notice.code()
        } else {
            format!("{} (deadline {})", d.notice.code(), d.deadline)
        }
    });
    AfterFailure::Superseded { by }
}
