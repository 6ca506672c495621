//! The `wschat` command.

use std::process::ExitCode;

use wschat::config;
use wschat::server::Server;

const USAGE: &str = "wschat: a WebSocket chat server with a hand-written RFC 6455 codec

Usage:
  wschat [serve] [FLAGS]   serve on 127.0.0.1:3000 (see wschat serve --help)
  wschat --version         print the version
  wschat --help            print this help
";

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("wschat=info"))
        .format_timestamp_millis()
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.first().map(String::as_str) {
        None => ("serve", &args[..]),
        Some(a) if a.starts_with("--") && a != "--help" && a != "--version" => ("serve", &args[..]),
        Some(a) => (a, &args[1..]),
    };
    match command {
        "--version" | "-V" | "version" => {
            println!("wschat {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        "--help" | "-h" | "help" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        "serve" => serve(rest),
        other => {
            eprintln!("wschat: unknown command {other:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn serve(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{}", config::help());
        return ExitCode::SUCCESS;
    }
    let config = match config::parse_args(args, |name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("wschat: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match Server::bind(config.clone()) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("wschat: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(1);
        }
    };
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wschat: {e}");
            ExitCode::from(1)
        }
    }
}
