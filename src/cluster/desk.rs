//! The desk across nodes: one node at a time runs it, the one holding the
//! desk's lease in Redis (docs/cluster.md, "The desk").
//!
//! * `{prefix}:desk:lease` (a string with an expiry): the holder's name
//!   and the address other nodes reach it at, `<name> <host:port>`. Every
//!   node calls [`LEASE_LUA`] every tick: it renews the lease of its
//!   holder, gives a free lease to the caller, and answers who holds it.
//!   A holder that stops (a crash, a stall, Redis out of its reach) loses
//!   it [`LEASE_TTL`] after its last renewal, and the next node to ask
//!   takes it.
//! * `{prefix}:desk:log` (a stream): the desk's records (`desk_…`, as the
//!   embedded store holds them without Redis), entry ids Redis's own,
//!   field `r`. Only the holder writes, and [`APPEND_LUA`] checks that the
//!   caller holds the lease in the same atomic step (fencing): a node that
//!   lost the lease while stalled cannot add anything after the next
//!   holder read the stream. A node that takes the lease reads the stream
//!   from its start ([`Cluster::desk_after_cmd`]) and rebuilds the desk
//!   from it before serving.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::client::{Cmd, Error, Script};
use super::resp::Value;
use super::{Cluster, bad};

/// How long the desk's lease lasts after its holder's last renewal, by
/// default (`--redis-desk-lease`): a holder that stops is replaced at most
/// this (and a tick) later.
pub const LEASE_TTL: Duration = Duration::from_secs(3);

/// Most records one read of the desk's stream brings back.
pub const DESK_RANGE: usize = 1000;

/// Renew the lease if the caller holds it, take it if free; answer the
/// holder. KEYS: lease. ARGV: the caller (`<name> <addr>`), ttl ms.
pub const LEASE_LUA: &str = r#"
local holder = redis.call('GET', KEYS[1])
if (not holder) or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return holder
"#;

/// Give the lease up if the caller holds it (a node that stops). KEYS:
/// lease. ARGV: the caller.
pub const RELEASE_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

/// Add a desk record, only for the lease's holder. KEYS: lease, stream.
/// ARGV: the caller, the record. Answers the entry's id, or the error
/// `NOTHOLDER`.
pub const APPEND_LUA: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('NOTHOLDER this node does not hold the desk')
end
return redis.call('XADD', KEYS[2], '*', 'r', ARGV[2])
"#;

struct Scripts {
    lease: Arc<Script>,
    release: Arc<Script>,
    append: Arc<Script>,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        lease: Arc::new(Script::new(LEASE_LUA)),
        release: Arc::new(Script::new(RELEASE_LUA)),
        append: Arc::new(Script::new(APPEND_LUA)),
    })
}

/// A read of the desk's stream: its records, oldest first, and the id to
/// read after for the rest (`None`: that was all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskRange {
    /// The records.
    pub records: Vec<String>,
    /// The last entry's id, when the read was full (there may be more).
    pub more_after: Option<String>,
}

impl Cluster {
    /// The call that renews or takes the desk's lease for `me` (`<name>
    /// <addr>`), to last `ttl` after it, and answers its holder.
    pub fn lease_cmd(&self, me: &str, ttl: Duration) -> Cmd {
        let ttl = ttl.as_millis().max(1).to_string();
        Cmd::eval(&scripts().lease, &[self.keys.desk_lease()], &[me, &ttl])
    }

    /// What [`Cluster::lease_cmd`] answered: the holder.
    pub fn parse_lease(value: Value) -> Result<String, Error> {
        value
            .as_bytes()
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_string)
            .ok_or_else(|| bad("lease", &value))
    }

    /// The call that gives up the lease if `me` holds it.
    pub fn release_cmd(&self, me: &str) -> Cmd {
        Cmd::eval(&scripts().release, &[self.keys.desk_lease()], &[me])
    }

    /// The call that adds `record` to the desk's stream if `me` holds the
    /// lease.
    pub fn desk_append_cmd(&self, me: &str, record: &str) -> Cmd {
        let keys = [self.keys.desk_lease(), self.keys.desk_log()];
        Cmd::eval(&scripts().append, &keys, &[me, record])
    }

    /// The read of the desk's records after entry `after` (`None`: from
    /// the first), [`DESK_RANGE`] at most.
    pub fn desk_after_cmd(&self, after: Option<&str>) -> Cmd {
        let start = after.map_or("-".to_string(), |a| format!("({a}"));
        Cmd::new("XRANGE")
            .arg(self.keys.desk_log())
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(DESK_RANGE.to_string())
    }

    /// What [`Cluster::desk_after_cmd`] answered.
    pub fn parse_desk_range(value: Value) -> Result<DeskRange, Error> {
        let items = value.as_array().ok_or_else(|| bad("desk range", &value))?;
        let mut records = Vec::with_capacity(items.len());
        let mut last = None;
        for item in items {
            let entry = (|| {
                let [id, fields] = item.as_array()? else {
                    return None;
                };
                let id = std::str::from_utf8(id.as_bytes()?).ok()?.to_string();
                let fields = fields.as_array()?;
                let record = fields.chunks(2).find_map(|pair| match pair {
                    [name, value] if name.as_bytes()? == b"r" => {
                        String::from_utf8(value.as_bytes()?.to_vec()).ok()
                    }
                    _ => None,
                })?;
                Some((id, record))
            })()
            .ok_or_else(|| bad("desk entry", item))?;
            last = Some(entry.0);
            records.push(entry.1);
        }
        let more_after = (records.len() >= DESK_RANGE).then_some(last).flatten();
        Ok(DeskRange {
            records,
            more_after,
        })
    }

    /// Every desk record, now (blocking: for the tests and the command
    /// line), oldest first.
    pub fn desk_records(&self) -> Result<Vec<String>, Error> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let range = self.call(
                self.desk_after_cmd(after.as_deref()),
                Cluster::parse_desk_range,
            )?;
            all.extend(range.records);
            match range.more_after {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    fn entry(id: &str, record: &str) -> Value {
        Value::Array(vec![bulk(id), Value::Array(vec![bulk("r"), bulk(record)])])
    }

    #[test]
    fn a_desk_range_reads_records_in_order_and_says_when_there_may_be_more() {
        let short = Value::Array(vec![entry("1-0", "{\"a\":1}"), entry("2-0", "{\"b\":2}")]);
        let range = Cluster::parse_desk_range(short).unwrap();
        assert_eq!(range.records, ["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(range.more_after, None);
        let full = Value::Array(
            (0..DESK_RANGE)
                .map(|i| entry(&format!("{i}-1"), "{}"))
                .collect(),
        );
        let range = Cluster::parse_desk_range(full).unwrap();
        assert_eq!(range.more_after.as_deref(), Some("999-1"));
        assert!(Cluster::parse_desk_range(Value::Int(3)).is_err());
        let no_record = Value::Array(vec![Value::Array(vec![bulk("1-0"), Value::Array(vec![])])]);
        assert!(Cluster::parse_desk_range(no_record).is_err());
    }

    #[test]
    fn the_lease_reply_is_its_holder() {
        assert_eq!(
            Cluster::parse_lease(bulk("n1 127.0.0.1:80")).unwrap(),
            "n1 127.0.0.1:80"
        );
        assert!(Cluster::parse_lease(Value::Nil).is_err());
    }
}
