//! The field order of the server's JSON messages, checked against the
//! examples the protocol pages show.

/// The keys of the outermost JSON object in `text`, in order. Works on the
/// docs' examples too, which may hold `…` or `[...]`.
pub fn top_level_keys(text: &str) -> Vec<String> {
    let (mut keys, mut depth, mut start) = (Vec::new(), 0, 0);
    let (mut in_string, mut escaped) = (false, false);
    for (i, c) in text.char_indices() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
                if depth == 1 && text[i + 1..].trim_start().starts_with(':') {
                    keys.push(text[start..i].to_string());
                }
            }
            continue;
        }
        match c {
            '"' => (in_string, start) = (true, i + 1),
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ => {}
        }
    }
    keys
}

/// The server's messages as `page` shows them in the sections whose
/// headings are `sections` (each runs to the next heading of its level):
/// for each type, the orders of fields its examples use. Examples are the
/// lines of ```json blocks that start with `{"type":` (an example may go on
/// over the lines after it).
pub fn documented_field_orders(
    page: &str,
    sections: &[&str],
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<Vec<String>>> {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(page))
        .unwrap_or_else(|e| panic!("{page}: {e}"));
    let mut orders: std::collections::BTreeMap<String, std::collections::BTreeSet<Vec<String>>> =
        Default::default();
    for heading in sections {
        let level = &heading[..heading.find(' ').unwrap_or(0) + 1];
        let section = text
            .split(&format!("\n{heading}\n"))
            .nth(1)
            .and_then(|s| s.split(&format!("\n{level}")).next())
            .unwrap_or_else(|| panic!("{page} has no section {heading:?}"));
        for block in section.split("```json\n").skip(1) {
            let block = block.split("```").next().unwrap_or_default();
            for example in block
                .split("\n{\"type\":")
                .map(|e| e.trim_start_matches("{\"type\":"))
            {
                let example = format!("{{\"type\":{example}");
                let kind = example
                    .split('"')
                    .nth(3)
                    .expect("an example's type")
                    .to_string();
                orders
                    .entry(kind)
                    .or_default()
                    .insert(top_level_keys(&example));
            }
        }
    }
    orders
}

/// Check that `text`, a message the server sent, has its top-level fields
/// in an order `orders` (from [`documented_field_orders`]) shows for its
/// type; returns the type. `exact`: the fields are exactly an example's;
/// otherwise `type` comes first and the fields an example shows come in
/// its order, with optional ones (absent from the example, or from the
/// message) allowed.
pub fn check_field_order(
    orders: &std::collections::BTreeMap<String, std::collections::BTreeSet<Vec<String>>>,
    page: &str,
    text: &str,
    exact: bool,
) -> String {
    let value: serde_json::Value = serde_json::from_str(text).expect("JSON from the server");
    let kind = value["type"].as_str().unwrap_or_default().to_string();
    let Some(shown) = orders.get(&kind) else {
        panic!("{kind} is not shown on {page}: {text}");
    };
    let keys = top_level_keys(text);
    let agrees = |example: &Vec<String>| {
        if exact {
            return &keys == example;
        }
        let common: Vec<&String> = keys.iter().filter(|k| example.contains(k)).collect();
        let expected: Vec<&String> = example.iter().filter(|k| keys.contains(k)).collect();
        keys.first().is_some_and(|k| k == "type") && common == expected
    };
    assert!(
        shown.iter().any(agrees),
        "{kind} comes as {keys:?}, {page} shows {shown:?}: {text}"
    );
    kind
}
