//! Small helpers outside the protocol: random numbers and time stamps.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

thread_local! {
    static RANDOM: (RandomState, Cell<u64>) = (RandomState::new(), Cell::new(0));
}

/// 64 unpredictable bits.
///
/// The standard library seeds each `RandomState` with keys from the
/// operating system's random source; hashing a counter with SipHash under
/// those secret keys gives a stream an observer cannot predict, which is
/// what masking keys (RFC 6455 §5.3) and handshake nonces (§4.1) need. No
/// extra crate is needed for it.
pub fn random_u64() -> u64 {
    RANDOM.with(|(keys, counter)| {
        let n = counter.get().wrapping_add(1);
        counter.set(n);
        let mut hasher = keys.build_hasher();
        hasher.write_u64(n);
        hasher.finish()
    })
}

/// The hex SHA-1 digest of `token`: what is kept of a secret token (an
/// agent's, a chat or desk session's) where it must be recognised later but
/// not be readable.
///
/// ```
/// assert_eq!(wschat::util::digest_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
/// ```
pub fn digest_hex(token: &str) -> String {
    use sha1::Digest as _;
    sha1::Sha1::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh masking key for a client frame (RFC 6455 §5.3).
pub fn random_mask() -> [u8; 4] {
    (random_u64() as u32).to_ne_bytes()
}

/// 16 random bytes, for a `Sec-WebSocket-Key` or a token.
pub fn random_16() -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&random_u64().to_ne_bytes());
    out[8..].copy_from_slice(&random_u64().to_ne_bytes());
    out
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Give back to the kernel the pages of this thread's stack that lie below
/// the current frame: they held frames that have returned, such as the
/// handshake's, and a parked thread does not need them. Stack pages a thread
/// touched otherwise stay resident for its whole life, which on a server
/// with thousands of idle connections is most of their memory. The next
/// call that goes that deep simply gets fresh zeroed pages. Does nothing
/// where the stack bounds cannot be read.
///
/// What stays is every page from the stack's top down to this call's frame:
/// the thread's control block and TLS (about 4.7 KiB with glibc) and the
/// frames of the calls that lead here. On x86-64 and AArch64 the cut is
/// made right below this function's own frame, so a connection parked in
/// `read` keeps two pages (tests/stack.rs); elsewhere a margin of
/// [`TRIM_MARGIN`] bytes is kept, which may cost a page.
#[cfg(target_os = "linux")]
#[inline(never)] // its own frame is the lowest live one: see stack_pointer
pub fn trim_stack() {
    const PAGE: usize = 4096;
    let sp = stack_pointer();
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread, which
    // we destroy after reading the stack bounds. The range passed to madvise
    // lies inside this thread's own stack mapping, strictly below every
    // frame live while it runs (this one, and the return address of the
    // `madvise` system call wrapper, which `stack_pointer` leaves room for),
    // so no live data is discarded. The calls before it (pthread_*) went
    // deeper, but they have returned.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return;
        }
        let mut base: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let mut guard: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut base, &mut size) == 0
            && libc::pthread_attr_getguardsize(&attr, &mut guard) == 0;
        libc::pthread_attr_destroy(&mut attr);
        if !ok {
            return;
        }
        let low = (base as usize + guard).div_ceil(PAGE) * PAGE;
        let high = sp / PAGE * PAGE;
        if high > low && sp < base as usize + size {
            libc::madvise(low as *mut libc::c_void, high - low, libc::MADV_DONTNEED);
        }
    }
}

/// Bytes kept below the estimated stack pointer by [`trim_stack`] where the
/// exact one cannot be read: this function's frame lies below the local
/// whose address stands in for it.
#[cfg(target_os = "linux")]
pub const TRIM_MARGIN: usize = 2 * 1024;

/// The lowest address [`trim_stack`] may give back above: its own stack
/// pointer less room for the `madvise` wrapper's return address and the
/// 128-byte red zone a leaf function may use below it (x86-64 System V).
#[cfg(target_os = "linux")]
#[inline(always)]
fn stack_pointer() -> usize {
    const BELOW: usize = 256;
    let sp: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads a register, touches no memory and no flags.
    unsafe {
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reads a register, touches no memory and no flags.
    unsafe {
        std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let here = 0u8;
        sp = (std::ptr::addr_of!(here) as usize).saturating_sub(TRIM_MARGIN);
    }
    sp.saturating_sub(BELOW)
}

/// Elsewhere, nothing to do.
#[cfg(not(target_os = "linux"))]
pub fn trim_stack() {}

/// Put the calling thread under Linux's `SCHED_BATCH` policy: the same
/// fair share of the CPU as any thread, but waking it (data arrived on its
/// socket) does not preempt the thread that is running; it runs when that
/// one blocks or its time slice ends. Unprivileged, like `nice`. Returns
/// whether the policy was set.
///
/// Connection threads spend their life blocked in `read` and run for a few
/// microseconds per message. Under load, wake-up preemption turned most of
/// those wake-ups into two context switches (the running thread pushed off
/// the CPU mid-work, then switched back) and a reschedule interrupt: with
/// `SCHED_BATCH` each message costs one switch, from a thread that is done
/// to the next. See docs/performance.md ("echo") for the measurement.
///
/// ```
/// // Any thread may ask; a thread may always lower its own priority.
/// let set = std::thread::spawn(wschat::util::batch_scheduling).join().unwrap();
/// assert_eq!(set, cfg!(target_os = "linux"));
/// ```
#[cfg(target_os = "linux")]
pub fn batch_scheduling() -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param
    // that outlives the call.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) == 0 }
}

