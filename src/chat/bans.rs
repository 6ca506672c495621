//! Bans, kept in `bans.json` in the data directory, beside `agents.json`:
//! the chat adds to it when an administrator bans someone, `wschat ban
//! list|remove` reads and edits it, and a running server takes an edit
//! into account within a tick (it checks the file's modification time).
//!
//! A ban is kept under the user's `sub` (`sub:…`) or its session's digest
//! (`session:…`), never a token, with the time it ends.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name in the data directory.
pub const BANS_FILE: &str = "bans.json";

/// One ban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// `sub:…` or `session:…`.
    pub key: String,
    /// The user's id when it was banned.
    pub user: u64,
    /// Its name then, for people reading the list.
    pub name: String,
    /// When the ban ends, epoch ms.
    pub until: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    bans: Vec<Ban>,
}

/// Where the bans of data directory `dir` are.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(BANS_FILE)
}

/// The bans in `dir` (none when there is no file yet).
pub fn load(dir: &Path) -> io::Result<Vec<Ban>> {
    match fs::read_to_string(path(dir)) {
        Ok(text) => serde_json::from_str::<File>(&text)
            .map(|f| f.bans)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path(dir).display()),
                )
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Replace the bans in `dir` (written to a temporary file and renamed, so
/// a reader never sees half a file).
pub fn save(dir: &Path, bans: &[Ban]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let text = serde_json::to_string_pretty(&File {
        bans: bans.to_vec(),
    })
    .map_err(io::Error::other)?;
    let tmp = dir.join(format!("{BANS_FILE}.tmp"));
    fs::write(&tmp, text + "\n")?;
    fs::rename(&tmp, path(dir))
}

/// Add (or extend) bans in `dir`, dropping those that have ended by `now`.
/// The file is read again right before it is written, so an edit made
/// meanwhile by `wschat ban remove` is kept.
pub fn add(dir: &Path, new: &[Ban], now: u64) -> io::Result<()> {
    let mut bans = load(dir)?;
    bans.retain(|b| b.until > now && !new.iter().any(|n| n.key == b.key));
    bans.extend_from_slice(new);
    save(dir, &bans)
}

/// The bans in force at `now`, by key.
pub fn in_force(bans: &[Ban], now: u64) -> HashMap<String, u64> {
    bans.iter()
        .filter(|b| b.until > now)
        .map(|b| (b.key.clone(), b.until))
        .collect()
}

const USAGE: &str = "Usage:
  wschat ban list [--data-dir DIR]           the bans in force
  wschat ban remove USER|KEY [--data-dir DIR]  lift the bans of a user id (or one key)
The data directory defaults to $WSCHAT_DATA_DIR, else ./wschat-data.
A running server sees the change within a second.
";

/// `wschat ban …`: list and lift bans.
pub fn main(args: &[String]) -> std::process::ExitCode {
    use std::process::ExitCode;
    let (dir, words) = match crate::store::admin_args("ban", args, USAGE) {
        Ok(parsed) => parsed,
        Err(status) => return status,
    };
    let now = crate::clock::now_ms();
    let result = match words.as_slice() {
        ["list"] => load(&dir).map_err(|e| e.to_string()).map(|bans| {
            let live: Vec<&Ban> = bans.iter().filter(|b| b.until > now).collect();
            if live.is_empty() {
                println!("no bans in force ({})", path(&dir).display());
            }
            for b in live {
                let minutes = (b.until - now).div_ceil(60_000);
                println!(
                    "user {} ({}): {} for {minutes} more minutes",
                    b.user, b.name, b.key
                );
            }
        }),
        ["remove", what] => load(&dir).map_err(|e| e.to_string()).and_then(|mut bans| {
            let before = bans.len();
            let user = what.parse::<u64>().ok();
            bans.retain(|b| b.key != *what && Some(b.user) != user);
            if bans.len() == before {
                return Err(format!("no ban for {what:?}"));
            }
            save(&dir, &bans).map_err(|e| e.to_string())?;
            println!("lifted {} ban(s) for {what}", before - bans.len());
            Ok(())
        }),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wschat ban: {e}");
            ExitCode::from(1)
        }
    }
}
