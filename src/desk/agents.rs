//! Agent accounts of the support desk: `agents.json` in the data directory.
//!
//! `wschat agent add NAME` makes a random 128-bit token, prints it once, and
//! stores only its SHA-1 digest. SHA-1 is fine here although it is broken
//! for collisions and far too fast for passwords: the token is 128 random
//! bits, not something a person chose, so there is no dictionary to try and
//! guessing a preimage means searching 2^128 values; and a collision (two
//! tokens with the same digest, made by whoever makes them) gains nothing,
//! since the server makes the tokens. A slow password hash would only slow
//! every sign-in down.
//!
//! A token presented by a console is hashed, and its digest is compared
//! with *every* account's digest in constant time, so neither the time
//! taken nor an early exit tells an attacker how close a guess came, or
//! which account it nearly matched.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The accounts file's name inside the data directory.
pub const AGENTS_FILE: &str = "agents.json";

/// One agent account as stored (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The agent's name, shown to visitors.
    pub name: String,
    /// Hex SHA-1 digest of the login token.
    pub token_sha1: String,
    /// When the account was made, Unix epoch milliseconds.
    pub created: u64,
    /// Open conversations the desk gives this agent at once; `None`: the
    /// server's `--agent-capacity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<usize>,
    /// What the agent may do.
    #[serde(default)]
    pub role: Role,
}

/// An agent's role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Works its own conversations and may claim waiting ones.
    #[default]
    Agent,
    /// Also sees every open conversation and may take over or reassign any.
    Supervisor,
}

impl Role {
    /// The role's name as it is written (`agent`, `supervisor`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
        }
    }

    /// The role named `name`.
    pub fn parse(name: &str) -> Result<Role, String> {
        match name {
            "agent" => Ok(Role::Agent),
            "supervisor" => Ok(Role::Supervisor),
            _ => Err(format!("a role is agent or supervisor, not {name:?}")),
        }
    }
}

/// Most open conversations one agent may be given at once
/// (`--capacity` of `wschat agent add|set`).
pub const MAX_CAPACITY: usize = 1000;

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    agents: Vec<Account>,
}

/// The accounts file of data directory `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(AGENTS_FILE)
}

/// The accounts in `dir` (none when there is no file yet).
pub fn load(dir: &Path) -> io::Result<Vec<Account>> {
    let file = path(dir);
    match fs::read_to_string(&file) {
        Ok(text) => serde_json::from_str::<File>(&text)
            .map(|f| f.agents)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", file.display()),
                )
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Write the accounts: to a temporary file, then renamed over the old one,
/// so that a crash never leaves half a file.
fn save(dir: &Path, agents: &[Account]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let text = serde_json::to_string_pretty(&File {
        agents: agents.to_vec(),
    })
    .map_err(io::Error::other)?;
    let tmp = dir.join(format!("{AGENTS_FILE}.tmp"));
    fs::write(&tmp, text + "\n")?;
    fs::rename(&tmp, path(dir))
}

pub use crate::store::digest_hex;

/// A new random token: 128 bits as 32 hex digits.
pub fn new_token() -> String {
    crate::random::random_16()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Create agent `name` in `dir` and return its token (shown once; only its
/// digest is kept). This is what `wschat agent add` runs.
pub fn add(dir: &Path, name: &str) -> Result<String, String> {
    add_with(dir, name, None, Role::Agent)
}

/// Create agent `name` with its own `capacity` (`None`: the server's) and
/// `role`; returns its token, as [`add`].
pub fn add_with(
    dir: &Path,
    name: &str,
    capacity: Option<usize>,
    role: Role,
) -> Result<String, String> {
    let name = crate::chat::valid_name(name)?;
    let mut agents = load(dir).map_err(|e| e.to_string())?;
    if agents.iter().any(|a| a.name.eq_ignore_ascii_case(&name)) {
        return Err(format!("an agent named {name:?} exists already"));
    }
    let token = new_token();
    agents.push(Account {
        name,
        token_sha1: digest_hex(&token),
        created: crate::clock::now_ms(),
        capacity,
        role,
    });
    save(dir, &agents).map_err(|e| e.to_string())?;
    Ok(token)
}

/// Change agent `name`'s capacity and/or role (`wschat agent set`); `Err`
/// when there is no such agent. A running server notices within a tick
/// (see `Desk::check_accounts`): the new capacity counts at the next
/// routing, and the consoles are told.
pub fn set(
    dir: &Path,
    name: &str,
    capacity: Option<usize>,
    role: Option<Role>,
) -> Result<(), String> {
    let mut agents = load(dir).map_err(|e| e.to_string())?;
    let Some(account) = agents
        .iter_mut()
        .find(|a| a.name.eq_ignore_ascii_case(name.trim()))
    else {
        return Err(format!("no agent named {:?}", name.trim()));
    };
    if capacity.is_some() {
        account.capacity = capacity;
    }
    if let Some(role) = role {
        account.role = role;
    }
    save(dir, &agents).map_err(|e| e.to_string())
}

/// What [`options`] finds: the other words, `--capacity` and `--role`.
type Options<'a> = (Vec<&'a str>, Option<usize>, Option<Role>);

/// `--capacity N` and `--role R` among `words`; the other words in order.
fn options<'a>(words: &[&'a str]) -> Result<Options<'a>, String> {
    let (mut rest, mut capacity, mut role) = (Vec::new(), None, None);
    let mut iter = words.iter();
    while let Some(&w) = iter.next() {
        let (flag, inline) = match w.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (w, None),
        };
        match flag {
            "--capacity" | "--role" => {
                let value = inline
                    .or_else(|| iter.next().copied())
                    .ok_or_else(|| format!("{flag} needs a value"))?;
                if flag == "--role" {
                    role = Some(Role::parse(value)?);
                } else {
                    let n = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_CAPACITY).contains(n))
                        .ok_or_else(|| format!("--capacity is a whole number 1-{MAX_CAPACITY}"))?;
                    capacity = Some(n);
                }
            }
            _ => rest.push(w),
        }
    }
    Ok((rest, capacity, role))
}

