//! Opening hours of the support desk (`--desk-hours`): when the team is
//! there, and when it is back (docs/customer-service.md, "Hours").
//!
//! A spec is one or more `DAYS HH:MM-HH:MM ±HH:MM` separated by `;`, such
//! as `mon-fri 09:00-18:00 +08:00; sat 10:00-14:00 +08:00`: days (`mon` …
//! `sun`, ranges and comma lists), a start and an end in local time (the
//! end may be `24:00`; an end before the start runs past midnight into the
//! next day), and the UTC offset of that local time.

/// Milliseconds in a minute and in a day.
const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
/// Day names in the order of `weekday` (Monday = 0).
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One window: on `days` (bit 0 = Monday), from `start` to `end` minutes
/// after local midnight, local time being UTC + `offset` minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Window {
    days: u8,
    start: i64,
    end: i64,
    offset: i64,
}

/// When the desk is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hours {
    windows: Vec<Window>,
    text: String,
}

impl std::fmt::Display for Hours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Hours {
    /// Parse a spec.
    ///
    /// ```
    /// use wschat::desk::hours::Hours;
    /// let h = Hours::parse("mon-fri 09:00-18:00 +08:00").unwrap();
    /// // Thursday 2026-01-01 02:00 UTC is 10:00 in UTC+8: open.
    /// assert!(h.is_open(1_767_232_800_000));
    /// // Saturday 2026-01-03 02:00 UTC: closed until Monday 09:00 (+08:00).
    /// assert_eq!(h.next_open(1_767_405_600_000), Some(1_767_574_800_000));
    /// assert!(Hours::parse("weekdays 9-5").is_err());
    /// ```
    pub fn parse(spec: &str) -> Result<Hours, String> {
        let bad = |why: &str| {
            format!("--desk-hours {spec:?}: {why} (like \"mon-fri 09:00-18:00 +08:00\")")
        };
        let mut windows = Vec::new();
        for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let words: Vec<&str> = part.split_whitespace().collect();
            let [days, times, offset] = words.as_slice() else {
                return Err(bad("each part is DAYS HH:MM-HH:MM ±HH:MM"));
            };
            let days =
                parse_days(days).ok_or_else(|| bad("days are mon…sun, ranges and commas"))?;
            let (start, end) = times
                .split_once('-')
                .and_then(|(a, b)| Some((parse_clock(a)?, parse_clock(b)?)))
                .filter(|(a, b)| a != b && *a < 24 * 60)
                .ok_or_else(|| bad("times are HH:MM-HH:MM"))?;
            let offset = parse_offset(offset).ok_or_else(|| bad("the offset is like +08:00"))?;
            windows.push(Window {
                days,
                start,
                end,
                offset,
            });
        }
        if windows.is_empty() {
            return Err(bad("no hours given"));
        }
        Ok(Hours {
            windows,
            text: spec.trim().to_string(),
        })
    }

    /// Whether the desk is open at `ms` (epoch milliseconds).
    pub fn is_open(&self, ms: u64) -> bool {
        let t = ms as i64;
        self.windows.iter().any(|w| {
            // The window that started on this local day, or (past
            // midnight) on the day before.
            (-1..=0).any(|back| {
                let (from, to) = w.on_day(local_day(t, w.offset) + back);
                w.opens_on(local_day(t, w.offset) + back) && from <= t && t < to
            })
        })
    }

    /// When the desk next opens at or after `ms`: `ms` itself when open,
    /// `None` if it never does (no window has a day).
    pub fn next_open(&self, ms: u64) -> Option<u64> {
        if self.is_open(ms) {
            return Some(ms);
        }
        let t = ms as i64;
        self.windows
            .iter()
            .flat_map(|w| {
                let today = local_day(t, w.offset);
                (0..=7)
                    .map(move |d| today + d)
                    .filter(|&d| w.opens_on(d))
                    .map(|d| w.on_day(d).0)
                    .filter(|&from| from >= t)
            })
            .min()
            .map(|m| m as u64)
    }
}

impl Window {
    /// Whether the window opens on local day `day` (days since the epoch).
    fn opens_on(&self, day: i64) -> bool {
        self.days & (1 << weekday(day)) != 0
    }

