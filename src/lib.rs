//! # wschat
//!
//! A WebSocket chat and customer-service server whose RFC 6455 handshake
//! and frame codec are written by hand, on plain synchronous threads.
//!
//! * [`ws`] — the protocol, sans-I/O: bytes in, messages out, and back.
//! * [`WebSocket`] — a blocking WebSocket over any `Read + Write`.
//! * [`client`] — `client::connect("ws://…")`.
//! * [`server`] — the listener, the connection threads, the endpoints.
//! * [`apps`] — the chat and the desk as `Server::bind` mounts them.
//! * [`hub`] — the thread that owns the state and runs an [`hub::App`];
//!   the write side of each connection.
//! * [`config`] — every limit, with its flag and environment variable.
//! * [`desk`] — the customer-service desk (`/support`, `/agent`).
//! * [`cluster`] — several nodes as one through Redis: a RESP2 client
//!   on threads of its own, the cluster's primitives (not wired yet).
//! * [`json`] — JSON objects written with their fields in order.
//! * [`logging`] — the log: `RUST_LOG`'s filter, lines formatted on the stack.
//! * [`webhook`] — the desk's events POSTed, signed, to other systems.
//! * [`sys`] — platform code: every `libc` call and the inline assembly, and
//!   the TLS client of https webhooks (the system's OpenSSL, loaded at run time);
//!   the one place besides `ws::mask` where `unsafe` is allowed.
//!
//! docs/architecture.md ("Layers") shows which module may use which.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod apps;
pub mod auth;
pub mod chat;
pub mod cli;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod desk;
pub mod dissect;
pub mod hub;
pub mod json;
pub mod logging;
pub mod memory;
pub mod random;
pub mod router;
pub mod server;
pub mod store;
#[allow(unsafe_code)] // the one place for platform code
pub mod sys;
pub mod webhook;
pub mod ws;

pub use conn::{Error, WebSocket};
