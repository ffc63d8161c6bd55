//! Slots: a fixed number of places, each holding an entity or vacant, whose
//! indices never change while the appliance runs. The data plane keeps its
//! ports and VRs in slots, so that one added or removed at run time leaves
//! every other's index (and the counters, TX buffers and sessions kept by that
//! index) as it was; a vacant slot is taken again by the next one added.
use std::ops::{Index, IndexMut};

/// `capacity` places, each `Some` entity or vacant.
#[derive(Debug, Clone)]
pub struct Slots<T> {
    items: Vec<Option<T>>,
}

impl<T> Slots<T> {
    /// `capacity` places, the first ones holding `items` in order.
    ///
    /// # Panics
    /// If `items` has more than `capacity` entities (the config's checks bound them).
    pub fn new(items: impl IntoIterator<Item = T>, capacity: usize) -> Slots<T> {
        let mut items: Vec<Option<T>> = items.into_iter().map(Some).collect();
        assert!(items.len() <= capacity, "more entities than slots");
        items.resize_with(capacity, || None);
        Slots { items }
    }

    /// The number of places, vacant ones included: the bound of every index.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The entity in place `index`, if any.
    #[inline(always)]
    pub fn get(&self, index: usize) -> Option<&T> {
        self.items.get(index)?.as_ref()
    }

    /// The entity in place `index`, if any, to change.
    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.items.get_mut(index)?.as_mut()
    }

    /// The entities with their indices, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> + '_ {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(i, t)| Some((i, t.as_ref()?)))
    }

    /// The entities, in index order.
    pub fn values(&self) -> impl Iterator<Item = &T> + '_ {
        self.items.iter().flatten()
    }

    /// The index of the first entity `f` accepts.
    pub fn position(&self, f: impl Fn(&T) -> bool) -> Option<usize> {
        self.iter().find(|(_, t)| f(t)).map(|(i, _)| i)
    }

    /// The first `n` vacant places, in index order; None if there are fewer.
    pub fn vacant(&self, n: usize) -> Option<Vec<usize>> {
        let free: Vec<usize> = (0..self.items.len())
            .filter(|&i| self.items[i].is_none())
            .take(n)
            .collect();
        (free.len() == n).then_some(free)
    }

    /// Puts `item` in place `index`, which must be vacant; returns false (and
    /// changes nothing) if it is not.
    pub fn fill(&mut self, index: usize, item: T) -> bool {
        match self.items.get_mut(index) {
            Some(place @ None) => {
                *place = Some(item);
                true
            }
            _ => false,
        }
    }

    /// Empties place `index`, returning what it held.
    pub fn take(&mut self, index: usize) -> Option<T> {
        self.items.get_mut(index)?.take()
    }
}

impl<T> Index<usize> for Slots<T> {
    type Output = T;

    /// The entity in place `index`. Within one published model every index a
    /// frame or a table leads to names an entity of that model.
    ///
    /// # Panics
    /// If the place is vacant.
    #[inline(always)]
    fn index(&self, index: usize) -> &T {
        self.items[index].as_ref().expect("an occupied slot")
    }
}

impl<T> IndexMut<usize> for Slots<T> {
    /// As [`Index::index`], to change.
    #[inline(always)]
    fn index_mut(&mut self, index: usize) -> &mut T {
        self.items[index].as_mut().expect("an occupied slot")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_stay_and_vacant_places_are_taken_again_in_order() {
        let mut s = Slots::new(["a", "b", "c"], 5);
        assert_eq!(s.len(), 5);
        assert_eq!(s.take(1), Some("b"));
        assert_eq!(s.iter().collect::<Vec<_>>(), [(0, &"a"), (2, &"c")]);
        assert_eq!(s[2], "c", "removing b moved nothing");
        assert_eq!(s.vacant(2), Some(vec![1, 3]));
        assert_eq!(s.vacant(4), None, "only three places are vacant");
        assert!(s.fill(1, "d"));
        assert!(!s.fill(1, "e"), "an occupied place is not overwritten");
        assert_eq!(s[1], "d");
        assert_eq!(s.position(|&x| x == "c"), Some(2));
        assert_eq!(s.get(4), None);
        assert_eq!(s.get(9), None);
        assert_eq!(s.values().count(), 3);
    }

    #[test]
    #[should_panic(expected = "an occupied slot")]
    fn a_vacant_place_is_not_an_entity() {
        let s = Slots::new(["a"], 2);
        let _ = s[1];
    }
}
