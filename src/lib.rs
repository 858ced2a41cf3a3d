//! The parts of the `styrlogg` binary that tests drive directly: the
//! reminder service and its channels, and the sample event that `stress`
//! and the benchmarks append.

pub mod remind;

/// A recorded step of the size real events have (about 200 bytes encoded):
/// a board's decision with its minutes reference and case number.
pub fn sample_event(step: &str) -> engine::NewEvent {
    use engine::{Actor, Fact, FactValue, NewEvent, Payload};
    NewEvent {
        occurred_on: jiff::civil::date(2012, 8, 14),
        actor: Actor::new("Lena Sandqvist", "sekreterare"),
        payload: Payload::StepRecorded {
            step: step.into(),
            facts: vec![
                Fact {
                    name: "protokoll".into(),
                    value: FactValue::MinutesRef {
                        body: "Planeringsdelegationen".into(),
                        date: jiff::civil::date(2012, 8, 14),
                        paragraph: "§ 100".into(),
                    },
                },
                Fact { name: "diarienummer".into(), value: FactValue::CaseNumber("LJ2012/896".into()) },
            ],
            deviation: None,
            late: None,
        },
    }
}
