//! What the store already holds: every `event_id` with its content hash,
//! and the dossiers that have a `received` event.
//!
//! Keys are 128-bit hashes of the ids (collisions are out of reach at any
//! realistic size). The maps are flat open-addressing tables: one slot of
//! 24 bytes per id, found with one memory access, because at millions of
//! entries every lookup misses the cache and the number of misses is the
//! cost. Callers that know which ids come next say so ([`Index::warm`]),
//! so those misses overlap instead of stalling one row after another.

use chiso_core::event::{ContractEnum, Event, EventType};
use xxhash_rust::xxh3::{Xxh3, xxh3_64, xxh3_128};

/// Slots per entry kept free: probes stay short (about 1.5 slots for a
/// hit, 3.6 for a miss at this load) while a slot costs 24 bytes.
const MAX_LOAD: f64 = 0.6;

/// A flat open-addressing table with linear probing. A slot is `W` words,
/// the first `K` of which are the key; an all-zero key marks a free slot,
/// so keys must not be all zero (see [`nonzero`]).
#[derive(Debug)]
struct FlatTable<const K: usize, const W: usize> {
    slots: Vec<[u64; W]>,
    len: usize,
}

/// Where a key is, or where it would go.
enum Probe {
    Found(usize),
    Vacant(usize),
}

/// Keys are hashes, so an all-zero key is a one-in-2^64 accident; it is
/// folded onto another key rather than special-cased on every probe.
fn nonzero<const K: usize>(mut key: [u64; K]) -> [u64; K] {
    if key.iter().all(|word| *word == 0) {
        key[0] = 1;
    }
    key
}

