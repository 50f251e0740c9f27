//! Group commit: the appends of one process to one trail share one write, one sync and one
//! high-water mark.
//!
//! [`Group`] is the process's meeting point for one trail folder, found through a registry
//! keyed by that folder ([`Group::of`]), since a [`super::Trail`] is made per request. An
//! append queues its event and waits. The first waiter to find nobody writing becomes the
//! leader: it takes up to [`MAX_BATCH`] queued events, writes them as one batch (the trail's
//! cross-process lock held, one sync, one mark), hands every event of the batch the same
//! outcome and wakes the others; a waiter whose event is still queued then leads the next
//! batch. So one thread writes at a time, and an event waits at most for the batch in flight
//! and its own.
//!
//! The writer's role also guards what this process last checked of the trail's end (`T`,
//! the trail's [`super::trail::Tail`]), so a reserve or a batch reads it only while nobody in
//! the process writes.

use crate::error::{Error, Result};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

/// The most events one batch writes. It bounds how far a crash between a batch's lines and
/// its mark can leave the mark behind the trail (see `Trail::check_end`), and how long the
/// batch's leader works for the others.
pub(super) const MAX_BATCH: usize = 256;

/// One trail's queue of appends in this process, and what the writer last checked.
pub(super) struct Group<E, T> {
    state: Mutex<State<E, T>>,
    turn: Condvar,
}

struct State<E, T> {
    /// Events waiting for a batch, with their tickets.
    queue: VecDeque<(u64, E)>,
    /// A thread holds the writer's role (a batch, or a reserve).
    busy: bool,
    next_ticket: u64,
    /// Outcomes of written batches, by ticket, until their callers take them.
    done: HashMap<u64, Result<()>>,
    /// The trail's end as last checked under its lock; taken by the writer while it works.
    checked: Option<T>,
    /// Batches written and synced.
    batches: u64,
}

impl<E, T> Default for Group<E, T> {
    fn default() -> Self {
        Group {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                busy: false,
                next_ticket: 0,
                done: HashMap::new(),
                checked: None,
                batches: 0,
            }),
            turn: Condvar::new(),
        }
    }
}

/// The groups of this process, by trail folder.
pub(super) type Registry<E, T> = Mutex<HashMap<PathBuf, Arc<Group<E, T>>>>;

impl<E: Send + 'static, T: Send + 'static> Group<E, T> {
    /// The group of the trail in `dir`, shared by every `Trail` of this process that names
    /// the same folder (two spellings of one folder get two groups, which the trail's file
    /// lock still keeps apart: they batch separately, nothing more).
    pub(super) fn of(registry: &'static OnceLock<Registry<E, T>>, dir: &Path) -> Arc<Self> {
        let mut map = registry
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(g) = map.get(dir) {
            return g.clone();
        }
        // Forget the groups of trails whose folder is gone (homes of finished tests, say) and
        // that nobody holds.
        map.retain(|dir, g| Arc::strong_count(g) > 1 || dir.exists());
        map.entry(dir.to_path_buf()).or_default().clone()
    }

    fn state(&self) -> MutexGuard<'_, State<E, T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State<E, T>>) -> MutexGuard<'a, State<E, T>> {
        self.turn
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `event` through `commit`, which writes one batch (events in queue order) given
    /// the trail's end as last checked (`None`: read it again) and leaves there what it
    /// checked or wrote (`None` after a failure). Returns once the batch holding `event` is
    /// written, with that batch's outcome: every event of a batch shares it.
    pub(super) fn append(
        &self,
        event: E,
        mut commit: impl FnMut(&mut Option<T>, Vec<E>) -> Result<()>,
    ) -> Result<()> {
        let mut st = self.state();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.queue.push_back((ticket, event));
        loop {
            if let Some(outcome) = st.done.remove(&ticket) {
                return outcome;
            }
            if st.busy || st.queue.is_empty() {
                st = self.wait(st);
                continue;
            }
            // Nobody writes: lead the next batch (it holds this event unless more than
            // MAX_BATCH were queued before it; then the loop leads another).
            let n = st.queue.len().min(MAX_BATCH);
            let (tickets, events): (Vec<u64>, Vec<E>) = st.queue.drain(..n).unzip();
            let mut role = Role::take(self, st);
            let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                commit(&mut role.checked, events)
            }));
            let outcome = match &written {
                Ok(outcome) => outcome.as_ref().map_err(Error::duplicate).copied(),
                Err(_) => {
                    role.checked = None;
                    Err(Error::Io {
                        what: "appending to the audit trail".into(),
                        source: std::io::Error::other("the thread writing the batch panicked"),
                    })
                }
            };
            st = role.release(outcome.is_ok());
            for t in &tickets {
                st.done
                    .insert(*t, outcome.as_ref().map_err(Error::duplicate).copied());
            }
            if let Err(panic) = written {
                // The others of the batch have their error; this thread goes on unwinding.
                st.done.remove(&ticket);
                st.queue.retain(|(t, _)| *t != ticket);
                drop(st);
                std::panic::resume_unwind(panic);
            }
        }
    }

    /// Runs `f` as the trail's only writer in this process (waiting for a batch in flight),
    /// with the trail's end as last checked, as [`Group::append`]'s `commit` gets it.
    pub(super) fn exclusive<R>(&self, f: impl FnOnce(&mut Option<T>) -> R) -> R {
        let mut st = self.state();
        while st.busy {
            st = self.wait(st);
        }
        let mut role = Role::take(self, st);
        let r = f(&mut role.checked);
        drop(role.release(false));
        r
    }

    /// Batches written and synced by this process to this trail.
    pub(super) fn batches(&self) -> u64 {
        self.state().batches
    }
}

