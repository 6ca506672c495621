//! Canned replies of the support desk, shared by the whole team:
//! `canned.json` in the data directory, managed with `wschat canned …` or
//! from the agent console, and inserted in a reply by typing `/shortcut`
//! (docs/customer-service.md, "Canned replies").

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name inside the data directory.
pub const CANNED_FILE: &str = "canned.json";
/// Longest shortcut, in characters.
pub const MAX_SHORTCUT_CHARS: usize = 32;
/// Longest reply text, in bytes (the default longest message).
pub const MAX_TEXT_BYTES: usize = crate::chat::DEFAULT_MAX_TEXT_BYTES;
/// Most canned replies kept.
pub const MAX_REPLIES: usize = 500;

/// One canned reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// What follows the `/` (letters, digits, `-`, `_`; no spaces).
    pub shortcut: String,
    /// The text put in the reply box.
    pub text: String,
    /// Who added it (an agent's name; `None` from the command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    replies: Vec<Reply>,
}

/// The file of data directory `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(CANNED_FILE)
}

/// The canned replies in `dir`, by shortcut (none when there is no file).
pub fn load(dir: &Path) -> io::Result<Vec<Reply>> {
    let file = path(dir);
    match fs::read_to_string(&file) {
        Ok(text) => serde_json::from_str::<File>(&text)
            .map(|f| f.replies)
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

/// Write the replies: to a temporary file renamed over the old one.
fn save(dir: &Path, replies: &[Reply]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let text = serde_json::to_string_pretty(&File {
        replies: replies.to_vec(),
    })
    .map_err(io::Error::other)?;
    let tmp = dir.join(format!("{CANNED_FILE}.tmp"));
    fs::write(&tmp, text + "\n")?;
    fs::rename(&tmp, path(dir))
}

/// `shortcut` checked (a leading `/` is dropped).
///
/// ```
/// use wschat::desk::canned::valid_shortcut;
/// assert_eq!(valid_shortcut("/hi").unwrap(), "hi");
/// assert!(valid_shortcut("two words").is_err());
/// ```
pub fn valid_shortcut(shortcut: &str) -> Result<String, String> {
    let s = shortcut.trim().trim_start_matches('/');
    let ok = !s.is_empty()
        && s.chars().count() <= MAX_SHORTCUT_CHARS
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "a shortcut is 1-{MAX_SHORTCUT_CHARS} letters, digits, - or _"
        ))
    }
}

/// The reply `shortcut` → `text` by `by`, checked.
pub fn reply(shortcut: &str, text: &str, by: Option<&str>) -> Result<Reply, String> {
    let shortcut = valid_shortcut(shortcut)?;
    if text.trim().is_empty() || text.len() > MAX_TEXT_BYTES {
        return Err(format!(
            "a canned reply is 1-{MAX_TEXT_BYTES} bytes of text"
        ));
    }
    Ok(Reply {
        shortcut,
        text: text.to_string(),
        by: by.map(str::to_string),
    })
}

/// The replies of their JSON (as a cluster's Redis keeps them, one a
/// value), by shortcut; unreadable ones are left out.
pub fn from_json(json: &[String]) -> Vec<Reply> {
    let mut replies: Vec<Reply> = json
        .iter()
        .filter_map(|j| {
            serde_json::from_str(j)
                .map_err(|e| log::error!("desk: a canned reply in Redis: {e}"))
                .ok()
        })
        .collect();
    replies.sort_by(|a, b| a.shortcut.cmp(&b.shortcut));
    replies
}

/// Add (or replace) the reply `shortcut` in `dir`; returns the list.
pub fn add(dir: &Path, shortcut: &str, text: &str, by: Option<&str>) -> Result<Vec<Reply>, String> {
    let Reply { shortcut, .. } = reply(shortcut, text, by)?;
    let mut replies = load(dir).map_err(|e| e.to_string())?;
    replies.retain(|r| r.shortcut != shortcut);
    if replies.len() >= MAX_REPLIES {
        return Err(format!("there are {MAX_REPLIES} canned replies already"));
    }
    replies.push(Reply {
        shortcut,
        text: text.to_string(),
        by: by.map(str::to_string),
    });
    replies.sort_by(|a, b| a.shortcut.cmp(&b.shortcut));
    save(dir, &replies).map_err(|e| e.to_string())?;
    Ok(replies)
}

