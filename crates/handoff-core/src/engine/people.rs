//! The table of people: every person the engine holds state for, by id.

use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;
use std::hash::BuildHasher;

use super::person::Person;

/// People by id. Each slot is one pointer and the id lives inline in its `Person`, so a
/// table of millions of people keeps no second copy of each id and no 32-byte
/// `(String, Box)` slot: a ten-million-event journal holds about three million people,
/// and at that size the slots alone were 130 MB.
#[derive(Debug, Default)]
pub(super) struct People {
    table: HashTable<Box<Person>>,
    hasher: DefaultHashBuilder,
}

impl People {
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    pub(super) fn get(&self, id: &str) -> Option<&Person> {
        let hash = self.hasher.hash_one(id);
        self.table.find(hash, |p| p.id == id).map(|p| &**p)
    }

    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut Person> {
        let hash = self.hasher.hash_one(id);
        self.table.find_mut(hash, |p| p.id == id).map(|p| &mut **p)
    }

    /// The person's state, created on first mention; the id is hashed once. Most calls
    /// find the person, so they probe for a match only, as `HashMap::entry_ref` does; a
    /// new person then takes the first free slot.
    pub(super) fn get_or_insert(&mut self, id: &str) -> &mut Person {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(id);
        match self.table.find_entry(hash, |p| p.id == id) {
            Ok(found) => found.into_mut(),
            Err(absent) => absent
                .into_table()
                .insert_unique(hash, Box::new(Person::new(id)), |p| {
                    hasher.hash_one(p.id.as_str())
                })
                .into_mut(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_is_found_by_the_id_it_was_created_under_and_no_other() {
        let mut people = People::default();
        // Ids longer than 24 bytes are stored on the heap, shorter ones inline.
        let long = "P-0123456789ABCDEFGHIJKLMNOPQRS";
        people.get_or_insert("P-1").latest_status = None;
        people.get_or_insert(long);
        for i in 0..10_000 {
            people.get_or_insert(&format!("P-{i}"));
        }
        assert_eq!(people.len(), 10_001);
        assert_eq!(people.get(long).map(|p| p.id.as_str()), Some(long));
        assert_eq!(people.get("P-9999").map(|p| p.id.as_str()), Some("P-9999"));
        assert!(people.get("P-10000").is_none());
        assert!(people.get_mut("P-0").is_some());
    }

    #[test]
    fn a_person_is_128_bytes_a_size_class_of_the_allocator() {
        assert_eq!(std::mem::size_of::<Person>(), 128);
    }

    /// The rare parts stay as small as before R6: its state (a detention, what ICE
    /// reported) is boxed again, since most people with rare parts have neither.
    #[test]
    fn the_rare_parts_stay_small() {
        use super::super::person::{Detention, Rare};
        assert_eq!(std::mem::size_of::<Rare>(), 80);
        assert!(std::mem::size_of::<Detention>() <= 48);
    }
}