/// Remove agent `name` from `dir`; returns whether it existed. A running
/// server notices within a tick: a console signed in with that account is
/// closed with 4001 and its conversations go back to the queue.
pub fn remove(dir: &Path, name: &str) -> Result<bool, String> {
    let mut agents = load(dir).map_err(|e| e.to_string())?;
    let before = agents.len();
    agents.retain(|a| !a.name.eq_ignore_ascii_case(name.trim()));
    if agents.len() == before {
        return Ok(false);
    }
    save(dir, &agents).map_err(|e| e.to_string())?;
    Ok(true)
}

/// Whether `a` and `b` are equal, in time that depends only on their
/// lengths.
///
/// ```
/// use wschat::desk::agents::constant_time_eq;
/// assert!(constant_time_eq(b"abc", b"abc"));
/// assert!(!constant_time_eq(b"abc", b"abd"));
/// assert!(!constant_time_eq(b"abc", b"ab"));
/// ```
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The account whose token is `token`, if any. Every account is compared,
/// each in constant time, whatever matches.
pub fn verify<'a>(accounts: &'a [Account], token: &str) -> Option<&'a Account> {
    let presented = digest_hex(token);
    let mut found = None;
    for account in accounts {
        if constant_time_eq(presented.as_bytes(), account.token_sha1.as_bytes()) && found.is_none()
        {
            found = Some(account);
        }
    }
    found
}

const USAGE: &str = "Usage:
  wschat agent add NAME [--capacity N] [--role agent|supervisor] [--data-dir DIR | --redis URL]
                                             create an agent; prints its token once
  wschat agent set NAME [--capacity N] [--role agent|supervisor] [--data-dir DIR | --redis URL]
                                             change an agent (a running server notices)
  wschat agent list [--data-dir DIR | --redis URL]
                                             list the agents, capacity and role
  wschat agent remove NAME [--data-dir DIR | --redis URL]
                                             remove an agent
The data directory defaults to $WSCHAT_DATA_DIR, else ./wschat-data.
With --redis URL (or $WSCHAT_REDIS), the accounts of the cluster of every
node on that Redis (`wschat serve --redis URL`), kept in Redis.
";

