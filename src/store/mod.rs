//! The embedded store, the hub's [`Log`] when one node runs alone: an
//! append-only log of JSON lines in a data directory (this file), and the
//! in-memory index rebuilt from it at start (`index.rs`: rooms' recent
//! messages, private messages under session keys, deleted ids).
//!
//! Every record is one line: the JSON message exactly as clients receive it
//! (a `chat`, a `private`), or a membership record (`joined`, `left`), each
//! with the server-wide increasing `id`. A student can read the log with
//! `cat`. Lines go into segment files (`log-00000001.jsonl`, …) rotated by
//! size; whole old segments are deleted after `--retain-days`.
//!
//! The applications append the records of one turn to a buffer (through
//! the hub's [`Log`]) and the hub's [`Store::commit`]
//! writes the buffer with one `write` (and, in `fsync` mode, one `fsync`)
//! *before* the turn's messages are delivered: a message anyone saw is in
//! the log. See docs/storage.md.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;

mod index;

use crate::hub::log::{Conversation, Log, Page, Record};
use crate::memory::Budget;
use index::Index;

/// Default data directory of the `wschat` binary.
pub const DEFAULT_DATA_DIR: &str = "wschat-data";

/// The arguments of an admin command that works on a data directory
/// (`wschat agent …`, `wschat ban …`): `--data-dir DIR` (or
/// `--data-dir=DIR`; else `$WSCHAT_DATA_DIR`, else [`DEFAULT_DATA_DIR`])
/// and the other words, in order. `Err` is the exit status to end with:
/// 0 after `--help` printed `usage`, 2 when `--data-dir` has no value.
pub fn admin_args<'a>(
    command: &str,
    args: &'a [String],
    usage: &str,
) -> Result<(PathBuf, Vec<&'a str>), std::process::ExitCode> {
    use std::process::ExitCode;
    let mut dir: PathBuf = std::env::var("WSCHAT_DATA_DIR")
        .ok()
        .filter(|d| !d.trim().is_empty())
        .map_or_else(|| DEFAULT_DATA_DIR.into(), PathBuf::from);
    let mut words = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if let Some(v) = arg.strip_prefix("--data-dir=") {
            dir = v.into();
        } else if arg == "--data-dir" {
            match iter.next() {
                Some(v) => dir = v.into(),
                None => {
                    eprintln!("wschat {command}: --data-dir needs a value");
                    return Err(ExitCode::from(2));
                }
            }
        } else if arg == "--help" || arg == "-h" {
            print!("{usage}");
            return Err(ExitCode::SUCCESS);
        } else {
            words.push(arg.as_str());
        }
    }
    Ok((dir, words))
}
/// Default size at which a segment is closed and a new one started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Default age after which whole segments are deleted.
pub const DEFAULT_RETAIN_DAYS: u32 = 30;
/// Default number of recent messages kept in memory per room (history
/// pages and resume are served from these).
pub const DEFAULT_KEEP_PER_ROOM: usize = 10_000;
/// Most private messages kept in memory for resume.
pub const KEEP_PRIVATE: usize = 100_000;
/// Most gaps (skipped corrupt records) remembered one by one; more are
/// merged into wider ones.
pub const MAX_HOLES: usize = 1024;

/// Most bytes of state records kept waiting while writes fail (a full
/// disk that lasts for hours must not grow memory without bound); past
/// it, the oldest waiting records are dropped, with a warning. Messages are
/// never kept waiting: they are refused at once.
pub const MAX_CARRIED_BYTES: usize = 1024 * 1024;

/// How far the next id jumps past a log whose last records could not be
/// read (their ids are unknown; ids must never repeat).
pub const UNREADABLE_ID_MARGIN: u64 = 1_000_000;

/// A record waiting for the next [`Store::commit`]: where its line is in
/// the buffer, its id, and whether it is a message (refused when the write
/// fails) or state (kept and written with the next write).
#[derive(Debug, Clone, Copy)]
struct PendingRecord {
    end: usize,
    id: u64,
    message: bool,
}

/// The hex SHA-1 digest of `token`: what is kept of a secret token (an
/// agent's, a chat or desk session's) where it must be recognised later but
/// not be readable.
///
/// ```
/// assert_eq!(wschat::store::digest_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
/// ```
pub fn digest_hex(token: &str) -> String {
    use sha1::Digest as _;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha1::Sha1::digest(token.as_bytes());
    let mut hex = String::with_capacity(2 * digest.len());
    for b in digest {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 15)]));
    }
    hex
}

/// How often the store applies retention (on the hub's tick).
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// When a message counts as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Written to the log (the kernel's page cache) before delivery: a
    /// killed process loses nothing anyone saw. The default.
    Process,
    /// Written and `fsync`ed (one fsync per hub turn, a group commit)
    /// before delivery: survives a power loss too.
    Fsync,
    /// Memory only: nothing is written; a restart forgets everything.
    None,
}

impl Durability {
    /// Parse `process`, `fsync` or `none`.
    pub fn parse(s: &str) -> Result<Durability, String> {
        match s.trim() {
            "process" => Ok(Durability::Process),
            "fsync" => Ok(Durability::Fsync),
            "none" => Ok(Durability::None),
            other => Err(format!("{other:?} is not process, fsync or none")),
        }
    }

    /// The name used by the flag.
    pub fn name(self) -> &'static str {
        match self {
            Durability::Process => "process",
            Durability::Fsync => "fsync",
            Durability::None => "none",
        }
    }
}

/// How to open the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The data directory; `None` keeps everything in memory.
    pub dir: Option<PathBuf>,
    /// When a message counts as stored.
    pub durability: Durability,
    /// Segment size before rotation.
    pub segment_bytes: u64,
    /// Whole segments older than this many days are deleted.
    pub retain_days: u32,
    /// Recent messages kept in memory per room.
    pub keep_per_room: usize,
    /// The memory budget (`--memory-budget`) in bytes, 0 for none: room
    /// histories and private messages kept in memory count against it
    /// (see [`crate::memory`]).
    pub memory_budget: usize,
}

impl Default for StoreConfig {
    /// The store's defaults: no data directory (everything in memory, as
    /// the library starts), and the durability a directory gets unless
    /// told otherwise, [`Durability::Process`].
    ///
    /// ```
    /// use wschat::store::{Durability, StoreConfig};
    /// let config = StoreConfig::default();
    /// assert_eq!((config.dir, config.durability), (None, Durability::Process));
    /// assert_eq!(StoreConfig { durability: Durability::None, ..Default::default() },
    ///     StoreConfig::memory());
    /// ```
    fn default() -> StoreConfig {
        StoreConfig {
            dir: None,
            durability: Durability::Process,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            retain_days: DEFAULT_RETAIN_DAYS,
            keep_per_room: DEFAULT_KEEP_PER_ROOM,
            memory_budget: crate::memory::DEFAULT_MEMORY_BUDGET,
        }
    }
}

impl StoreConfig {
    /// A store that keeps everything in memory.
    pub fn memory() -> StoreConfig {
        StoreConfig {
            durability: Durability::None,
            ..StoreConfig::default()
        }
    }
}

/// What recovery found when the store opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Segments read.
    pub segments: usize,
    /// Records read.
    pub records: u64,
    /// Bytes of a torn last line that were cut off.
    pub torn_bytes: u64,
    /// Lines in the middle that were not valid records, skipped.
    pub corrupt: u64,
}

/// What one kept message costs beyond its JSON: the `Arc<str>` allocation's
/// counts, malloc's header and rounding, and the index slot (24 bytes, with
/// the deque's spare capacity). Measured with tests/memory.rs (300 rooms of
/// 2,000 messages under a 32 MiB budget): about 250 bytes of RSS per kept
/// message of about 180 bytes of JSON; 96 errs on the safe side.
pub const MESSAGE_OVERHEAD: usize = 96;

/// What one kept private message costs beyond its JSON and session keys.
pub const PRIVATE_OVERHEAD: usize = 160;

/// What one kept version of a replaced message (an edit, a reaction) costs
/// beyond its JSON: the `Arc<str>` allocation, its map entry (id, pointer,
/// last use) and its entry in the by-use order. Counted in full even while
/// the room's kept copy shares the allocation: it errs on the safe side.
pub const VERSION_OVERHEAD: usize = 128;

