//! A TLS client over the system's OpenSSL, loaded when first needed with
//! `dlopen` (`libssl.so.3`, else `libssl.so`), not linked: building wschat
//! needs no OpenSSL headers and no `pkg-config`, and a machine without
//! `libssl3` runs everything but `https://` webhooks.
//!
//! What it does, behind the safe [`Connector`] and [`TlsStream`]: TLS 1.2
//! or 1.3 (RFC 5246, RFC 8446) over a connected [`TcpStream`]; the peer's
//! certificate chain verified against the system's trust store (OpenSSL's
//! default paths) plus the PEM certificates of an optional CA file; the
//! host name checked against the certificate (RFC 6125, no partial
//! wildcards; an IP address against its IP SANs) and sent as SNI (RFC 6066
//! §3; never for an IP address). Reads and writes wait as long as the TCP
//! stream's read and write timeouts allow; a timeout is
//! [`io::ErrorKind::TimedOut`].
//!
//! The functions are the stable C API of OpenSSL 1.1.1 and 3 (`ssl.h`):
//! macros of the headers are spelled out as the calls they expand to
//! (`SSL_set_tlsext_host_name` is `SSL_ctrl` with
//! `SSL_CTRL_SET_TLSEXT_HOSTNAME`; `SSL_CTX_set_min_proto_version` is
//! `SSL_CTX_ctrl` with `SSL_CTRL_SET_MIN_PROTO_VERSION`). libcrypto's
//! functions (`ERR_*`, `X509_*`) are looked up through libssl's handle,
//! which searches the libcrypto libssl itself was built against.

use std::ffi::{CStr, CString, c_char, c_int, c_long, c_uint, c_ulong, c_void};
use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

/// The libraries tried, in order: OpenSSL 3's soname, then the unversioned
/// name (a development symlink, or a distribution's other OpenSSL).
pub const LIBSSL_NAMES: [&str; 2] = ["libssl.so.3", "libssl.so"];

// The values of OpenSSL's header macros (ssl.h, tls1.h, prov_ssl.h,
// x509v3.h, x509_vfy.h, crypto.h), the same in 1.1.1 and 3.
const OPENSSL_INIT_LOAD_CRYPTO_STRINGS: u64 = 0x0000_0002;
const OPENSSL_INIT_LOAD_SSL_STRINGS: u64 = 0x0020_0000;
const OPENSSL_VERSION: c_int = 0;
const SSL_VERIFY_PEER: c_int = 0x01;
const SSL_CTRL_SET_TLSEXT_HOSTNAME: c_int = 55;
const TLSEXT_NAMETYPE_HOST_NAME: c_long = 0;
const SSL_CTRL_SET_MIN_PROTO_VERSION: c_int = 123;
const TLS1_2_VERSION: c_long = 0x0303;
const X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS: c_uint = 0x4;
const X509_V_OK: c_long = 0;
const SSL_ERROR_WANT_READ: c_int = 2;
const SSL_ERROR_WANT_WRITE: c_int = 3;
const SSL_ERROR_SYSCALL: c_int = 5;
const SSL_ERROR_ZERO_RETURN: c_int = 6;

/// Opaque OpenSSL objects, only ever handled by pointer.
type SslCtx = c_void;
type Ssl = c_void;

/// The OpenSSL functions wschat calls, looked up once.
struct Api {
    version: String,
    tls_client_method: unsafe extern "C" fn() -> *const c_void,
    ctx_new: unsafe extern "C" fn(*const c_void) -> *mut SslCtx,
    ctx_free: unsafe extern "C" fn(*mut SslCtx),
    ctx_set_verify: unsafe extern "C" fn(*mut SslCtx, c_int, *const c_void),
    ctx_set_default_verify_paths: unsafe extern "C" fn(*mut SslCtx) -> c_int,
    ctx_load_verify_locations:
        unsafe extern "C" fn(*mut SslCtx, *const c_char, *const c_char) -> c_int,
    ctx_ctrl: unsafe extern "C" fn(*mut SslCtx, c_int, c_long, *mut c_void) -> c_long,
    new: unsafe extern "C" fn(*mut SslCtx) -> *mut Ssl,
    free: unsafe extern "C" fn(*mut Ssl),
    set_fd: unsafe extern "C" fn(*mut Ssl, c_int) -> c_int,
    ctrl: unsafe extern "C" fn(*mut Ssl, c_int, c_long, *mut c_void) -> c_long,
    set1_host: unsafe extern "C" fn(*mut Ssl, *const c_char) -> c_int,
    set_hostflags: unsafe extern "C" fn(*mut Ssl, c_uint),
    get0_param: unsafe extern "C" fn(*mut Ssl) -> *mut c_void,
    param_set1_ip_asc: unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int,
    connect: unsafe extern "C" fn(*mut Ssl) -> c_int,
    read: unsafe extern "C" fn(*mut Ssl, *mut c_void, c_int) -> c_int,
    write: unsafe extern "C" fn(*mut Ssl, *const c_void, c_int) -> c_int,
    get_error: unsafe extern "C" fn(*const Ssl, c_int) -> c_int,
    get_verify_result: unsafe extern "C" fn(*const Ssl) -> c_long,
    shutdown: unsafe extern "C" fn(*mut Ssl) -> c_int,
    err_get_error: unsafe extern "C" fn() -> c_ulong,
    err_error_string_n: unsafe extern "C" fn(c_ulong, *mut c_char, usize),
    err_clear_error: unsafe extern "C" fn(),
    verify_cert_error_string: unsafe extern "C" fn(c_long) -> *const c_char,
}