    /// The window on local day `day`, as UTC epoch ms (start, end).
    fn on_day(&self, day: i64) -> (i64, i64) {
        let midnight = day * DAY_MS - self.offset * MINUTE_MS;
        let end = if self.end > self.start {
            self.end
        } else {
            self.end + 24 * 60
        };
        (
            midnight + self.start * MINUTE_MS,
            midnight + end * MINUTE_MS,
        )
    }
}

/// The local day number (days since 1970-01-01) of UTC epoch ms `t` at
/// `offset` minutes from UTC.
fn local_day(t: i64, offset: i64) -> i64 {
    (t + offset * MINUTE_MS).div_euclid(DAY_MS)
}

/// The weekday of day number `day`, Monday = 0 (1970-01-01 was a Thursday).
fn weekday(day: i64) -> u32 {
    (day + 3).rem_euclid(7) as u32
}

fn parse_days(text: &str) -> Option<u8> {
    let index = |d: &str| DAYS.iter().position(|&n| n.eq_ignore_ascii_case(d));
    let mut mask = 0u8;
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (index(a)?, index(b)?);
                let mut d = a;
                loop {
                    mask |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => mask |= 1 << index(part)?,
        }
    }
    Some(mask)
}

/// `HH:MM` as minutes after midnight (`24:00` allowed, as an end).
fn parse_clock(text: &str) -> Option<i64> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    let minutes = h * 60 + m;
    ((0..24).contains(&h) && (0..60).contains(&m) || minutes == 24 * 60).then_some(minutes)
}

/// `±HH:MM` as minutes east of UTC.
fn parse_offset(text: &str) -> Option<i64> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..=14).contains(&h) && (0..60).contains(&m)).then_some(sign * (h * 60 + m))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-05 is a Monday; epoch ms of that day at `h:m` UTC.
    fn monday(h: i64, m: i64) -> u64 {
        (1_767_571_200_000 + h * 3_600_000 + m * 60_000) as u64
    }

    #[test]
    fn days_times_and_offsets() {
        assert_eq!(weekday(local_day(monday(12, 0) as i64, 0)), 0);
        let h = Hours::parse("mon-fri 09:00-18:00 +08:00").unwrap();
        // 01:00 UTC Monday = 09:00 in UTC+8: opens then.
        assert!(!h.is_open(monday(0, 59)));
        assert!(h.is_open(monday(1, 0)));
        assert!(h.is_open(monday(9, 59)));
        assert!(!h.is_open(monday(10, 0)));
        assert_eq!(h.next_open(monday(10, 0)), Some(monday(1, 0) + 86_400_000));
        // Friday evening to Monday morning.
        let friday_late = monday(11, 0) + 4 * 86_400_000;
        assert_eq!(
            h.next_open(friday_late),
            Some(monday(1, 0) + 7 * 86_400_000)
        );
    }

    #[test]
    fn overnight_wrapping_lists_and_errors() {
        let h = Hours::parse("sat,sun 22:00-02:00 +00:00; wed 10:00-24:00 -05:00").unwrap();
        // Sunday 23:00 and Monday 01:00 (from Sunday night) are open.
        assert!(h.is_open(monday(1, 0)));
        assert!(h.is_open(monday(0, 0) - 3_600_000));
        assert!(!h.is_open(monday(2, 0)));
        // Wednesday 10:00 at -05:00 is 15:00 UTC; open until 05:00 UTC Thursday.
        let wednesday = monday(15, 0) + 2 * 86_400_000;
        assert!(h.is_open(wednesday));
        assert!(h.is_open(wednesday + 13 * 3_600_000));
        assert!(!h.is_open(wednesday + 14 * 3_600_000));
        assert!(
            Hours::parse("fri-mon 09:00-17:00 +00:00")
                .unwrap()
                .is_open(monday(12, 0))
        );
        for bad in [
            "",
            "mon 9-17 +0",
            "mon 09:00-09:00 +00:00",
            "xyz 09:00-10:00 +00:00",
            "mon 09:00-10:00 08:00",
            "mon 25:00-26:00 +00:00",
        ] {
            assert!(Hours::parse(bad).is_err(), "{bad}");
        }
    }
}
