//! What the store already holds: every `event_id` with its content hash,
//! and the dossiers that have a `received` event.
//!
//! Keys are 128-bit hashes of the ids (collisions are out of reach at any
//! realistic size), so the index costs about 40 bytes per stored event.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use chiso_core::event::{ContractEnum, Event};
use xxhash_rust::xxh3::{Xxh3, xxh3_64, xxh3_128};

/// Keys are already uniform hashes; hashing them again would be wasted work.
#[derive(Debug, Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }

    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }
}

type Fast = BuildHasherDefault<PassThrough>;

/// Two shards by the key's top bit, so that loading fills both at once on
/// two cores: filling millions of entries is bound by memory latency, not
/// by computation, and two threads overlap their cache misses.
#[derive(Debug, Default)]
pub struct Index {
    /// The events-table version this index reflects.
    pub version: i64,
    ids: [HashMap<u128, u64, Fast>; 2],
    received: HashSet<u64, Fast>,
}

/// Room in one shard for its half of `events` ids, with slack for an
/// uneven split.
fn per_shard(events: usize) -> usize {
    events / 2 + events / 16
}

fn shard(key: u128) -> usize {
    (key >> 127) as usize
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
        let half = || HashMap::with_capacity_and_hasher(per_shard(events), Fast::default());
        Self {
            version,
            ids: [half(), half()],
            received: HashSet::default(),
        }
    }

    /// Makes room for a source of about `events` events when it is larger
    /// than the store, so that a first ingest does not make the maps grow
    /// (and rehash every entry) several times over: growing from empty to
    /// 10 M entries moves each entry about twice more, one random memory
    /// access each. A source no larger than the store is mostly known ids
    /// or a small share of new ones, which the maps sized at load absorb.
    pub fn reserve_for_source(&mut self, events: usize) {
        let stored: usize = self.ids.iter().map(HashMap::len).sum();
        let more = events.saturating_sub(stored);
        for map in &mut self.ids {
            map.reserve(per_shard(more));
        }
    }

    /// Records stored events (when loading): `(id_key, content hash)` pairs,
    /// each shard filled by its own thread.
    pub fn insert_stored(&mut self, entries: &[(u128, u64)]) {
        let [low, high] = &mut self.ids;
        std::thread::scope(|scope| {
            for (number, map) in [(0, low), (1, high)] {
                scope.spawn(move || {
                    for &(key, hash) in entries.iter().filter(|(key, _)| shard(*key) == number) {
                        map.insert(key, hash);
                    }
                });
            }
        });
    }

    /// Records a dossier whose `received` event is stored (when loading).
    pub fn insert_received(&mut self, dossier_id: &str) {
        self.received.insert(dossier_key(dossier_id));
    }

    /// Checks an incoming event and, when new, records it.
    pub fn check(&mut self, event: &Event, hash: u64) -> Seen {
        let key = id_key(&event.event_id);
        match self.ids[shard(key)].entry(key) {
            std::collections::hash_map::Entry::Occupied(stored) if *stored.get() == hash => {
                Seen::Duplicate
            }
            std::collections::hash_map::Entry::Occupied(_) => Seen::Conflict,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(hash);
                if event.event_type == chiso_core::event::EventType::Received {
                    self.received.insert(dossier_key(&event.dossier_id));
                }
                Seen::New
            }
        }
    }

    pub fn has_received(&self, dossier: u64) -> bool {
        self.received.contains(&dossier)
    }
}
