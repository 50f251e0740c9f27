//! Inputs truncated under their memory map.
//!
//! cofre maps regular input files. If another process truncates one meanwhile, a read past its
//! new end raises SIGBUS, which would end cofre with no message and leave its temporary output.
//! Each map is registered here while it lives ([`Watch`]). The SIGBUS handler looks the
//! faulting address up among the registered maps and, for one of them, puts zeros over the
//! faulting page and every page after it in the map, and notes the fault, so the read goes on;
//! the command asks [`Watch::truncated`] before it commits anything, and fails with one error
//! line, removing its temporary as for any error. Nothing jumps out of the handler (a `longjmp`
//! across Rust frames is undefined behaviour): it only uses atomics, `mmap` and `sigaction`.
//! Zeros in a map are what a concurrent writer could have put there anyway, and nothing read
//! from such a map is used.
//! A SIGBUS outside every registered map is not ours: the handler puts back the action that
//! was there before (Rust's own, or the default) and returns, so the fault repeats and ends the
//! process as it did before.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Maps watched at once; more are mapped unwatched (as before).
const SLOTS: usize = 64;
/// A slot's start while it is being filled or emptied.
const BUSY: usize = 1;

static STARTS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static LENS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static FAULTED: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// The SIGBUS action before ours.
struct Previous(libc::sigaction);
// SAFETY: written once before the handler is installed, then only read.
unsafe impl Sync for Previous {}
unsafe impl Send for Previous {}
static PREVIOUS: OnceLock<Previous> = OnceLock::new();

/// A registered map; unregistered on drop (drop it before the map).
#[derive(Debug)]
pub(crate) struct Watch {
    slot: Option<usize>,
}

impl Watch {
    /// True if a read of the map faulted because the file had become shorter.
    pub(crate) fn truncated(&self) -> bool {
        self.slot
            .is_some_and(|i| FAULTED[i].load(Ordering::Acquire))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            STARTS[i].store(BUSY, Ordering::Release);
            LENS[i].store(0, Ordering::Release);
            STARTS[i].store(0, Ordering::Release);
        }
    }
}

/// Registers `map` (the bytes of a read-only file map) for the life of the returned watch.
pub(crate) fn watch(map: &[u8]) -> Watch {
    install();
    for i in 0..SLOTS {
        if STARTS[i]
            .compare_exchange(0, BUSY, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            FAULTED[i].store(false, Ordering::Release);
            LENS[i].store(map.len(), Ordering::Release);
            STARTS[i].store(map.as_ptr() as usize, Ordering::Release);
            return Watch { slot: Some(i) };
        }
    }
    Watch { slot: None }
}

fn install() {
    PREVIOUS.get_or_init(|| {
        // SAFETY: sysconf and sigaction are called with valid arguments; the handler only
        // touches atomics, `mmap` and `sigaction`, all safe in a signal handler.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE);
            if page > 0 {
                PAGE.store(page as usize, Ordering::Release);
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old);
            let previous = Previous(old);
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_sigbus as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut new.sa_mask);
            // Until PREVIOUS is set, a fault not ours gets the default action.
            libc::sigaction(libc::SIGBUS, &new, std::ptr::null_mut());
            previous
        }
    });
}

extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Acquire);
    for i in 0..SLOTS {
        let start = STARTS[i].load(Ordering::Acquire);
        if start <= BUSY {
            continue;
        }
        let len = LENS[i].load(Ordering::Acquire);
        if addr >= start && addr - start < len {
            // From the faulting page to the map's end: the file is shorter than all of it, so
            // one replacement spares a fault per page.
            let at = addr & !(page - 1);
            let end = (start + len).div_ceil(page) * page;
            // SAFETY: the pages lie in a live read-only map of this process (its watch is
            // alive while it is read); private anonymous pages replace them, and the map's
            // munmap later removes them with the rest.
            let r = unsafe {
                libc::mmap(
                    at as *mut libc::c_void,
                    end - at,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if r != libc::MAP_FAILED {
                FAULTED[i].store(true, Ordering::Release);
                return;
            }
        }
    }
    // Not ours: the action from before, and the fault repeats under it.
    if let Some(p) = PREVIOUS.get() {
        // SAFETY: restores an action the kernel gave us.
        unsafe { libc::sigaction(libc::SIGBUS, &p.0, std::ptr::null_mut()) };
    } else {
        // SAFETY: the default action.
        unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
    }
}
