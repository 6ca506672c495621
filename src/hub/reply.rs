//! The error reply every application of the hub (and the server's rate
//! limit) sends for a recoverable mistake: the connection stays open.

/// A recoverable mistake, sent back as `{"type":"error","code","message"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// A stable code for programs (`bad_json`, `text_too_long`, …).
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
}

impl ErrorReply {
    /// An error with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> ErrorReply {
        ErrorReply {
            code,
            message: message.into(),
        }
    }

    /// The JSON text sent to the client.
    ///
    /// ```
    /// use wschat::hub::ErrorReply;
    /// let e = ErrorReply::new("bad_json", "not JSON");
    /// assert_eq!(e.to_json(), r#"{"type":"error","code":"bad_json","message":"not JSON"}"#);
    /// ```
    pub fn to_json(&self) -> String {
        #[derive(serde::Serialize)]
        struct Wire<'a> {
            r#type: &'static str,
            code: &'a str,
            message: &'a str,
        }
        let wire = Wire {
            r#type: "error",
            code: self.code,
            message: &self.message,
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }
}