/// What one entry of the index's id sets costs: a message deleted by
/// moderation, or the record that holds a replaced message's latest
/// version (the id, the hash table's slot and its spare capacity). Such
/// entries are never evicted (the log is read by them), so the messages
/// make room for them.
pub const ID_SLOT: usize = 32;

/// Most messages one resume reads back from the log when memory no longer
/// holds them; past it the resume says `"complete":false` and starts later.
pub const MAX_RESUME_FROM_LOG: usize = 10_000;

/// The store. Owned by the hub thread.
#[derive(Debug)]
pub struct Store {
    config: StoreConfig,
    file: Option<File>,
    /// Held for the life of the store, so two servers never share a log.
    _lock: Option<File>,
    segment: u64,
    segment_len: u64,
    /// The records of this turn (and state records carried over from a
    /// failed write), as one buffer of lines, and what each line is.
    pending: Vec<u8>,
    pending_records: Vec<PendingRecord>,
    /// The last write failed: why. Cleared by the next write that succeeds.
    failing: Option<String>,
    /// The first id of each segment on disk (its `segment` header, or its
    /// first record in a log written before headers existed).
    first_ids: std::collections::BTreeMap<u64, u64>,
    /// Ids below this may have existed in segments that are gone
    /// (retention, or deleted by hand): a range reaching below it is not
    /// complete. 1 while the log is whole.
    floor: u64,
    /// Ranges of ids `(after, before)` around records that recovery had to
    /// skip (corrupt lines): ids strictly between the two may be missing.
    holes: Vec<(u64, u64)>,
    /// During recovery: the id of the last good record before lines that
    /// had to be skipped, until the next good one closes the hole.
    hole_after: Option<u64>,
    next_id: u64,
    /// What is kept in memory: rooms' recent messages, private messages
    /// under their session keys, deleted ids ([`index`]).
    index: Index,
    /// The last `private` record read from disk, waiting for the
    /// `private_keys` record written right after it.
    unkeyed: Option<(u64, Arc<str>)>,
    recovery: Recovery,
    writes: u64,
    /// When retention last ran (see [`Log::tick`]).
    last_retention: std::time::Instant,
}

impl Store {
    /// A store in memory only.
    pub fn memory() -> Store {
        Store::open(&StoreConfig::memory())
            .unwrap_or_else(|_| unreachable!("a memory store cannot fail"))
    }

