//! The desk's agent accounts in Redis (`wschat agent … --redis URL`), so
//! that every node of a cluster signs agents in with the same accounts.
//!
//! One hash, `{prefix}:agents`: field the agent's name in lower case (names
//! are unique whatever their case), value the account's JSON as
//! `agents.json` holds it (never the token, only its digest). Every change
//! also increments `{prefix}:agents:v`, the accounts' version: a node asks
//! for the accounts with the version it has ([`LIST_LUA`]), and gets them
//! only when they changed, so that a node looks every tick at the cost of
//! one small reply.
//!
//! Each change is one script, atomic in Redis: an account is added only if
//! no account of that name exists ([`ADD_LUA`]), changed only if it is
//! still what the changer read ([`REPLACE_LUA`], compare and set), removed
//! with the version raised in the same step ([`REMOVE_LUA`]). The values
//! are opaque bytes here; [`crate::desk::agents`] reads and writes them.
//!
//! The desk's canned replies are kept the same way (`{prefix}:canned`,
//! field the shortcut, and `{prefix}:canned:v`), set whatever was there
//! ([`SET_LUA`]): [`crate::desk::canned`] reads and writes them.

use std::sync::{Arc, OnceLock};

use super::client::{Cmd, Error, Script};
use super::resp::Value;
use super::{Cluster, bad};

/// Add an account unless its name is taken. KEYS: accounts, version.
/// ARGV: field, JSON. Returns 1 if added, 0 if the name was taken.
pub const ADD_LUA: &str = r#"
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('INCR', KEYS[2])
return 1
"#;

/// Replace an account if it is still what the caller read. KEYS: accounts,
/// version. ARGV: field, the JSON read, the new JSON. Returns 1 if
/// replaced, 0 if the account is gone or changed meanwhile.
pub const REPLACE_LUA: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[2])
return 1
"#;

/// Remove an account. KEYS: accounts, version. ARGV: field. Returns 1 if
/// it existed.
pub const REMOVE_LUA: &str = r#"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('INCR', KEYS[2])
return 1
"#;

/// Set a field whatever it held, up to `ARGV[3]` fields. KEYS: hash,
/// version. ARGV: field, JSON, most fields. Returns 1 if set, 0 if the
/// field is new and the hash is full.
pub const SET_LUA: &str = r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0
   and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
return 1
"#;

/// The accounts if their version is not `ARGV[1]`. KEYS: accounts, version.
/// Returns `{version}` when unchanged, else `{version, {json, …}}`.
pub const LIST_LUA: &str = r#"
local v = redis.call('GET', KEYS[2]) or '0'
if v == ARGV[1] then
  return {v}
end
return {v, redis.call('HVALS', KEYS[1])}
"#;

struct Scripts {
    add: Arc<Script>,
    replace: Arc<Script>,
    remove: Arc<Script>,
    list: Arc<Script>,
    set: Arc<Script>,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        add: Arc::new(Script::new(ADD_LUA)),
        replace: Arc::new(Script::new(REPLACE_LUA)),
        remove: Arc::new(Script::new(REMOVE_LUA)),
        list: Arc::new(Script::new(LIST_LUA)),
        set: Arc::new(Script::new(SET_LUA)),
    })
}

/// The hash field of agent `name`: its name in lower case.
pub fn field(name: &str) -> String {
    name.trim().to_lowercase()
}

/// The accounts as a node last read them: their version and each one's
/// JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounts {
    /// The value of `{prefix}:agents:v` they were read at ("0": never
    /// changed).
    pub version: String,
    /// Each account's JSON, in no particular order.
    pub json: Arc<Vec<String>>,
}

/// A connection to the Redis of `url` for the command line (`wschat agent
/// … --redis URL`), under the default prefix: waits at most `timeout` for
/// it, then each call at most `timeout` for its reply.
pub fn connect(url: &str, timeout: std::time::Duration) -> Result<Cluster, String> {
    use super::client::{Client, ClientConfig, Link};
    let config = ClientConfig::from_url(url)?;
    // The command line reads no events: they wait in the channel until
    // the process ends.
    let (events, _) = crossbeam_channel::unbounded();
    let client = Client::start(config, events).map_err(|e| e.to_string())?;
    if !client.wait_up(Link::Commands, timeout) {
        return Err(format!("Redis {url} is unreachable"));
    }
    let keys = super::Keys::new(super::DEFAULT_PREFIX);
    Ok(Cluster::new(client, keys, super::Trim::default(), timeout))
}

impl Cluster {
    fn accounts_keys(&self) -> [String; 2] {
        [self.keys.agents(), self.keys.agents_version()]
    }

    /// The call that reads the accounts unless their version is `known`
    /// (`None`: read them whatever their version).
    pub fn accounts_cmd(&self, known: Option<&str>) -> Cmd {
        // A version is digits: "-" is never one.
        let known = known.unwrap_or("-");
        Cmd::eval(&scripts().list, &self.accounts_keys(), &[known])
    }

