//! A compiled trie over encoded OID bytes: exact and longest-prefix match.
//!
//! Keys are the BER content octets of OIDs. Because each arc's base-128 encoding is
//! prefix-free, a key that is a byte prefix of an encoded OID is also an arc prefix of
//! it, so matching walks the packet's bytes as they are, with no arc decoding. The trie
//! is path-compressed and flattened once at start-up into an array of nodes that hold
//! their label and their children's first bytes inline, plus 256-entry tables for wide
//! nodes and a hash of the whole keys, which answers the common case (the OID is a key)
//! without a walk. Lookups allocate nothing.

use crate::wire::swar::{window, zero_bytes};

/// Value slot meaning "no key ends here".
const NONE: u32 = u32::MAX;
/// Label bytes a node holds inline; longer common prefixes become chains of nodes.
const LABEL_MAX: usize = 8;
/// Children a node finds by its inline edge bytes; more get a 256-entry table (an
/// enterprise's trap numbers, `318.0.1` … `318.0.787`, hang off one node).
const EDGES_MAX: usize = 8;

/// One node: its label and its children's first bytes inline, so a step of a lookup
/// is one node load, one compare and one byte search (SWAR), with no indirection.
#[derive(Clone, Copy, Debug, Default)]
struct Node {
    /// The bytes consumed on entering this node, little-endian, zero-padded.
    label: u64,
    /// The first label byte of each child (up to `EDGES_MAX`), little-endian.
    edges: u64,
    /// Children are `nodes[first_child .. first_child + child_count]`.
    first_child: u32,
    /// Index into `values`, or NONE.
    value: u32,
    /// Index into `dense` when the node has more than `EDGES_MAX` children, or NONE.
    dense: u32,
    child_count: u16,
    label_len: u8,
}

/// An immutable OID trie mapping encoded OIDs to values of type `T`.
#[derive(Clone, Debug)]
pub struct OidTrie<T> {
    nodes: Vec<Node>,
    values: Vec<T>,
    /// Child node by next byte (NONE for none), for nodes with many children.
    dense: Vec<[u32; 256]>,
    /// Every key, hashed: a whole-OID hit needs no walk (see `ExactIndex`).
    index: ExactIndex,
}

/// An open-addressing hash of the whole keys, beside the trie. Most lookups are of a
/// notification OID that is a key: one hash and one slot find it, where the walk takes a
/// dependent load per branching byte. The walk remains for prefix matches.
#[derive(Clone, Debug)]
struct ExactIndex {
    slots: Vec<Slot>,
    /// Where each slot's key starts in `keys`: read only for keys over 16 bytes, whose
    /// words do not hold all of them.
    starts: Vec<u32>,
    keys: Vec<u8>,
    shift: u32,
}

/// One slot of the index: a key's words inline, so that a key of up to 16 bytes (nearly
/// every OID) is found and confirmed by one slot load, with no second load of its bytes.
#[derive(Clone, Copy, Debug)]
struct Slot {
    first: u64,
    last: u64,
    /// The key's length, or `EMPTY`.
    len: u32,
    value: u32,
}

/// `Slot::len` of a slot that holds no key (no key is that long).
const EMPTY: u32 = u32::MAX;

/// An encoded OID as two words: its first eight bytes and its last eight (zero when it
/// is eight bytes or fewer), little-endian, zero-padded (`swar::window`), and its length.
/// Up to 16 bytes they are the whole OID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Words {
    first: u64,
    last: u64,
    len: usize,
}

impl Words {
    /// The words of an encoded OID.
    #[inline(always)]
    pub fn of(bytes: &[u8]) -> Words {
        let len = bytes.len();
        Words {
            first: if len > 0 { window(bytes, 0) } else { 0 },
            last: if len > 8 { window(bytes, len - 8) } else { 0 },
            len,
        }
    }

    /// Words computed elsewhere (`swar::joined_words`) for an OID of `len` bytes.
    #[inline(always)]
    pub(crate) fn new((first, last): (u64, u64), len: usize) -> Words {
        Words { first, last, len }
    }