/// How long `wschat agent … --redis` waits for Redis: to connect, then
/// for each reply.
pub const REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Tries of `wschat agent set --redis` when the account changes between
/// its read and its write (each write is a compare and set).
pub const REDIS_SET_TRIES: usize = 8;

/// `--redis URL` (or `--redis=URL`) among `words`, else `$WSCHAT_REDIS`;
/// the other words in order.
pub(crate) fn redis_option<'a>(
    words: &[&'a str],
) -> Result<(Vec<&'a str>, Option<String>), String> {
    let mut rest = Vec::new();
    let mut url = std::env::var("WSCHAT_REDIS")
        .ok()
        .filter(|u| !u.trim().is_empty());
    let mut iter = words.iter();
    while let Some(&w) = iter.next() {
        if let Some(v) = w.strip_prefix("--redis=") {
            url = Some(v.to_string());
        } else if w == "--redis" {
            let v = iter.next().ok_or("--redis needs a value")?;
            url = Some(v.to_string());
        } else {
            rest.push(w);
        }
    }
    Ok((rest, url.map(|u| u.trim().to_string())))
}

/// The accounts in the Redis of `cluster` (`--redis`); unreadable ones
/// are logged and left out.
pub fn load_redis(cluster: &crate::cluster::Cluster) -> Result<Vec<Account>, String> {
    let accounts = cluster.accounts().map_err(|e| e.to_string())?;
    Ok(accounts
        .json
        .iter()
        .filter_map(|j| {
            serde_json::from_str::<Account>(j)
                .map_err(|e| eprintln!("wschat agent: an account in Redis: {e}"))
                .ok()
        })
        .collect())
}

/// Create agent `name` in Redis (`add --redis`): as [`add_with`].
pub fn add_redis(
    cluster: &crate::cluster::Cluster,
    name: &str,
    capacity: Option<usize>,
    role: Role,
) -> Result<String, String> {
    let name = crate::chat::valid_name(name)?;
    let token = new_token();
    let account = Account {
        name: name.clone(),
        token_sha1: digest_hex(&token),
        created: crate::clock::now_ms(),
        capacity,
        role,
    };
    let json = serde_json::to_string(&account).map_err(|e| e.to_string())?;
    match cluster.add_account(&name, &json) {
        Ok(true) => Ok(token),
        Ok(false) => Err(format!("an agent named {name:?} exists already")),
        Err(e) => Err(e.to_string()),
    }
}

/// Change agent `name` in Redis (`set --redis`): as [`set`]; the write
/// happens only if the account is still what was read, else it is read
/// again (at most [`REDIS_SET_TRIES`] times).
pub fn set_redis(
    cluster: &crate::cluster::Cluster,
    name: &str,
    capacity: Option<usize>,
    role: Option<Role>,
) -> Result<(), String> {
    let field = crate::cluster::accounts::field(name);
    for _ in 0..REDIS_SET_TRIES {
        let accounts = cluster.accounts().map_err(|e| e.to_string())?;
        let found = accounts.json.iter().find_map(|j| {
            let a = serde_json::from_str::<Account>(j).ok()?;
            (crate::cluster::accounts::field(&a.name) == field).then(|| (j.clone(), a))
        });
        let Some((old, mut account)) = found else {
            return Err(format!("no agent named {:?}", name.trim()));
        };
        if capacity.is_some() {
            account.capacity = capacity;
        }
        if let Some(role) = role {
            account.role = role;
        }
        let new = serde_json::to_string(&account).map_err(|e| e.to_string())?;
        if cluster
            .replace_account(&account.name, &old, &new)
            .map_err(|e| e.to_string())?
        {
            return Ok(());
        }
    }
    Err(format!(
        "agent {:?} kept changing meanwhile; try again",
        name.trim()
    ))
}

