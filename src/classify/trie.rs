//! A compiled trie over encoded OID bytes: exact and longest-prefix match.
//!
//! Keys are the BER content octets of OIDs. Because each arc's base-128 encoding is
//! prefix-free, a key that is a byte prefix of an encoded OID is also an arc prefix of
//! it, so matching walks the packet's bytes as they are, with no arc decoding. The trie
//! is path-compressed and flattened into three arrays (nodes, edge bytes, label bytes)
//! once at start-up; lookups allocate nothing and touch a handful of cache lines.

/// Value slot meaning "no key ends here".
const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Node {
    /// Start of this node's label in `labels` (the bytes consumed on entering it).
    label: u32,
    label_len: u32,
    /// Start of this node's children in `edges` / `targets`.
    first_child: u32,
    child_count: u32,
    /// Index into `values`, or NONE.
    value: u32,
}

/// An immutable OID trie mapping encoded OIDs to values of type `T`.
#[derive(Clone, Debug)]
pub struct OidTrie<T> {
    nodes: Vec<Node>,
    /// The first byte of each child's label, for choosing a child.
    edges: Vec<u8>,
    /// The node index of each child, parallel to `edges`.
    targets: Vec<u32>,
    labels: Vec<u8>,
    values: Vec<T>,
}

/// The result of a prefix match: the value and how many key bytes it covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match<'t, T> {
    /// The value stored under the matched key.
    pub value: &'t T,
    /// Length in bytes of the matched key (a prefix of the looked-up OID).
    pub len: usize,
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
        let mut trie = OidTrie {
            nodes: Vec::new(),
            edges: Vec::new(),
            targets: Vec::new(),
            labels: Vec::new(),
            values: Vec::with_capacity(unique.len()),
        };
        let keys: Vec<Vec<u8>> = unique.iter().map(|(k, _)| k.clone()).collect();
        let mut slots: Vec<Option<T>> = unique.into_iter().map(|(_, v)| Some(v)).collect();
        trie.nodes.push(Node {
            label: 0,
            label_len: 0,
            first_child: 0,
            child_count: 0,
            value: NONE,
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
        let first_child = self.edges.len();
        self.nodes[at].first_child = first_child as u32;
        self.nodes[at].child_count = groups.len() as u32;
        for &(b, _, _) in &groups {
            self.edges.push(b);
            self.targets.push(0);
        }
        for (n, (_, glo, ghi)) in groups.into_iter().enumerate() {
            // The child's label runs from `depth` to the longest common prefix of its
            // group (first and last suffice: the keys are sorted).
            let (a, z) = (&keys[glo], &keys[ghi - 1]);
            let mut end = depth + 1;
            while end < a.len() && end < z.len() && a[end] == z[end] {
                end += 1;
            }
            let child = self.nodes.len();
            self.nodes.push(Node {
                label: self.labels.len() as u32,
                label_len: (end - depth) as u32,
                first_child: 0,
                child_count: 0,
                value: NONE,
            });
            self.labels.extend_from_slice(&a[depth..end]);
            self.targets[first_child + n] = child as u32;
            self.fill(child, keys, glo, ghi, end, slots);
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
        mut accept: impl FnMut(&T, bool) -> bool,
    ) -> Option<Match<'_, T>> {
        let mut best = None;
        let mut node = &self.nodes[0];
        let mut pos = 0usize;
        loop {
            if node.value != NONE {
                let value = &self.values[node.value as usize];
                if accept(value, pos == oid.len()) {
                    best = Some(Match { value, len: pos });
                }
            }
            let Some(&next) = oid.get(pos) else {
                return best;
            };
            let first = node.first_child as usize;
            let edges = &self.edges[first..first + node.child_count as usize];
            let Some(i) = memchr::memchr(next, edges) else {
                return best;
            };
            node = &self.nodes[self.targets[first + i] as usize];
            let label = &self.labels[node.label as usize..(node.label + node.label_len) as usize];
            if oid.len() - pos < label.len() || oid[pos..pos + label.len()] != *label {
                return best;
            }
            pos += label.len();
        }
    }

    /// The value stored under exactly `oid`.
    #[inline]
    pub fn exact(&self, oid: &[u8]) -> Option<&T> {
        match self.longest_prefix(oid) {
            Some(m) if m.len == oid.len() => Some(m.value),
            _ => None,
        }
    }

    /// How many keys the trie holds.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when the trie holds no key.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Bytes of memory the compiled arrays take (for the record, and the benchmark).
    pub fn heap_bytes(&self) -> usize {
        self.nodes.len() * core::mem::size_of::<Node>()
            + self.edges.len()
            + self.targets.len() * 4
            + self.labels.len()
            + self.values.len() * core::mem::size_of::<T>()
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
            if let Some(m) = t.longest_prefix(p.as_bytes()) {
                prop_assert!(p.as_oid().starts_with(bufs[*m.value].as_oid()));
            }
        }
    }
}
