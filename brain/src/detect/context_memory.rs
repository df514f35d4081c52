//! A bounded memory of the contexts a series has shown recently: "have I seen this before?"
//! in a fixed kilobyte, however long the series runs.
//!
//! Each context is a 64-bit hash; the memory keeps an 8-bit fingerprint of it in one of a few
//! four-way sets, least recently seen last. A context seen again moves to the front of its set;
//! a new one evicts the least recently seen of its set, so contexts that keep recurring stay and
//! one-offs are forgotten. Two different contexts are confused only when they share both the set
//! and the fingerprint (about 4 in 255 for a full set), which errs towards "seen": towards silence.

/// Contexts per set: enough that a few recurring contexts sharing a set do not evict each other.
const WAYS: usize = 4;

/// Recently seen contexts, as fingerprints in four-way sets with least-recently-seen eviction.
#[derive(Clone, Debug)]
pub(crate) struct ContextMemory {
    /// `sets × WAYS` fingerprints, 0 marking an empty slot; within a set the most recently
    /// seen comes first.
    slots: Box<[u8]>,
}

impl ContextMemory {
    /// A memory of about `capacity` contexts (rounded up to whole sets, at least one), one byte
    /// each.
    pub(crate) fn new(capacity: usize) -> Self {
        let sets = capacity.div_ceil(WAYS).max(1);
        ContextMemory {
            slots: vec![0; sets * WAYS].into_boxed_slice(),
        }
    }

    /// Bytes of fingerprints held (the memory's whole heap share).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.len()
    }

    /// Whether `context` was seen recently; either way it is now the most recently seen.
    pub(crate) fn seen_before(&mut self, context: u64) -> bool {
        let sets = (self.slots.len() / WAYS) as u64;
        // Multiply-shift maps the low 32 bits onto the sets without a division; the
        // fingerprint comes from the high bits, independent of the set.
        let set = (((context & 0xffff_ffff) * sets) >> 32) as usize;
        let fingerprint = match (context >> 56) as u8 {
            0 => 1,
            f => f,
        };
        let ways = &mut self.slots[set * WAYS..(set + 1) * WAYS];
        let found = ways.iter().position(|&f| f == fingerprint);
        let shift_from = found.unwrap_or(WAYS - 1);
        ways.copy_within(0..shift_from, 1);
        ways[0] = fingerprint;
        found.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spreads small integers over 64 bits, as the detector's hashes are spread.
    fn spread(i: u64) -> u64 {
        (i.wrapping_add(1))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(17)
            ^ 0xa076_1d64_78bd_642f
    }

    #[test]
    fn a_context_is_new_once_then_remembered() {
        let mut m = ContextMemory::new(64);
        assert!(!m.seen_before(spread(7)));
        assert!(m.seen_before(spread(7)));
        assert!(m.seen_before(spread(7)));
        assert!(!m.seen_before(spread(8)));
    }

    #[test]
    fn recurring_contexts_survive_a_stream_of_one_offs_that_exceeds_the_capacity() {
        let mut m = ContextMemory::new(256);
        assert_eq!(m.heap_bytes(), 256);
        let recurring: Vec<u64> = (0..16).map(spread).collect();
        for &c in &recurring {
            m.seen_before(c);
        }
        let mut forgotten = 0;
        for round in 0..200u64 {
            // Each round shows every recurring context and a few never-seen ones.
            for k in 0..4 {
                m.seen_before(spread(1_000 + round * 4 + k));
            }
            for &c in &recurring {
                if !m.seen_before(c) {
                    forgotten += 1;
                }
            }
        }
        assert!(
            forgotten < 20,
            "{forgotten} of 3200 recurring sightings forgotten"
        );
        // The one-offs of the first round are long gone.
        let old = (0..4).filter(|&k| m.seen_before(spread(1_000 + k))).count();
        assert!(old <= 1, "{old}");
    }
}
