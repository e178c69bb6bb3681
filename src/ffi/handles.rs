//! Generational handle tables: the C side holds plain integers that this table validates,
//! so a freed, stale or forged handle is an error, never a dangling pointer.
//!
//! A handle is `tag << 56 | generation << 32 | slot`. The tag names the object type (a
//! world handle is refused where a replica is expected), the generation changes each time
//! a slot is reused, and 0 is never a valid handle.

use std::sync::{Arc, Mutex, MutexGuard};

use super::boundary::{FfiError, FfiResult};
use super::ThetaStatus;

const SLOT_BITS: u32 = 32;
const GENERATION_BITS: u32 = 24;
const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;

struct Slot<T> {
    generation: u32,
    value: Option<Arc<T>>,
}

struct Slots<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

/// Objects of one type, addressed by handle.
pub(crate) struct HandleTable<T> {
    tag: u8,
    inner: Mutex<Slots<T>>,
}

impl<T> HandleTable<T> {
    pub(crate) const fn new(tag: u8) -> Self {
        HandleTable {
            tag,
            inner: Mutex::new(Slots {
                slots: Vec::new(),
                free: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots<T>> {
        // The table is only modified by short, non-panicking code; a poisoned lock still
        // holds consistent slots.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores `value` and returns its handle.
    pub(crate) fn insert(&self, value: T) -> u64 {
        let mut table = self.lock();
        let value = Some(Arc::new(value));
        let index = match table.free.pop() {
            Some(index) => {
                let slot = &mut table.slots[index as usize];
                slot.value = value;
                index
            }
            None => {
                let index = table.slots.len() as u32;
                table.slots.push(Slot {
                    generation: 1,
                    value,
                });
                index
            }
        };
        let generation = table.slots[index as usize].generation;
        (u64::from(self.tag) << 56) | (u64::from(generation) << SLOT_BITS) | u64::from(index)
    }

    fn locate(&self, handle: u64) -> Option<(usize, u32)> {
        if (handle >> 56) as u8 != self.tag {
            return None;
        }
        let generation = ((handle >> SLOT_BITS) & GENERATION_MASK) as u32;
        Some(((handle & 0xffff_ffff) as usize, generation))
    }

    /// The object behind `handle`, if it is live.
    pub(crate) fn get(&self, handle: u64) -> Option<Arc<T>> {
        let (index, generation) = self.locate(handle)?;
        let table = self.lock();
        let slot = table.slots.get(index)?;
        (slot.generation == generation)
            .then(|| slot.value.clone())
            .flatten()
    }

    /// Removes the object behind `handle`; calls still running on it keep it alive until
    /// they return.
    pub(crate) fn remove(&self, handle: u64) -> Option<Arc<T>> {
        let (index, generation) = self.locate(handle)?;
        let mut table = self.lock();
        let slot = table.slots.get_mut(index)?;
        if slot.generation != generation || slot.value.is_none() {
            return None;
        }
        let value = slot.value.take();
        Self::retire(&mut table, index);
        value
    }

    /// Moves the object behind `handle` out of the table into `f`, provided no call on
    /// another thread holds it and `check` accepts it; otherwise the handle and its object
    /// are left exactly as they were. The handle is freed only if `f` succeeds: on failure
    /// `f` hands the object back and the handle stays valid, unchanged. The table stays
    /// locked while `f` runs (other calls on this table wait), so no other call can see the
    /// slot empty or take it.
    pub(crate) fn take_with<R>(
        &self,
        handle: u64,
        kind: &str,
        check: impl FnOnce(&T) -> FfiResult,
        f: impl FnOnce(T) -> Result<R, (FfiError, Box<T>)>,
    ) -> FfiResult<R> {
        let not_live = || FfiError::handle(kind, handle);
        let (index, generation) = self.locate(handle).ok_or_else(not_live)?;
        let mut table = self.lock();
        let slot = table
            .slots
            .get_mut(index)
            .filter(|slot| slot.generation == generation)
            .ok_or_else(not_live)?;
        check(slot.value.as_deref().ok_or_else(not_live)?)?;
        let Some(shared) = slot.value.take() else {
            return Err(not_live());
        };
        // Other holders clone the Arc only under the table lock, which this call holds.
        let value = match Arc::try_unwrap(shared) {
            Ok(value) => value,
            Err(shared) => {
                slot.value = Some(shared);
                return Err(FfiError::new(
                    ThetaStatus::InvalidArgument,
                    format!("this {kind} is in use by a call on another thread"),
                ));
            }
        };
        match f(value) {
            Ok(result) => {
                Self::retire(&mut table, index);
                Ok(result)
            }
            Err((error, value)) => {
                if let Some(slot) = table.slots.get_mut(index) {
                    slot.value = Some(Arc::new(*value));
                }
                Err(error)
            }
        }
    }

    /// Moves an emptied slot to its next generation and frees it for reuse.
    fn retire(table: &mut Slots<T>, index: usize) {
        let slot = &mut table.slots[index];
        slot.generation = (slot.generation + 1) & GENERATION_MASK as u32;
        // A slot whose generation wrapped is retired, so no old handle can ever match it.
        if slot.generation != 0 {
            table.free.push(index as u32);
        }
    }
}

impl<T> HandleTable<Mutex<T>> {
    /// Runs `f` on the object behind `handle` with its lock held; calls on one object from
    /// several threads take turns.
    pub(crate) fn with<R>(
        &self,
        handle: u64,
        kind: &str,
        f: impl FnOnce(&mut T) -> FfiResult<R>,
    ) -> FfiResult<R> {
        let object = self
            .get(handle)
            .ok_or_else(|| FfiError::handle(kind, handle))?;
        let mut guard = object.lock().map_err(|_| {
            FfiError::new(
                ThetaStatus::Panic,
                format!("this {kind} is unusable after a panic in an earlier call; free it"),
            )
        })?;
        f(&mut guard)
    }
}

impl<T> HandleTable<T> {
    /// Frees the object behind `handle`; 0 is a no-op, anything else not live an error.
    pub(crate) fn free(&self, handle: u64, kind: &str) -> FfiResult {
        if handle == 0 {
            return Ok(());
        }
        self.remove(handle)
            .map(drop)
            .ok_or_else(|| FfiError::handle(kind, handle))
    }

    /// The object behind `handle`, or an `InvalidHandle` error.
    pub(crate) fn require(&self, handle: u64, kind: &str) -> FfiResult<Arc<T>> {
        self.get(handle)
            .ok_or_else(|| FfiError::handle(kind, handle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_forged_and_foreign_handles_are_refused() {
        let table = HandleTable::new(7);
        let a = table.insert("a");
        assert_eq!(*table.get(a).unwrap(), "a");
        assert!(table.remove(a).is_some());
        assert!(table.get(a).is_none(), "freed");
        assert!(table.remove(a).is_none(), "double free");
        let b = table.insert("b");
        assert_ne!(a, b, "reused slot, new generation");
        assert!(
            table.get(a).is_none(),
            "stale handle does not reach the new object"
        );
        assert!(table.get(0).is_none());
        assert!(table.get(b ^ (1 << 40)).is_none(), "forged generation");
        assert!(table.get(b + 1).is_none(), "forged slot");
        let other: HandleTable<&str> = HandleTable::new(8);
        let c = other.insert("c");
        assert!(table.get(c).is_none(), "another type's handle");
    }

    #[test]
    fn take_with_moves_an_unshared_object_out_and_frees_its_handle_only_on_success() {
        let table = HandleTable::new(7);
        let a = table.insert(String::from("a"));
        let keep = |s: String| -> Result<String, (FfiError, Box<String>)> { Ok(s) };
        let held = table.get(a).unwrap();
        let error = table.take_with(a, "thing", |_| Ok(()), keep).unwrap_err();
        assert_eq!(error.status, ThetaStatus::InvalidArgument, "in use");
        assert_eq!(*table.get(a).unwrap(), "a", "left in place");
        drop(held);
        let error = table
            .take_with(
                a,
                "thing",
                |_| Err(FfiError::new(ThetaStatus::Panic, "no")),
                keep,
            )
            .unwrap_err();
        assert_eq!(error.status, ThetaStatus::Panic, "refused by the check");
        assert_eq!(*table.get(a).unwrap(), "a", "left in place");
        // `f` fails: the object goes back under the same handle, unchanged.
        let error = table
            .take_with(
                a,
                "thing",
                |_| Ok(()),
                |s| {
                    Err::<(), _>((
                        FfiError::new(ThetaStatus::InvalidArgument, "bind"),
                        Box::new(s),
                    ))
                },
            )
            .unwrap_err();
        assert_eq!(error.status, ThetaStatus::InvalidArgument);
        assert_eq!(*table.get(a).unwrap(), "a", "handed back");
        assert_eq!(table.take_with(a, "thing", |_| Ok(()), keep).unwrap(), "a");
        assert!(table.get(a).is_none(), "the handle is freed");
        let error = table.take_with(a, "thing", |_| Ok(()), keep).unwrap_err();
        assert_eq!(error.status, ThetaStatus::InvalidHandle);
        let b = table.insert(String::from("b"));
        assert_ne!(a, b, "reused slot, new generation");
    }
}
