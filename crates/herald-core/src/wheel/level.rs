//! The wheel's geometry: levels, digits and slot ids.
//!
//! # Placement
//!
//! An element with deadline `d >= elapsed` goes to the level of the highest
//! 6-bit digit in which `d` and `elapsed` differ, `level = msb(d ^ elapsed | 63) / 6`,
//! into slot `digit(d, level)`, storing `offset = d mod 64^level`. Because
//! `d > elapsed` in that digit and equal above it, every element of level `n`
//! is later than every element of level `n - 1`, and the occupied slots of a
//! level are never before `elapsed`'s own digit. So the earliest element is
//! in the first occupied slot of the lowest occupied level.
//!
//! Lists are numbered: the wheel's `LEVELS × 64` slots first
//! ([`slot_id`]), then the 64 sub-lists of each level's split area
//! ([`sub_id`], see `split.rs`).

/// Bits per level.
pub(super) const BITS: u32 = 6;
/// Slots per level.
pub(super) const SLOTS: u32 = 1 << BITS;
/// Levels in the wheel.
pub(crate) const LEVELS: u32 = 7;
/// Bits covered by the whole wheel: deadlines in another 2^EPOCH_BITS ms
/// epoch than `elapsed` go to the overflow tier.
pub(crate) const EPOCH_BITS: u32 = BITS * LEVELS;
pub(super) const NUM_SLOTS: usize = (SLOTS * LEVELS) as usize;
/// The lowest level whose slots are pre-split (level-1 slots hold 64 ms:
/// small enough to cascade at once).
pub(super) const FIRST_SPLIT_LEVEL: u32 = 2;
pub(super) const SPLIT_AREAS: usize = (LEVELS - FIRST_SPLIT_LEVEL) as usize;
/// Slot ids of sub-lists start after the wheel's own slots.
pub(super) const SUB_BASE: u32 = NUM_SLOTS as u32;
pub(super) const NUM_SUBS: usize = SPLIT_AREAS * SLOTS as usize;
pub(super) const NUM_LISTS: usize = NUM_SLOTS + NUM_SUBS;

/// The offset bits that matter at `level` (level 0 has none).
#[inline]
pub(super) const fn mask(level: u32) -> u64 {
    (1_u64 << (BITS * level)) - 1
}

#[inline]
pub(super) const fn slot_id(level: u32, digit: u32) -> u32 {
    level * SLOTS + digit
}

#[inline]
pub(super) const fn sub_id(level: u32, digit: u32) -> u32 {
    SUB_BASE + (level - FIRST_SPLIT_LEVEL) * SLOTS + digit
}

/// The level a deadline `when >= elapsed` belongs to (may be >= LEVELS).
#[inline]
pub(crate) const fn level_for(elapsed: u64, when: u64) -> u32 {
    let masked = (elapsed ^ when) | (SLOTS as u64 - 1);
    (63 - masked.leading_zeros()) / BITS
}

/// The digit of `when` (a tick or an offset) at `level`: its slot there.
#[inline]
pub(super) const fn digit_of(when: u64, level: u32) -> u32 {
    ((when >> (BITS * level)) & (SLOTS as u64 - 1)) as u32
}

/// The tick at which slot `digit` of `level` starts, relative to `elapsed`.
#[inline]
pub(super) const fn slot_start(elapsed: u64, level: u32, digit: u32) -> u64 {
    let level_span_bits = BITS * (level + 1);
    (elapsed & !((1_u64 << level_span_bits) - 1)) | ((digit as u64) << (BITS * level))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_slot_starts() {
        assert_eq!(level_for(0, 0), 0);
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(0, 4095), 1);
        assert_eq!(level_for(0, 4096), 2);
        assert_eq!(level_for(0, (1 << 36) - 1), 5);
        assert_eq!(level_for(0, 1 << 36), 6);
        assert_eq!(level_for(0, (1 << 42) - 1), 6);
        assert_eq!(level_for(0, 1 << 42), 7);
        assert_eq!(level_for(100, 127), 0);
        assert_eq!(level_for(100, 128), 1);
        assert_eq!(slot_start(100, 0, 40), 104);
        assert_eq!(slot_start(100, 1, 3), 192);
        assert_eq!(slot_start(5000, 2, 1), 4096);
    }
}