    /// Open (or create) the store: lock the directory, read every segment,
    /// rebuild the indexes, cut a torn last line, skip (and count) corrupt
    /// lines, and make sure the directory is writable now rather than at the
    /// first message.
    pub fn open(config: &StoreConfig) -> io::Result<Store> {
        let mut store = Store {
            config: config.clone(),
            file: None,
            _lock: None,
            segment: 1,
            segment_len: 0,
            pending: Vec::new(),
            pending_records: Vec::new(),
            failing: None,
            first_ids: Default::default(),
            floor: 1,
            holes: Vec::new(),
            hole_after: None,
            next_id: 1,
            index: Index::new(
                config.keep_per_room,
                Arc::new(Budget::new(config.memory_budget)),
            ),
            unkeyed: None,
            recovery: Recovery::default(),
            writes: 0,
            last_retention: std::time::Instant::now(),
        };
        let Some(dir) = config
            .dir
            .clone()
            .filter(|_| config.durability != Durability::None)
        else {
            return Ok(store);
        };
        fs::create_dir_all(&dir)
            .map_err(|e| annotate(e, "cannot create the data directory", &dir))?;
        store._lock = Some(lock_dir(&dir)?);
        // Retention first: what it deletes is not read, so it is gone from
        // memory too, and a range reaching into it is not complete.
        if let Some((number, path)) = list_segments(&dir)?.pop() {
            store.segment = number;
            store.segment_len = fs::metadata(&path).map_or(0, |m| m.len());
            store.apply_retention(SystemTime::now());
        }
        let segments = list_segments(&dir)?;
        let count = segments.len();
        for (i, (number, path)) in segments.iter().enumerate() {
            store.recover_segment(path, i + 1 == count)?;
            store.segment = *number;
        }
        store.recovery.segments = count;
        if let Some(after) = store.hole_after.take() {
            // The log ends in records that could not be read: their ids
            // are unknown, so new ids start well past any they can have
            // had (each line is one id, and no turn refuses a million).
            store.next_id = store.next_id.saturating_add(UNREADABLE_ID_MARGIN);
            store.add_hole(after, store.next_id);
        }
        // Segments before the oldest one left were deleted: what they held
        // is gone, and a range reaching into it is not complete.
        if let Some((&oldest, &first)) = store.first_ids.iter().next()
            && oldest > 1
        {
            store.floor = first;
        }
        let path = segment_path(&dir, store.segment);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| annotate(e, "cannot write the log", &path))?;
        store.segment_len = file.metadata()?.len();
        store.file = Some(file);
        if store.segment_len == 0 {
            // A new segment starts with its header, written now: the
            // directory is writable, and the highest id survives even if
            // retention deletes every older segment.
            store.push_header();
            store.commit()?;
        }
        Ok(store)
    }

    fn recover_segment(&mut self, path: &Path, last: bool) -> io::Result<()> {
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| annotate(e, "cannot read the log", path))?;
        let complete = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => 0,
        };
        if complete < bytes.len() {
            let torn = (bytes.len() - complete) as u64;
            if last {
                // A write cut short by a crash: the line never counted.
                log::warn!(
                    "{}: cutting a torn last line of {torn} bytes",
                    path.display()
                );
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| annotate(e, "cannot repair the log", path))?;
                file.set_len(complete as u64)?;
                self.recovery.torn_bytes += torn;
            } else {
                log::warn!(
                    "{}: {torn} bytes without a newline at the end of an old segment, skipped",
                    path.display()
                );
                self.recovery.corrupt += 1;
            }
        }
        // Skipped lines (and an old segment's torn tail) may have held
        // messages: the ids between the records around them are a hole.
        if complete < bytes.len() && !last {
            self.open_hole();
        }
        let number = segment_number(path);
        for (n, line) in bytes[..complete].split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let text = std::str::from_utf8(line).ok();
            match text.and_then(|t| serde_json::from_str::<Value>(t).ok().map(|v| (t, v))) {
                Some((text, value)) if value.get("id").and_then(Value::as_u64).is_some() => {
                    let id = value.get("id").and_then(Value::as_u64).unwrap_or(0);
                    if let Some(number) = number {
                        self.first_ids.entry(number).or_insert(id);
                    }
                    if let Some(after) = self.hole_after.take() {
                        self.add_hole(after, id);
                    }
                    self.index(text, &value);
                    self.recovery.records += 1;
                }
                _ => {
                    log::warn!(
                        "{} line {}: not a valid record, skipped",
                        path.display(),
                        n + 1
                    );
                    self.recovery.corrupt += 1;
                    self.open_hole();
                }
            }
        }
        Ok(())
    }

    /// A line that could not be read: ids after the last good record may
    /// be missing, up to the next good record.
    fn open_hole(&mut self) {
        if self.hole_after.is_none() {
            self.hole_after = Some(self.next_id.saturating_sub(1));
        }
    }

    /// Remember that ids strictly between `after` and `before` may be
    /// missing. Holes are few (each is a damaged line); past
    /// [`MAX_HOLES`] the oldest two are merged into one wider hole, which
    /// is still honest (a wider "maybe missing").
    fn add_hole(&mut self, after: u64, before: u64) {
        if before <= after.saturating_add(1) {
            return;
        }
        self.holes.push((after, before));
        if self.holes.len() > MAX_HOLES {
            let (a, _) = self.holes.remove(0);
            self.holes[0].0 = a;
        }
    }

    /// The lowest id from which every record after `since` up to `until`
    /// is known to be here, or `None` when nothing in between is missing:
    /// the floor left by deleted segments, or the far side of a hole.
    fn missing_after(&self, since: u64, until: u64) -> Option<u64> {
        let mut first = None;
        if since.saturating_add(1) < self.floor {
            first = Some(self.floor);
        }
        for &(after, before) in &self.holes {
            // The hole's unknown ids are after+1 ..= before-1.
            if before.saturating_sub(1) > since && after.saturating_add(1) < until {
                first = Some(first.unwrap_or(0).max(before.min(self.next_id)));
            }
        }
        first
    }

    /// What recovery found.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The data directory, when records go to disk.
    pub fn dir(&self) -> Option<&Path> {
        self.file.as_ref().and(self.config.dir.as_deref())
    }

    /// Whether records go to disk.
    pub fn is_durable(&self) -> bool {
        self.file.is_some()
    }

    /// The next id, taken: ids increase across the server and never repeat,
    /// restarts included.
    pub fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Append a state record (a membership change, a desk event): it is
    /// indexed at once and written at the next [`Store::commit`]; if that
    /// write fails it stays pending and goes with the next one, since the
    /// state it records has happened.
    pub fn append(&mut self, json: &str) {
        self.push(json, false);
    }

    /// Append a message (a chat message, a desk message): like
    /// [`Store::append`], but if the next [`Store::commit`] fails it is
    /// refused: dropped from the buffer and from the indexes, never
    /// written, and never to be delivered (the hub tells its sender).
    pub fn append_message(&mut self, json: &str) {
        self.push(json, true);
    }

    fn push(&mut self, json: &str, message: bool) {
        let id = match serde_json::from_str::<Value>(json) {
            Ok(value) => {
                self.index(json, &value);
                value.get("id").and_then(Value::as_u64).unwrap_or(0)
            }
            Err(_) => 0,
        };
        if self.file.is_some() {
            self.push_line(json, id, message);
        }
    }

    fn push_line(&mut self, line: &str, id: u64, message: bool) {
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.push(b'\n');
        self.pending_records.push(PendingRecord {
            end: self.pending.len(),
            id,
            message,
        });
    }

    /// The header that starts each segment: a record with a fresh id, so
    /// the highest id given out is on disk even when retention has deleted
    /// every older segment (ids never repeat).
    fn push_header(&mut self) {
        let id = self.take_id();
        let header = crate::ordered! {"type": "segment", "id": id, "segment": self.segment, "time": crate::clock::now_ms()};
        self.first_ids.entry(self.segment).or_insert(id);
        self.push_line(&header, id, false);
    }

    /// Append a private message, and keep it for resume under the session
    /// keys of its sender and addressee. The keys go to the log too, in a
    /// `private_keys` record right after the message (the message itself is
    /// logged as delivered, and a session key is not for the users to see),
    /// so that a restarted server can still resume it. Both are refused
    /// together if the next [`Store::commit`] fails.
    pub fn append_private(&mut self, json: &str, from_key: &str, to_key: &str) {
        self.append_message(json);
        // Indexed as a private record read back from the log is: it waits
        // for its keys, which are these.
        let Some((id, json)) = self.unkeyed.take() else {
            return;
        };
        self.index.keep_private(id, from_key, to_key, json);
        if self.file.is_some() {
            // A record of its own, with its own id like every record.
            let own = self.take_id();
            let keys = crate::ordered! {"type": "private_keys", "id": own, "private": id, "from": from_key, "to": to_key};
            self.push_line(&keys, own, true);
        }
    }

    /// Delete room message `id` (moderation): it leaves memory, is never
    /// served again from the log, and a `deleted` tombstone goes to the log
    /// so that a restart remembers. Returns its room, or `None` when there
    /// is no such chat message (or it was deleted already).
    pub fn delete(&mut self, id: u64) -> Option<String> {
        if self.index.deleted().contains(&id) {
            return None;
        }
        let room = self.index.room_of(id).or_else(|| self.room_in_log(id))?;
        self.index.forget_message(id);
        let tomb = self.take_id();
        let record = crate::ordered! {"type": "deleted", "id": tomb, "message": id, "room": room, "time": crate::clock::now_ms()};
        self.append(&record);
        Some(room)
    }

    /// Room message `id` as served now (its latest version), from memory
    /// or the log; `None` when there is none (or it was deleted).
    pub fn message(&mut self, id: u64) -> Option<Arc<str>> {
        if let Some(kept) = self.index.kept_message(id) {
            return Some(kept);
        }
        if self.index.deleted().contains(&id) {
            return None;
        }
        let mut found = None;
        for path in self.segments_between(id.saturating_sub(1), id + 1) {
            Store::scan_segment(
                &path,
                (id.saturating_sub(1), id + 1),
                &["\"chat\""],
                |_, line, v| {
                    if v.get("type").and_then(Value::as_str) == Some("chat") {
                        found = Some(Arc::<str>::from(line));
                    }
                },
            );
        }
        let mut found: Vec<(u64, Arc<str>)> = found.map(|m| (id, m)).into_iter().collect();
        self.latest_versions(&mut found);
        found.pop().map(|(_, m)| m)
    }

    /// Turn messages read from the log into the versions to serve: the
    /// latest version memory holds, else (for one whose version memory let
    /// go) the one in its latest `replaced` record, read from the log. The
    /// index knows which record that is, so only the segments holding those
    /// records are read (at most one each, of at most `segment_bytes`),
    /// however far the log has grown since.
    fn latest_versions(&mut self, messages: &mut [(u64, Arc<str>)]) {
        // Record id → the positions of `messages` it holds the version of.
        let mut wanted: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (i, (id, json)) in messages.iter_mut().enumerate() {
            match self.index.latest(*id, json.clone()) {
                Some(version) => *json = version,
                None => {
                    if let Some(record) = self.index.replaced_in(*id) {
                        wanted.entry(record).or_default().push(i);
                    }
                }
            }
        }
        let (Some(&first), Some(&last)) = (wanted.keys().next(), wanted.keys().next_back()) else {
            return;
        };
        // Each segment once, however many of the records it holds.
        let mut segments: Vec<PathBuf> = Vec::new();
        for &record in wanted.keys() {
            for path in self.segments_between(record.saturating_sub(1), record + 1) {
                if !segments.contains(&path) {
                    segments.push(path);
                }
            }
        }
        let mut found: HashMap<u64, Arc<str>> = HashMap::new();
        for path in segments {
            Store::scan_segment(
                &path,
                (first.saturating_sub(1), last + 1),
                &["\"type\":\"replaced\""],
                |record, _, v| {
                    if wanted.contains_key(&record)
                        && v.get("type").and_then(Value::as_str) == Some("replaced")
                        && let Some(version) = v.get("version").and_then(Value::as_str)
                    {
                        found.insert(record, version.into());
                    }
                },
            );
        }
        for (record, at) in wanted {
            if let Some(version) = found.get(&record) {
                for i in at {
                    messages[i].1 = version.clone();
                }
            }
        }
    }

    /// Replace room message `id` by `json`, a later version of it (an edit,
    /// a reaction): served from now on, from memory and the log, and a
    /// `replaced` record (holding the version as a string, byte for byte)
    /// goes to the log so that a restart serves it too. Returns its room,
    /// or `None` when there is no such chat message (or it was deleted).
    pub fn replace(&mut self, id: u64, json: &str) -> Option<String> {
        if self.index.deleted().contains(&id) {
            return None;
        }
        let room = self.index.room_of(id).or_else(|| self.room_in_log(id))?;
        self.index.replace_message(id, json.into());
        let record_id = self.take_id();
        self.index.note_replaced(id, record_id);
        let record = format!(
            r#"{{"type":"replaced","id":{record_id},"message":{id},"room":{},"version":{},"time":{}}}"#,
            Value::from(room.as_str()),
            Value::from(json),
            crate::clock::now_ms()
        );
        self.append(&record);
        Some(room)
    }

    /// The room of chat message `id`, read from the log.
    fn room_in_log(&self, id: u64) -> Option<String> {
        let mut room = None;
        for path in self.segments_between(id.saturating_sub(1), id + 1) {
            Store::scan_segment(
                &path,
                (id.saturating_sub(1), id + 1),
                &["\"chat\""],
                |_, _, v| {
                    if v.get("type").and_then(Value::as_str) == Some("chat") {
                        room = v.get("room").and_then(Value::as_str).map(str::to_string);
                    }
                },
            );
        }
        room
    }

    /// Hand every record in the log that contains one of `needles` to
    /// `each`, oldest first, reading the segments line by line (nothing is
    /// kept): how an application rebuilds state of its own at start.
    pub fn replay(&self, needles: &[&str], mut each: impl FnMut(&str, &Value)) {
        for path in self.segments_between(0, u64::MAX) {
            Store::scan_segment(&path, (0, u64::MAX), needles, |_, line, value| {
                each(line, value)
            });
        }
    }

    /// The memory budget this store counts against, to be shared with the
    /// other holders of users' input and with `/metrics`.
    pub fn budget(&self) -> Arc<Budget> {
        self.index.budget().clone()
    }

    /// Evict what is over the budget now (the hub's tick does, through
    /// [`Log::tick`], so that a kind that stopped growing still gives way
    /// to one that did).
    pub fn trim(&mut self) {
        self.index.trim();
    }

    /// Whether private messages are kept for resume under session `key`:
    /// a token whose key this is was handed out by this server (before a
    /// restart, perhaps), since only its holder could present it.
    pub fn knows_session(&self, key: &str) -> bool {
        self.index.knows_session(key)
    }

    /// The private conversations of key `me`, newest first: each peer's
    /// key, the latest message, and how many messages from the peer came
    /// after `read(peer)` (what `me` has read). From memory: a conversation
    /// whose every message memory let go is not listed.
    pub fn private_peers(
        &self,
        me: &str,
        read: impl Fn(&str) -> u64,
    ) -> Vec<(String, Arc<str>, usize)> {
        self.index.private_peers(me, read)
    }

    fn index(&mut self, text: &str, value: &Value) {
        let Some(id) = value.get("id").and_then(Value::as_u64) else {
            return;
        };
        self.next_id = self.next_id.max(id + 1);
        match value.get("type").and_then(Value::as_str) {
            Some("chat") => {
                if let Some(room) = value.get("room").and_then(Value::as_str) {
                    self.index.keep_chat(room, id, text.into());
                }
            }
            Some("deleted") => {
                if let Some(message) = value.get("message").and_then(Value::as_u64) {
                    self.index.forget_message(message);
                }
            }
            Some("replaced") => {
                if let (Some(message), Some(version)) = (
                    value.get("message").and_then(Value::as_u64),
                    value.get("version").and_then(Value::as_str),
                ) {
                    self.index.replace_message(message, version.into());
                    self.index.note_replaced(message, id);
                }
            }
            Some("private_keys") => {
                // Read back from disk: the keys of the private message just
                // before it.
                let private = value.get("private").and_then(Value::as_u64);
                let key = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_string);
                if let (Some((id, json)), Some(from), Some(to)) =
                    (self.unkeyed.take(), key("from"), key("to"))
                    && private == Some(id)
                {
                    self.index.keep_private(id, &from, &to, json);
                }
            }
            // Private messages are kept by append_private, under session
            // keys; one read back from disk waits for its private_keys
            // record (one logged before the keys existed is not resumed).
            Some("private") => self.unkeyed = Some((id, text.into())),
            _ => {}
        }
    }

    /// Write what was appended since the last commit: one write, and in
    /// `fsync` mode one fsync. Rotates the segment when it is full.
    ///
    /// When the write (or the fsync) fails, the segment is cut back to its
    /// last whole record, so the log is exactly as it was and the next
    /// write is readable; the messages of the buffer are refused (taken
    /// out of the indexes; see [`Store::append_message`]) and its state
    /// records wait for the next write. While writes fail, every commit
    /// tries again (with a `segment` header if nothing else is pending), so
    /// the store notices when the disk is back. See docs/storage.md,
    /// "Faults".
    pub fn commit(&mut self) -> io::Result<()> {
        self.trim();
        if self.file.is_none() {
            self.pending.clear();
            self.pending_records.clear();
            return Ok(());
        }
        if self.pending.is_empty() {
            if self.failing.is_none() {
                return Ok(());
            }
            // A probe: something real to write, that a reader skips.
            self.push_header();
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let result = file.write_all(&self.pending).and_then(|()| {
            if self.config.durability == Durability::Fsync {
                file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = result {
            self.refuse(&e);
            return Err(e);
        }
        self.writes += 1;
        if let Some(why) = self.failing.take() {
            log::warn!("store: writing the log works again (it failed: {why})");
        }
        self.segment_len += self.pending.len() as u64;
        self.pending.clear();
        self.pending_records.clear();
        if self.segment_len >= self.config.segment_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    /// Why writes are failing now, if they are.
    pub fn failing(&self) -> Option<&str> {
        self.failing.as_deref()
    }

    /// A write failed: cut the segment back to its last whole record, and
    /// keep of the buffer only its state records.
    fn refuse(&mut self, error: &io::Error) {
        let why = error.to_string();
        if self.failing.as_deref() != Some(why.as_str()) {
            log::error!("store: writing the log failed: {why}");
        }
        self.failing = Some(why);
        let repaired = self
            .file
            .as_ref()
            .is_some_and(|f| f.set_len(self.segment_len).is_ok());
        if !repaired {
            // The torn bytes stay where they are; the next write goes to a
            // new segment, and recovery skips the old one's torn tail.
            log::error!("store: cannot cut the failed write back; starting a new segment");
            if let Some(dir) = self.config.dir.clone() {
                self.segment += 1;
                let path = segment_path(&dir, self.segment);
                match OpenOptions::new().create(true).append(true).open(&path) {
                    Ok(file) => {
                        self.file = Some(file);
                        self.segment_len = 0;
                    }
                    Err(e) => log::error!("store: cannot open {}: {e}", path.display()),
                }
            }
        }
        let pending = std::mem::take(&mut self.pending);
        let records = std::mem::take(&mut self.pending_records);
        let mut start = 0;
        let mut refused = Vec::new();
        for record in records {
            let line = &pending[start..record.end];
            start = record.end;
            if record.message {
                refused.push(record.id);
            } else {
                // A state record written in a new segment goes after the
                // new segment's header.
                self.pending.extend_from_slice(line);
                self.pending_records.push(PendingRecord {
                    end: self.pending.len(),
                    ..record
                });
            }
        }
        if self.pending.len() > MAX_CARRIED_BYTES {
            let over = self.pending.len() - MAX_CARRIED_BYTES;
            let cut = self
                .pending_records
                .iter()
                .position(|r| r.end >= over)
                .map_or(self.pending_records.len(), |i| i + 1);
            let end = cut
                .checked_sub(1)
                .map_or(0, |i| self.pending_records[i].end);
            log::warn!("store: dropping {cut} state records that could not be written");
            self.pending.drain(..end);
            self.pending_records.drain(..cut);
            for r in &mut self.pending_records {
                r.end -= end;
            }
        }
        if self.segment_len == 0 && !repaired && self.file.is_some() {
            let carried = std::mem::take(&mut self.pending);
            let records = std::mem::take(&mut self.pending_records);
            self.push_header();
            let base = self.pending.len();
            self.pending.extend_from_slice(&carried);
            self.pending_records
                .extend(records.into_iter().map(|r| PendingRecord {
                    end: r.end + base,
                    ..r
                }));
        }
        self.unindex(&refused);
    }

    /// Take refused messages out of the indexes (they are at the back).
    fn unindex(&mut self, ids: &[u64]) {
        if ids.is_empty() {
            return;
        }
        self.index.unindex(ids);
        self.unkeyed = None;
    }

    /// Commits so far.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    fn rotate(&mut self) -> io::Result<()> {
        let Some(dir) = self.config.dir.clone() else {
            return Ok(());
        };
        self.segment += 1;
        let path = segment_path(&dir, self.segment);
        self.file = Some(OpenOptions::new().create(true).append(true).open(&path)?);
        self.segment_len = 0;
        // The header is the new segment's first line, written at once.
        self.push_header();
        self.commit()
    }

    /// Delete whole segments (never the one being written) last modified
    /// more than `--retain-days` before `now`. Ids below the first one left
    /// are gone from then on: a resume or history page reaching below it
    /// says `"complete":false`.
    pub fn apply_retention(&mut self, now: SystemTime) {
        let Some(dir) = self.config.dir.clone() else {
            return;
        };
        if self.segment_len == 0 {
            // The segment being written has no header on disk yet (its
            // write failed): the older ones still hold the highest id.
            return;
        }
        let max_age = Duration::from_secs(u64::from(self.config.retain_days) * 86_400);
        for (number, path) in list_segments(&dir).unwrap_or_default() {
            if number == self.segment {
                continue;
            }
            let old = fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > max_age));
            if old {
                match fs::remove_file(&path) {
                    Ok(()) => {
                        log::info!("retention: deleted {}", path.display());
                        self.first_ids.remove(&number);
                        let next = self.first_ids.values().next().copied();
                        self.floor = self.floor.max(next.unwrap_or(self.next_id));
                    }
                    Err(e) => log::warn!("retention: cannot delete {}: {e}", path.display()),
                }
            }
        }
    }

    /// Bytes the data directory's segments take.
    pub fn disk_bytes(&self) -> u64 {
        let Some(dir) = &self.config.dir else {
            return 0;
        };
        list_segments(dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|(_, p)| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// The last `limit` messages of `room`, oldest first, all with an id
    /// below `before` (when given). Served from memory; a page that reaches
    /// past what memory keeps (`--history-keep`, the memory budget) is read
    /// from the log: the segments that can hold it, newest first, until
    /// the page is full.
    ///
    /// The second value is `None` when the page is complete, or the first
    /// id from which the page is known to be whole when older messages it
    /// reaches for are gone (deleted segments, a skipped corrupt record).
    pub fn history(
        &mut self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> (Vec<Arc<str>>, Option<u64>) {
        let (mut page, complete_from) = self.index.room_page(room, before, limit);
        if page.len() < limit && complete_from > 0 && self.file.is_some() {
            let below = before.unwrap_or(u64::MAX).min(complete_from);
            let mut older = self.scan_room(room, 0, below, limit - page.len());
            self.latest_versions(&mut older);
            let mut older: Vec<Arc<str>> = older.into_iter().map(|(_, m)| m).collect();
            older.append(&mut page);
            page = older;
        }
        // A full page covers the ids from its first message up; a short
        // one claims to reach the room's beginning.
        let from = match page.first() {
            Some(first) if page.len() >= limit => record_id(first).unwrap_or(0),
            _ => 0,
        };
        let mut missing = self.missing_after(from, before.unwrap_or(u64::MAX));
        if complete_from > from.saturating_add(1) && self.file.is_none() {
            // Memory let them go and there is no log to read them from.
            missing = Some(missing.unwrap_or(0).max(complete_from));
        }
        (page, missing)
    }

    /// The segments that can hold ids strictly between `after` and
    /// `below`, oldest first (each holds the ids from its first one up to
    /// the next segment's first).
    fn segments_between(&self, after: u64, below: u64) -> Vec<PathBuf> {
        let Some(dir) = &self.config.dir else {
            return Vec::new();
        };
        let segments = list_segments(dir).unwrap_or_default();
        let firsts: Vec<Option<u64>> = segments
            .iter()
            .map(|(n, _)| self.first_ids.get(n).copied())
            .collect();
        segments
            .iter()
            .enumerate()
            .filter(|&(i, _)| {
                let starts_below = firsts[i].is_none_or(|f| f < below);
                let next = firsts.get(i + 1).copied().flatten();
                let ends_after = next.is_none_or(|n| n > after.saturating_add(1));
                starts_below && ends_after
            })
            .map(|(_, (_, path))| path.clone())
            .collect()
    }

    /// Read one segment line by line, handing each record with an id
    /// strictly between `after` and `below` (and containing `needle`) to
    /// `each`. Lines that are not records are passed over.
    fn scan_segment(
        path: &Path,
        (after, below): (u64, u64),
        needles: &[&str],
        mut each: impl FnMut(u64, &str, &Value),
    ) {
        Store::scan_segment_skipping(
            path,
            (after, below),
            needles,
            &Default::default(),
            &mut each,
        )
    }

    /// [`Store::scan_segment`], passing over the ids in `deleted`.
    fn scan_segment_skipping(
        path: &Path,
        (after, below): (u64, u64),
        needles: &[&str],
        deleted: &std::collections::HashSet<u64>,
        mut each: impl FnMut(u64, &str, &Value),
    ) {
        let Ok(file) = File::open(path) else {
            return;
        };
        #[cfg(test)]
        tests::SEGMENTS_READ.with(|n| n.set(n.get() + 1));
        for line in io::BufReader::new(file).lines() {
            let Ok(line) = line else {
                return;
            };
            if !needles.iter().any(|n| line.contains(n)) {
                continue;
            }
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            match value.get("id").and_then(Value::as_u64) {
                Some(id) if id > after && id < below && !deleted.contains(&id) => {
                    each(id, &line, &value)
                }
                _ => {}
            }
        }
    }

    /// The last `limit` chat messages of `room` in the log with an id
    /// strictly between `after` and `below`, oldest first: segments are
    /// read newest first until the page is full.
    /// Each with its id, as the log first held it.
    fn scan_room(&self, room: &str, after: u64, below: u64, limit: usize) -> Vec<(u64, Arc<str>)> {
        let needle = format!("\"room\":{}", serde_json::Value::from(room));
        let mut found: VecDeque<(u64, Arc<str>)> = VecDeque::new();
        for path in self.segments_between(after, below).iter().rev() {
            let mut here: VecDeque<(u64, Arc<str>)> = VecDeque::new();
            Store::scan_segment_skipping(
                path,
                (after, below),
                &[&needle],
                self.index.deleted(),
                |id, line, value| {
                    if value.get("type").and_then(Value::as_str) == Some("chat")
                        && value.get("room").and_then(Value::as_str) == Some(room)
                    {
                        if here.len() == limit {
                            here.pop_front();
                        }
                        here.push_back((id, line.into()));
                    }
                },
            );
            while let Some(m) = here.pop_back() {
                if found.len() == limit {
                    break;
                }
                found.push_front(m);
            }
            if found.len() >= limit {
                break;
            }
        }
        found.into()
    }

    /// The private messages between keys `a` and `b` (in either
    /// direction), the last `limit` with an id below `before`, oldest
    /// first: from memory, and from the log for what memory let go. The
    /// second value is as for [`Store::history`].
    pub fn private_page(
        &mut self,
        (a, b): (&str, &str),
        before: Option<u64>,
        limit: usize,
    ) -> (Vec<Arc<str>>, Option<u64>) {
        let below = before.unwrap_or(u64::MAX);
        let mut page = self.index.private_page((a, b), below, limit);
        let privates_from = self.index.privates_from();
        if page.len() < limit && privates_from > 0 && self.file.is_some() {
            let oldest = page.front().and_then(|m| record_id(m)).unwrap_or(below);
            let upto = oldest.min(privates_from).min(below);
            let mut older = self.scan_privates((a, b), upto, limit - page.len());
            while let Some(m) = older.pop() {
                page.push_front(m);
            }
        }
        let page: Vec<Arc<str>> = page.into();
        let from = match page.first() {
            Some(first) if page.len() >= limit => record_id(first).unwrap_or(0),
            _ => 0,
        };
        let mut missing = self.missing_after(from, below);
        if privates_from > from.saturating_add(1) && self.file.is_none() {
            missing = Some(missing.unwrap_or(0).max(privates_from));
        }
        (page, missing)
    }

    /// From the log: the last `limit` private messages between keys `a`
    /// and `b` with an id below `below`, oldest first.
    fn scan_privates(&self, (a, b): (&str, &str), below: u64, limit: usize) -> Vec<Arc<str>> {
        let mut found: VecDeque<Arc<str>> = VecDeque::new();
        for path in self.segments_between(0, below).iter().rev() {
            let mut here: VecDeque<Arc<str>> = VecDeque::new();
            let mut waiting: Option<(u64, Arc<str>)> = None;
            Store::scan_segment_skipping(
                path,
                (0, u64::MAX),
                &["\"private"],
                self.index.deleted(),
                |id, line, v| match v.get("type").and_then(Value::as_str) {
                    Some("private") if id < below => waiting = Some((id, line.into())),
                    Some("private_keys") => {
                        let key = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
                        let (from, to) = (key("from"), key("to"));
                        if let Some((pid, json)) = waiting.take()
                            && v.get("private").and_then(Value::as_u64) == Some(pid)
                            && ((from == a && to == b) || (from == b && to == a))
                        {
                            if here.len() == limit {
                                here.pop_front();
                            }
                            here.push_back(json);
                        }
                    }
                    _ => {}
                },
            );
            while let Some(m) = here.pop_back() {
                if found.len() == limit {
                    break;
                }
                found.push_front(m);
            }
            if found.len() >= limit {
                break;
            }
        }
        found.into()
    }

    /// From the log: the chat messages of `room` with an id strictly
    /// between `since` and `room_below`, and the private messages of
    /// session `session` between `since` and `private_below`, in id order.
    fn scan_since(
        &self,
        (room, room_below): (&str, u64),
        (session, private_below): (&str, u64),
        since: u64,
    ) -> Vec<(u64, Arc<str>)> {
        let below = room_below.max(private_below);
        let room_needle = format!("\"room\":{}", serde_json::Value::from(room));
        let needles = [room_needle.as_str(), "\"private"];
        let mut out = Vec::new();
        let mut waiting: Option<(u64, Arc<str>)> = None;
        for path in self.segments_between(since, below) {
            // Deleted (and retracted) messages stay gone on resume too.
            Store::scan_segment_skipping(
                &path,
                (since, below),
                &needles,
                self.index.deleted(),
                |id, line, value| match value.get("type").and_then(Value::as_str) {
                    Some("chat")
                        if id < room_below
                            && value.get("room").and_then(Value::as_str) == Some(room) =>
                    {
                        out.push((id, line.into()));
                    }
                    Some("private") if id < private_below => waiting = Some((id, line.into())),
                    Some("private_keys") => {
                        let key = |k: &str| value.get(k).and_then(Value::as_str);
                        if let Some((pid, json)) = waiting.take()
                            && value.get("private").and_then(Value::as_u64) == Some(pid)
                            && (key("from") == Some(session) || key("to") == Some(session))
                        {
                            out.push((pid, json));
                        }
                    }
                    _ => {}
                },
            );
        }
        out
    }

    /// Everything after `since` that the user of session `session` in
    /// `room` should have seen: the room's messages and the private
    /// messages to or from that session, in id order; what memory no
    /// longer keeps is read from the log (at most [`MAX_RESUME_FROM_LOG`]
    /// messages). The second value is `None` when nothing after `since` is
    /// missing, or else the first id from which the answer is known to be
    /// whole: some messages between `since` and it are gone (in deleted
    /// segments, in a corrupt record recovery skipped, or let go by memory
    /// with no log to read them from).
    pub fn since(&mut self, room: &str, session: &str, since: u64) -> (Vec<Arc<str>>, Option<u64>) {
        self.since_in(Some(room), session, since)
    }

    /// The private messages to or from key `session` after `since`, in id
    /// order (see [`Store::since`]): what a user who was offline missed.
    pub fn privates_since(&mut self, session: &str, since: u64) -> Vec<Arc<str>> {
        self.since_in(None, session, since).0
    }

    fn since_in(
        &mut self,
        room: Option<&str>,
        session: &str,
        since: u64,
    ) -> (Vec<Arc<str>>, Option<u64>) {
        let (mut out, room_from) = self.index.since(room, session, since);
        let mut missing = self.missing_after(since, u64::MAX);
        // What memory let go, from the log.
        let room_below = if room_from > since + 1 { room_from } else { 0 };
        let private_below = if self.index.privates_from() > since + 1 {
            self.index.privates_from()
        } else {
            0
        };
        if room_below > 0 || private_below > 0 {
            if self.file.is_some() {
                let room = room.unwrap_or_default();
                let mut older =
                    self.scan_since((room, room_below), (session, private_below), since);
                if older.len() > MAX_RESUME_FROM_LOG {
                    let cut = older.len() - MAX_RESUME_FROM_LOG;
                    older.sort_by_key(|(id, _)| *id);
                    older.drain(..cut);
                    let first = older.first().map_or(0, |(id, _)| *id);
                    missing = Some(missing.unwrap_or(0).max(first));
                }
                self.latest_versions(&mut older);
                out.extend(older);
            } else {
                let first = room_below.max(private_below);
                missing = Some(missing.unwrap_or(0).max(first));
            }
        }
        out.sort_by_key(|(id, _)| *id);
        out.dedup_by_key(|(id, _)| *id);
        (out.into_iter().map(|(_, m)| m).collect(), missing)
    }
}

/// The `id` of a stored record's JSON.
fn record_id(json: &str) -> Option<u64> {
    serde_json::from_str::<Value>(json)
        .ok()?
        .get("id")
        .and_then(Value::as_u64)
}

fn annotate(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("log-{number:08}.jsonl"))
}

/// The number in a segment's file name.
fn segment_number(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_prefix("log-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

/// Hand every record of the log in `dir` that contains one of `needles`
/// to `each`, oldest first, without opening (or locking) the store: for
/// the commands that report on a data directory while a server may be
/// running on it (`wschat desk report`). A line being written at that
/// moment (not yet whole) is skipped.
pub fn scan_dir(dir: &Path, needles: &[&str], mut each: impl FnMut(&Value)) -> io::Result<()> {
    for (_, path) in list_segments(dir)? {
        Store::scan_segment(&path, (0, u64::MAX), needles, |_, _, v| each(v));
    }
    Ok(())
}

/// The segments in `dir`, by number.
fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in
        fs::read_dir(dir).map_err(|e| annotate(e, "cannot read the data directory", dir))?
    {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(n) = segment_number(Path::new(&name)) {
            out.push((n, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Take an exclusive lock on `dir/LOCK` for as long as the file is open.
#[cfg(unix)]
fn lock_dir(dir: &Path) -> io::Result<File> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| annotate(e, "cannot write in the data directory", dir))?;
    if !crate::sys::try_lock_exclusive(&file) {
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "another wschat is using the data directory {}",
                dir.display()
            ),
        ));
    }
    let mut f = &file;
    let _ = f.seek(SeekFrom::Start(0));
    Ok(file)
}

#[cfg(not(unix))]
fn lock_dir(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))
}

/// The embedded log is the hub's [`Log`]: the chat's and the desk's
/// records go to one sequence of segment files with one sequence of ids.
impl Log for Store {
    fn take_id(&mut self) -> u64 {
        Store::take_id(self)
    }

    /// The embedded log files each record by its JSON (as recovery does
    /// when it reads the log back), so the stream named by the record is
    /// the one its JSON says.
    fn append(&mut self, record: Record<'_>) {
        match record {
            Record::Room { json, .. } | Record::Message { json } => self.append_message(json),
            Record::Private { from, to, json } => self.append_private(json, from, to),
            Record::State { json } => Store::append(self, json),
        }
    }

    fn commit(&mut self) -> io::Result<bool> {
        let before = self.writes;
        Store::commit(self)?;
        Ok(self.writes > before)
    }

    fn tick(&mut self) {
        self.trim();
        if self.last_retention.elapsed() >= RETENTION_INTERVAL {
            self.last_retention = std::time::Instant::now();
            self.apply_retention(SystemTime::now());
            log::info!("store: {} bytes on disk", self.disk_bytes());
        }
    }

    fn history(&mut self, room: &str, before: Option<u64>, limit: usize) -> Page {
        let (messages, missing) = Store::history(self, room, before, limit);
        Page { messages, missing }
    }

    fn since(&mut self, room: &str, key: &str, after: u64) -> Page {
        let (messages, missing) = Store::since(self, room, key, after);
        Page { messages, missing }
    }

    fn privates_since(&mut self, key: &str, after: u64) -> Vec<Arc<str>> {
        Store::privates_since(self, key, after)
    }

    fn private_page(&mut self, pair: (&str, &str), before: Option<u64>, limit: usize) -> Page {
        let (messages, missing) = Store::private_page(self, pair, before, limit);
        Page { messages, missing }
    }

    fn private_peers(&mut self, me: &str, read: &dyn Fn(&str) -> u64) -> Vec<Conversation> {
        Store::private_peers(self, me, read)
            .into_iter()
            .map(|(peer, last, unread)| Conversation { peer, last, unread })
            .collect()
    }

    fn delete(&mut self, id: u64) -> Option<String> {
        Store::delete(self, id)
    }

    fn message(&mut self, id: u64) -> Option<Arc<str>> {
        Store::message(self, id)
    }

    fn replace(&mut self, id: u64, json: &str) -> Option<String> {
        Store::replace(self, id, json)
    }

    fn replay(&self, needles: &[&str], each: &mut dyn FnMut(&str, &Value)) {
        Store::replay(self, needles, each)
    }

    fn budget(&self) -> Option<Arc<Budget>> {
        Some(Store::budget(self))
    }

    fn data_dir(&self) -> Option<&Path> {
        self.dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Kept;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "wschat-store-{name}-{}-{}",
            std::process::id(),
            crate::random::random_u64()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn config(dir: &Path) -> StoreConfig {
        StoreConfig {
            dir: Some(dir.to_path_buf()),
            durability: Durability::Process,
            segment_bytes: 300,
            retain_days: 30,
            keep_per_room: 100,
            memory_budget: 0,
        }
    }

    fn chat(store: &mut Store, room: &str, text: &str) -> u64 {
        let id = store.take_id();
        let json = serde_json::json!({"type":"chat","id":id,"room":room,"user":{"id":1,"name":"a"},"text":text,"time":1}).to_string();
        store.append(&json);
        id
    }

    /// A later version of message `id` of room `room` with `text`.
    fn version(id: u64, room: &str, text: &str) -> String {
        serde_json::json!({"type":"chat","id":id,"room":room,"user":{"id":1,"name":"a"},"text":text,"time":1,"edited":2}).to_string()
    }

    #[test]
    fn versions_count_in_the_budget_and_what_it_lets_go_is_read_back_from_the_log() {
        let dir = temp_dir("versions");
        let small = StoreConfig {
            memory_budget: 30_000,
            segment_bytes: 8192,
            ..config(&dir)
        };
        let mut store = Store::open(&small).unwrap();
        let mut ids = Vec::new();
        for i in 0..100 {
            ids.push(chat(&mut store, "a", &format!("first{i}")));
            store.commit().unwrap();
        }
        let deleted = ids[3];
        // Many versions of every message: far more than the budget holds.
        for round in 0..20 {
            for (i, &id) in ids.iter().enumerate() {
                let text = format!("v{round}-{i}-{}", "x".repeat(200));
                let room = store.replace(id, &version(id, "a", &text));
                let gone = round > 0 && id == deleted;
                assert_eq!(room.as_deref(), (!gone).then_some("a"));
            }
            store.commit().unwrap();
            if round == 0 {
                assert_eq!(store.delete(deleted).as_deref(), Some("a"));
            }
            let budget = store.budget();
            assert!(
                budget.total() <= budget.limit(),
                "{} > {}",
                budget.total(),
                budget.limit()
            );
        }
        let budget = store.budget();
        assert!(budget.evictions(Kept::Histories) > 0);
        // Memory let some versions go (one is gone with its message).
        assert!(
            store.index.versions_kept() < ids.len() - 10,
            "{}",
            store.index.versions_kept()
        );
        let check = |store: &mut Store| {
            // History (from memory and the log): the latest version of
            // each, the deleted one gone.
            let (page, missing) = store.history("a", None, 200);
            assert_eq!(missing, None);
            assert_eq!(page.len(), ids.len() - 1);
            for (m, &id) in page.iter().zip(ids.iter().filter(|&&id| id != deleted)) {
                let i = ids.iter().position(|&x| x == id).unwrap();
                assert!(m.contains(&format!("\"v19-{i}-")), "{m}");
            }
            // Resume from the start, and one message at a time.
            let (got, _) = store.since("a", "k", 0);
            assert_eq!(got.len(), ids.len() - 1);
            assert!(got.iter().all(|m| m.contains("\"v19-")));
            for (i, &id) in ids.iter().enumerate() {
                let m = store.message(id);
                if id == deleted {
                    assert_eq!(m, None);
                } else {
                    assert!(m.unwrap().contains(&format!("\"v19-{i}-")));
                }
            }
            assert!(
                !page
                    .iter()
                    .chain(&got)
                    .any(|m| m.contains("first3\"") || m.contains("-3-"))
            );
        };
        check(&mut store);
        drop(store);
        // After a restart, rebuilt within the budget.
        let mut store = Store::open(&small).unwrap();
        let budget = store.budget();
        assert!(
            budget.total() <= budget.limit(),
            "{} > {}",
            budget.total(),
            budget.limit()
        );
        check(&mut store);
        drop(store);
        fs::remove_dir_all(&dir).unwrap();
    }

    thread_local! {
        /// Segment files this thread's store read (`scan_segment_skipping`).
        pub(super) static SEGMENTS_READ: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[test]
    fn an_evicted_version_is_read_back_from_its_own_segment_however_long_the_log_grew() {
        let dir = temp_dir("version-seek");
        let small = StoreConfig {
            memory_budget: 30_000,
            segment_bytes: 4096,
            ..config(&dir)
        };
        let mut store = Store::open(&small).unwrap();
        let edited = chat(&mut store, "a", "first");
        store.commit().unwrap();
        let latest = version(edited, "a", "the edit");
        store.replace(edited, &latest).unwrap();
        store.commit().unwrap();
        // Far more after it than memory holds, over many segments: the
        // version and the message leave memory.
        for i in 0..2_000 {
            chat(
                &mut store,
                &format!("b{}", i % 300),
                &format!("{i}-{}", "y".repeat(100)),
            );
            store.commit().unwrap();
        }
        assert!(list_segments(&dir).unwrap().len() > 40);
        assert_eq!(store.index.kept_message(edited), None, "evicted");
        SEGMENTS_READ.with(|n| n.set(0));
        assert_eq!(store.message(edited).as_deref(), Some(latest.as_str()));
        let read = SEGMENTS_READ.with(|n| n.get());
        // The message's segment, and the one holding its `replaced` record.
        assert!(read <= 2, "{read} segments read for one message");
        // A message never replaced is served as it was, without a search.
        let plain = chat(&mut store, "a", "plain");
        store.commit().unwrap();
        assert!(store.message(plain).unwrap().contains("\"plain\""));
        drop(store);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn records_survive_a_reopen_across_rotated_segments_and_ids_continue() {
        let dir = temp_dir("reopen");
        let mut ids = Vec::new();
        {
            let mut store = Store::open(&config(&dir)).unwrap();
            for i in 0..20 {
                ids.push(chat(&mut store, "lobby", &format!("m{i}")));
                store.commit().unwrap();
            }
        }
        assert!(
            list_segments(&dir).unwrap().len() > 1,
            "segments rotate at 300 bytes"
        );
        let segments = list_segments(&dir).unwrap().len() as u64;
        let mut store = Store::open(&config(&dir)).unwrap();
        // Each segment starts with its header record.
        assert_eq!(store.recovery().records, 20 + segments);
        let (history, missing) = store.history("lobby", None, 50);
        assert_eq!(missing, None);
        assert_eq!(history.len(), 20);
        assert!(history[19].contains("\"m19\""));
        assert!(store.take_id() > ids[19]);
        let (page, _) = store.history("lobby", Some(ids[10]), 5);
        assert_eq!(page.len(), 5);
        assert!(page[4].contains("\"m9\""));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_last_line_is_cut_and_a_corrupt_middle_line_skipped() {
        let dir = temp_dir("torn");
        fs::create_dir_all(&dir).unwrap();
        let good =
            |id: u64| format!("{{\"type\":\"chat\",\"id\":{id},\"room\":\"r\",\"text\":\"t\"}}\n");
        let content = format!(
            "{}garbage line\n{}{{\"type\":\"chat\",\"id\":9",
            good(1),
            good(2)
        );
        fs::write(segment_path(&dir, 1), &content).unwrap();
        let mut store = Store::open(&config(&dir)).unwrap();
        assert_eq!(store.recovery().records, 2);
        assert_eq!(store.recovery().corrupt, 1);
        assert!(store.recovery().torn_bytes > 0);
        assert_eq!(store.take_id(), 3);
        let on_disk = fs::read_to_string(segment_path(&dir, 1)).unwrap();
        assert!(on_disk.ends_with('\n'));
        drop(store);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn retention_deletes_whole_old_segments_but_never_the_current_one() {
        let dir = temp_dir("retention");
        let mut store = Store::open(&config(&dir)).unwrap();
        for i in 0..20 {
            chat(&mut store, "lobby", &format!("m{i}"));
            store.commit().unwrap();
        }
        let before = list_segments(&dir).unwrap().len();
        assert!(before > 2, "segments rotate at 300 bytes");
        store.apply_retention(SystemTime::now());
        assert_eq!(
            list_segments(&dir).unwrap().len(),
            before,
            "nothing is 30 days old yet"
        );
        let later = SystemTime::now() + Duration::from_secs(31 * 86_400);
        store.apply_retention(later);
        let left = list_segments(&dir).unwrap();
        assert_eq!(left.len(), 1, "only the segment being written is left");
        assert_eq!(left[0].0, store.segment);
        assert!(store.disk_bytes() < 300);
        drop(store);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ids_stay_above_every_id_given_out_after_retention_empties_the_log() {
        let dir = temp_dir("retention-ids");
        let mut last = 0;
        {
            let mut store = Store::open(&config(&dir)).unwrap();
            for i in 0..20 {
                last = chat(&mut store, "lobby", &format!("m{i}"));
                store.commit().unwrap();
            }
            store.apply_retention(SystemTime::now() + Duration::from_secs(31 * 86_400));
            assert_eq!(list_segments(&dir).unwrap().len(), 1);
        }
        for _ in 0..2 {
            let mut store = Store::open(&config(&dir)).unwrap();
            store.apply_retention(SystemTime::now() + Duration::from_secs(31 * 86_400));
            let next = chat(&mut store, "lobby", "after");
            store.commit().unwrap();
            assert!(next > last, "id {next} after {last}");
            last = next;
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_resume_or_page_across_deleted_segments_or_a_corrupt_record_is_not_complete() {
        let dir = temp_dir("gap");
        let mut ids = Vec::new();
        {
            let mut store = Store::open(&config(&dir)).unwrap();
            for i in 0..20 {
                ids.push(chat(&mut store, "lobby", &format!("m{i}")));
                store.commit().unwrap();
            }
        }
        // Retention (or a hand) removes the two oldest segments.
        let segments = list_segments(&dir).unwrap();
        for (_, path) in &segments[..2] {
            fs::remove_file(path).unwrap();
        }
        let mut store = Store::open(&config(&dir)).unwrap();
        let (got, missing) = store.since("lobby", "k", ids[0]);
        let first = missing.expect("messages after ids[0] are gone");
        assert!(first > ids[1] && first <= ids[19], "{first}");
        assert!(got.iter().all(|m| record_id(m) >= Some(first)));
        let (_, missing) = store.since("lobby", "k", ids[18]);
        assert_eq!(missing, None, "nothing after ids[18] is gone");
        let (page, missing) = store.history("lobby", None, 50);
        assert!(page.len() < 20);
        assert_eq!(missing, Some(first));
        drop(store);

        // A record in the middle of the newest segment becomes unreadable.
        let (_, newest) = list_segments(&dir).unwrap().pop().unwrap();
        let text = fs::read_to_string(&newest).unwrap();
        let broken = text.replacen("\"m19\"", "\"m19", 1);
        fs::write(&newest, broken).unwrap();
        let mut store = Store::open(&config(&dir)).unwrap();
        assert_eq!(store.recovery().corrupt, 1);
        let (_, missing) = store.since("lobby", "k", ids[18]);
        assert!(missing.is_some_and(|f| f > ids[19]), "{missing:?}");
        let next = {
            let mut store = store;
            store.take_id()
        };
        assert!(next > ids[19], "ids never repeat, even an unreadable one's");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn what_the_budget_lets_go_is_read_back_from_the_log_whole_and_in_order() {
        let dir = temp_dir("budget");
        let small = StoreConfig {
            memory_budget: 40_000,
            segment_bytes: 4096,
            ..config(&dir)
        };
        let mut store = Store::open(&small).unwrap();
        let mut room_a = Vec::new();
        let mut privates = Vec::new();
        for i in 0..200 {
            room_a.push(chat(&mut store, "a", &format!("a{i}")));
            let id = store.take_id();
            let psst = serde_json::json!({"type":"private","id":id,"text":format!("p{i}")});
            store.append_private(&psst.to_string(), "k-ann", "k-bob");
            privates.push(id);
            store.commit().unwrap();
        }
        for i in 0..400 {
            chat(&mut store, "b", &format!("b{i}"));
            store.commit().unwrap();
        }
        let budget = store.budget();
        assert!(budget.total() <= budget.limit(), "{}", budget.total());
        assert!(budget.evictions(Kept::Histories) > 0 && budget.evictions(Kept::Privates) > 0);
        // Room a's whole history, paged back from the newest.
        let mut texts = Vec::new();
        let mut before = None;
        loop {
            let (page, missing) = store.history("a", before, 30);
            assert_eq!(missing, None);
            if page.is_empty() {
                break;
            }
            before = record_id(&page[0]);
            texts.splice(0..0, page.iter().map(|m| m.to_string()));
        }
        assert_eq!(texts.len(), 200);
        assert!(texts[0].contains("\"a0\"") && texts[199].contains("\"a199\""));
        // A resume from the start: room a's messages and bob's privates,
        // from the log and memory, in order, nothing twice.
        let (got, missing) = store.since("a", "k-bob", 0);
        assert_eq!(missing, None);
        let ids: Vec<u64> = got.iter().filter_map(|m| record_id(m)).collect();
        let mut want: Vec<u64> = room_a.iter().chain(&privates).copied().collect();
        want.sort();
        assert_eq!(ids, want);
        // Someone else's session gets the room's messages only.
        let (got, _) = store.since("a", "k-eve", 0);
        assert_eq!(got.len(), 200);
        drop(store);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_store_on_the_same_directory_is_refused() {
        let dir = temp_dir("lock");
        let _first = Store::open(&config(&dir)).unwrap();
        let err = Store::open(&config(&dir)).unwrap_err();
        assert!(err.to_string().contains("another wschat"), "{err}");
    }

    #[test]
    fn private_messages_are_resumed_after_a_reopen_under_their_session_keys() {
        let dir = temp_dir("private");
        let a = {
            let mut store = Store::open(&config(&dir)).unwrap();
            let a = chat(&mut store, "lobby", "one");
            let id = store.take_id();
            let psst = serde_json::json!({"type":"private","id":id,"text":"psst"}).to_string();
            store.append_private(&psst, "k-ann", "k-bob");
            chat(&mut store, "lobby", "two");
            store.commit().unwrap();
            a
        };
        let mut store = Store::open(&config(&dir)).unwrap();
        assert!(store.knows_session("k-ann") && store.knows_session("k-bob"));
        assert!(!store.knows_session("k-eve"));
        let (got, _) = store.since("lobby", "k-bob", a);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].contains("psst") && got[1].contains("two"));
        let (got, _) = store.since("lobby", "k-eve", a);
        assert_eq!(got.len(), 1, "{got:?}");
        // The keys are in the log, beside the message as delivered.
        let log = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| fs::read_to_string(e.ok()?.path()).ok())
            .collect::<String>();
        assert!(log.contains(r#""type":"private_keys""#) && log.contains("k-bob"));
        drop(store);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn since_merges_room_and_private_messages_in_order() {
        let mut store = Store::memory();
        let a = chat(&mut store, "lobby", "one");
        let id = store.take_id();
        let psst = serde_json::json!({"type":"private","id":id,"from":{"id":1,"name":"ann"},"to":{"id":2,"name":"bob"},"text":"psst"});
        store.append_private(&psst.to_string(), "s-ann", "s-bob");
        chat(&mut store, "other", "elsewhere");
        chat(&mut store, "lobby", "two");
        let (got, missing) = store.since("lobby", "s-bob", a);
        assert_eq!(missing, None);
        assert_eq!(got.len(), 2);
        assert!(got[0].contains("psst") && got[1].contains("two"));
        // Someone else, even named bob, has another session.
        let (got, _) = store.since("lobby", "s-other-bob", a);
        assert_eq!(got.len(), 1);
    }
}