/// `wschat agent …`: the admin commands.
pub fn main(args: &[String]) -> std::process::ExitCode {
    use std::process::ExitCode;
    let (dir, words) = match crate::store::admin_args("agent", args, USAGE) {
        Ok(parsed) => parsed,
        Err(status) => return status,
    };
    let parsed =
        redis_option(&words).and_then(|(words, url)| options(&words).map(|options| (options, url)));
    let ((words, capacity, role), redis) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("wschat agent: {e}");
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(url) = redis {
        return report(redis_main(&url, &words, capacity, role));
    }
    let result = match words.as_slice() {
        ["set", name] if capacity.is_some() || role.is_some() => {
            set(&dir, name, capacity, role).map(|()| println!("agent {} changed", name.trim()))
        }
        ["add", name] => add_with(&dir, name, capacity, role.unwrap_or_default()).map(|token| {
            println!(
                "agent {} created; its login token (shown only this once):",
                name.trim()
            );
            println!("{token}");
        }),
        ["list"] => load(&dir).map_err(|e| e.to_string()).map(|agents| {
            if agents.is_empty() {
                println!("no agents in {}", path(&dir).display());
            }
            for a in agents {
                let capacity = a
                    .capacity
                    .map_or_else(|| "default".to_string(), |c| c.to_string());
                println!("{}\tcapacity {capacity}\t{}", a.name, a.role.name());
            }
        }),
        ["remove", name] => remove(&dir, name).and_then(|found| {
            if found {
                println!("agent {} removed", name.trim());
                Ok(())
            } else {
                Err(format!("no agent named {:?}", name.trim()))
            }
        }),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    report(Some(result))
}

/// The exit status of a command's `result`; `None`: a usage error.
fn report(result: Option<Result<(), String>>) -> std::process::ExitCode {
    use std::process::ExitCode;
    match result {
        None => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
        Some(Ok(())) => ExitCode::SUCCESS,
        Some(Err(e)) => {
            eprintln!("wschat agent: {e}");
            ExitCode::from(1)
        }
    }
}

/// `wschat agent … --redis URL`: the same commands on the accounts in
/// Redis; `None` for words that are no command.
fn redis_main(
    url: &str,
    words: &[&str],
    capacity: Option<usize>,
    role: Option<Role>,
) -> Option<Result<(), String>> {
    let known = matches!(words, ["set", _] | ["add", _] | ["list"] | ["remove", _]);
    if !known || (words[0] == "set" && capacity.is_none() && role.is_none()) {
        return None;
    }
    let cluster = match crate::cluster::accounts::connect(url, REDIS_TIMEOUT) {
        Ok(cluster) => cluster,
        Err(e) => return Some(Err(e)),
    };
    Some(match words {
        ["set", name] => set_redis(&cluster, name, capacity, role)
            .map(|()| println!("agent {} changed", name.trim())),
        ["add", name] => {
            add_redis(&cluster, name, capacity, role.unwrap_or_default()).map(|token| {
                println!(
                    "agent {} created; its login token (shown only this once):",
                    name.trim()
                );
                println!("{token}");
            })
        }
        ["list"] => load_redis(&cluster).map(|mut agents| {
            if agents.is_empty() {
                println!("no agents in {url}");
            }
            agents.sort_by(|a, b| a.name.cmp(&b.name));
            for a in agents {
                let capacity = a
                    .capacity
                    .map_or_else(|| "default".to_string(), |c| c.to_string());
                println!("{}\tcapacity {capacity}\t{}", a.name, a.role.name());
            }
        }),
        ["remove", name] => match cluster.remove_account(name) {
            Ok(true) => {
                println!("agent {} removed", name.trim());
                Ok(())
            }
            Ok(false) => Err(format!("no agent named {:?}", name.trim())),
            Err(e) => Err(e.to_string()),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_verify_remove() {
        let dir = std::env::temp_dir().join(format!(
            "wschat-agents-unit-{}-{}",
            std::process::id(),
            crate::random::random_u64()
        ));
        let token = add(&dir, "alice").unwrap();
        assert_eq!(token.len(), 32);
        assert!(add(&dir, "Alice").is_err());
        let accounts = load(&dir).unwrap();
        let text = fs::read_to_string(path(&dir)).unwrap();
        assert!(!text.contains(&token), "the token itself is never stored");
        assert_eq!(verify(&accounts, &token).unwrap().name, "alice");
        assert!(verify(&accounts, "nope").is_none());
        assert!(remove(&dir, "alice").unwrap());
        assert!(load(&dir).unwrap().is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}