/// The library, loaded on first use; the error says what is missing.
static LIBRARY: OnceLock<Result<Api, String>> = OnceLock::new();

fn library() -> io::Result<&'static Api> {
    LIBRARY
        .get_or_init(|| load(&LIBSSL_NAMES))
        .as_ref()
        .map_err(|why| io::Error::new(io::ErrorKind::NotFound, why.clone()))
}

/// Whether TLS can work here: the version of the OpenSSL found (as
/// `OpenSSL_version` says it, e.g. `OpenSSL 3.0.19 27 Jan 2026`), or why
/// none was (which libraries were tried and what the loader said).
pub fn available() -> Result<&'static str, String> {
    match library() {
        Ok(api) => Ok(&api.version),
        Err(e) => Err(e.to_string()),
    }
}

/// The last `dlerror` message, if any.
fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string that stays
    // valid until the next dl* call on this thread; it is copied at once.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "unknown error".into()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

/// Open the first of `names` that loads and look up every function.
fn load(names: &[&str]) -> Result<Api, String> {
    let mut tried = Vec::new();
    let mut handle = std::ptr::null_mut();
    for name in names {
        let Ok(c) = CString::new(*name) else {
            continue;
        };
        // SAFETY: `c` is a NUL-terminated path; dlopen runs the library's
        // initialisers, which is what loading OpenSSL is meant to do.
        handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if !handle.is_null() {
            break;
        }
        tried.push(dl_error());
    }
    if handle.is_null() {
        return Err(format!(
            "https webhooks need OpenSSL's libssl at run time (package libssl3 on Debian and \
             Ubuntu, openssl-libs on Fedora), and none loaded: {}",
            tried.join("; ")
        ));
    }
    /// Look up `$name` as the type of the place it is assigned to.
    macro_rules! sym {
        ($name:literal) => {{
            // SAFETY: every use assigns to a field or binding whose type is
            // the C signature of `$name` in OpenSSL's headers.
            match unsafe { symbol(handle, concat!($name, "\0")) } {
                Some(f) => f,
                None => {
                    return Err(format!(
                        "the OpenSSL library found has no {} (OpenSSL 1.1.1 or later is needed): {}",
                        $name,
                        dl_error()
                    ));
                }
            }
        }};
    }
    let init: unsafe extern "C" fn(u64, *const c_void) -> c_int = sym!("OPENSSL_init_ssl");
    let version: unsafe extern "C" fn(c_int) -> *const c_char = sym!("OpenSSL_version");
    // SAFETY: initialising the library with no settings is allowed any
    // number of times, from any thread.
    if unsafe {
        init(
            OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS,
            std::ptr::null(),
        )
    } != 1
    {
        return Err("OpenSSL failed to initialise (OPENSSL_init_ssl)".into());
    }
    // SAFETY: OpenSSL_version returns a static NUL-terminated string.
    let version = unsafe {
        let v = version(OPENSSL_VERSION);
        if v.is_null() {
            "OpenSSL".to_string()
        } else {
            CStr::from_ptr(v).to_string_lossy().into_owned()
        }
    };
    Ok(Api {
        version,
        tls_client_method: sym!("TLS_client_method"),
        ctx_new: sym!("SSL_CTX_new"),
        ctx_free: sym!("SSL_CTX_free"),
        ctx_set_verify: sym!("SSL_CTX_set_verify"),
        ctx_set_default_verify_paths: sym!("SSL_CTX_set_default_verify_paths"),
        ctx_load_verify_locations: sym!("SSL_CTX_load_verify_locations"),
        ctx_ctrl: sym!("SSL_CTX_ctrl"),
        new: sym!("SSL_new"),
        free: sym!("SSL_free"),
        set_fd: sym!("SSL_set_fd"),
        ctrl: sym!("SSL_ctrl"),
        set1_host: sym!("SSL_set1_host"),
        set_hostflags: sym!("SSL_set_hostflags"),
        get0_param: sym!("SSL_get0_param"),
        param_set1_ip_asc: sym!("X509_VERIFY_PARAM_set1_ip_asc"),
        connect: sym!("SSL_connect"),
        read: sym!("SSL_read"),
        write: sym!("SSL_write"),
        get_error: sym!("SSL_get_error"),
        get_verify_result: sym!("SSL_get_verify_result"),
        shutdown: sym!("SSL_shutdown"),
        err_get_error: sym!("ERR_get_error"),
        err_error_string_n: sym!("ERR_error_string_n"),
        err_clear_error: sym!("ERR_clear_error"),
        verify_cert_error_string: sym!("X509_verify_cert_error_string"),
    })
}

