//! Rules written for absent text being `()`.
//!
//! Text getters give `""` for an absent header, so `msg.list_id != ()` (the guard rules wrote
//! when they gave `()`) is now always true and `== ()` always false: a rule guarded so would
//! silently act on every message. Such a comparison, in a rule or a plugin, is refused when the
//! rules load, naming the test to write instead. A header value first stored in a variable escapes this check; the rule
//! reference says that text is never `()`.

use std::sync::LazyLock;

use regex::Regex;

/// A text getter compared with `()`, either way round: `msg.list_id != ()`, `() == msg.header("X")`.
static UNIT_COMPARISON: LazyLock<Regex> = LazyLock::new(|| {
    let getter = r#"msg\s*\.\s*(?:auth\s*\.\s*)?(?:(?P<prop>list_id|message_id|html|thread_id|subject|text|dkim|spf|dmarc)\b|header\s*\(\s*(?P<name>"[^"\n]*")\s*\))"#;
    let unit = r"\(\s*\)";
    // The getter's own regex cannot be used twice in one pattern with the same group names.
    let reversed = getter.replace("?P<prop>", "?P<prop2>").replace("?P<name>", "?P<name2>");
    Regex::new(&format!(r"(?:{getter}\s*(?P<op>[!=]=)\s*{unit})|(?:{unit}\s*(?P<op2>[!=]=)\s*{reversed})"))
        .expect("the pattern is a constant")
});

/// The first comparison of a text getter with `()` outside a `//` comment: its line and column
/// (from 1) and what to write instead.
pub fn unit_comparison(source: &str) -> Option<(usize, usize, String)> {
    source.lines().enumerate().find_map(|(i, line)| {
        let code = line.find("//").map_or(line, |c| &line[..c]);
        let found = UNIT_COMPARISON.captures(code)?;
        let op = found.name("op").or_else(|| found.name("op2")).map_or("==", |m| m.as_str());
        let prop = found.name("prop").or_else(|| found.name("prop2")).map(|m| m.as_str());
        let name = found.name("name").or_else(|| found.name("name2")).map(|m| m.as_str());
        let (getter, header) = match (prop, name) {
            (_, Some(name)) => (format!("msg.header({name})"), Some(name.to_owned())),
            (Some("list_id"), _) => ("msg.list_id".to_owned(), Some("\"List-Id\"".to_owned())),
            (Some("message_id"), _) => ("msg.message_id".to_owned(), Some("\"Message-ID\"".to_owned())),
            (Some(p @ ("dkim" | "spf" | "dmarc")), _) => (format!("msg.auth.{p}"), None),
            (Some(p), _) => (format!("msg.{p}"), None),
            (None, None) => return None,
        };
        let exists = if op == "!=" { "" } else { "!" };
        let instead = match header {
            Some(h) => format!("`{getter} {op} \"\"` or `{exists}msg.has_header({h})`"),
            None => format!("`{getter} {op} \"\"`"),
        };
        let never = if op == "!=" { "always true" } else { "never true" };
        let whole = found.get(0).map_or(0, |m| m.start());
        let message = format!(
            "`{getter} {op} ()` is {never}: text getters give \"\" when the header is absent, never (); write {instead}"
        );
        Some((i + 1, whole + 1, message))
    })
}

#[cfg(test)]
mod tests {
    use super::unit_comparison;

    #[test]
    fn text_getters_compared_with_unit_are_named_with_the_test_to_write() {
        let (line, column, message) = unit_comparison("let a = 1;\nif msg.list_id != () { label(\"x\"); }").unwrap();
        assert_eq!((line, column), (2, 4));
        assert!(message.contains("`msg.list_id != ()` is always true"), "{message}");
        assert!(message.contains("`msg.list_id != \"\"` or `msg.has_header(\"List-Id\")`"), "{message}");
        let (_, _, message) = unit_comparison(r#"if () == msg.header("List-Unsubscribe") {}"#).unwrap();
        assert!(message.contains("`msg.header(\"List-Unsubscribe\") == ()` is never true"), "{message}");
        assert!(message.contains("`!msg.has_header(\"List-Unsubscribe\")`"), "{message}");
        let (_, _, message) = unit_comparison("msg.auth.dmarc == ()").unwrap();
        assert!(message.contains("write `msg.auth.dmarc == \"\"`"), "{message}");
        // Dates are still () when unknown; comments and other values are not comparisons to refuse.
        assert_eq!(unit_comparison("msg.date != () && msg.received == ()"), None);
        assert_eq!(unit_comparison("// old: msg.list_id != ()\nlet m = x.captures(\"a\"); m != ()"), None);
        assert_eq!(unit_comparison("msg.list_id_2 != ()"), None);
    }
}