    /// True when the words hold the whole OID.
    #[inline(always)]
    pub fn whole(&self) -> bool {
        self.len <= 16
    }
}

/// An encoded OID to look up, with its words loaded once.
#[derive(Clone, Copy, Debug)]
pub struct Key<'k> {
    bytes: &'k [u8],
    words: Words,
}

impl<'k> Key<'k> {
    /// The key of an encoded OID.
    #[inline(always)]
    pub fn new(bytes: &'k [u8]) -> Key<'k> {
        Key {
            bytes,
            words: Words::of(bytes),
        }
    }
}

/// FxHash-style mixing of a key's first and last eight bytes and its length.
#[inline(always)]
fn hash(w: &Words) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    ((w.first.wrapping_mul(K) ^ w.last).rotate_left(23) ^ w.len as u64).wrapping_mul(K)
}

impl ExactIndex {
    fn build(keys: &[Vec<u8>]) -> ExactIndex {
        let size = (keys.len() * 2).next_power_of_two().max(2);
        let empty = Slot {
            first: 0,
            last: 0,
            len: EMPTY,
            value: NONE,
        };
        let mut index = ExactIndex {
            slots: vec![empty; size],
            starts: vec![0; size],
            keys: Vec::new(),
            shift: 64 - size.trailing_zeros(),
        };
        for (value, key) in keys.iter().enumerate() {
            let w = Words::of(key);
            let mut at = (hash(&w) >> index.shift) as usize;
            while index.slots[at].len != EMPTY {
                at = (at + 1) & (size - 1);
            }
            index.slots[at] = Slot {
                first: w.first,
                last: w.last,
                len: key.len() as u32,
                value: value as u32,
            };
            index.starts[at] = index.keys.len() as u32;
            index.keys.extend_from_slice(key);
        }
        index
    }

    /// The value of the key whose words are `w`; for a key over 16 bytes, `rest` is
    /// given each candidate's stored bytes and confirms the one that is the key.
    #[inline(always)]
    fn find(&self, w: &Words, mut rest: impl FnMut(&[u8]) -> bool) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut at = (hash(w) >> self.shift) as usize;
        loop {
            let slot = self.slots.get(at)?;
            if slot.len as usize == w.len
                && slot.first == w.first
                && slot.last == w.last
                && (w.whole() || rest(&self.keys[self.starts[at] as usize..][..w.len]))
            {
                return Some(slot.value);
            }
            if slot.len == EMPTY {
                return None;
            }
            at = (at + 1) & mask;
        }
    }

    /// The value of `key`.
    #[inline(always)]
    fn get(&self, key: &Key<'_>) -> Option<u32> {
        self.find(&key.words, |stored| stored == key.bytes)
    }
}

/// The result of a prefix match: the value and how many key bytes it covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match<'t, T> {
    /// The value stored under the matched key.
    pub value: &'t T,
    /// Length in bytes of the matched key (a prefix of the looked-up OID).
    pub len: usize,
}

#[inline(always)]
fn mask(len: usize) -> u64 {
    if len >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * len)) - 1
    }
}

fn pack(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | b as u64)
}