/// The function `name` (NUL-terminated) of the library `handle`, as the
/// function pointer type `F`; `None` if it has no such symbol.
///
/// # Safety
///
/// `handle` is live (from dlopen) and `F` is an `extern "C" fn` pointer
/// type matching the C declaration of `name`.
unsafe fn symbol<F: Copy>(handle: *mut c_void, name: &str) -> Option<F> {
    debug_assert!(name.ends_with('\0'));
    // SAFETY: `handle` is live (the caller's promise) and `name` is
    // NUL-terminated.
    let p = unsafe { libc::dlsym(handle, name.as_ptr().cast()) };
    if p.is_null() || std::mem::size_of::<F>() != std::mem::size_of::<*mut c_void>() {
        return None;
    }
    // SAFETY: `p` is the address of the function `name`, and `F` is its
    // pointer type (the caller's promise), of the same size as `p`.
    Some(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) })
}

impl Api {
    /// Empty this thread's OpenSSL error queue, saying what it held (the
    /// oldest first), or `fallback` when it was empty.
    fn errors(&self, fallback: &str) -> String {
        let mut out = Vec::new();
        loop {
            // SAFETY: ERR_get_error pops this thread's queue; 0 is empty.
            let code = unsafe { (self.err_get_error)() };
            if code == 0 {
                break;
            }
            let mut buf = [0 as c_char; 256];
            // SAFETY: ERR_error_string_n writes at most `buf.len()` bytes,
            // NUL included, into `buf`.
            let text = unsafe {
                (self.err_error_string_n)(code, buf.as_mut_ptr(), buf.len());
                CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
            };
            out.push(text);
        }
        if out.is_empty() {
            fallback.to_string()
        } else {
            out.join("; ")
        }
    }

    fn clear_errors(&self) {
        // SAFETY: empties this thread's error queue; no arguments.
        unsafe { (self.err_clear_error)() }
    }
}

/// A TLS client configuration: the trust store and the protocol versions,
/// shared by every connection (OpenSSL's `SSL_CTX`, which is safe to use
/// from several threads).
pub struct Connector {
    api: &'static Api,
    ctx: *mut SslCtx,
}

// SAFETY: an SSL_CTX is reference-counted and locked inside OpenSSL
// (1.1.0 and later); wschat only creates connections from it (SSL_new)
// after it is set up, which OpenSSL allows from any thread.
unsafe impl Send for Connector {}
// SAFETY: as above; `&Connector` only ever calls SSL_new.
unsafe impl Sync for Connector {}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("openssl", &self.api.version)
            .finish()
    }
}

