//! The life of every dossier in the sample city.
//!
//! Each ward is simulated from its own random stream (seed × ward), so the
//! result is the same whatever the number of threads; the events of all
//! wards are then put in the order a one-stop system would log them
//! (by time). Events after the end of the range have not happened yet and are
//! left out, which leaves a realistic backlog at the end.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::NaiveDate;

use chiso_core::calendar::WorkCalendar;
use chiso_core::event::{Channel, EventType, Rating};
use chiso_core::wards::WardRegistry;

use crate::catalogue::PROCEDURES;
use crate::city::{
    WardProfile, day_weight, dossiers_per_weight, merger_date, procedure_weight, transition_strain,
    ward_profiles,
};
use crate::clock::{self, DAY, HOUR, MINUTE};
use crate::rng::{Rng, cumulative};
use crate::summary::{Periods, Stats, WardTally};
use crate::{GenError, Params};

/// One dossier's fixed attributes (those of its `received` event).
#[derive(Debug, Clone, Copy)]
pub struct Dossier {
    /// Position of the ward in the registry.
    pub ward: u16,
    /// Position of the procedure in [`PROCEDURES`].
    pub procedure: u16,
    /// Sequence number of the dossier among its ward's dossiers of that day.
    pub seq: u32,
    pub received_at: i64,
    pub channel: Channel,
    pub full_online: bool,
    pub due_at: Option<i64>,
}

/// One event, compactly: the dossier it belongs to, its sequence number
/// within the dossier (part of the event id) and its one-value payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenEvent {
    pub at: i64,
    pub dossier: u32,
    pub seq: u8,
    pub kind: EventType,
    pub payload: Payload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    None,
    Flag(bool),
    Rating(Rating),
}

/// The generated city.
#[derive(Debug)]
pub struct City {
    pub params: Params,
    pub wards: WardRegistry,
    pub calendar: WorkCalendar,
    pub dossiers: Vec<Dossier>,
    /// Every event that happened before `end`, in log order.
    pub events: Vec<GenEvent>,
    /// The exclusive end of the range: local midnight after `params.to`.
    pub end: i64,
    pub stats: Stats,
}

impl City {
    /// The dossier code, e.g. `31120.H13-250714-0042`.
    pub fn dossier_id(&self, dossier: &Dossier) -> String {
        let ward = &self.wards.as_slice()[usize::from(dossier.ward)].code;
        let date = clock::local_date(dossier.received_at);
        format!("{ward}.H13-{}-{:04}", date.format("%y%m%d"), dossier.seq)
    }
}

/// Builds the city for `params`.
pub fn generate(params: &Params) -> Result<City, GenError> {
    params.validate()?;
    let wards = WardRegistry::builtin().clone();
    let calendar = WorkCalendar::builtin();
    let profiles = ward_profiles(params.seed, &wards);
    let end_date = params
        .to
        .succ_opt()
        .ok_or(GenError::Range("--to is too late".into()))?;
    let end = clock::at(end_date, 0);
    let outputs = {
        let context = Context {
            params,
            calendar: &calendar,
            per_weight: dossiers_per_weight(&calendar, params.scale),
            end,
            periods: Periods::new(params.from, end_date),
        };
        simulate_wards(&context, &profiles)
    };
    let mut dossiers = Vec::with_capacity(outputs.iter().map(|o| o.dossiers.len()).sum());
    let mut events = Vec::with_capacity(outputs.iter().map(|o| o.events.len()).sum());
    let mut stats = Stats::new(params.from, end_date, wards.len());
    for (ward, output) in outputs.into_iter().enumerate() {
        let offset = dossiers.len() as u32;
        dossiers.extend(output.dossiers);
        events.extend(output.events.into_iter().map(|mut e| {
            e.dossier += offset;
            e
        }));
        stats.absorb(ward, output.tally);
    }
    // Keys are unique (dossier, seq), so the unstable sort is deterministic.
    events.sort_unstable_by_key(|e| (e.at, e.dossier, e.seq));
    stats.events = events.len() as u64;
    Ok(City {
        params: params.clone(),
        wards,
        calendar,
        dossiers,
        events,
        end,
        stats,
    })
}

struct Context<'a> {
    params: &'a Params,
    calendar: &'a WorkCalendar,
    per_weight: f64,
    end: i64,
    periods: Periods,
}

struct WardOutput {
    dossiers: Vec<Dossier>,
    events: Vec<GenEvent>,
    tally: WardTally,
}

