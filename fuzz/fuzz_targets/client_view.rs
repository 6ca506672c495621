//! `client_view`: the terminal client's chat mode fed anything.
//!
//! Byte 0 chooses. Even: the rest, split at NUL bytes, is a series of
//! server texts for one `cli::render::ChatState` (so that a `/msg` waiting
//! for `found`, the member list and the ids seen carry from one to the
//! next). Odd: the rest is keys for `cli::editor::Editor`, drawn after
//! every piece at a width of byte 1 columns (0 to 255).
//!
//! Never a panic. A rendered line holds no control character but the line
//! breaks `clean` adds (so no escape sequence from a server reaches the
//! terminal); the ids seen and their authors stay within their bound; a reply is a JSON
//! `private` command. The editor's line never holds a control character,
//! and a drawing starts by erasing the row.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::cli::editor::{Action, Editor};
use wschat::cli::render::{ChatState, Reply, SEEN_KEPT};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let mut state = ChatState {
            utc_offset: Some(i64::from(mode) * 900 - 43_200),
            ..ChatState::default()
        };
        state.find_for_private("bob", "hi");
        for piece in rest.split(|&b| b == 0) {
            let text = String::from_utf8_lossy(piece);
            let (lines, replies) = state.render(&text);
            for line in lines {
                assert!(
                    !line.text.chars().any(|c| c.is_control() && c != '\n'),
                    "{:?}",
                    line.text
                );
            }
            for Reply::Send(json) in replies {
                let v: serde_json::Value = serde_json::from_str(&json).expect("a reply is JSON");
                assert_eq!(v["type"], "private");
            }
            assert!(state.seen.len() <= SEEN_KEPT);
            assert!(state.authors.len() <= SEEN_KEPT);
        }
    } else {
        let Some((&columns, keys)) = rest.split_first() else {
            return;
        };
        let mut editor = Editor::new();
        for chunk in keys.chunks(7) {
            for action in editor.feed(chunk) {
                if let Action::Submit(line) = action {
                    assert!(!line.chars().any(char::is_control));
                }
            }
            assert!(!editor.text().chars().any(char::is_control));
            assert!(
                editor
                    .draw("> ", usize::from(columns))
                    .starts_with("\r\x1b[K> ")
            );
        }
    }
});
