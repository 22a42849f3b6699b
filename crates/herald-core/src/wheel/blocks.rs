//! The block pool behind the wheel's slot lists.
//!
//! A wheel slot is a FIFO list of fixed-size blocks of [`Elem`]s. Blocks come
//! from one pool stored in fixed-size chunks (no `Vec` doubling), addressed by
//! `u32` block ids; an element's *position* is `block * BLOCK + offset`, which
//! is what a slab entry's link points at. Block metadata (`next`, owning slot)
//! is kept apart from the elements so that the metadata array, 32 times
//! smaller, stays cache-resident when a cancel looks up an element's slot.

/// Elements per block.
pub(crate) const BLOCK: u32 = 32;
const BLOCK_SHIFT: u32 = 5;
/// Blocks per chunk (a power of two): 64 KiB of elements per chunk.
const CHUNK_BITS: u32 = 8;
const CHUNK_BLOCKS: u32 = 1 << CHUNK_BITS;
const CHUNK_MASK: u32 = CHUNK_BLOCKS - 1;

/// "No block".
pub(crate) const NIL: u32 = u32::MAX;
/// Owner of a block sitting on the free list.
const FREE_SLOT: u32 = u32::MAX;
/// The slab index of a never-written element: above any valid index.
const UNWRITTEN: u32 = INDEX_MASK;

/// Bits of a slab index kept in an element; the 4 bits above hold bits
/// 32..36 of the offset (level-6 offsets need 36 bits).
pub(crate) const INDEX_BITS: u32 = 28;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;

/// One wheel element, 8 bytes: which slab entry, and its deadline's offset
/// from the start of its slot (`< 64^level <= 2^36`), packed as 28 + 36 bits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Elem {
    /// Slab index in the low 28 bits, offset bits 32..36 in the high 4.
    packed: u32,
    /// Offset bits 0..32.
    offset_lo: u32,
}

impl Elem {
    #[inline]
    pub(crate) const fn new(index: u32, offset: u64) -> Self {
        debug_assert!(index <= INDEX_MASK && offset < 1 << 36);
        Self {
            packed: index | ((offset >> 32) as u32) << INDEX_BITS,
            offset_lo: offset as u32,
        }
    }

    /// The slab index.
    #[inline]
    pub(crate) const fn index(self) -> u32 {
        self.packed & INDEX_MASK
    }

    /// The offset within the slot (mask it to the level it is read at).
    #[inline]
    pub(crate) const fn offset(self) -> u64 {
        self.offset_lo as u64 | ((self.packed >> INDEX_BITS) as u64) << 32
    }
}

#[derive(Clone, Copy, Debug)]
struct Meta {
    next: u32,
    slot: u32,
}

/// The pool. See the module docs.
/// Elements per chunk.
const CHUNK_ELEMS: usize = (CHUNK_BLOCKS * BLOCK) as usize;

pub(crate) struct Blocks {
    /// Fixed-size chunks: masked in-chunk indices need no bounds check.
    elems: Vec<Box<[Elem; CHUNK_ELEMS]>>,
    #[expect(
        clippy::vec_box,
        reason = "boxed chunks never move: growing the outer Vec copies pointers, not chunks"
    )]
    meta: Vec<Box<[Meta; CHUNK_BLOCKS as usize]>>,
    free: u32,
    free_count: u32,
}

impl Blocks {
    pub(crate) const fn new() -> Self {
        Self {
            elems: Vec::new(),
            meta: Vec::new(),
            free: NIL,
            free_count: 0,
        }
    }

    fn total(&self) -> u32 {
        self.meta.len() as u32 * CHUNK_BLOCKS
    }

    /// Bytes held by the pool (for reporting).
    pub(crate) fn free_blocks(&self) -> usize {
        self.free_count as usize
    }

    /// Makes sure at least `blocks` blocks are free.
    pub(crate) fn reserve_free(&mut self, blocks: usize) {
        while (self.free_count as usize) < blocks {
            self.grow();
        }
    }

