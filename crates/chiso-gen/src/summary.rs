//! What the generated city looks like, measured from its events.
//!
//! The figures are derived from the events exactly as `docs/events.md` and
//! `docs/kpis.md` define them (a small, independent implementation in plain Rust),
//! not read back from the generator's knobs, so the summary printed by
//! `chiso gen` and the calibration tests check what was really written.

use chrono::{Datelike, NaiveDate};

use chiso_core::event::{Channel, EventType, Rating};

use crate::clock;
use crate::model::{Dossier, GenEvent, Payload};

/// Counts over one period, evaluated at `T = min(period end, range end)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub received: u64,
    pub online: u64,
    pub direct: u64,
    pub postal: u64,
    pub full_online: u64,
    pub digitized: u64,
    pub fee_required: u64,
    pub paid_online: u64,
    pub resolved: u64,
    pub resolved_on_time: u64,
    pub resolved_early: u64,
    pub resolved_late: u64,
    pub late_apologized: u64,
    pub e_result: u64,
    pub stopped: u64,
    pub withdrawn: u64,
    pub rated: u64,
    pub satisfied: u64,
    pub dissatisfied: u64,
    /// Received dossiers with at least one / two supplement requests.
    pub supplemented: u64,
    pub supplemented_twice: u64,
    pub in_progress: u64,
    pub in_progress_overdue: u64,
    pub awaiting_supplement: u64,
    /// The Decision 766 progress indicator's universe and its good part.
    pub progress_universe: u64,
    pub progress_good: u64,
    /// Finished on time, finished late, in progress within deadline.
    pub progress_finished_good: u64,
    pub progress_finished_late: u64,
    pub progress_pending_good: u64,
}

/// A percentage rounded to 2 decimals, `None` when the denominator is 0.
pub fn rate(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| (numerator as f64 * 10_000.0 / denominator as f64).round() / 100.0)
}

impl Tally {
    fn merge(&mut self, other: &Tally) {
        macro_rules! add { ($($f:ident),*) => { $(self.$f += other.$f;)* } }
        add!(
            received,
            online,
            direct,
            postal,
            full_online,
            digitized,
            fee_required,
            paid_online,
            resolved,
            resolved_on_time,
            resolved_early,
            resolved_late,
            late_apologized,
            e_result,
            stopped,
            withdrawn,
            rated,
            satisfied,
            dissatisfied,
            supplemented,
            supplemented_twice,
            in_progress,
            in_progress_overdue,
            awaiting_supplement,
            progress_universe,
            progress_good,
            progress_finished_good,
            progress_finished_late,
            progress_pending_good
        );
    }

    pub fn on_time_rate(&self) -> Option<f64> {
        rate(self.resolved_on_time, self.resolved)
    }

    pub fn online_rate(&self) -> Option<f64> {
        rate(self.online, self.received)
    }

    pub fn progress_ratio(&self) -> Option<f64> {
        rate(self.progress_good, self.progress_universe)
    }

