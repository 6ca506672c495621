//! The `wschat` command.
#![deny(unsafe_code)]

use std::process::ExitCode;

use wschat::cli::serve;
use wschat::server::Server;

const USAGE: &str = "wschat: a WebSocket chat server with a hand-written RFC 6455 codec

Usage:
  wschat [serve] [FLAGS]   serve on 127.0.0.1:3000 (see wschat serve --help)
  wschat client URL        an interactive terminal client (wschat client --help)
  wschat dissect HEX       annotate WebSocket frames byte by byte (wschat dissect --help)
  wschat check-config [FLAGS]  check flags and environment, print the settings
  wschat agent add|set|list|remove [NAME] [--capacity N] [--role R] [--data-dir DIR]  manage support-desk agents
  wschat desk report|export [--since DATE] [--format table|csv|json] [--data-dir DIR]  the desk's figures and transcripts
  wschat canned add|list|remove [SHORTCUT [TEXT…]] [--data-dir DIR]  the desk's canned replies
  wschat ban list|remove [USER] [--data-dir DIR]  list and lift the chat's bans
  wschat --version         print the version
  wschat --help            print this help
";

fn main() -> ExitCode {
    let _ = wschat::logging::Logger::from_env(wschat::logging::DEFAULT_FILTER).install();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.first().map(String::as_str) {
        None => ("serve", &args[..]),
        Some(a) if a.starts_with("--") && a != "--help" && a != "--version" => ("serve", &args[..]),
        Some(a) => (a, &args[1..]),
    };
    // Every command but the two that talk to sockets only prints.
    if !matches!(command, "serve" | "client") {
        quiet_on_closed_output();
    }
    match command {
        "--version" | "-V" | "version" => {
            println!("wschat {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        "--help" | "-h" | "help" => {
            print!("{USAGE}\n{}", serve::help());
            ExitCode::SUCCESS
        }
        "check-config" => check_config(rest),
        "serve" => serve(rest),
        "client" => wschat::cli::client::main(rest),
        "dissect" => wschat::cli::dissect::main(rest),
        "agent" => wschat::desk::agents::main(rest),
        "desk" => wschat::desk::report::main(rest),
        "canned" => wschat::desk::canned::main(rest),
        "ban" => wschat::chat::bans::main(rest),
        other => {
            eprintln!("wschat: unknown command {other:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// For the commands that only print: end quietly, as other Unix tools do,
/// when whoever reads the output stops (`wschat dissect … | head`), rather
/// than panic on the failed write. Rust starts with SIGPIPE ignored so that
/// a server's writes to closed sockets fail with EPIPE instead of killing
/// it; `serve` and `client` keep it that way.
#[cfg(unix)]
fn quiet_on_closed_output() {
    wschat::sys::default_sigpipe();
}

#[cfg(not(unix))]
fn quiet_on_closed_output() {}

/// Run `stop` on the first SIGINT or SIGTERM (a second one exits at once).
///
/// The two signals are blocked in every thread (threads inherit the mask
/// of the thread that starts them, and this runs before the server starts
/// any), and one thread waits for them with `sigwait`: no code runs inside
/// a signal handler, so nothing async-signal-unsafe can happen.
///
/// SIGXFSZ is ignored too: a file-size limit (RLIMIT_FSIZE) then makes the
/// store's write fail with EFBIG, which it answers like a full disk
/// (docs/storage.md, "Faults"), instead of killing the server.
#[cfg(unix)]
fn on_termination(stop: impl FnOnce() + Send + 'static) {
    let signals = wschat::sys::TerminationSignals::block();
    wschat::sys::ignore_sigxfsz();
    let waiter = std::thread::Builder::new()
        .name("wschat-signals".into())
        .spawn(move || {
            let mut stop = Some(stop);
            loop {
                let Some(signal) = signals.wait() else {
                    return;
                };
                match stop.take() {
                    Some(stop) => {
                        log::info!("signal {signal}: stopping");
                        stop();
                    }
                    None => std::process::exit(130),
                }
            }
        });
    if let Err(e) = waiter {
        log::warn!("no signal thread ({e}): SIGTERM will not shut down gracefully");
    }
}

#[cfg(not(unix))]
fn on_termination(_stop: impl FnOnce() + Send + 'static) {}

/// `wschat check-config`: parse the flags and environment as `serve`
/// would, check them against this machine, print the settings, and exit
/// non-zero with a clear message when something is wrong.
fn check_config(args: &[String]) -> ExitCode {
    let config = match serve::parse_args(args, |name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("wschat: {e}");
            return ExitCode::from(2);
        }
    };
    let problems = serve::check(&config);
    print!("{}", serve::describe(&config));
    if problems.is_empty() {
        println!("configuration ok");
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("wschat: {p}");
        }
        ExitCode::from(1)
    }
}

fn serve(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{}", serve::help());
        return ExitCode::SUCCESS;
    }
    let config = match serve::parse_args(args, |name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("wschat: {e}");
            return ExitCode::from(2);
        }
    };
    for problem in serve::check(&config) {
        log::warn!("{problem}");
    }
    // Block the signals before any thread starts, so that every thread
    // inherits the mask and only the signal thread sees them.
    static STOPPER: std::sync::OnceLock<wschat::server::Stopper> = std::sync::OnceLock::new();
    on_termination(|| match STOPPER.get() {
        Some(stopper) => stopper.stop(),
        None => std::process::exit(130),
    });
    let server = match Server::bind(config.clone()) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("wschat: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(1);
        }
    };
    match server.stopper() {
        Ok(stopper) => {
            let _ = STOPPER.set(stopper);
        }
        Err(e) => log::warn!("no graceful shutdown: {e}"),
    }
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wschat: {e}");
            ExitCode::from(1)
        }
    }
}
