//! The table a grammar looks each received field name up in: every CEF extension key,
//! pipe key and JSON member of every message goes through one.
//!
//! `FxHashMap<String, _>` spent about a hundred instructions a lookup (hashing the whole
//! name, probing, then a `memcmp`). Here the hash mixes the name's first and last eight
//! bytes and its length, the table is at most half full, and an entry is matched by its
//! first eight bytes as one integer and its length: only names longer than eight bytes
//! are compared byte by byte.

use crate::event::node::key_prefix;

#[derive(Debug)]
pub struct KeyTable<V> {
    /// One more than an index into `entries`, or 0 for an empty slot. A power of two, at
    /// least twice as long as `entries`.
    slots: Vec<u32>,
    entries: Vec<Entry<V>>,
}

#[derive(Debug)]
struct Entry<V> {
    prefix: u64,
    key: Box<str>,
    value: V,
}

impl<V> Default for KeyTable<V> {
    fn default() -> Self {
        KeyTable {
            slots: Vec::new(),
            entries: Vec::new(),
        }
    }
}

fn hash(prefix: u64, key: &[u8]) -> u64 {
    let tail = match key.last_chunk::<8>() {
        Some(tail) if key.len() > 8 => u64::from_le_bytes(*tail),
        _ => 0,
    };
    (prefix ^ tail.rotate_left(29) ^ key.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl<V> KeyTable<V> {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The slot where `key` is, or the empty slot where it would go.
    // Inlined: a call saving the registers it uses cost as much as its common case.
    #[inline(always)]
    fn find(&self, prefix: u64, key: &str) -> (usize, Option<usize>) {
        let mask = self.slots.len() - 1;
        // The multiply's high bits are its best mixed.
        let mut at = (hash(prefix, key.as_bytes()) >> 32) as usize & mask;
        loop {
            let Some(entry) = self.slots[at].checked_sub(1) else {
                return (at, None);
            };
            let candidate = &self.entries[entry as usize];
            // Equal prefixes and lengths of at most eight bytes: the prefixes held both.
            if candidate.prefix == prefix
                && candidate.key.len() == key.len()
                && (key.len() <= 8 || candidate.key.as_bytes() == key.as_bytes())
            {
                return (at, Some(entry as usize));
            }
            at = (at + 1) & mask;
        }
    }

    #[inline(always)]
    pub fn get(&self, key: &str) -> Option<&V> {
        if self.entries.is_empty() {
            return None;
        }
        let (_, entry) = self.find(key_prefix(key.as_bytes()), key);
        entry.map(|i| &self.entries[i].value)
    }

    /// The value under `key`, inserted as `V::default()` when absent (building a grammar).
    pub fn get_or_insert_default(&mut self, key: &str) -> &mut V
    where
        V: Default,
    {
        if self.slots.len() < 2 * (self.entries.len() + 1) {
            self.grow();
        }
        let prefix = key_prefix(key.as_bytes());
        let index = match self.find(prefix, key) {
            (_, Some(index)) => index,
            (at, None) => {
                self.entries.push(Entry {
                    prefix,
                    key: key.into(),
                    value: V::default(),
                });
                self.slots[at] = self.entries.len() as u32;
                self.entries.len() - 1
            }
        };
        &mut self.entries[index].value
    }

    fn grow(&mut self) {
        let size = (2 * (self.entries.len() + 1)).next_power_of_two().max(8);
        self.slots = vec![0; 2 * size];
        let mask = self.slots.len() - 1;
        for (i, entry) in self.entries.iter().enumerate() {
            let mut at = (hash(entry.prefix, entry.key.as_bytes()) >> 32) as usize & mask;
            while self.slots[at] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = i as u32 + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    proptest::proptest! {
        /// Looks up as a `HashMap` does, with names that share prefixes and lengths and
        /// differ only past eight bytes or by a trailing NUL.
        #[test]
        fn finds_what_a_hash_map_finds(
            inserted in proptest::collection::vec("[ab\0]{0,3}|deviceCustom[ab]{0,4}|[a-z]{1,12}", 0..60),
            looked_up in proptest::collection::vec("[ab\0]{0,3}|deviceCustom[ab]{0,4}|[a-z]{1,12}", 0..60),
        ) {
            let mut table = KeyTable::<Vec<usize>>::default();
            let mut map = HashMap::<String, Vec<usize>>::new();
            for (i, key) in inserted.iter().enumerate() {
                table.get_or_insert_default(key).push(i);
                map.entry(key.clone()).or_default().push(i);
            }
            proptest::prop_assert_eq!(table.len(), map.len());
            for key in inserted.iter().chain(&looked_up) {
                proptest::prop_assert_eq!(table.get(key), map.get(key));
            }
        }
    }
}
