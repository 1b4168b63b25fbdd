//! Records served, kept in memory so that the next read of one does not fetch its ciphertext
//! from the database. Only what is stored at rest is kept (patient, category, ciphertext,
//! wrapped key and nonces; never plaintext), bounded in bytes, each entry for a limited time:
//! a record deleted or changed in the database is served as it was for at most that long.
//! Nothing about consent is kept here: every read still asks the chain.

use super::crypto::Sealed;
use alloy::primitives::{Address, B256};
use medrec_protocol::records::Opening;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A record as a read needs it: whose it is, its opening (category and salt), and its sealed
/// bytes.
#[derive(Debug)]
pub struct Cached {
    /// The record's patient.
    pub patient: Address,
    /// The record's category and salt, which open its pointer's commitment.
    pub opening: Opening,
    /// The SHA-256 of its bytes.
    pub content_hash: B256,
    /// The record as stored.
    pub sealed: Sealed,
}

impl Cached {
    fn bytes(&self) -> usize {
        let s = &self.sealed;
        s.data_nonce.len() + s.ciphertext.len() + s.key_nonce.len() + s.wrapped_key.len() + 128
    }
}

/// The cache: at most `max_bytes` of records, each kept at most `ttl`.
pub struct RecordCache {
    max_bytes: usize,
    ttl: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<B256, (Arc<Cached>, Instant)>,
    /// Insertion order, oldest first; an id whose map entry has another time than its place
    /// here was inserted again and is skipped when this place is reached.
    order: VecDeque<(B256, Instant)>,
    bytes: usize,
}

impl RecordCache {
    /// A cache of at most `max_bytes`, entries kept at most `ttl` (either zero: keeps nothing).
    pub fn new(max_bytes: usize, ttl: Duration) -> Self {
        Self {
            max_bytes,
            ttl,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The record if it is kept and younger than the time limit.
    pub fn get(&self, id: &B256) -> Option<Arc<Cached>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (c, at) = inner.map.get(id)?;
        (at.elapsed() < self.ttl).then(|| c.clone())
    }

    /// Keeps `c` (replacing an older copy), then drops the oldest entries while over the
    /// byte limit and those past the time limit. A record larger than the whole cache is not
    /// kept.
    pub fn put(&self, id: B256, c: Arc<Cached>) {
        let size = c.bytes();
        if size > self.max_bytes || self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((old, _)) = inner.map.insert(id, (c, now)) {
            inner.bytes -= old.bytes();
        }
        inner.bytes += size;
        inner.order.push_back((id, now));
        while let Some(&(oldest, at)) = inner.order.front() {
            if inner.bytes <= self.max_bytes && now.duration_since(at) < self.ttl {
                break;
            }
            inner.order.pop_front();
            if inner.map.get(&oldest).is_some_and(|(_, t)| *t == at)
                && let Some((gone, _)) = inner.map.remove(&oldest)
            {
                inner.bytes -= gone.bytes();
            }
        }
    }

    /// Forgets `id` (an erased record): the next read of it goes to the database.
    pub fn remove(&self, id: &B256) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((gone, _)) = inner.map.remove(id) {
            inner.bytes -= gone.bytes();
        }
    }

    /// Bytes kept now.
    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: usize) -> Arc<Cached> {
        Arc::new(Cached {
            patient: Address::repeat_byte(1),
            opening: Opening {
                category: 3,
                salt: B256::repeat_byte(2),
            },
            content_hash: B256::repeat_byte(4),
            sealed: Sealed {
                data_nonce: vec![0; 12],
                ciphertext: vec![7; n],
                key_nonce: vec![0; 12],
                wrapped_key: vec![0; 48],
            },
        })
    }

    fn id(i: u8) -> B256 {
        B256::repeat_byte(i)
    }

    #[test]
    fn keeps_the_newest_records_within_its_byte_limit() {
        let one = rec(1000).bytes();
        let cache = RecordCache::new(3 * one, Duration::from_secs(60));
        for i in 1..=5 {
            cache.put(id(i), rec(1000));
        }
        assert!(cache.get(&id(1)).is_none() && cache.get(&id(2)).is_none());
        for i in 3..=5 {
            assert_eq!(cache.get(&id(i)).unwrap().sealed.ciphertext.len(), 1000);
        }
        assert_eq!(cache.bytes(), 3 * one);
        // Putting a kept record again replaces it and counts it once; its first place in the
        // order no longer evicts it.
        cache.put(id(3), rec(1000));
        cache.put(id(6), rec(1000));
        assert!(cache.get(&id(3)).is_some(), "re-put record kept");
        assert!(cache.get(&id(4)).is_none(), "the oldest goes first");
        assert_eq!(cache.bytes(), 3 * one);
        // Larger than the whole cache: not kept, nothing else dropped.
        cache.put(id(9), rec(10_000));
        assert!(cache.get(&id(9)).is_none());
        assert_eq!(cache.bytes(), 3 * one);
    }

    #[test]
    fn forgets_records_after_its_time_limit_and_a_zero_cache_keeps_nothing() {
        let cache = RecordCache::new(1 << 20, Duration::from_millis(500));
        cache.put(id(1), rec(100));
        assert!(cache.get(&id(1)).is_some());
        std::thread::sleep(Duration::from_millis(700));
        assert!(
            cache.get(&id(1)).is_none(),
            "expired entries are not served"
        );
        cache.put(id(2), rec(100));
        assert_eq!(
            cache.bytes(),
            rec(100).bytes(),
            "the expired one was dropped"
        );

        let off = RecordCache::new(0, Duration::from_secs(60));
        off.put(id(1), rec(1));
        assert!(off.get(&id(1)).is_none());
        let off = RecordCache::new(1 << 20, Duration::ZERO);
        off.put(id(1), rec(1));
        assert!(off.get(&id(1)).is_none());
    }
}