    #[cold]
    fn grow(&mut self) {
        let base = self.total();
        assert!(
            base < (u32::MAX >> BLOCK_SHIFT) - CHUNK_BLOCKS,
            "herald-core scheduler: wheel element pool exhausted"
        );
        let old = self.free;
        let elems: Box<[Elem]> = vec![Elem::new(UNWRITTEN, 0); CHUNK_ELEMS].into_boxed_slice();
        self.elems
            .push(elems.try_into().expect("chunk has CHUNK_ELEMS elements"));
        let meta: Box<[Meta]> = (0..CHUNK_BLOCKS)
            .map(|i| Meta {
                next: if i + 1 == CHUNK_BLOCKS {
                    old
                } else {
                    base + i + 1
                },
                slot: FREE_SLOT,
            })
            .collect();
        self.meta
            .push(meta.try_into().expect("chunk has CHUNK_BLOCKS blocks"));
        self.free = base;
        self.free_count += CHUNK_BLOCKS;
    }

    #[inline]
    fn meta(&self, block: u32) -> &Meta {
        &self.meta[(block >> CHUNK_BITS) as usize][(block & CHUNK_MASK) as usize]
    }

    #[inline]
    fn meta_mut(&mut self, block: u32) -> &mut Meta {
        &mut self.meta[(block >> CHUNK_BITS) as usize][(block & CHUNK_MASK) as usize]
    }

    /// Takes a free block for `slot`.
    #[inline]
    pub(crate) fn alloc(&mut self, slot: u32) -> u32 {
        if self.free == NIL {
            self.grow();
        }
        let b = self.free;
        let m = self.meta_mut(b);
        let next = m.next;
        m.next = NIL;
        m.slot = slot;
        self.free = next;
        self.free_count -= 1;
        b
    }

    /// Returns a block to the pool.
    #[inline]
    pub(crate) fn release(&mut self, block: u32) {
        let free = self.free;
        let m = self.meta_mut(block);
        debug_assert_ne!(m.slot, FREE_SLOT, "double release");
        m.next = free;
        m.slot = FREE_SLOT;
        self.free = block;
        self.free_count += 1;
    }

    /// Releases a whole chain starting at `head`.
    pub(crate) fn release_chain(&mut self, mut head: u32) {
        while head != NIL {
            let next = self.next(head);
            self.release(head);
            head = next;
        }
    }

    #[inline]
    pub(crate) fn next(&self, block: u32) -> u32 {
        self.meta(block).next
    }

    #[inline]
    pub(crate) fn set_next(&mut self, block: u32, next: u32) {
        self.meta_mut(block).next = next;
    }

    /// The owner recorded for the block that holds position `pos` (the
    /// wheel records list identities here).
    #[inline]
    pub(crate) fn slot_of(&self, pos: u32) -> u32 {
        self.meta(pos >> BLOCK_SHIFT).slot
    }

    #[inline]
    pub(crate) fn get(&self, pos: u32) -> Elem {
        let block = pos >> BLOCK_SHIFT;
        self.elems[(block >> CHUNK_BITS) as usize]
            [(((block & CHUNK_MASK) << BLOCK_SHIFT) | (pos & (BLOCK - 1))) as usize]
    }

    #[inline]
    pub(crate) fn set(&mut self, pos: u32, elem: Elem) {
        let block = pos >> BLOCK_SHIFT;
        self.elems[(block >> CHUNK_BITS) as usize]
            [(((block & CHUNK_MASK) << BLOCK_SHIFT) | (pos & (BLOCK - 1))) as usize] = elem;
    }

    /// The position of element `i` of `block`.
    #[inline]
    pub(crate) const fn pos(block: u32, i: u32) -> u32 {
        (block << BLOCK_SHIFT) | i
    }

    /// Marks every block free (the wheel is being cleared).
    pub(crate) fn clear(&mut self) {
        let total = self.total();
        let mut head = NIL;
        for b in (0..total).rev() {
            let m = self.meta_mut(b);
            m.next = head;
            m.slot = FREE_SLOT;
            head = b;
        }
        self.free = head;
        self.free_count = total;
    }

    /// Frees trailing chunks whose blocks are all free, then rebuilds the
    /// free list lowest-first.
    pub(crate) fn shrink_to_fit(&mut self) {
        while self
            .meta
            .last()
            .is_some_and(|c| c.iter().all(|m| m.slot == FREE_SLOT))
        {
            self.meta.pop();
            self.elems.pop();
        }
        self.meta.shrink_to_fit();
        self.elems.shrink_to_fit();
        let total = self.total();
        let mut head = NIL;
        let mut count = 0;
        for b in (0..total).rev() {
            if self.meta(b).slot == FREE_SLOT {
                self.meta_mut(b).next = head;
                head = b;
                count += 1;
            }
        }
        self.free = head;
        self.free_count = count;
    }
}
