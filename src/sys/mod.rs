//! Platform code, in one place: every `libc` call and the inline assembly
//! of the crate. Each function here is safe to call; the `unsafe` blocks
//! inside carry a `// SAFETY:` comment saying why they are sound. Outside
//! this module only the codec's masking (`ws::mask`) may use `unsafe`
//! (`#![deny(unsafe_code)]` in lib.rs and main.rs).
//!
//! [`tls`] is the TLS client of `https://` webhooks: the system's OpenSSL,
//! loaded at run time with `dlopen`.

pub mod tls;

use std::io;
#[cfg(unix)]
use std::net::{TcpListener, TcpStream};

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
    let Some((low, top)) = stack_bounds() else {
        return;
    };
    let high = sp / PAGE * PAGE;
    if high > low && sp < top {
        // SAFETY: the range lies inside this thread's own stack mapping
        // (above its guard, `stack_bounds`), strictly below every frame live
        // while it runs (this one, and the return address of the `madvise`
        // system call wrapper, which `stack_pointer` leaves room for), so no
        // live data is discarded. The calls before it went deeper, but they
        // have returned.
        unsafe {
            libc::madvise(low as *mut libc::c_void, high - low, libc::MADV_DONTNEED);
        }
    }
}

/// The calling thread's usable stack: its lowest page above the guard and
/// the address just past its top. Read once per thread and kept:
/// `pthread_getattr_np` allocates (the thread's CPU affinity set) on every
/// call, and what a connection's thread frees stays in the allocator's
/// cache for that thread while it is idle.
#[cfg(target_os = "linux")]
fn stack_bounds() -> Option<(usize, usize)> {
    use std::cell::Cell;
    const PAGE: usize = 4096;
    /// (0, 0): not read yet; (1, 0): cannot be read.
    const UNKNOWN: (usize, usize) = (0, 0);
    const UNREADABLE: (usize, usize) = (1, 0);
    thread_local! {
        static BOUNDS: Cell<(usize, usize)> = const { Cell::new(UNKNOWN) };
    }
    let known = BOUNDS.with(Cell::get);
    if known == UNREADABLE {
        return None;
    }
    if known != UNKNOWN {
        return Some(known);
    }
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread, which
    // is destroyed after the stack's address, size and guard are read.
    let read = unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            None
        } else {
            let mut base: *mut libc::c_void = std::ptr::null_mut();
            let mut size: libc::size_t = 0;
            let mut guard: libc::size_t = 0;
            let ok = libc::pthread_attr_getstack(&attr, &mut base, &mut size) == 0
                && libc::pthread_attr_getguardsize(&attr, &mut guard) == 0;
            libc::pthread_attr_destroy(&mut attr);
            ok.then(|| {
                let low = (base as usize + guard).div_ceil(PAGE) * PAGE;
                (low, base as usize + size)
            })
        }
    };
    BOUNDS.with(|b| b.set(read.unwrap_or(UNREADABLE)));
    read
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
/// let set = std::thread::spawn(wschat::sys::batch_scheduling).join().unwrap();
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
/// wschat::sys::spawn_detached(64 * 1024, (tx, 6), |(tx, n)| tx.send(n * 7).unwrap())
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

