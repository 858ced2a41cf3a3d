//! Which notices are due on a day: reminders before a deadline (at the
//! offsets the definition gives) and the escalation after a missed one.
//! Pure: the reminder service decides what to send from this and from the
//! notices already recorded in the instance.

use crate::instance::Instance;
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