    fn count(&mut self, d: &Derived, start: i64, t: i64) {
        let in_period = |x: i64| x >= start && x < t;
        if in_period(d.dossier.received_at) {
            self.received += 1;
            match d.dossier.channel {
                Channel::Online => self.online += 1,
                Channel::Direct => self.direct += 1,
                Channel::Postal => self.postal += 1,
            }
            self.full_online += u64::from(d.dossier.full_online);
            self.digitized += u64::from(d.digitized);
            if d.fee_required {
                self.fee_required += 1;
                self.paid_online += u64::from(d.paid_online == Some(true));
            }
            self.supplemented += u64::from(d.requests >= 1);
            self.supplemented_twice += u64::from(d.requests >= 2);
        }
        match d.finished {
            Some((finished_at, outcome)) if in_period(finished_at) => {
                let on_time = d
                    .effective_due(finished_at)
                    .is_none_or(|due| finished_at <= due);
                match outcome {
                    Outcome::Resolved => {
                        self.resolved += 1;
                        self.e_result += u64::from(d.e_result);
                        if on_time {
                            self.resolved_on_time += 1;
                            let early = d.effective_due(finished_at).is_some_and(|due| {
                                clock::local_date(finished_at) < clock::local_date(due)
                            });
                            self.resolved_early += u64::from(early);
                        } else {
                            self.resolved_late += 1;
                            self.late_apologized += u64::from(d.apologized);
                        }
                    }
                    Outcome::Stopped => self.stopped += 1,
                    Outcome::Withdrawn => self.withdrawn += 1,
                }
                let good = on_time && d.requests <= 1;
                self.progress_universe += 1;
                self.progress_good += u64::from(good);
                self.progress_finished_good += u64::from(good);
                self.progress_finished_late += u64::from(!good);
            }
            Some(_) => {}
            None => {
                self.in_progress += 1;
                let due = d.effective_due(t);
                self.in_progress_overdue += u64::from(due.is_some_and(|due| due < t));
                self.awaiting_supplement += u64::from(d.open_request.is_some());
                let good = due.is_none_or(|due| due >= t) && d.requests <= 1;
                self.progress_universe += 1;
                self.progress_good += u64::from(good);
                self.progress_pending_good += u64::from(good);
            }
        }
        if let Some((rated_at, rating)) = d.rating
            && in_period(rated_at)
        {
            self.rated += 1;
            self.satisfied += u64::from(rating != Rating::Dissatisfied);
            self.dissatisfied += u64::from(rating == Rating::Dissatisfied);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Resolved,
    Stopped,
    Withdrawn,
}

/// The derived dossier of `docs/events.md`, as of an instant `t`.
struct Derived<'a> {
    dossier: &'a Dossier,
    fee_required: bool,
    finished: Option<(i64, Outcome)>,
    requests: u32,
    /// Closed pauses, and the start of a request still open at `t`.
    closed_pause: i64,
    open_request: Option<i64>,
    digitized: bool,
    e_result: bool,
    paid_online: Option<bool>,
    rating: Option<(i64, Rating)>,
    apologized: bool,
}

impl<'a> Derived<'a> {
    fn at(dossier: &'a Dossier, events: &[GenEvent], t: i64) -> Self {
        let mut sorted: Vec<&GenEvent> = events.iter().filter(|e| e.at < t).collect();
        sorted.sort_by_key(|e| (e.at, e.seq));
        let mut d = Derived {
            dossier,
            fee_required: crate::catalogue::PROCEDURES[usize::from(dossier.procedure)].fee,
            finished: None,
            requests: 0,
            closed_pause: 0,
            open_request: None,
            digitized: false,
            e_result: false,
            paid_online: None,
            rating: None,
            apologized: false,
        };
        let (mut resolved, mut returned, mut ended) = (None, None, None);
        for e in sorted {
            match (e.kind, e.payload) {
                (EventType::Resolved, Payload::Flag(flag)) if resolved.is_none() => {
                    resolved = Some(e.at);
                    d.e_result = flag;
                }
                (EventType::Returned, _) if returned.is_none() => returned = Some(e.at),
                (EventType::Stopped, _) if ended.is_none() => {
                    ended = Some((e.at, Outcome::Stopped))
                }
                (EventType::Withdrawn, _) if ended.is_none() => {
                    ended = Some((e.at, Outcome::Withdrawn))
                }
                (EventType::SupplementRequested, _) => {
                    d.requests += 1;
                    d.open_request.get_or_insert(e.at);
                }
                (EventType::SupplementReceived, _) => {
                    if let Some(start) = d.open_request.take() {
                        d.closed_pause += e.at - start;
                    }
                }
                (EventType::Digitized, _) => d.digitized = true,
                (EventType::Paid, Payload::Flag(flag)) => d.paid_online = Some(flag),
                (EventType::Rated, Payload::Rating(rating)) => d.rating = Some((e.at, rating)),
                (EventType::Apologized, _) => d.apologized = true,
                _ => {}
            }
        }
        d.finished = resolved
            .or(returned)
            .map(|at| (at, Outcome::Resolved))
            .or(ended);
        // A request still open at the finish pauses until the finish only.
        if let (Some((finished_at, _)), Some(start)) = (d.finished, d.open_request) {
            d.closed_pause += (finished_at - start).max(0);
            d.open_request = None;
        }
        d
    }