/// Set SIGPIPE back to its default disposition (end the process), for the
/// commands that only print: they then end quietly, as other Unix tools do,
/// when whoever reads their output stops. Call it before any other thread
/// exists.
#[cfg(unix)]
pub fn default_sigpipe() {
    // SAFETY: sets the disposition of one signal to its default, before
    // any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Ignore SIGXFSZ, so that a file-size limit (RLIMIT_FSIZE) makes a write
/// fail with EFBIG, which the store answers like a full disk
/// (docs/storage.md, "Faults"), instead of killing the server.
#[cfg(unix)]
pub fn ignore_sigxfsz() {
    // SAFETY: sets the disposition of one signal to "ignore"; no handler.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// SIGINT and SIGTERM, blocked in the thread that made this value (and in
/// every thread it starts afterwards, which inherit its signal mask), for
/// one thread to wait for with [`TerminationSignals::wait`]: no code runs
/// inside a signal handler, so nothing async-signal-unsafe can happen.
#[cfg(unix)]
pub struct TerminationSignals {
    set: libc::sigset_t,
}

#[cfg(unix)]
impl TerminationSignals {
    /// Block SIGINT and SIGTERM in the calling thread.
    pub fn block() -> TerminationSignals {
        // SAFETY: sigset_t is plain data initialised by sigemptyset; the calls
        // only read and write that local set and this thread's signal mask.
        let set = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            set
        };
        TerminationSignals { set }
    }

    /// Wait for one of the signals and return its number, or `None` if
    /// `sigwait` failed.
    pub fn wait(&self) -> Option<i32> {
        let mut signal = 0;
        // SAFETY: `set` is a valid signal set; `signal` is a valid out-pointer.
        if unsafe { libc::sigwait(&self.set, &mut signal) } != 0 {
            return None;
        }
        Some(signal)
    }
}

/// `send(2)` with `MSG_DONTWAIT`: write what the kernel takes now, never
/// block, on a socket that stays in blocking mode for its reader.
#[cfg(unix)]
pub fn send_nonblocking(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: the pointer and length come from a live slice, and the file
    // descriptor belongs to `stream`, which outlives the call.
    let n = unsafe {
        libc::send(
            stream.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One `sendmsg(2)` with `MSG_DONTWAIT` over `slices`: returns the bytes
/// the kernel took, which may end in the middle of a slice, and never
/// blocks.
#[cfg(unix)]
pub fn send_vectored_nonblocking(
    stream: &TcpStream,
    slices: &[io::IoSlice<'_>],
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed msghdr is valid (no name, no control data);
    // IoSlice is guaranteed ABI-compatible with iovec on Unix, and the
    // slices outlive the call.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = slices.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = slices.len() as _;
        libc::sendmsg(
            stream.as_raw_fd(),
            &msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `listen(2)` again on a socket that is already listening, to change how
/// many connections may wait for `accept` (Linux allows it). Errors are
/// ignored: the socket keeps its backlog.
#[cfg(unix)]
pub fn relisten(listener: &TcpListener, backlog: i32) {
    use std::os::fd::AsRawFd;
    // SAFETY: listen(2) on a socket we own and that is already listening.
    unsafe {
        libc::listen(listener.as_raw_fd(), backlog);
    }
}

/// The soft limit on open files (`RLIMIT_NOFILE`), if it can be read.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
pub fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0)
        .then_some(limit.rlim_cur as u64)
}

/// Elsewhere the limit is not known.
#[cfg(not(unix))]
pub fn open_file_limit() -> Option<u64> {
    None
}

/// Try to take an exclusive `flock(2)` on `file`, without waiting: returns
/// whether it was taken. The lock lasts as long as the file is open.
#[cfg(unix)]
pub fn try_lock_exclusive(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// The terminal attributes saved by [`RawTerminal::enable`], for the panic
/// hook to put back (a panic on another thread, or one that aborts the
/// unwinding of the guard, must not leave the shell without echo).
#[cfg(unix)]
static SAVED_TERMINAL: std::sync::Mutex<Option<(i32, libc::termios)>> = std::sync::Mutex::new(None);

/// A terminal in raw mode for as long as this guard lives: no line
/// buffering, no echo, and Ctrl-C, Ctrl-Z and Ctrl-\ arrive as bytes
/// (0x03, 0x1a, 0x1c) instead of signals. Output processing stays on, so
/// `\n` still moves to the start of the next line. Dropping the guard puts
/// the saved attributes back; so does a panic anywhere in the process (a
/// hook installed by the first [`RawTerminal::enable`] runs before the
/// previous hook prints the panic), and [`restore_terminal`].
#[cfg(unix)]
#[derive(Debug)]
pub struct RawTerminal {
    _guard: (),
}

#[cfg(unix)]
impl RawTerminal {
    /// Put the terminal on `fd` (standard input, usually) in raw mode.
    /// Fails when `fd` is not a terminal.
    pub fn enable(fd: &impl std::os::fd::AsRawFd) -> io::Result<RawTerminal> {
        let fd = fd.as_raw_fd();
        // SAFETY: termios is plain data, filled by tcgetattr before it is
        // read; tcsetattr reads the struct we pass. Both act on `fd` only.
        let saved = unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut saved) != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut raw = saved;
            raw.c_iflag &= !(libc::ICRNL | libc::IXON | libc::BRKINT | libc::INPCK | libc::ISTRIP);
            raw.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG | libc::IEXTEN);
            raw.c_cflag |= libc::CS8;
            raw.c_cc[libc::VMIN] = 1;
            raw.c_cc[libc::VTIME] = 0;
            if libc::tcsetattr(fd, libc::TCSAFLUSH, &raw) != 0 {
                return Err(io::Error::last_os_error());
            }
            saved
        };
        {
            // A second guard while the first lives must not take the raw
            // attributes for the ones to restore.
            let mut slot = SAVED_TERMINAL.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                *slot = Some((fd, saved));
            }
        }
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore_terminal();
                previous(info);
            }));
        });
        Ok(RawTerminal { _guard: () })
    }
}