impl<T> OidTrie<T> {
    /// Builds a trie from (encoded OID, value) pairs. On duplicate keys the first wins;
    /// `build` reports them so rule tables can refuse ambiguity.
    pub fn build(mut entries: Vec<(Vec<u8>, T)>) -> (OidTrie<T>, Vec<Vec<u8>>) {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut duplicates = Vec::new();
        let mut unique: Vec<(Vec<u8>, T)> = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            if unique.last().is_some_and(|(last, _)| *last == k) {
                duplicates.push(k);
            } else {
                unique.push((k, v));
            }
        }
        let keys: Vec<Vec<u8>> = unique.iter().map(|(k, _)| k.clone()).collect();
        let mut trie = OidTrie {
            nodes: Vec::new(),
            values: Vec::with_capacity(unique.len()),
            dense: Vec::new(),
            // Value indexes follow the sorted key order: the walk below pushes values
            // in that order too (a pre-order walk of sorted keys).
            index: ExactIndex::build(&keys),
        };
        let mut slots: Vec<Option<T>> = unique.into_iter().map(|(_, v)| Some(v)).collect();
        trie.nodes.push(Node {
            value: NONE,
            dense: NONE,
            ..Node::default()
        });
        if !keys.is_empty() {
            trie.fill(0, &keys, 0, keys.len(), 0, &mut slots);
        }
        (trie, duplicates)
    }

    /// Fills node `at` with the sorted keys [lo, hi), all of which share their first
    /// `depth` bytes (the bytes consumed up to and including this node's label).
    fn fill(
        &mut self,
        at: usize,
        keys: &[Vec<u8>],
        mut lo: usize,
        hi: usize,
        depth: usize,
        slots: &mut [Option<T>],
    ) {
        if keys[lo].len() == depth {
            self.nodes[at].value = self.values.len() as u32;
            let v = slots[lo].take().expect("each key is placed once");
            self.values.push(v);
            lo += 1;
        }
        // Group the rest by their next byte; each group becomes one child.
        let mut groups = Vec::new();
        let mut i = lo;
        while i < hi {
            let b = keys[i][depth];
            let mut j = i + 1;
            while j < hi && keys[j][depth] == b {
                j += 1;
            }
            groups.push((b, i, j));
            i = j;
        }
        // Siblings are contiguous, so a child is found by its position.
        let first = self.nodes.len();
        self.nodes.resize(
            first + groups.len(),
            Node {
                value: NONE,
                dense: NONE,
                ..Node::default()
            },
        );
        let node = &mut self.nodes[at];
        node.first_child = first as u32;
        node.child_count = groups.len() as u16;
        if groups.len() <= EDGES_MAX {
            let edges: Vec<u8> = groups.iter().map(|g| g.0).collect();
            node.edges = pack(&edges);
        } else {
            let mut table = [NONE; 256];
            for (n, g) in groups.iter().enumerate() {
                table[g.0 as usize] = (first + n) as u32;
            }
            node.dense = self.dense.len() as u32;
            self.dense.push(table);
        }
        for (n, &(_, glo, ghi)) in groups.iter().enumerate() {
            // The child's label runs from `depth` to the longest common prefix of its
            // group (first and last suffice: the keys are sorted), at most LABEL_MAX.
            let (a, z) = (&keys[glo], &keys[ghi - 1]);
            let mut end = depth + 1;
            while end < a.len() && end < z.len() && a[end] == z[end] && end - depth < LABEL_MAX {
                end += 1;
            }
            let child = &mut self.nodes[first + n];
            child.label = pack(&a[depth..end]);
            child.label_len = (end - depth) as u8;
            self.fill(first + n, keys, glo, ghi, end, slots);
        }
    }

    /// The longest key that is a prefix of `oid` (or `oid` itself).
    #[inline]
    pub fn longest_prefix(&self, oid: &[u8]) -> Option<Match<'_, T>> {
        self.longest_prefix_by(oid, |_, _| true)
    }

    /// The longest key that is a prefix of `oid` and whose value `accept` takes; `accept`
    /// also learns whether the key is all of `oid` (an exact match).
    #[inline]
    pub fn longest_prefix_by(
        &self,
        oid: &[u8],
        accept: impl FnMut(&T, bool) -> bool,
    ) -> Option<Match<'_, T>> {
        self.longest_prefix_by_key(Key::new(oid), accept)
    }

    /// `longest_prefix_by` for a key whose words are loaded already.
    #[inline(always)]
    pub fn longest_prefix_by_key(
        &self,
        key: Key<'_>,
        accept: impl FnMut(&T, bool) -> bool,
    ) -> Option<Match<'_, T>> {
        let found = self.index.get(&key);
        self.found_or_walk(found, key.words.len, || key.bytes, accept)
    }

    /// `longest_prefix_by` for an OID known by its words, whose bytes `bytes` writes
    /// only if they are needed: for a walk, or to confirm a key over 16 bytes. A v1
    /// trap's notification OID is found so without being built.
    #[inline(always)]
    pub fn longest_prefix_by_words<'o>(
        &self,
        words: Words,
        bytes: impl FnOnce() -> &'o [u8],
        accept: impl FnMut(&T, bool) -> bool,
    ) -> Option<Match<'_, T>> {
        if !words.whole() {
            return self.longest_prefix_by_key(Key::new(bytes()), accept);
        }
        let found = self.index.find(&words, |_| true);
        let bytes = || {
            let b = bytes();
            debug_assert_eq!(Words::of(b), words);
            b
        };
        self.found_or_walk(found, words.len, bytes, accept)
    }

    /// The key the index `found` (the whole OID, `len` bytes) if `accept` takes it: no
    /// longer prefix exists. Else the walk, over the OID's `bytes`.
    #[inline(always)]
    fn found_or_walk<'o>(
        &self,
        found: Option<u32>,
        len: usize,
        bytes: impl FnOnce() -> &'o [u8],
        mut accept: impl FnMut(&T, bool) -> bool,
    ) -> Option<Match<'_, T>> {
        if let Some(v) = found {
            let value = &self.values[v as usize];
            if accept(value, true) {
                return Some(Match { value, len });
            }
        }
        self.walk(bytes(), accept)
    }

    /// The longest prefix, found by walking the trie from its root.
    #[inline(never)]
    fn walk(&self, oid: &[u8], mut accept: impl FnMut(&T, bool) -> bool) -> Option<Match<'_, T>> {
        let len = oid.len();
        let mut best = None;
        let mut node = &self.nodes[0];
        let mut pos = 0usize;
        loop {
            if node.value != NONE {
                let value = &self.values[node.value as usize];
                if accept(value, pos == len) {
                    best = Some(Match { value, len: pos });
                }
            }
            let Some(&next) = oid.get(pos) else {
                return best;
            };
            let child = if node.dense == NONE {
                // Find `next` among the inline edge bytes: exact zero-byte test.
                let zero = zero_bytes(node.edges ^ (next as u64 * 0x0101_0101_0101_0101));
                let i = zero.trailing_zeros() / 8;
                if zero == 0 || i >= node.child_count as u32 {
                    return best;
                }
                node.first_child + i
            } else {
                self.dense[node.dense as usize][next as usize]
            };
            let Some(child) = self.nodes.get(child as usize) else {
                return best;
            };
            node = child;
            let l = node.label_len as usize;
            if len - pos < l || window(oid, pos) & mask(l) != node.label {
                return best;
            }
            pos += l;
        }
    }

    /// The value stored under exactly `oid`: one hash probe, no walk.
    #[inline]
    pub fn exact(&self, oid: &[u8]) -> Option<&T> {
        self.index
            .get(&Key::new(oid))
            .map(|v| &self.values[v as usize])
    }

    /// How many keys the trie holds.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when the trie holds no key.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Bytes of memory the compiled arrays take.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.len() * core::mem::size_of::<Node>()
            + self.values.len() * core::mem::size_of::<T>()
            + self.dense.len() * 256 * 4
            + self.index.slots.len() * (core::mem::size_of::<Slot>() + 4)
            + self.index.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::oid::oid;
    use proptest::prelude::*;

    fn trie(keys: &[&str]) -> OidTrie<usize> {
        let entries = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (oid(k).as_bytes().to_vec(), i))
            .collect();
        OidTrie::build(entries).0
    }

    #[test]
    fn exact_and_longest_prefix() {
        let t = trie(&[
            "1.3.6.1.4.1.318.0.7",
            "1.3.6.1.4.1.318.0.5",
            "1.3.6.1.4.1.318",
            "1.3.6.1.4.1.50001",
            "1.3.6.1.2.1.33.2.1",
        ]);
        let at = |s: &str| {
            t.longest_prefix(oid(s).as_bytes())
                .map(|m| (*m.value, m.len))
        };
        assert_eq!(t.exact(oid("1.3.6.1.4.1.318.0.7").as_bytes()), Some(&0));
        assert_eq!(t.exact(oid("1.3.6.1.4.1.318.0.5").as_bytes()), Some(&1));
        assert_eq!(t.exact(oid("1.3.6.1.4.1.318.0.9").as_bytes()), None);
        assert_eq!(at("1.3.6.1.4.1.318.0.9"), Some((2, 7)));
        assert_eq!(at("1.3.6.1.4.1.50001.0.1"), Some((3, 8)));
        // 3180 is not under 318: the arcs differ though "318" is a decimal prefix.
        assert_eq!(at("1.3.6.1.4.1.3180.0.1"), None);
        // 1.3.6.1.4.1.318.0 is shorter than the trap keys: only the enterprise matches.
        assert_eq!(at("1.3.6.1.4.1.318.0"), Some((2, 7)));
        assert_eq!(at("1.3.6.1.2.1.33.2"), None);
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn duplicates_are_reported() {
        let k = oid("1.3.6.1.4.1.318.0.7").as_bytes().to_vec();
        let (t, dups) = OidTrie::build(vec![(k.clone(), 1), (k.clone(), 2)]);
        assert_eq!(dups, vec![k.clone()]);
        assert_eq!(t.exact(&k), Some(&1));
    }

    #[test]
    fn empty_trie_matches_nothing() {
        let t: OidTrie<u8> = OidTrie::build(Vec::new()).0;
        assert!(t.is_empty());
        assert_eq!(t.longest_prefix(&[0x2b, 6]), None);
    }

    fn arcs() -> impl Strategy<Value = Vec<u32>> {
        // Small arcs collide often, which is what exercises shared prefixes.
        proptest::collection::vec(prop_oneof![0u32..4, 0u32..200, any::<u32>()], 0..6).prop_map(
            |mut tail| {
                let mut v = vec![1, 3];
                v.append(&mut tail);
                v
            },
        )
    }

    proptest! {
        /// The trie agrees with a linear scan for the longest arc prefix.
        #[test]
        fn agrees_with_linear_scan(keys in proptest::collection::vec(arcs(), 0..40),
                                   probe in arcs()) {
            let bufs: Vec<_> = keys.iter().map(|a| crate::wire::OidBuf::from_arcs(a).unwrap()).collect();
            let entries = bufs.iter().enumerate().map(|(i, b)| (b.as_bytes().to_vec(), i)).collect();
            let (t, _) = OidTrie::build(entries);
            let p = crate::wire::OidBuf::from_arcs(&probe).unwrap();
            let expected = bufs
                .iter()
                .enumerate()
                .filter(|(_, k)| p.as_oid().starts_with(k.as_oid()))
                .max_by_key(|(i, k)| (k.as_bytes().len(), core::cmp::Reverse(*i)))
                .map(|(_, k)| k.as_bytes().len());
            let got = t.longest_prefix(p.as_bytes()).map(|m| m.len);
            prop_assert_eq!(got, expected);
            // Found by its words, the bytes asked for only when needed: the same answer.
            let by_words = t
                .longest_prefix_by_words(Words::of(p.as_bytes()), || p.as_bytes(), |_, _| true)
                .map(|m| m.len);
            prop_assert_eq!(by_words, expected);
            if let Some(m) = t.longest_prefix(p.as_bytes()) {
                prop_assert!(p.as_oid().starts_with(bufs[*m.value].as_oid()));
            }
            // Every key finds its own value (the first, for a duplicate), by hash and by walk.
            for (i, k) in bufs.iter().enumerate() {
                let first = bufs.iter().position(|b| b == k).expect("present");
                prop_assert_eq!(t.exact(k.as_bytes()), Some(&first), "key {}", i);
                if Words::of(k.as_bytes()).whole() {
                    // A key of up to 16 bytes is found by its words alone.
                    let hit = t.longest_prefix_by_words(
                        Words::of(k.as_bytes()),
                        || panic!("the words hold the whole key"),
                        |_, exact| exact,
                    );
                    prop_assert_eq!(hit.map(|m| *m.value), Some(first));
                }
                let walked = t.longest_prefix_by(k.as_bytes(), |_, exact| !exact);
                if let Some(m) = walked {
                    prop_assert!(m.len < k.as_bytes().len());
                }
            }
        }
    }
}
