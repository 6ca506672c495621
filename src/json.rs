//! JSON objects written in the order their fields are given.
//!
//! serde_json's `Value` keeps an object's fields in a sorted map, so
//! `json!({"type": "chat", "id": 42})` goes on the wire as
//! `{"id":42,"type":"chat"}`. The protocols' messages are easier to read
//! with `type` first and the rest in the order the docs show them. The
//! chat's messages are typed serde enums whose declaration order is that
//! order ([`crate::chat::wire`], [`crate::desk::wire`]); the store writes
//! its few records of its own with [`Object`] (or the
//! [`ordered!`](crate::ordered) macro, which reads like `json!`). Values are anything serde can serialize; a nested object given
//! as a `Value` keeps serde_json's sorted order inside it.

use serde::Serialize;

/// A JSON object being written, field by field, in order.
///
/// ```
/// use wschat::json::Object;
/// let text = Object::new().field("type", "chat").field("id", 42).field("text", "你好").finish();
/// assert_eq!(text, r#"{"type":"chat","id":42,"text":"你好"}"#);
/// ```
#[derive(Debug, Clone)]
pub struct Object {
    text: String,
}

impl Default for Object {
    fn default() -> Object {
        Object::new()
    }
}

impl Object {
    /// An empty object.
    pub fn new() -> Object {
        Object {
            text: String::from("{"),
        }
    }

    /// Add `"key":value`.
    pub fn field(mut self, key: &str, value: impl Serialize) -> Object {
        self.key(key);
        // Writing into a String cannot fail, and the values written here
        // (numbers, strings, vectors, serde_json values) have no map keys
        // that are not strings; if one ever did, `null` is written.
        match serde_json::to_string(&value) {
            Ok(json) => self.text.push_str(&json),
            Err(_) => self.text.push_str("null"),
        }
        self
    }

    /// Add `"key":[item,item,…]` where each item is JSON already (stored
    /// messages, spliced in as they are).
    ///
    /// ```
    /// use wschat::json::Object;
    /// let stored = [r#"{"type":"chat","id":1}"#, r#"{"type":"chat","id":2}"#];
    /// let text = Object::new().field("type", "history").json_list("messages", &stored).finish();
    /// assert_eq!(text, r#"{"type":"history","messages":[{"type":"chat","id":1},{"type":"chat","id":2}]}"#);
    /// ```
    pub fn json_list<S: AsRef<str>>(mut self, key: &str, items: &[S]) -> Object {
        self.key(key);
        self.text.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            self.text.push_str(item.as_ref());
        }
        self.text.push(']');
        self
    }

    /// Add `"key":json` where `json` is JSON already (a stored message,
    /// spliced in as it is, its fields in their order).
    ///
    /// ```
    /// use wschat::json::Object;
    /// let text = Object::new().json("last", r#"{"type":"private","id":3}"#).finish();
    /// assert_eq!(text, r#"{"last":{"type":"private","id":3}}"#);
    /// ```
    pub fn json(mut self, key: &str, json: &str) -> Object {
        self.key(key);
        self.text.push_str(json);
        self
    }

    /// The finished object's text.
    pub fn finish(mut self) -> String {
        self.text.push('}');
        self.text
    }

    fn key(&mut self, key: &str) {
        if self.text.len() > 1 {
            self.text.push(',');
        }
        match serde_json::to_string(key) {
            Ok(quoted) => self.text.push_str(&quoted),
            Err(_) => self.text.push_str("\"\""),
        }
        self.text.push(':');
    }
}

/// `ordered!{"type": "chat", "id": id, …}`: the text of a JSON object with
/// its fields in the order written, as [`Object`] writes it. The values are
/// expressions (anything serde can serialize); for a nested object use a
/// `serde_json::Value` (not another `ordered!`, whose result is a string).
///
/// ```
/// let (id, text) = (42, "你好");
/// let json = wschat::ordered! {"type": "chat", "id": id, "text": text};
/// assert_eq!(json, r#"{"type":"chat","id":42,"text":"你好"}"#);
/// ```
#[macro_export]
macro_rules! ordered {
    ($($key:literal : $value:expr),* $(,)?) => {
        $crate::json::Object::new()$(.field($key, &$value))*.finish()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_objects_lists_and_keys_that_need_escaping() {
        assert_eq!(Object::new().finish(), "{}");
        let none: [&str; 0] = [];
        assert_eq!(
            Object::new().json_list("messages", &none).finish(),
            r#"{"messages":[]}"#
        );
        let text = Object::new()
            .field("a\"b", "line\nbreak")
            .field("none", None::<u8>)
            .finish();
        assert_eq!(text, r#"{"a\"b":"line\nbreak","none":null}"#);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["a\"b"], "line\nbreak");
    }
}