impl Connector {
    /// A client that trusts the system's store and, when given, the PEM
    /// certificates in `ca_file`, and speaks TLS 1.2 or later. Fails when
    /// no OpenSSL loads ([`io::ErrorKind::NotFound`], saying so) or
    /// `ca_file` cannot be read or holds no certificate.
    pub fn new(ca_file: Option<&Path>) -> io::Result<Connector> {
        let api = library()?;
        api.clear_errors();
        // SAFETY: TLS_client_method returns a static method table, which
        // SSL_CTX_new takes; a null result is checked.
        let ctx = unsafe { (api.ctx_new)((api.tls_client_method)()) };
        if ctx.is_null() {
            return Err(io::Error::other(api.errors("SSL_CTX_new failed")));
        }
        // From here on, Drop frees `ctx`.
        let connector = Connector { api, ctx };
        // SAFETY: `ctx` is live; a null callback keeps OpenSSL's own
        // verification, and ctrl with MIN_PROTO_VERSION takes a version
        // number and no pointer.
        let min_ok = unsafe {
            (api.ctx_set_verify)(ctx, SSL_VERIFY_PEER, std::ptr::null());
            (api.ctx_ctrl)(
                ctx,
                SSL_CTRL_SET_MIN_PROTO_VERSION,
                TLS1_2_VERSION,
                std::ptr::null_mut(),
            )
        };
        if min_ok != 1 {
            return Err(io::Error::other(api.errors("cannot require TLS 1.2")));
        }
        // SAFETY: `ctx` is live.
        if unsafe { (api.ctx_set_default_verify_paths)(ctx) } != 1 {
            return Err(io::Error::other(
                api.errors("cannot use the system's trust store"),
            ));
        }
        if let Some(path) = ca_file {
            let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the CA file's path")
            })?;
            // SAFETY: `ctx` is live, `c` a NUL-terminated path, and a null
            // directory means none.
            let ok = unsafe { (api.ctx_load_verify_locations)(ctx, c.as_ptr(), std::ptr::null()) };
            if ok != 1 {
                return Err(io::Error::other(format!(
                    "{}: {}",
                    path.display(),
                    api.errors("no PEM certificate could be read from it")
                )));
            }
        }
        Ok(connector)
    }

    /// The version of the OpenSSL in use.
    pub fn version(&self) -> &str {
        &self.api.version
    }

    /// Make the TLS handshake over `tcp` (connected, with its timeouts
    /// set) with the server `host` (a DNS name, or an IP address without
    /// brackets): its certificate chain must verify and name `host`.
    /// The stream is closed on failure.
    pub fn connect(&self, tcp: TcpStream, host: &str) -> io::Result<TlsStream> {
        let api = self.api;
        let c_host = CString::new(host)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the host name"))?;
        api.clear_errors();
        // SAFETY: `self.ctx` is live for as long as `self`; SSL_new takes
        // its own reference to it.
        let ssl = unsafe { (api.new)(self.ctx) };
        if ssl.is_null() {
            return Err(io::Error::other(api.errors("SSL_new failed")));
        }
        // From here on, Drop frees `ssl` (before `tcp` closes the socket).
        let mut stream = TlsStream {
            api,
            ssl,
            tcp,
            open: false,
        };
        // SAFETY: `ssl` is live and the fd belongs to `stream.tcp`, which
        // outlives it (SSL_set_fd does not take ownership: BIO_NOCLOSE).
        if unsafe { (api.set_fd)(ssl, stream.tcp.as_raw_fd()) } != 1 {
            return Err(io::Error::other(api.errors("SSL_set_fd failed")));
        }
        let named = if host.parse::<IpAddr>().is_ok() {
            // An address is checked against the certificate's IP SANs
            // and sent with no SNI (RFC 6066 §3 allows none for it).
            // SAFETY: `ssl` is live; SSL_get0_param returns its own
            // parameters, which set1_ip_asc copies the address into.
            unsafe { (api.param_set1_ip_asc)((api.get0_param)(ssl), c_host.as_ptr()) == 1 }
        } else {
            // SAFETY: `ssl` is live; set1_host copies the name; the
            // SNI ctrl copies the NUL-terminated name given as parg.
            unsafe {
                (api.set_hostflags)(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                (api.set1_host)(ssl, c_host.as_ptr()) == 1
                    && (api.ctrl)(
                        ssl,
                        SSL_CTRL_SET_TLSEXT_HOSTNAME,
                        TLSEXT_NAMETYPE_HOST_NAME,
                        c_host.as_ptr() as *mut c_void,
                    ) == 1
            }
        };
        if !named {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{host}: {}", api.errors("not a name TLS can check")),
            ));
        }
        // SAFETY: `ssl` is live and set up; the socket blocks, within its
        // timeouts.
        let r = unsafe { (api.connect)(ssl) };
        if r != 1 {
            let os = io::Error::last_os_error();
            // SAFETY: `ssl` is live; `r` is what SSL_connect returned.
            let (code, verify) = unsafe { ((api.get_error)(ssl, r), (api.get_verify_result)(ssl)) };
            if verify != X509_V_OK {
                api.clear_errors();
                // SAFETY: returns a static NUL-terminated string for any
                // code.
                let why = unsafe { CStr::from_ptr((api.verify_cert_error_string)(verify)) };
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the certificate of {host} was refused: {}",
                        why.to_string_lossy()
                    ),
                ));
            }
            return Err(stream.failure(code, os, "the TLS handshake"));
        }
        stream.open = true;
        Ok(stream)
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from SSL_CTX_new and is freed once; the
        // connections made from it hold references of their own.
        unsafe { (self.api.ctx_free)(self.ctx) }
    }
}