/// Simulates every ward on all cores; the result is in registry order.
fn simulate_wards(context: &Context<'_>, profiles: &[WardProfile]) -> Vec<WardOutput> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, WardOutput)>> = Mutex::new(Vec::with_capacity(profiles.len()));
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(profiles.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let ward = next.fetch_add(1, Ordering::Relaxed);
                    let Some(profile) = profiles.get(ward) else {
                        break;
                    };
                    let output = simulate_ward(context, ward, profile);
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((ward, output));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_unstable_by_key(|(ward, _)| *ward);
    results.into_iter().map(|(_, output)| output).collect()
}

fn simulate_ward(context: &Context<'_>, ward: usize, profile: &WardProfile) -> WardOutput {
    let mut rng = Rng::new(context.params.seed, ward as u64 + 1);
    let mut output = WardOutput {
        dossiers: Vec::new(),
        events: Vec::new(),
        tally: WardTally::default(),
    };
    let mut receptions = Vec::new();
    for date in context
        .params
        .from
        .iter_days()
        .take_while(|d| *d <= context.params.to)
    {
        let mean = context.per_weight * profile.share * day_weight(context.calendar, date);
        let procedure_weights = cumulative(PROCEDURES.iter().map(|p| procedure_weight(p, date)));
        receptions.clear();
        receptions.extend(
            (0..rng.poisson(mean)).map(|_| clock::reception_time(&mut rng, context.calendar, date)),
        );
        receptions.sort_unstable();
        for (i, &received_at) in receptions.iter().enumerate() {
            let index = output.dossiers.len() as u32;
            let first_event = output.events.len();
            let dossier = Lifecycle {
                context,
                profile,
                procedure_weights: &procedure_weights,
                rng: &mut rng,
                events: &mut output.events,
                index,
                next_seq: 1,
            }
            .run(ward as u16, i as u32 + 1, received_at, date);
            output
                .tally
                .add(&context.periods, &dossier, &output.events[first_event..]);
            output.dossiers.push(dossier);
        }
    }
    output
}

/// The events of one dossier, from reception to rating.
struct Lifecycle<'a, 'c> {
    context: &'a Context<'c>,
    profile: &'a WardProfile,
    /// Cumulative demand of each procedure on this day.
    procedure_weights: &'a [f64],
    rng: &'a mut Rng,
    events: &'a mut Vec<GenEvent>,
    index: u32,
    next_seq: u8,
}

impl Lifecycle<'_, '_> {
    fn emit(&mut self, at: i64, kind: EventType, payload: Payload) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.saturating_add(1);
        if at < self.context.end {
            self.events.push(GenEvent {
                at,
                dossier: self.index,
                seq,
                kind,
                payload,
            });
        }
    }

    fn snap(&mut self, t: i64) -> i64 {
        clock::snap_to_office(self.rng, self.context.calendar, t)
    }

    fn run(mut self, ward: u16, seq: u32, received_at: i64, date: NaiveDate) -> Dossier {
        let calendar = self.context.calendar;
        let after_merger = date >= merger_date();
        let strain = transition_strain(date);
        let procedure_index = self.rng.pick(self.procedure_weights);
        let procedure = &PROCEDURES[procedure_index];
        let online_share = if after_merger {
            self.profile.online_after
        } else {
            self.profile.online_before
        };
        let working_day = calendar.is_working_day(date);
        let channel = if !working_day || self.rng.chance(online_share) {
            Channel::Online
        } else if self.rng.chance(0.03) {
            Channel::Postal
        } else {
            Channel::Direct
        };
        let full_online =
            channel == Channel::Online && procedure.full_online && self.rng.chance(0.4);
        let due_at = procedure
            .working_days
            .map(|n| clock::from_chrono(calendar.due_at(clock::to_chrono(received_at), n)));
        let dossier = Dossier {
            ward,
            procedure: procedure_index as u16,
            seq,
            received_at,
            channel,
            full_online,
            due_at,
        };
        self.emit(received_at, EventType::Received, Payload::None);

        // Components are scanned one by one right after reception.
        if self.rng.chance(self.profile.digitization) {
            let mut t = received_at;
            for _ in 0..2 + self.rng.below(3) {
                t += 2 * MINUTE + self.rng.below((40 * MINUTE) as u64) as i64;
                self.emit(t, EventType::Digitized, Payload::None);
            }
        }
        if procedure.fee {
            let online_bias = if channel == Channel::Online {
                0.12
            } else {
                -0.12
            };
            let p =
                (self.profile.online_payment + online_bias + if after_merger { 0.05 } else { 0.0 })
                    .clamp(0.0, 1.0);
            let paid_at = received_at + MINUTE + self.rng.below((45 * MINUTE) as u64) as i64;
            let online = self.rng.chance(p);
            self.emit(paid_at, EventType::Paid, Payload::Flag(online));
            if self.rng.chance(0.04) {
                // An additional obligation settled later, sometimes another way.
                let later = {
                    let t = paid_at + DAY + self.rng.below((2 * DAY) as u64) as i64;
                    self.snap(t)
                };
                let online = self.rng.chance(p);
                self.emit(later, EventType::Paid, Payload::Flag(online));
            }
        }

        // Supplement rounds pause the clock.
        let mut cursor = received_at + 20 * MINUTE + self.rng.below((4 * HOUR) as u64) as i64;
        let mut paused = 0;
        let mut unanswered = false;
        if self.rng.chance(self.profile.supplement) {
            let rounds = if self.rng.chance(0.05) { 2 } else { 1 };
            for _ in 0..rounds {
                let request = {
                    let t = cursor + self.rng.exponential(DAY as f64) as i64;
                    self.snap(t)
                };
                self.emit(request, EventType::SupplementRequested, Payload::None);
                if self.rng.chance(0.07) {
                    unanswered = true;
                    cursor = request;
                    break;
                }
                let answer = request + HOUR + self.rng.exponential((3 * DAY) as f64) as i64;
                self.emit(answer, EventType::SupplementReceived, Payload::None);
                paused += answer - request;
                cursor = answer;
            }
        }

        let roll = self.rng.unit();
        if unanswered {
            // Applicants who never supplement mostly see the dossier stopped.
            if self.rng.chance(0.6) {
                let t = {
                    let t = cursor + 10 * DAY + self.rng.below((15 * DAY) as u64) as i64;
                    self.snap(t)
                };
                self.emit(t, EventType::Stopped, Payload::None);
            }
            return dossier;
        }
        if roll < 0.026 {
            // Most refusals and withdrawals happen while the clock still runs.
            let kind = if roll < 0.012 {
                EventType::Withdrawn
            } else {
                EventType::Stopped
            };
            let t = match due_at.map(|d| d + paused) {
                Some(due) if self.rng.chance(0.9) => self.on_time_finish(cursor, due, 1.0),
                _ => {
                    let t = cursor + HOUR + self.rng.below((8 * DAY) as u64) as i64;
                    self.snap(t)
                }
            };
            self.emit(t, kind, Payload::None);
            return dossier;
        }
        // Stuck dossiers: forgotten for weeks, the overdue backlog the
        // reviews chase; a few never finish at all.
        let stuck = roll < 0.029;
        if stuck && self.rng.chance(0.2) {
            return dossier;
        }

        let effective_due = due_at.map(|d| d + paused);
        let late_probability = 1.0 - self.profile.on_time;
        let late = effective_due.is_some() && (stuck || self.rng.chance(late_probability));
        let finished_at = match effective_due {
            None => {
                let t = cursor + HOUR + self.rng.exponential((2 * DAY) as f64) as i64;
                self.snap(t)
            }
            Some(due) if late => {
                let mean = if stuck { 40 * DAY } else { 2 * DAY };
                let overrun = DAY / 2 + self.rng.exponential(mean as f64) as i64;
                self.snap(due + overrun).max(due + 1)
            }
            Some(due) => self.on_time_finish(cursor, due, strain),
        };
        let e_result = self.rng.chance(self.profile.e_result);
        self.emit(finished_at, EventType::Resolved, Payload::Flag(e_result));
        if late && self.rng.chance(0.82) {
            let due = effective_due.unwrap_or(finished_at);
            let t = (due - self.rng.below((DAY / 2) as u64) as i64).max(received_at + MINUTE);
            self.emit(t, EventType::Apologized, Payload::None);
        }
        if self.rng.chance(0.975) {
            let returned_at = if e_result && channel == Channel::Online {
                finished_at + self.rng.below((30 * MINUTE) as u64) as i64
            } else {
                {
                    let t = finished_at + self.rng.exponential(DAY as f64) as i64;
                    self.snap(t)
                }
            };
            self.emit(returned_at, EventType::Returned, Payload::None);
            let rounds = if self.rng.chance(0.83) {
                1 + u32::from(self.rng.chance(0.03))
            } else {
                0
            };
            let mut t = returned_at;
            for _ in 0..rounds {
                t += 5 * MINUTE + self.rng.exponential((8 * HOUR) as f64) as i64;
                let rating = self.rating(late);
                self.emit(t, EventType::Rated, Payload::Rating(rating));
            }
        }
        dossier
    }

    /// A finishing instant between `start` and `due`, mostly well before the
    /// due date (most dossiers are resolved early), later under strain.
    fn on_time_finish(&mut self, start: i64, due: i64, strain: f64) -> i64 {
        let calendar = self.context.calendar;
        let first_day = clock::local_date(start);
        let due_day = clock::local_date(due);
        let span = calendar.working_days_between(first_day, due_day).max(0) as f64;
        let skew = 1.8 / (strain * strain);
        let days = (span * self.rng.unit().powf(skew)).round() as u32;
        let day = if calendar.is_working_day(first_day) {
            calendar.add_working_days(first_day, days)
        } else {
            calendar.add_working_days(calendar.next_working_day(first_day), days.saturating_sub(1))
        };
        let candidate = clock::office_time(self.rng, day);
        let earliest = start + 10 * MINUTE;
        if candidate > due {
            (due - self.rng.below((2 * HOUR) as u64) as i64).max(earliest.min(due))
        } else {
            candidate.max(earliest.min(due))
        }
    }

    fn rating(&mut self, late: bool) -> Rating {
        let dissatisfied = self.profile.dissatisfied + if late { 0.12 } else { 0.0 };
        let roll = self.rng.unit();
        if roll < dissatisfied {
            Rating::Dissatisfied
        } else if roll < dissatisfied + (1.0 - dissatisfied) * 0.68 {
            Rating::VerySatisfied
        } else {
            Rating::Satisfied
        }
    }
}
