//! Typed indices of a site's UPSes and recorders.
//!
//! Every machine keeps its per-UPS and per-recorder state in vectors in the order of the
//! site file; a `UpsId` indexes only the first kind and a `RecorderId` only the second,
//! so that a recorder's index can never look up a UPS (or an old site's index a new
//! site's entry: a reload's `Remap` is the one way from one to the other).

use std::ops::{Index, IndexMut};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u32);

        impl $name {
            /// The id of the entry at `index` (a site holds fewer than 2³² of them:
            /// `config` refuses more).
            pub const fn new(index: usize) -> $name {
                $name(index as u32)
            }

            /// Its index in the site's vector.
            pub const fn index(self) -> usize {
                self.0 as usize
            }

            /// Every id of a vector of `len` entries, in order.
            pub fn all(len: usize) -> impl DoubleEndedIterator<Item = $name> + Clone {
                (0..len).map($name::new)
            }

            /// Each entry of `items` with its id.
            pub fn enumerate<T>(items: &[T]) -> impl DoubleEndedIterator<Item = ($name, &T)> {
                items.iter().enumerate().map(|(i, t)| ($name::new(i), t))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl<T> Index<$name> for [T] {
            type Output = T;
            fn index(&self, id: $name) -> &T {
                &self[id.index()]
            }
        }

        impl<T> IndexMut<$name> for [T] {
            fn index_mut(&mut self, id: $name) -> &mut T {
                &mut self[id.index()]
            }
        }

        impl<T> Index<$name> for Vec<T> {
            type Output = T;
            fn index(&self, id: $name) -> &T {
                &self[id.index()]
            }
        }

        impl<T> IndexMut<$name> for Vec<T> {
            fn index_mut(&mut self, id: $name) -> &mut T {
                &mut self[id.index()]
            }
        }
    };
}

id! {
    /// A UPS of the site: its place in `Site::upses`.
    UpsId
}

id! {
    /// A recorder of the site: its place in `Site::recorders`.
    RecorderId
}

id! {
    /// A switched PDU of the site: its place in `Site::pdus`.
    PduId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_indexes_its_own_vector_in_site_order() {
        let names = vec!["ups-a", "ups-b"];
        let ids: Vec<UpsId> = UpsId::all(names.len()).collect();
        assert_eq!(names[ids[1]], "ups-b");
        let pairs: Vec<(UpsId, &&str)> = UpsId::enumerate(&names).collect();
        assert_eq!(pairs[0], (UpsId(0), &"ups-a"));
        let mut told = vec![false; 3];
        told[RecorderId(2)] = true;
        assert_eq!(told, [false, false, true]);
    }
}