    /// What [`Cluster::accounts_cmd`] answered: `None` when the version
    /// was the one known.
    pub fn parse_accounts(value: Value) -> Result<Option<Accounts>, Error> {
        let Value::Array(items) = &value else {
            return Err(bad("accounts", &value));
        };
        let text = |v: &Value| {
            v.as_bytes()
                .and_then(|b| std::str::from_utf8(b).ok())
                .map(str::to_string)
        };
        match items.as_slice() {
            [_] => Ok(None),
            [version, Value::Array(list)] => {
                let version = text(version).ok_or_else(|| bad("accounts", &value))?;
                let json = list
                    .iter()
                    .map(text)
                    .collect::<Option<Vec<String>>>()
                    .ok_or_else(|| bad("accounts", &value))?;
                Ok(Some(Accounts {
                    version,
                    json: Arc::new(json),
                }))
            }
            _ => Err(bad("accounts", &value)),
        }
    }

    /// Every account, now (blocking: for the command line).
    pub fn accounts(&self) -> Result<Accounts, Error> {
        self.call(self.accounts_cmd(None), |v| {
            Cluster::parse_accounts(v.clone())?.ok_or_else(|| bad("accounts", &v))
        })
    }

    /// Add account `json` as `name` unless the name is taken; whether it
    /// was added.
    pub fn add_account(&self, name: &str, json: &str) -> Result<bool, Error> {
        let cmd = Cmd::eval(&scripts().add, &self.accounts_keys(), &[&field(name), json]);
        self.call(cmd, |v| Ok(v.as_i64() == Some(1)))
    }

    /// Replace account `name`, read as `old`, by `new`; false when it was
    /// removed or changed since it was read.
    pub fn replace_account(&self, name: &str, old: &str, new: &str) -> Result<bool, Error> {
        let cmd = Cmd::eval(
            &scripts().replace,
            &self.accounts_keys(),
            &[&field(name), old, new],
        );
        self.call(cmd, |v| Ok(v.as_i64() == Some(1)))
    }

    /// Remove account `name`; whether it existed.
    pub fn remove_account(&self, name: &str) -> Result<bool, Error> {
        let cmd = Cmd::eval(&scripts().remove, &self.accounts_keys(), &[&field(name)]);
        self.call(cmd, |v| Ok(v.as_i64() == Some(1)))
    }
}

impl Cluster {
    fn canned_keys(&self) -> [String; 2] {
        [self.keys.canned(), self.keys.canned_version()]
    }

    /// The call that reads the canned replies unless their version is
    /// `known`; its reply reads with [`Cluster::parse_accounts`] (each
    /// value a reply's JSON).
    pub fn canned_cmd(&self, known: Option<&str>) -> Cmd {
        let known = known.unwrap_or("-");
        Cmd::eval(&scripts().list, &self.canned_keys(), &[known])
    }

    /// The call that sets canned reply `shortcut` to `json`, unless it is
    /// new and there are `most` already (reply 0).
    pub fn set_canned_cmd(&self, shortcut: &str, json: &str, most: usize) -> Cmd {
        Cmd::eval(
            &scripts().set,
            &self.canned_keys(),
            &[shortcut, json, &most.to_string()],
        )
    }

    /// The call that removes canned reply `shortcut` (reply 1 if it was
    /// there).
    pub fn remove_canned_cmd(&self, shortcut: &str) -> Cmd {
        Cmd::eval(&scripts().remove, &self.canned_keys(), &[shortcut])
    }

    /// Every canned reply's JSON, now (blocking: for the command line).
    pub fn canned(&self) -> Result<Accounts, Error> {
        self.call(self.canned_cmd(None), |v| {
            Cluster::parse_accounts(v.clone())?.ok_or_else(|| bad("canned", &v))
        })
    }

    /// Set canned reply `shortcut` (blocking); false when it is new and
    /// there are `most` already.
    pub fn set_canned(&self, shortcut: &str, json: &str, most: usize) -> Result<bool, Error> {
        self.call(self.set_canned_cmd(shortcut, json, most), |v| {
            Ok(v.as_i64() == Some(1))
        })
    }

    /// Remove canned reply `shortcut` (blocking); whether it was there.
    pub fn remove_canned(&self, shortcut: &str) -> Result<bool, Error> {
        self.call(self.remove_canned_cmd(shortcut), |v| {
            Ok(v.as_i64() == Some(1))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn the_list_reply_is_unchanged_or_every_account() {
        let same = Value::Array(vec![bulk("3")]);
        assert_eq!(Cluster::parse_accounts(same).unwrap(), None);
        let changed = Value::Array(vec![bulk("4"), Value::Array(vec![bulk("{}")])]);
        let accounts = Cluster::parse_accounts(changed).unwrap().unwrap();
        assert_eq!(accounts.version, "4");
        assert_eq!(*accounts.json, vec!["{}".to_string()]);
        assert!(Cluster::parse_accounts(Value::Int(1)).is_err());
        let not_text = Value::Array(vec![bulk("4"), Value::Array(vec![Value::Int(2)])]);
        assert!(Cluster::parse_accounts(not_text).is_err());
    }

    #[test]
    fn a_field_is_the_name_in_lower_case() {
        assert_eq!(field(" Alice "), "alice");
    }
}
