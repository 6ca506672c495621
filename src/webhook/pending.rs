//! The pending events, kept in the data directory in `webhooks.pending`
//! so that a restart delivers what was not delivered yet.
//!
//! The file is JSON lines, appended to and fsynced by the sender thread:
//! `{"add":SEQ,"url":URL,"event":KIND,"body":BODY}` when an event for one
//! receiver is taken in, and `{"done":SEQ}` once that receiver answered
//! 2xx. At start every `add` without its `done` is pending again, in
//! order; the file is then written anew with those alone. A torn last
//! line (a crash mid-write) is skipped. Without a data directory the
//! pending events live in memory only.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The file's name in the data directory.
pub const PENDING_FILE: &str = "webhooks.pending";

/// Past this many `done` lines (and more of them than pending events),
/// the file is written anew with the pending events alone.
const COMPACT_AFTER: usize = 4096;

/// One event for one receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its number in the file.
    pub seq: u64,
    /// The receiver's URL.
    pub url: String,
    /// The event's name (`X-Wschat-Event`).
    pub event: String,
    /// The exact body that is signed and sent each time.
    pub body: String,
}

/// The pending events, in memory and, with a data directory, on disk.
#[derive(Debug)]
pub struct Pending {
    path: Option<PathBuf>,
    file: Option<File>,
    next_seq: u64,
    /// `done` lines in the file since it was last written anew.
    done_lines: usize,
    /// A write failed: it may have left part of a line, so the next one
    /// starts on a line of its own.
    torn: bool,
}

impl Pending {
    /// Open (or create) the file in `dir` and return the events it still
    /// holds; `None`: in memory only.
    pub fn open(dir: Option<&Path>) -> io::Result<(Pending, Vec<Item>)> {
        let Some(dir) = dir else {
            return Ok((
                Pending {
                    path: None,
                    file: None,
                    next_seq: 1,
                    done_lines: 0,
                    torn: false,
                },
                Vec::new(),
            ));
        };
        std::fs::create_dir_all(dir)?;
        let path = dir.join(PENDING_FILE);
        let items = match File::open(&path) {
            Ok(f) => read(BufReader::new(f))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let next_seq = items.iter().map(|i| i.seq).max().unwrap_or(0) + 1;
        let mut pending = Pending {
            path: Some(path),
            file: None,
            next_seq,
            done_lines: 0,
            torn: false,
        };
        pending.rewrite(&items)?;
        Ok((pending, items))
    }

    /// Take in `events` (URL, event name, body): numbered, appended and
    /// fsynced before they are returned.
    pub fn add(&mut self, events: Vec<(String, String, String)>) -> io::Result<Vec<Item>> {
        let mut items = Vec::with_capacity(events.len());
        let mut text = String::new();
        for (url, event, body) in events {
            let item = Item {
                seq: self.next_seq,
                url,
                event,
                body,
            };
            self.next_seq += 1;
            text.push_str(
                &crate::ordered! {"add": item.seq, "url": item.url, "event": item.event, "body": item.body},
            );
            text.push('\n');
            items.push(item);
        }
        self.append(&text)?;
        Ok(items)
    }

    /// `seq` was delivered. `left` is how many events are still pending:
    /// none, or few beside many `done` lines, and the file is written anew.
    pub fn done(&mut self, seq: u64, left: &[&Item]) -> io::Result<()> {
        if left.is_empty() {
            if let Some(file) = &self.file {
                file.set_len(0)?;
                file.sync_data()?;
            }
            self.done_lines = 0;
            return Ok(());
        }
        self.append(&format!("{{\"done\":{seq}}}\n"))?;
        self.done_lines += 1;
        if self.done_lines > COMPACT_AFTER && self.done_lines > left.len() {
            let items: Vec<Item> = left.iter().map(|i| (*i).clone()).collect();
            self.rewrite(&items)?;
        }
        Ok(())
    }

    fn append(&mut self, text: &str) -> io::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let text = if self.torn {
            format!("\n{text}")
        } else {
            text.to_string()
        };
        self.torn = true;
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        self.torn = false;
        Ok(())
    }

    /// Write the file anew with `items` alone (a new file renamed over the
    /// old one), and append to it from now on.
    fn rewrite(&mut self, items: &[Item]) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let tmp = path.with_extension("pending.new");
        let mut text = String::new();
        for item in items {
            text.push_str(
                &crate::ordered! {"add": item.seq, "url": item.url, "event": item.event, "body": item.body},
            );
            text.push('\n');
        }
        {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        self.file = Some(OpenOptions::new().append(true).open(path)?);
        self.done_lines = 0;
        self.torn = false;
        Ok(())
    }
}

/// The events of a pending file without their `done`, in order.
fn read(reader: impl BufRead) -> io::Result<Vec<Item>> {
    let mut items: VecDeque<Item> = VecDeque::new();
    let mut done = std::collections::HashSet::new();
    for line in reader.split(b'\n') {
        let line = line?;
        let Ok(v) = serde_json::from_slice::<Value>(&line) else {
            continue; // a torn last line
        };
        if let Some(seq) = v["done"].as_u64() {
            done.insert(seq);
            continue;
        }
        if let (Some(seq), Some(url), Some(event), Some(body)) = (
            v["add"].as_u64(),
            v["url"].as_str(),
            v["event"].as_str(),
            v["body"].as_str(),
        ) {
            items.push_back(Item {
                seq,
                url: url.into(),
                event: event.into(),
                body: body.into(),
            });
        }
    }
    Ok(items
        .into_iter()
        .filter(|i| !done.contains(&i.seq))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_not_done_comes_back() {
        let dir = std::env::temp_dir().join(format!(
            "wschat-pending-{}-{}",
            std::process::id(),
            crate::random::random_u64()
        ));
        let (mut p, items) = Pending::open(Some(&dir)).unwrap();
        assert!(items.is_empty());
        let ev = |n: &str| ("http://h/".to_string(), "e".to_string(), n.to_string());
        let added = p.add(vec![ev("1"), ev("2"), ev("3")]).unwrap();
        p.done(added[0].seq, &[&added[1], &added[2]]).unwrap();
        // A write that failed half-way: the next line starts on its own.
        p.torn = true;
        let after_tear = p.add(vec![ev("3b")]).unwrap();
        p.done(after_tear[0].seq, &[&added[1], &added[2]]).unwrap();
        // A torn line at the end is skipped.
        OpenOptions::new()
            .append(true)
            .open(dir.join(PENDING_FILE))
            .unwrap()
            .write_all(b"{\"done\":")
            .unwrap();
        drop(p);
        let (mut p, items) = Pending::open(Some(&dir)).unwrap();
        assert_eq!(items, added[1..].to_vec());
        // Numbers go on after the highest pending one (the file was
        // written anew at the opening, with no `done` lines).
        let more = p.add(vec![ev("5")]).unwrap();
        assert_eq!(more[0].seq, 4);
        p.done(2, &[&added[2], &more[0]]).unwrap();
        p.done(3, &[&more[0]]).unwrap();
        p.done(4, &[]).unwrap();
        assert_eq!(std::fs::metadata(dir.join(PENDING_FILE)).unwrap().len(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