    /// `due_at + paused`, with an open request paused until `until`.
    fn effective_due(&self, until: i64) -> Option<i64> {
        let open = self.open_request.map_or(0, |start| (until - start).max(0));
        self.dossier
            .due_at
            .map(|due| due + self.closed_pause + open)
    }
}

/// Month starts (as local dates) covering `[from, end)`.
fn month_starts(from: NaiveDate, end: NaiveDate) -> Vec<NaiveDate> {
    let mut months = Vec::new();
    let mut month = from.with_day(1).expect("day 1 exists");
    while month < end {
        months.push(month);
        month = month
            .checked_add_months(chrono::Months::new(1))
            .expect("dates stay far from chrono's limits");
    }
    months
}

/// One ward's counts, gathered while the ward is simulated.
#[derive(Debug, Clone, Default)]
pub struct WardTally {
    pub total: Tally,
    pub months: Vec<Tally>,
    pub received_by_day: Vec<u64>,
}

/// The range a tally covers: `[from, end)` in local dates.
#[derive(Debug, Clone)]
pub struct Periods {
    from: NaiveDate,
    end: NaiveDate,
    months: Vec<NaiveDate>,
}

impl Periods {
    pub fn new(from: NaiveDate, end: NaiveDate) -> Self {
        Self {
            from,
            end,
            months: month_starts(from, end),
        }
    }
}

impl WardTally {
    pub fn add(&mut self, periods: &Periods, dossier: &Dossier, events: &[GenEvent]) {
        let range_start = clock::at(periods.from, 0);
        let range_end = clock::at(periods.end, 0);
        if self.months.is_empty() {
            self.months = vec![Tally::default(); periods.months.len()];
            self.received_by_day = vec![0; (periods.end - periods.from).num_days().max(0) as usize];
        }
        let received_day =
            (clock::local_date(dossier.received_at) - periods.from).num_days() as usize;
        if let Some(count) = self.received_by_day.get_mut(received_day) {
            *count += 1;
        }
        self.total.count(
            &Derived::at(dossier, events, range_end),
            range_start,
            range_end,
        );
        let last_event = events
            .iter()
            .map(|e| e.at)
            .max()
            .unwrap_or(dossier.received_at);
        for (i, month) in periods.months.iter().enumerate() {
            let start = clock::at((*month).max(periods.from), 0);
            let next = month
                .checked_add_months(chrono::Months::new(1))
                .expect("valid month");
            let t = clock::at(next.min(periods.end), 0);
            // Months before reception see nothing; months after the last event
            // see a finished dossier that counts nowhere but the backlog rules,
            // which need an unfinished one, so both can be skipped.
            if t <= dossier.received_at || start > last_event && !unfinished(events) {
                continue;
            }
            self.months[i].count(&Derived::at(dossier, events, t), start, t);
        }
    }
}

fn unfinished(events: &[GenEvent]) -> bool {
    !events.iter().any(|e| {
        matches!(
            e.kind,
            EventType::Resolved | EventType::Returned | EventType::Stopped | EventType::Withdrawn
        )
    })
}

/// The whole city's counts.
#[derive(Debug, Clone)]
pub struct Stats {
    pub periods: Periods,
    /// The whole range, evaluated at its end.
    pub total: Tally,
    /// `(month start, tally)` for every month the range touches.
    pub months: Vec<(NaiveDate, Tally)>,
    /// Per ward, in registry order, over the whole range.
    pub wards: Vec<Tally>,
    /// Dossiers received on each local day of the range.
    pub received_by_day: Vec<u64>,
    pub events: u64,
}

impl Stats {
    pub fn new(from: NaiveDate, end: NaiveDate, wards: usize) -> Self {
        let periods = Periods::new(from, end);
        Self {
            months: periods
                .months
                .iter()
                .map(|m| (*m, Tally::default()))
                .collect(),
            received_by_day: vec![0; (end - from).num_days().max(0) as usize],
            periods,
            total: Tally::default(),
            wards: vec![Tally::default(); wards],
            events: 0,
        }
    }

    pub fn absorb(&mut self, ward: usize, tally: WardTally) {
        self.total.merge(&tally.total);
        for ((_, month), ward_month) in self.months.iter_mut().zip(&tally.months) {
            month.merge(ward_month);
        }
        for (day, count) in self.received_by_day.iter_mut().zip(&tally.received_by_day) {
            *day += count;
        }
        if let Some(slot) = self.wards.get_mut(ward) {
            slot.merge(&tally.total);
        }
    }

    /// The local date of the `i`-th day of the range.
    pub fn day(&self, i: usize) -> NaiveDate {
        self.periods.from + chrono::Duration::days(i as i64)
    }

    pub fn month(&self, year: i32, month: u32) -> Option<&Tally> {
        self.months
            .iter()
            .find(|(m, _)| m.year() == year && m.month() == month)
            .map(|(_, t)| t)
    }
}
