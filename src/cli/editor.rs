//! The line editor of chat mode on a terminal: the line being typed, kept
//! apart from what the terminal shows, so that a message arriving in the
//! middle of it can be printed above it and the line drawn again intact.
//!
//! It is fed the bytes a terminal in raw mode sends (`sys::RawTerminal`)
//! and answers with [`Action`]s; [`Editor::draw`] gives the bytes that
//! redraw the line. No I/O here. Keys: printable text (UTF-8, Chinese
//! included: wide characters take two columns), Backspace, Delete,
//! Left/Right, Home/End (and Ctrl-A/Ctrl-E), Ctrl-U (erase the line),
//! Ctrl-W (erase a word), Enter, Ctrl-C, and Ctrl-D (end on an empty line,
//! otherwise delete the character under the cursor).

/// What a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The line changed (or the cursor moved): draw it again.
    Redraw,
    /// Enter: the finished line (the editor is empty again).
    Submit(String),
    /// Ctrl-C.
    Interrupt,
    /// Ctrl-D on an empty line.
    EndOfInput,
}

/// The line being typed.
#[derive(Debug, Default, Clone)]
pub struct Editor {
    line: Vec<char>,
    cursor: usize,
    /// The first bytes of a character whose last ones have not come yet.
    partial: Vec<u8>,
    /// An escape sequence being read (it starts with ESC).
    escape: Vec<u8>,
}

impl Editor {
    /// An empty line.
    pub fn new() -> Editor {
        Editor::default()
    }

    /// The line typed so far.
    pub fn text(&self) -> String {
        self.line.iter().collect()
    }

    /// Take in bytes from the terminal.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Action> {
        let mut actions = Vec::new();
        for &b in bytes {
            if let Some(action) = self.byte(b)
                && !(action == Action::Redraw && actions.last() == Some(&Action::Redraw))
            {
                actions.push(action);
            }
        }
        actions
    }

    fn byte(&mut self, b: u8) -> Option<Action> {
        if !self.escape.is_empty() {
            self.escape.push(b);
            return self.escape_sequence();
        }
        if !self.partial.is_empty() || b >= 0x80 {
            self.partial.push(b);
            return match std::str::from_utf8(&self.partial) {
                Ok(s) => {
                    let c = s.chars().next();
                    self.partial.clear();
                    c.and_then(|c| self.insert(c))
                }
                Err(e) if e.error_len().is_none() && self.partial.len() < 4 => None,
                Err(_) => {
                    // Not UTF-8: dropped.
                    self.partial.clear();
                    None
                }
            };
        }
        match b {
            b'\r' | b'\n' => {
                let line = self.text();
                self.line.clear();
                self.cursor = 0;
                Some(Action::Submit(line))
            }
            0x03 => Some(Action::Interrupt),
            0x04 if self.line.is_empty() => Some(Action::EndOfInput),
            0x04 => self.delete(),
            0x7f | 0x08 => self.backspace(),
            0x01 => self.move_to(0),
            0x05 => self.move_to(self.line.len()),
            0x02 => self.move_to(self.cursor.saturating_sub(1)),
            0x06 => self.move_to((self.cursor + 1).min(self.line.len())),
            0x15 => {
                self.line.drain(..self.cursor);
                self.cursor = 0;
                Some(Action::Redraw)
            }
            0x17 => {
                let mut start = self.cursor;
                while start > 0 && self.line[start - 1] == ' ' {
                    start -= 1;
                }
                while start > 0 && self.line[start - 1] != ' ' {
                    start -= 1;
                }
                self.line.drain(start..self.cursor);
                self.cursor = start;
                Some(Action::Redraw)
            }
            0x0c => Some(Action::Redraw),
            0x1b => {
                self.escape.push(b);
                None
            }
            b if b >= 0x20 => self.insert(b as char),
            _ => None,
        }
    }

    /// ESC [ … final byte, or ESC O x: arrows, Home, End, Delete; any
    /// other sequence is read to its end and ignored.
    fn escape_sequence(&mut self) -> Option<Action> {
        let seq = self.escape.clone();
        let done = match seq.as_slice() {
            [0x1b, b'[' | b'O'] => false,
            [0x1b, b'O', _] => true,
            [0x1b, b'[', .., last] => (0x40..=0x7e).contains(last),
            _ => true,
        };
        if !done {
            if seq.len() > 16 {
                self.escape.clear();
            }
            return None;
        }
        self.escape.clear();
        match seq.as_slice() {
            [0x1b, b'[' | b'O', b'C'] => self.move_to((self.cursor + 1).min(self.line.len())),
            [0x1b, b'[' | b'O', b'D'] => self.move_to(self.cursor.saturating_sub(1)),
            [0x1b, b'[' | b'O', b'H'] | [0x1b, b'[', b'1' | b'7', b'~'] => self.move_to(0),
            [0x1b, b'[' | b'O', b'F'] | [0x1b, b'[', b'4' | b'8', b'~'] => {
                self.move_to(self.line.len())
            }
            [0x1b, b'[', b'3', b'~'] => self.delete(),
            _ => None,
        }
    }

    fn insert(&mut self, c: char) -> Option<Action> {
        if c.is_control() {
            return None;
        }
        self.line.insert(self.cursor, c);
        self.cursor += 1;
        Some(Action::Redraw)
    }

    fn backspace(&mut self) -> Option<Action> {
        if self.cursor == 0 {
            return None;
        }
        self.cursor -= 1;
        self.line.remove(self.cursor);
        Some(Action::Redraw)
    }

    fn delete(&mut self) -> Option<Action> {
        if self.cursor == self.line.len() {
            return None;
        }
        self.line.remove(self.cursor);
        Some(Action::Redraw)
    }

    fn move_to(&mut self, to: usize) -> Option<Action> {
        if to == self.cursor {
            return None;
        }
        self.cursor = to;
        Some(Action::Redraw)
    }

    /// The bytes that draw `prompt` and the line on the terminal's current
    /// row, erasing what was there, with the cursor where it belongs. A
    /// line wider than `columns` scrolls sideways to keep the cursor in
    /// view.
    pub fn draw(&self, prompt: &str, columns: usize) -> String {
        let room = columns.saturating_sub(width_of(prompt.chars()) + 1).max(1);
        // The first character shown: as late as needed for the cursor to
        // fit.
        let mut start = 0;
        while width_of(self.line[start..self.cursor].iter().copied()) > room {
            start += 1;
        }
        let mut end = self.cursor;
        let mut used = width_of(self.line[start..self.cursor].iter().copied());
        while end < self.line.len() && used + char_width(self.line[end]) <= room {
            used += char_width(self.line[end]);
            end += 1;
        }
        let shown: String = self.line[start..end].iter().collect();
        let back = width_of(self.line[self.cursor..end].iter().copied());
        let mut out = format!("\r\x1b[K{prompt}{shown}");
        if back > 0 {
            out.push_str(&format!("\x1b[{back}D"));
        }
        out
    }
}