/// A TLS connection made by [`Connector::connect`]: `Read` and `Write`
/// of the plain text, each under the TCP stream's timeouts. Dropping it
/// sends `close_notify` (RFC 8446 §6.1) and closes the socket.
pub struct TlsStream {
    api: &'static Api,
    ssl: *mut Ssl,
    tcp: TcpStream,
    /// The handshake completed (so a shutdown is owed).
    open: bool,
}

// SAFETY: an SSL object may move between threads as long as one thread
// uses it at a time, which `&mut self` on every call guarantees.
unsafe impl Send for TlsStream {}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream").field("tcp", &self.tcp).finish()
    }
}

impl TlsStream {
    /// The TCP connection under the TLS: for its timeouts and addresses
    /// (reading or writing it directly would break the TLS records).
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The error of a call that returned `r`, whose `SSL_get_error` code is
    /// `code`; `os` is errno as it was right after the call.
    fn failure(&self, code: c_int, os: io::Error, what: &str) -> io::Error {
        match code {
            SSL_ERROR_WANT_READ | SSL_ERROR_WANT_WRITE => {
                self.api.clear_errors();
                io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
            }
            SSL_ERROR_SYSCALL if os.raw_os_error().is_some_and(|e| e != 0) => {
                self.api.clear_errors();
                os
            }
            SSL_ERROR_SYSCALL => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{what}: {}",
                    self.api.errors("the peer closed the connection")
                ),
            ),
            _ => io::Error::other(format!("{what}: {}", self.api.errors("failed"))),
        }
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let len = buf.len().min(c_int::MAX as usize) as c_int;
        self.api.clear_errors();
        // SAFETY: `ssl` is live and connected; SSL_read writes at most
        // `len` bytes into `buf`.
        let r = unsafe { (self.api.read)(self.ssl, buf.as_mut_ptr().cast(), len) };
        if r > 0 {
            return Ok(r as usize);
        }
        let os = io::Error::last_os_error();
        // SAFETY: `ssl` is live; `r` is what SSL_read returned.
        let code = unsafe { (self.api.get_error)(self.ssl, r) };
        if code == SSL_ERROR_ZERO_RETURN {
            return Ok(0); // close_notify: the end of the stream
        }
        Err(self.failure(code, os, "reading"))
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let len = buf.len().min(c_int::MAX as usize) as c_int;
        self.api.clear_errors();
        // SAFETY: `ssl` is live and connected; SSL_write reads at most
        // `len` bytes of `buf`.
        let r = unsafe { (self.api.write)(self.ssl, buf.as_ptr().cast(), len) };
        if r > 0 {
            return Ok(r as usize);
        }
        let os = io::Error::last_os_error();
        // SAFETY: `ssl` is live; `r` is what SSL_write returned.
        let code = unsafe { (self.api.get_error)(self.ssl, r) };
        Err(self.failure(code, os, "writing"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // SSL_write hands each record to the socket at once
    }
}

impl Drop for TlsStream {
    fn drop(&mut self) {
        // SAFETY: `ssl` came from SSL_new and is freed once, here, while
        // `tcp` (dropped after this) still holds the socket. SSL_shutdown
        // sends close_notify once, within the write timeout, and is not
        // waited on for the peer's.
        unsafe {
            if self.open {
                (self.api.shutdown)(self.ssl);
            }
            (self.api.free)(self.ssl);
        }
        self.api.clear_errors();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_named() {
        let Err(why) = load(&["libwschat-no-such-ssl.so.9"]) else {
            panic!("loaded a library that does not exist");
        };
        assert!(why.contains("libssl3"), "{why}");
        assert!(why.contains("libwschat-no-such-ssl.so.9"), "{why}");
    }
}