impl<const K: usize, const W: usize> FlatTable<K, W> {
    fn with_capacity(entries: usize) -> Self {
        Self {
            slots: vec![[0; W]; slots_for(entries)],
            len: 0,
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    /// The home slot: the key's first word scaled onto the table, which
    /// allows any table size (keys are uniform, so their high bits are too).
    fn home(&self, key: &[u64; K]) -> usize {
        ((u128::from(key[0]) * self.slots.len() as u128) >> 64) as usize
    }

    fn probe(&self, key: &[u64; K]) -> Probe {
        let mut at = self.home(key);
        loop {
            let slot = &self.slots[at];
            if slot[..K] == key[..] {
                return Probe::Found(at);
            }
            if slot[..K].iter().all(|word| *word == 0) {
                return Probe::Vacant(at);
            }
            at += 1;
            if at == self.slots.len() {
                at = 0;
            }
        }
    }

    /// Reads the key's home slot so that it is in the cache when probed;
    /// returns a word to keep the read from being optimised away.
    fn touch(&self, key: &[u64; K]) -> u64 {
        self.slots[self.home(key)][0]
    }

    /// Fills a vacant slot found by [`Self::probe`]; returns false when the
    /// table had to grow first (the caller probes again).
    fn fill(&mut self, at: usize, slot: [u64; W]) -> bool {
        if (self.len + 1) as f64 > self.slots.len() as f64 * MAX_LOAD {
            self.grow(self.len + 1);
            return false;
        }
        self.slots[at] = slot;
        self.len += 1;
        true
    }

    fn insert(&mut self, slot: [u64; W]) {
        let mut key = [0; K];
        key.copy_from_slice(&slot[..K]);
        loop {
            match self.probe(&key) {
                Probe::Found(at) => {
                    self.slots[at] = slot;
                    return;
                }
                Probe::Vacant(at) => {
                    if self.fill(at, slot) {
                        return;
                    }
                }
            }
        }
    }

    /// Makes room for `entries` in all, rehashing once.
    fn grow(&mut self, entries: usize) {
        let wanted = slots_for(entries.max(self.len * 2));
        if wanted <= self.slots.len() {
            return;
        }
        let old = std::mem::replace(&mut self.slots, vec![[0; W]; wanted]);
        self.len = 0;
        for slot in old {
            if slot[..K].iter().any(|word| *word != 0) {
                self.insert(slot);
            }
        }
    }

    fn reserve(&mut self, additional: usize) {
        if (self.len + additional) as f64 > self.slots.len() as f64 * MAX_LOAD {
            self.grow(self.len + additional);
        }
    }
}

fn slots_for(entries: usize) -> usize {
    ((entries as f64 / MAX_LOAD) as usize).max(64)
}

/// Two shards by the key's top bit, so that loading fills both at once on
/// two cores: filling millions of entries is bound by memory latency, not
/// by computation, and two threads overlap their cache misses.
#[derive(Debug)]
pub struct Index {
    /// The events-table version this index reflects.
    pub version: i64,
    /// `(id key low, id key high, content hash)`.
    ids: [FlatTable<2, 3>; 2],
    received: FlatTable<1, 1>,
    /// Dossiers received since the last [`Index::orphans`], recorded in
    /// bulk then: nothing reads `received` in between.
    fresh_received: Vec<u64>,
}

/// Room in one shard for its half of `events` ids, with slack for an
/// uneven split.
fn per_shard(events: usize) -> usize {
    events / 2 + events / 16
}

fn shard(key: u128) -> usize {
    (key >> 127) as usize
}

fn id_words(key: u128) -> [u64; 2] {
    nonzero([key as u64, (key >> 64) as u64])
}

/// What the store knows of an event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    New,
    Duplicate,
    Conflict,
}

pub fn id_key(event_id: &str) -> u128 {
    xxh3_128(event_id.as_bytes())
}

pub fn dossier_key(dossier_id: &str) -> u64 {
    xxh3_64(dossier_id.as_bytes())
}

/// A hash of the validated content of an event: equal events (whatever
/// the spelling of their source row) hash equal.
pub fn content_hash(event: &Event) -> u64 {
    let mut h = Xxh3::new();
    let mut text = |s: Option<&str>| {
        match s {
            Some(s) => {
                h.update(&[1]);
                h.update(&(s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            None => h.update(&[0]),
        };
    };
    text(Some(&event.event_id));
    text(Some(&event.dossier_id));
    text(Some(event.event_type.as_str()));
    text(event.ward_code.as_deref());
    text(event.procedure_code.as_deref());
    text(event.department_code.as_deref());
    text(event.channel.map(|c| c.as_str()));
    text(event.rating.map(|r| r.as_str()));
    let flag = |b: Option<bool>| match b {
        None => 0u8,
        Some(false) => 1,
        Some(true) => 2,
    };
    h.update(&[
        flag(event.full_online),
        flag(event.fee_required),
        flag(event.e_result),
        flag(event.paid_online),
    ]);
    h.update(&event.occurred_at.timestamp_micros().to_le_bytes());
    match event.due_at {
        Some(due) => {
            h.update(&[1]);
            h.update(&due.timestamp_micros().to_le_bytes());
        }
        None => h.update(&[0]),
    }
    h.digest()
}

impl Index {
    pub fn with_capacity(version: i64, events: usize) -> Self {
        let half = || FlatTable::with_capacity(per_shard(events));
        Self {
            version,
            ids: [half(), half()],
            received: FlatTable::with_capacity(0),
            fresh_received: Vec::new(),
        }
    }

    /// Makes room for a source of about `events` events when it is larger
    /// than the store, so that a first ingest does not make the tables grow
    /// (and move every entry) several times over. A source no larger than
    /// the store is mostly known ids or a small share of new ones, which
    /// the tables sized at load absorb.
    pub fn reserve_for_source(&mut self, events: usize) {
        let stored: usize = self.ids.iter().map(FlatTable::len).sum();
        let more = events.saturating_sub(stored);
        for table in &mut self.ids {
            table.reserve(per_shard(more));
        }
    }

    /// Records stored events (when loading): `(id_key, content hash)` pairs,
    /// each shard filled by its own thread.
    pub fn insert_stored(&mut self, entries: &[(u128, u64)]) {
        let [low, high] = &mut self.ids;
        std::thread::scope(|scope| {
            for (number, table) in [(0, low), (1, high)] {
                scope.spawn(move || {
                    for &(key, hash) in entries.iter().filter(|(key, _)| shard(*key) == number) {
                        let [low, high] = id_words(key);
                        table.insert([low, high, hash]);
                    }
                });
            }
        });
    }

    /// Records a dossier whose `received` event is stored (when loading).
    pub fn insert_received(&mut self, dossier_id: &str) {
        self.received.insert(nonzero([dossier_key(dossier_id)]));
    }

    /// Starts fetching the entries of ids about to be checked, in order, so
    /// that [`Index::check`] finds them in the cache.
    pub fn warm<'a>(&self, event_ids: impl Iterator<Item = &'a str>) {
        let mut fetched = 0;
        for id in event_ids {
            let key = id_key(id);
            fetched ^= self.ids[shard(key)].touch(&id_words(key));
        }
        std::hint::black_box(fetched);
    }

    /// Checks an incoming event and, when new, records it.
    pub fn check(&mut self, event: &Event, hash: u64) -> Seen {
        let key = id_key(&event.event_id);
        let words = id_words(key);
        let table = &mut self.ids[shard(key)];
        loop {
            match table.probe(&words) {
                Probe::Found(at) if table.slots[at][2] == hash => return Seen::Duplicate,
                Probe::Found(_) => return Seen::Conflict,
                Probe::Vacant(at) => {
                    if table.fill(at, [words[0], words[1], hash]) {
                        break;
                    }
                }
            }
        }
        if event.event_type == EventType::Received {
            self.fresh_received.push(dossier_key(&event.dossier_id));
        }
        Seen::New
    }

    /// How many of `dossiers` have no `received` event, in the store or
    /// among the events checked so far.
    pub fn orphans(&mut self, dossiers: &[u64]) -> u64 {
        let fresh = std::mem::take(&mut self.fresh_received);
        self.received.reserve(fresh.len());
        for dossier in fresh {
            self.received.insert(nonzero([dossier]));
        }
        dossiers
            .iter()
            .filter(|dossier| {
                matches!(self.received.probe(&nonzero([**dossier])), Probe::Vacant(_))
            })
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_grown_from_its_minimum_keeps_every_entry() {
        let mut table = FlatTable::<2, 3>::with_capacity(0);
        for i in 0..10_000u64 {
            let key = nonzero([i, i.wrapping_mul(0x9e37_79b9_7f4a_7c15)]);
            table.insert([key[0], key[1], i * 3]);
        }
        assert_eq!(table.len(), 10_000);
        for i in 0..10_000u64 {
            let key = nonzero([i, i.wrapping_mul(0x9e37_79b9_7f4a_7c15)]);
            match table.probe(&key) {
                Probe::Found(at) => assert_eq!(table.slots[at][2], i * 3),
                Probe::Vacant(_) => panic!("key {i} lost"),
            }
        }
        assert!(matches!(table.probe(&[10_001, 5]), Probe::Vacant(_)));
    }
}