fn width_of(chars: impl Iterator<Item = char>) -> usize {
    chars.map(char_width).sum()
}

/// Columns a character takes on a terminal: 2 for East Asian wide and
/// full-width characters (Chinese, Japanese, Korean, most emoji), 0 for
/// combining marks, 1 otherwise. A short table, not all of Unicode's.
///
/// ```
/// use wschat::cli::editor::char_width;
/// assert_eq!((char_width('a'), char_width('你'), char_width('\u{301}')), (1, 2, 0));
/// ```
pub fn char_width(c: char) -> usize {
    let c = c as u32;
    match c {
        0x0300..=0x036f | 0x200b..=0x200f | 0xfe00..=0xfe0f => 0,
        0x1100..=0x115f
        | 0x2e80..=0x303e
        | 0x3041..=0x33ff
        | 0x3400..=0x4dbf
        | 0x4e00..=0x9fff
        | 0xa000..=0xa4cf
        | 0xac00..=0xd7a3
        | 0xf900..=0xfaff
        | 0xfe30..=0xfe4f
        | 0xff00..=0xff60
        | 0xffe0..=0xffe6
        | 0x1f300..=0x1f64f
        | 0x1f900..=0x1f9ff
        | 0x20000..=0x3fffd => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_utf8_in_pieces_editing_and_enter() {
        let mut e = Editor::new();
        let bytes = "hi 你好".as_bytes();
        for b in bytes {
            e.feed(&[*b]);
        }
        assert_eq!(e.text(), "hi 你好");
        assert_eq!(e.feed(b"\x7f"), [Action::Redraw]);
        assert_eq!(e.text(), "hi 你");
        e.feed(b"\x1b[D\x1b[DX");
        assert_eq!(e.text(), "hiX 你");
        assert_eq!(e.draw("> ", 80), "\r\x1b[K> hiX 你\x1b[3D");
        e.feed(b"\x01\x1b[3~");
        assert_eq!(e.text(), "iX 你");
        assert_eq!(e.feed(b"\r"), [Action::Submit("iX 你".into())]);
        assert_eq!(e.text(), "");
        assert_eq!(e.feed(b"\x04"), [Action::EndOfInput]);
        assert_eq!(e.feed(b"a\x03"), [Action::Redraw, Action::Interrupt]);
        e.feed(b"\x15 one two\x17");
        assert_eq!(e.text(), " one ");
    }

    #[test]
    fn a_long_line_scrolls_to_keep_the_cursor_in_view() {
        let mut e = Editor::new();
        e.feed("0123456789你好".as_bytes());
        let drawn = e.draw("> ", 10);
        assert_eq!(drawn, "\r\x1b[K> 789你好");
        assert!(
            !e.feed(b"\xff\xfe\x1b[99;99;99;99;99;99;99;99x")
                .contains(&Action::Interrupt)
        );
    }
}
