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

/// Why [`fold_log`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum FoldLogError {
    #[error(transparent)]
    Read(#[from] engine::StoreError),
    #[error("position {position}: {error}")]
    Fold { position: u64, error: workflows::instance::FoldError },
    #[error("reading the log: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Folds the log after `view`'s head into `view`. The next page is read
/// (and, for a view that needs facts, decoded) while this one is folded.
/// Stops at the log's head, or at the first event recorded after the
/// view's `as_of`. What reports and the replay benchmark both run.
///
/// A view that needs facts gets every event decoded in full and moved in.
/// A view for `status` alone reads the log as borrowed views: a recorded
/// step (most of any log) is folded from its envelope and step name
/// without decoding its facts or allocating; any other event is decoded
/// in full.
pub async fn fold_log<S>(store: &S, view: &mut projections::LogView) -> Result<(), FoldLogError>
where
    S: engine::EventStore + Clone + Send + Sync + 'static,
{
    const PAGE: usize = engine::limits::READ_PAGE_EVENTS * 8;
    let fed = |position: u64, fed: Result<bool, workflows::instance::FoldError>| {
        fed.map_err(|error| FoldLogError::Fold { position, error })
    };
    let from = view.head_position + 1;
    if view.takes_steps_without_facts() {
        let read = |next| {
            let reader = store.clone();
            async move { reader.read_records(next, PAGE).await }
        };
        return read_ahead(from, read, engine::RecordPage::last_position, |page| {
            for e in page.iter() {
                let more = match &e.step {
                    Some(step) => match view.feed_step(&e, step) {
                        Ok(projections::view::Fed::NeedsFacts) => view.feed_owned(e.to_event()?),
                        Ok(projections::view::Fed::Done(more)) => Ok(more),
                        Err(err) => Err(err),
                    },
                    None => view.feed_owned(e.to_event()?),
                };
                if !fed(e.position, more)? {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await;
    }
    let read = |next| {
        let reader = store.clone();
        async move { reader.read_all(next, PAGE).await }
    };
    let last = |page: &Vec<engine::RecordedEvent>| page.last().map(|e| e.event.position);
    read_ahead(from, read, last, |page| {
        for e in page {
            let position = e.event.position;
            if !fed(position, view.feed_owned(e))? {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await
}

/// Reads pages from `from` on, each while the one before it is folded,
/// until a page is empty (`last` gives a page's last position) or `fold`
/// says to stop.
async fn read_ahead<P, R>(
    from: u64,
    read: impl Fn(u64) -> R,
    last: impl Fn(&P) -> Option<u64>,
    mut fold: impl FnMut(P) -> Result<bool, FoldLogError>,
) -> Result<(), FoldLogError>
where
    P: Send + 'static,
    R: std::future::Future<Output = Result<P, engine::StoreError>> + Send + 'static,
{
    let mut pending = ReadAhead(tokio::spawn(read(from)));
    loop {
        let page = (&mut pending.0).await??;
        let Some(last) = last(&page) else { return Ok(()) };
        pending = ReadAhead(tokio::spawn(read(last + 1)));
        if !fold(page)? {
            return Ok(());
        }
    }
}

/// The read of the next page, stopped when the fold stops, however it
/// stops (the end of `as_of`, or an error).
struct ReadAhead<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for ReadAhead<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