/// Elsewhere there is no such policy: nothing is changed.
#[cfg(not(target_os = "linux"))]
pub fn batch_scheduling() -> bool {
    false
}

/// Start a detached thread with a stack of `stack_size` bytes that runs
/// `run(data)`. If no thread can be started, `data` comes back with the
/// error, so that the caller can still answer (a server sends 503 on the
/// socket it was about to hand over).
///
/// This is what each accepted connection runs on. It calls
/// `pthread_create` itself rather than `std::thread::Builder::spawn`,
/// because the standard library does more per thread than a connection
/// needs: it maps a second, alternate signal stack with its own guard page
/// (two more memory mappings per thread, on top of the stack and its
/// guard), names the thread, and keeps a join handle and a result slot.
/// With thousands of connections that is about a fifth of the CPU time of
/// starting a thread, about 0.6 KiB of memory per connection, and half of
/// the memory mappings (Linux allows 65,530 per process by default).
///
/// What is given up: a stack overflow on such a thread still hits the guard
/// page and ends the process, as it would on a std thread, but without the
/// standard library's "has overflowed its stack" line. A panic is caught at
/// the thread's root (after the panic hook printed it, as on any thread), so
/// it ends that thread only.
///
/// ```
/// let (tx, rx) = std::sync::mpsc::channel();
/// wschat::util::spawn_detached(64 * 1024, (tx, 6), |(tx, n)| tx.send(n * 7).unwrap())
///     .map_err(|(e, _)| e)
///     .unwrap();
/// assert_eq!(rx.recv().unwrap(), 42);
/// ```
#[cfg(unix)]
pub fn spawn_detached<T: Send + 'static>(
    stack_size: usize,
    data: T,
    run: fn(T),
) -> Result<(), (std::io::Error, T)> {
    extern "C" fn start<T>(arg: *mut libc::c_void) -> *mut libc::c_void {
        // SAFETY: `arg` is the box leaked below for this thread alone; it is
        // taken back exactly once, here.
        let boxed = unsafe { Box::from_raw(arg.cast::<(T, fn(T))>()) };
        let (data, run) = *boxed;
        // Unwinding out of an `extern "C"` function would abort the
        // process: stop a panic here (the hook has printed it already).
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || run(data)));
        std::ptr::null_mut()
    }
    let arg = Box::into_raw(Box::new((data, run))).cast::<libc::c_void>();
    let stack_size = stack_size.max(libc::PTHREAD_STACK_MIN);
    // SAFETY: the attribute object is initialised before use and destroyed
    // after; `start::<T>` has the signature pthread_create expects and gets
    // `arg`, which it owns from then on. If no thread was created, `arg` was
    // never handed over, and its data is taken back here.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        let mut rc = libc::pthread_attr_init(&mut attr);
        if rc == 0 {
            rc = libc::pthread_attr_setstacksize(&mut attr, stack_size);
            if rc == 0 {
                rc = libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
            }
            if rc == 0 {
                let mut thread: libc::pthread_t = std::mem::zeroed();
                rc = libc::pthread_create(&mut thread, &attr, start::<T>, arg);
            }
            libc::pthread_attr_destroy(&mut attr);
        }
        if rc != 0 {
            let (data, _) = *Box::from_raw(arg.cast::<(T, fn(T))>());
            return Err((std::io::Error::from_raw_os_error(rc), data));
        }
    }
    Ok(())
}

/// Elsewhere, a standard thread. Its builder consumes the closure even when
/// it fails, so the data waits in a shared slot that the caller takes back
/// on failure.
#[cfg(not(unix))]
pub fn spawn_detached<T: Send + 'static>(
    stack_size: usize,
    data: T,
    run: fn(T),
) -> Result<(), (std::io::Error, T)> {
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(data)));
    let theirs = slot.clone();
    let spawned = std::thread::Builder::new()
        .stack_size(stack_size)
        .spawn(move || {
            if let Some(data) = theirs.lock().ok().and_then(|mut d| d.take()) {
                run(data);
            }
        });
    match spawned {
        Ok(_) => Ok(()),
        Err(e) => match slot.lock().ok().and_then(|mut d| d.take()) {
            Some(data) => Err((e, data)),
            None => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(unix)]
    fn a_thread_that_cannot_start_gives_its_data_back() {
        // No machine can map a stack this large: pthread_create fails.
        let data = String::from("the socket");
        match super::spawn_detached(1 << 60, data, |_| unreachable!()) {
            Ok(()) => panic!("a thread with an exabyte stack started"),
            Err((_, data)) => assert_eq!(data, "the socket"),
        }
    }

    #[test]
    fn a_panic_ends_only_its_own_thread() {
        let (tx, rx) = std::sync::mpsc::channel::<u8>();
        super::spawn_detached(64 * 1024, tx, |_tx| panic!("on purpose"))
            .map_err(|(e, _)| e)
            .unwrap();
        // The sender is dropped as the panic unwinds: the channel closes,
        // and this thread (the process) is still here to see it.
        assert!(rx.recv().is_err());
    }

    #[test]
    fn random_values_differ() {
        let a: Vec<u64> = (0..100).map(|_| super::random_u64()).collect();
        let mut b = a.clone();
        b.sort();
        b.dedup();
        assert_eq!(b.len(), a.len());
    }
}