/// The writer's role, held while a batch or a reserve works without the group's mutex.
/// Dropped without [`Role::release`] (a panic), it gives the role back and forgets what was
/// checked, so the other waiters go on.
struct Role<'a, E, T> {
    group: &'a Group<E, T>,
    checked: Option<T>,
    released: bool,
}

impl<'a, E, T> Role<'a, E, T> {
    fn take(group: &'a Group<E, T>, mut st: MutexGuard<'a, State<E, T>>) -> Self {
        st.busy = true;
        let checked = st.checked.take();
        Role {
            group,
            checked,
            released: false,
        }
    }

    /// Gives the role back, keeping what was checked; counts a written batch.
    fn release(mut self, wrote: bool) -> MutexGuard<'a, State<E, T>> {
        self.released = true;
        let mut st = self
            .group
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        st.busy = false;
        st.checked = self.checked.take();
        if wrote {
            st.batches += 1;
        }
        self.group.turn.notify_all();
        st
    }
}

impl<E, T> Drop for Role<'_, E, T> {
    fn drop(&mut self) {
        if !self.released {
            let mut st = self
                .group
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            st.busy = false;
            st.checked = None;
            self.group.turn.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;

    type TestGroup = Group<u32, Vec<u32>>;

    /// Eight callers queue while the first batch is held up: the next batch takes all seven
    /// waiting, and when it fails every one of them gets the error; the log keeps only what
    /// succeeded, in order.
    #[test]
    fn a_batch_shares_one_outcome_and_one_write() {
        let group = TestGroup::default();
        let writes = AtomicUsize::new(0);
        let queued = Barrier::new(2);
        let commit = |checked: &mut Option<Vec<u32>>, events: Vec<u32>| {
            writes.fetch_add(1, Ordering::SeqCst);
            if events == [0] {
                // Hold the first batch until the seven others are queued.
                queued.wait();
                while group.state().queue.len() < 7 {
                    std::thread::yield_now();
                }
            }
            if events.contains(&3) {
                *checked = None;
                return Err(Error::Damaged(format!("batch {events:?}")));
            }
            checked.get_or_insert_with(Vec::new).extend(events);
            Ok(())
        };
        let results: Vec<(u32, Result<()>)> = std::thread::scope(|s| {
            let first = s.spawn(|| (0, group.append(0, commit)));
            queued.wait();
            let g = &group;
            let others: Vec<_> = (1..8)
                .map(|i| s.spawn(move || (i, g.append(i, commit))))
                .collect();
            std::iter::once(first)
                .chain(others)
                .map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(
            writes.load(Ordering::SeqCst),
            2,
            "not one batch for the seven"
        );
        assert!(results[0].1.is_ok());
        for (i, r) in &results[1..] {
            let e = r.as_ref().expect_err("a failed batch's event succeeded");
            assert!(e.to_string().contains("batch ["), "{i}: {e}");
        }
        assert_eq!(group.batches(), 1);
        // The failed batch forgot what it checked.
        assert_eq!(group.exclusive(|c| c.clone()), None);
    }

    #[test]
    fn concurrent_appends_all_land_once_in_fewer_batches() {
        let group = TestGroup::default();
        std::thread::scope(|s| {
            for t in 0..8u32 {
                let group = &group;
                s.spawn(move || {
                    for i in 0..50 {
                        group
                            .append(t * 1000 + i, |checked, events| {
                                std::thread::sleep(std::time::Duration::from_micros(200));
                                checked.get_or_insert_with(Vec::new).extend(events);
                                Ok(())
                            })
                            .unwrap();
                    }
                });
            }
        });
        let mut log = group.exclusive(|c| c.clone()).unwrap();
        assert!(group.batches() < 400, "{} batches", group.batches());
        // Each thread's events in its own order, every one once.
        for t in 0..8 {
            let mine: Vec<u32> = log.iter().copied().filter(|e| e / 1000 == t).collect();
            assert_eq!(mine, (0..50).map(|i| t * 1000 + i).collect::<Vec<_>>());
        }
        log.sort();
        log.dedup();
        assert_eq!(log.len(), 400);
    }

    #[test]
    fn a_panicking_writer_hands_the_role_on() {
        let group = TestGroup::default();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            group.exclusive(|c| {
                *c = Some(vec![1]);
                panic!("writer failed")
            })
        }));
        assert!(panicked.is_err());
        group
            .append(2, |c, events| {
                assert_eq!(*c, None, "a panicked writer's check was kept");
                *c = Some(events);
                Ok(())
            })
            .unwrap();
        assert_eq!(group.exclusive(|c| c.clone()), Some(vec![2]));
    }
}
