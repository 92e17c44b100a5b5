//! The in-memory key-value engine: an ordered map per store.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::kv::{KeyValueBytesStoreSupplier, KeyValueIter, KeyValueStore, StateStore};
use crate::{StateError, StoreContext};

/// A key-value store held in an ordered map. Not persistent: after a restart it is rebuilt
/// from its changelog.
#[derive(Debug)]
pub struct InMemoryKeyValueStore {
    name: String,
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    open: bool,
}

impl InMemoryKeyValueStore {
    /// Creates an empty, open store.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            map: BTreeMap::new(),
            open: true,
        }
    }

    fn check_open(&self) -> Result<(), StateError> {
        if self.open {
            Ok(())
        } else {
            Err(StateError::NotOpen {
                store: self.name.clone(),
            })
        }
    }
}

/// The entries of `map` within `from` and `to`, cloned, descending if `reverse`. An inverted
/// range is empty, as in Kafka Streams, rather than a panic.
pub(crate) fn scan_map<'a>(
    map: &'a BTreeMap<Vec<u8>, Vec<u8>>,
    from: Bound<&[u8]>,
    to: Bound<&[u8]>,
    reverse: bool,
) -> KeyValueIter<'a> {
    if !valid_bounds(from, to) {
        return Box::new(std::iter::empty());
    }
    let range = map.range::<[u8], _>((from, to));
    let clone = |(k, v): (&Vec<u8>, &Vec<u8>)| Ok((k.clone(), v.clone()));
    if reverse {
        Box::new(range.rev().map(clone))
    } else {
        Box::new(range.map(clone))
    }
}

/// Whether `from..to` is a range that `BTreeMap::range` accepts.
fn valid_bounds(from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
    match (from, to) {
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a), Bound::Excluded(b)) | (Bound::Excluded(a), Bound::Included(b)) => {
            a < b
        }
        (Bound::Excluded(a), Bound::Excluded(b)) => a < b,
        _ => true,
    }
}

impl StateStore for InMemoryKeyValueStore {
    fn name(&self) -> &str {
        &self.name
    }
    fn persistent(&self) -> bool {
        false
    }
    fn flush(&mut self) -> Result<(), StateError> {
        self.check_open()
    }
    fn close(&mut self) -> Result<(), StateError> {
        self.open = false;
        self.map.clear();
        Ok(())
    }
    fn is_open(&self) -> bool {
        self.open
    }
}

impl KeyValueStore for InMemoryKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.check_open()?;
        Ok(self.map.get(key).cloned())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        self.check_open()?;
        match self.map.get_mut(key) {
            Some(existing) => {
                existing.clear();
                existing.extend_from_slice(value);
            }
            None => {
                self.map.insert(key.to_vec(), value.to_vec());
            }
        }
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.check_open()?;
        Ok(self.map.remove(key))
    }

    fn range<'a>(
        &'a self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<KeyValueIter<'a>, StateError> {
        self.check_open()?;
        Ok(scan_map(&self.map, from, to, false))
    }

    fn reverse_range<'a>(
        &'a self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<KeyValueIter<'a>, StateError> {
        self.check_open()?;
        Ok(scan_map(&self.map, from, to, true))
    }

    fn approximate_num_entries(&self) -> Result<u64, StateError> {
        self.check_open()?;
        Ok(self.map.len() as u64)
    }
}

/// Supplies [`InMemoryKeyValueStore`]s.
#[derive(Debug, Clone)]
pub struct InMemoryKeyValueStoreSupplier {
    name: String,
}

impl InMemoryKeyValueStoreSupplier {
    /// A supplier of in-memory stores called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

impl KeyValueBytesStoreSupplier for InMemoryKeyValueStoreSupplier {
    fn name(&self) -> &str {
        &self.name
    }
    fn get(&self, _ctx: &StoreContext) -> Result<Box<dyn KeyValueStore>, StateError> {
        Ok(Box::new(InMemoryKeyValueStore::new(self.name.clone())))
    }
    fn persistent(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn collect(iter: KeyValueIter<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
        iter.map(|r| r.unwrap()).collect()
    }

    #[test]
    fn put_get_delete_and_put_if_absent() {
        let mut s = InMemoryKeyValueStore::new("s");
        assert_eq!(s.get(b"a").unwrap(), None);
        s.put(b"a", b"1").unwrap();
        assert_eq!(s.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.put_if_absent(b"a", b"2").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.put_if_absent(b"b", b"2").unwrap(), None);
        assert_eq!(s.delete(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get(b"a").unwrap(), None);
        assert_eq!(s.approximate_num_entries().unwrap(), 1);
    }

    #[test]
    fn ranges_prefix_and_inverted_bounds() {
        let mut s = InMemoryKeyValueStore::new("s");
        s.put_all(&[(b"a1", b"x"), (b"a2", b"y"), (b"b1", b"z")])
            .unwrap();
        let keys = |v: Vec<(Vec<u8>, Vec<u8>)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(collect(s.prefix_scan(b"a").unwrap())),
            vec![b"a1".to_vec(), b"a2".to_vec()]
        );
        assert_eq!(
            keys(collect(
                s.reverse_range(Bound::Included(b"a2"), Bound::Unbounded)
                    .unwrap()
            )),
            vec![b"b1".to_vec(), b"a2".to_vec()]
        );
        // An inverted range is empty, not a panic.
        assert!(
            collect(
                s.range(Bound::Included(b"b"), Bound::Included(b"a"))
                    .unwrap()
            )
            .is_empty()
        );
        assert!(
            collect(
                s.range(Bound::Excluded(b"a1"), Bound::Excluded(b"a1"))
                    .unwrap()
            )
            .is_empty()
        );
    }

    #[test]
    fn closed_store_refuses_use() {
        let mut s = InMemoryKeyValueStore::new("s");
        s.close().unwrap();
        assert!(matches!(s.get(b"a"), Err(StateError::NotOpen { .. })));
    }

    proptest! {
        #[test]
        fn behaves_like_a_btreemap(ops in proptest::collection::vec((0u8..3, proptest::collection::vec(0u8..4, 0..3), proptest::collection::vec(any::<u8>(), 0..3)), 0..64),
                                   lo in proptest::collection::vec(0u8..4, 0..3),
                                   hi in proptest::collection::vec(0u8..4, 0..3)) {
            let mut s = InMemoryKeyValueStore::new("s");
            let mut model = BTreeMap::new();
            for (op, k, v) in ops {
                match op {
                    0 => { s.put(&k, &v).unwrap(); model.insert(k, v); }
                    1 => { prop_assert_eq!(s.delete(&k).unwrap(), model.remove(&k)); }
                    _ => { prop_assert_eq!(s.get(&k).unwrap(), model.get(&k).cloned()); }
                }
            }
            let got = collect(s.range(Bound::Included(&lo), Bound::Excluded(&hi)).unwrap());
            let want: Vec<_> = model.iter().filter(|(k, _)| **k >= lo && **k < hi).map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(got, want);
        }
    }
}