/// Remove the reply `shortcut` from `dir`; `Ok(None)` when there was none.
pub fn remove(dir: &Path, shortcut: &str) -> Result<Option<Vec<Reply>>, String> {
    let shortcut = shortcut.trim().trim_start_matches('/');
    let mut replies = load(dir).map_err(|e| e.to_string())?;
    let before = replies.len();
    replies.retain(|r| r.shortcut != shortcut);
    if replies.len() == before {
        return Ok(None);
    }
    save(dir, &replies).map_err(|e| e.to_string())?;
    Ok(Some(replies))
}

const USAGE: &str = "Usage:
  wschat canned add SHORTCUT TEXT… [--data-dir DIR | --redis URL]   add (or replace) a canned reply
  wschat canned list [--data-dir DIR | --redis URL]                 list them
  wschat canned remove SHORTCUT [--data-dir DIR | --redis URL]      remove one
Agents insert one by typing /SHORTCUT in the console; a running server
sends every console the new list within a second.
The data directory defaults to $WSCHAT_DATA_DIR, else ./wschat-data.
With --redis URL (or $WSCHAT_REDIS), the canned replies of the cluster of
every node on that Redis (`wschat serve --redis URL`), kept in Redis.
";

/// The replies of a cluster, in the Redis of `url`: as [`add`], [`load`]
/// and [`remove`] for `wschat canned … --redis URL`.
fn redis_command(url: &str, words: &[&str]) -> Result<(), String> {
    let cluster = crate::cluster::accounts::connect(url, super::agents::REDIS_TIMEOUT)?;
    match words {
        ["add", shortcut, text @ ..] if !text.is_empty() => {
            let reply = reply(shortcut, &text.join(" "), None)?;
            let json = serde_json::to_string(&reply).map_err(|e| e.to_string())?;
            match cluster.set_canned(&reply.shortcut, &json, MAX_REPLIES) {
                Ok(true) => {
                    println!("/{} added", reply.shortcut);
                    Ok(())
                }
                Ok(false) => Err(format!("there are {MAX_REPLIES} canned replies already")),
                Err(e) => Err(e.to_string()),
            }
        }
        ["list"] => {
            let listed = cluster.canned().map_err(|e| e.to_string())?;
            for r in from_json(&listed.json) {
                println!("/{}\t{}", r.shortcut, r.text.replace('\n', " "));
            }
            Ok(())
        }
        ["remove", shortcut] => {
            let shortcut = shortcut.trim().trim_start_matches('/');
            match cluster.remove_canned(shortcut) {
                Ok(true) => {
                    println!("/{shortcut} removed");
                    Ok(())
                }
                Ok(false) => Err(format!("no canned reply /{shortcut}")),
                Err(e) => Err(e.to_string()),
            }
        }
        _ => Err(USAGE.trim_end().to_string()),
    }
}

/// `wschat canned …`.
pub fn main(args: &[String]) -> std::process::ExitCode {
    use std::process::ExitCode;
    let (dir, words) = match crate::store::admin_args("canned", args, USAGE) {
        Ok(parsed) => parsed,
        Err(status) => return status,
    };
    let (words, redis) = match super::agents::redis_option(&words) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("wschat canned: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(url) = redis {
        return match redis_command(&url, &words) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wschat canned: {e}");
                ExitCode::from(1)
            }
        };
    }
    let result = match words.as_slice() {
        ["add", shortcut, text @ ..] if !text.is_empty() => {
            add(&dir, shortcut, &text.join(" "), None)
                .map(|_| println!("/{} added", shortcut.trim_start_matches('/')))
        }
        ["list"] => load(&dir).map_err(|e| e.to_string()).map(|replies| {
            for r in replies {
                println!("/{}\t{}", r.shortcut, r.text.replace('\n', " "));
            }
        }),
        ["remove", shortcut] => remove(&dir, shortcut).and_then(|found| match found {
            Some(_) => {
                println!("/{} removed", shortcut.trim_start_matches('/'));
                Ok(())
            }
            None => Err(format!(
                "no canned reply /{}",
                shortcut.trim_start_matches('/')
            )),
        }),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wschat canned: {e}");
            ExitCode::from(1)
        }
    }
}