#[cfg(unix)]
impl Drop for RawTerminal {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Put back the terminal attributes that [`RawTerminal::enable`] saved,
/// if any are still pending. Safe to call any number of times.
#[cfg(unix)]
pub fn restore_terminal() {
    let saved = SAVED_TERMINAL
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some((fd, attrs)) = saved {
        // SAFETY: tcsetattr reads the saved struct; it acts on `fd` only.
        unsafe {
            libc::tcsetattr(fd, libc::TCSAFLUSH, &attrs);
        }
    }
}

/// The width in columns of the terminal on `fd`, when it is one and knows
/// its size.
#[cfg(unix)]
pub fn terminal_columns(fd: &impl std::os::fd::AsRawFd) -> Option<u16> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass.
    let ok = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(size.ws_col)
}

/// Elsewhere the width is not known.
#[cfg(not(unix))]
pub fn terminal_columns<T>(_fd: &T) -> Option<u16> {
    None
}

/// How far local time is ahead of UTC, in seconds, at `unix_seconds`
/// (the time zone of `TZ` or the system's, daylight saving included);
/// 0 when it cannot be told.
#[cfg(unix)]
pub fn local_utc_offset(unix_seconds: i64) -> i64 {
    let t = unix_seconds as libc::time_t;
    // SAFETY: localtime_r reads `t` and fills the tm we pass (plain data);
    // unlike localtime it keeps no shared buffer.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff as i64
    }
}

/// Elsewhere local time is taken to be UTC.
#[cfg(not(unix))]
pub fn local_utc_offset(_unix_seconds: i64) -> i64 {
    0
}

/// A new pseudo-terminal: (controller, terminal). What is written to the
/// controller is typed on the terminal, and what a program writes to the
/// terminal is read from the controller; the tests run `wschat client` on
/// one as if a person sat at it.
#[cfg(unix)]
pub fn open_pty() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut controller = -1;
    let mut terminal = -1;
    // SAFETY: openpty writes two new descriptors into the ints we pass and
    // reads nothing else (no name, no attributes, no size); each is owned
    // by exactly one OwnedFd from here on.
    unsafe {
        if libc::openpty(
            &mut controller,
            &mut terminal,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok((
            std::os::fd::OwnedFd::from_raw_fd(controller),
            std::os::fd::OwnedFd::from_raw_fd(terminal),
        ))
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

    /// Tests that panic on purpose (which runs the panic hook that
    /// restores a raw terminal) take turns with the raw-mode test.
    static PANICS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[cfg(unix)]
    fn canonical(fd: &std::fs::File) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: tcgetattr fills the termios we pass, for a descriptor we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(fd.as_raw_fd(), &mut t), 0);
            t.c_lflag & libc::ICANON != 0 && t.c_lflag & libc::ECHO != 0
        }
    }

    #[test]
    #[cfg(unix)]
    fn raw_mode_is_undone_by_its_guard_and_by_a_panic() {
        let _turn = PANICS.lock().unwrap_or_else(|e| e.into_inner());
        let not_a_terminal = std::fs::File::open("/dev/null").unwrap();
        assert!(super::RawTerminal::enable(&not_a_terminal).is_err());
        let (_controller, terminal) = super::open_pty().unwrap();
        let terminal = std::fs::File::from(terminal);
        assert!(canonical(&terminal));
        let guard = super::RawTerminal::enable(&terminal).unwrap();
        assert!(!canonical(&terminal));
        // A second guard keeps the attributes saved by the first.
        let inner = super::RawTerminal::enable(&terminal).unwrap();
        drop(inner);
        assert!(canonical(&terminal));
        drop(guard);
        assert!(canonical(&terminal));
        let _guard = super::RawTerminal::enable(&terminal).unwrap();
        assert!(!canonical(&terminal));
        assert!(std::thread::spawn(|| panic!("on purpose")).join().is_err());
        assert!(canonical(&terminal), "the panic hook restored the terminal");
    }

    #[test]
    fn a_panic_ends_only_its_own_thread() {
        let _turn = PANICS.lock().unwrap_or_else(|e| e.into_inner());
        let (tx, rx) = std::sync::mpsc::channel::<u8>();
        super::spawn_detached(64 * 1024, tx, |_tx| panic!("on purpose"))
            .map_err(|(e, _)| e)
            .unwrap();
        // The sender is dropped as the panic unwinds: the channel closes,
        // and this thread (the process) is still here to see it.
        assert!(rx.recv().is_err());
    }
}
