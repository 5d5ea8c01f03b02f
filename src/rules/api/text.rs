//! String helpers Rhai lacks: case-insensitive tests and regular expressions.
//!
//! Regexes are compiled once per pattern and cached: a rule runs on every message, and compiling
//! the same pattern each time would cost more than matching it. The cache is bounded, and the
//! `regex` crate matches in linear time, so no pattern or text can stall a rule (no ReDoS).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use regex::Regex;
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

use super::fail;
use super::reference::{Doc, doc, function};

/// Patterns kept compiled. Rules hold a handful of literal patterns; a rule building patterns
/// from message content could grow the cache without bound, so past this it starts over.
pub const REGEX_CACHE: usize = 256;
/// Largest compiled regex, in bytes: a pattern such as `\w{1000}{1000}` fails instead of
/// taking the host's memory.
const REGEX_SIZE: usize = 1 << 20;

static CACHE: LazyLock<Mutex<HashMap<String, Arc<Regex>>>> = LazyLock::new(Mutex::default);

/// The compiled regex for `pattern`, from the cache or compiled now; an invalid pattern is a
/// script error naming it.
pub fn regex(pattern: &str) -> Result<Arc<Regex>, Box<EvalAltResult>> {
    // A panic while holding the lock cannot leave the map half-updated (each change is one
    // call), so a poisoned lock is still good to use.
    let mut cache = CACHE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = cache.get(pattern) {
        return Ok(Arc::clone(found));
    }
    let compiled = regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE)
        .build()
        .map_err(|e| fail(format!("cannot compile regex `{pattern}`: {e}")))?;
    if cache.len() >= REGEX_CACHE {
        cache.clear();
    }
    let compiled = Arc::new(compiled);
    cache.insert(pattern.to_owned(), Arc::clone(&compiled));
    Ok(compiled)
}

fn text(value: Option<regex::Match<'_>>) -> Dynamic {
    value.map_or(Dynamic::UNIT, |m| Dynamic::from(m.as_str().to_owned()))
}

fn captures(haystack: &str, pattern: &str) -> Result<Dynamic, Box<EvalAltResult>> {
    let re = regex(pattern)?;
    Ok(re.captures(haystack).map_or(Dynamic::UNIT, |c| Dynamic::from_array(c.iter().map(text).collect::<Array>())))
}

fn named_captures(haystack: &str, pattern: &str) -> Result<Dynamic, Box<EvalAltResult>> {
    let re = regex(pattern)?;
    let Some(found) = re.captures(haystack) else { return Ok(Dynamic::UNIT) };
    let map: Map = re.capture_names().flatten().map(|name| (name.into(), text(found.name(name)))).collect();
    Ok(Dynamic::from_map(map))
}

/// Whether comparing `text` with the ASCII `part` byte by byte, ASCII case ignored, gives the
/// same answer as comparing their Unicode lowercase forms: then the tests below need not
/// allocate two lowercase copies on every call (rules call them on every message). Lowercasing
/// changes no byte length of ASCII, and only two non-ASCII characters lowercase to something
/// with ASCII in it (U+0130 to "i\u{307}", the Kelvin sign to "k"); any other non-ASCII
/// character stays non-ASCII bytes, which never equal an ASCII byte of `part`.
fn ascii_is_enough(text: &str, part: &str) -> bool {
    part.is_ascii() && (text.is_ascii() || !text.contains(['\u{130}', '\u{212A}']))
}

/// `text` contains `part`, ignoring case (Unicode lowercase).
pub fn icontains(text: &str, part: &str) -> bool {
    if !ascii_is_enough(text, part) {
        return text.to_lowercase().contains(&part.to_lowercase());
    }
    let (text, part) = (text.as_bytes(), part.as_bytes());
    let Some((&first, rest)) = part.split_first() else { return true };
    let last_start = match text.len().checked_sub(part.len()) {
        Some(last) => last,
        None => return false,
    };
    (0..=last_start)
        .any(|i| text[i].eq_ignore_ascii_case(&first) && text[i + 1..i + part.len()].eq_ignore_ascii_case(rest))
}

/// `text` starts with `prefix`, ignoring case (Unicode lowercase).
pub fn istarts_with(text: &str, prefix: &str) -> bool {
    if !ascii_is_enough(text, prefix) {
        return text.to_lowercase().starts_with(&prefix.to_lowercase());
    }
    text.as_bytes().get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// `text` ends with `suffix`, ignoring case (Unicode lowercase).
pub fn iends_with(text: &str, suffix: &str) -> bool {
    if !ascii_is_enough(text, suffix) {
        return text.to_lowercase().ends_with(&suffix.to_lowercase());
    }
    let start = text.len().checked_sub(suffix.len());
    start.is_some_and(|start| text.as_bytes()[start..].eq_ignore_ascii_case(suffix.as_bytes()))
}

const ICONTAINS: Doc = doc(
    "text.icontains(part) -> bool",
    "Whether a string contains another, ignoring case (Unicode).",
    r#"msg.subject.icontains("invoice")"#,
);
const ISTARTS_WITH: Doc = doc(
    "text.istarts_with(prefix) -> bool",
    "Whether a string starts with another, ignoring case.",
    r#"msg.subject.istarts_with("[ALERT]")"#,
);
const IENDS_WITH: Doc = doc(
    "text.iends_with(suffix) -> bool",
    "Whether a string ends with another, ignoring case.",
    r#"msg.from.address.iends_with("@GitHub.com")"#,
);
const MATCHES: Doc = doc(
    "text.matches(regex) -> bool",
    "Whether a regex matches anywhere in a string ((?i) ignores case; the regex crate's syntax).",
    r#"msg.subject.matches("(?i)^invoice #?\\d+")"#,
);
const CAPTURES: Doc = doc(
    "text.captures(regex) -> array | ()",
    "The first match: [whole match, group 1, ...] (() for a group that did not take part); () when no match.",
    r#"let m = msg.subject.captures("order (\\d+)"); if m != () { label("order-" + m[1]); }"#,
);
const NAMED_CAPTURES: Doc = doc(
    "text.named_captures(regex) -> map | ()",
    "The first match's named groups (?<name>...) as a map; () when no match.",
    r##"let m = msg.subject.named_captures("#(?<id>\\d+)"); if m != () { label("ticket-" + m.id); }"##,
);

/// Registers the string helpers. Each scans its text, which may be a whole body: each first
/// stops a rule past its wall-clock limit (see `actions::within_deadline`).
pub fn register(engine: &mut Engine) {
    use super::actions::within_deadline as on_time;
    let e = engine;
    function(e, "icontains", ICONTAINS, |s: &str, part: &str| on_time().map(|()| icontains(s, part)));
    function(e, "istarts_with", ISTARTS_WITH, |s: &str, part: &str| on_time().map(|()| istarts_with(s, part)));
    function(e, "iends_with", IENDS_WITH, |s: &str, part: &str| on_time().map(|()| iends_with(s, part)));
    function(e, "matches", MATCHES, |s: &str, pattern: &str| {
        on_time()?;
        regex(pattern).map(|re| re.is_match(s))
    });
    function(e, "captures", CAPTURES, |s: &str, pattern: &str| on_time().and_then(|()| captures(s, pattern)));
    function(e, "named_captures", NAMED_CAPTURES, |s: &str, pattern: &str| {
        on_time().and_then(|()| named_captures(s, pattern))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ASCII fast paths answer exactly as comparing Unicode lowercase forms does.
    #[test]
    fn case_insensitive_tests_agree_with_unicode_lowercase() {
        let texts = [
            "",
            "Re: Undelivered Mail",
            "[SAtalk] hi",
            "FAILURE NOTICE",
            "Jörg <MAILER-DAEMON@x>",
            "KELVIN \u{212A}",
            "\u{130}STANBUL",
            "ΣΊΣΥΦΟΣ",
            "straße",
            "a",
            "abcabd",
        ];
        let parts =
            ["", "a", "ABD", "undelivered", "[satalk]", "mailer-daemon", "k", "kelvin k", "i", "İs", "ß", "re:", "ail"];
        for text in texts {
            for part in parts {
                let (lt, lp) = (text.to_lowercase(), part.to_lowercase());
                assert_eq!(icontains(text, part), lt.contains(&lp), "{text:?} icontains {part:?}");
                assert_eq!(istarts_with(text, part), lt.starts_with(&lp), "{text:?} istarts_with {part:?}");
                assert_eq!(iends_with(text, part), lt.ends_with(&lp), "{text:?} iends_with {part:?}");
            }
        }
    }

    #[test]
    fn regexes_are_cached_and_bounded() {
        let a = regex("^cache-test$").unwrap();
        let b = regex("^cache-test$").unwrap();
        assert!(Arc::ptr_eq(&a, &b), "the same pattern is compiled once");
        for i in 0..REGEX_CACHE + 10 {
            regex(&format!("fill-{i}")).unwrap();
        }
        assert!(CACHE.lock().unwrap().len() <= REGEX_CACHE);
        let error = regex("(unclosed").unwrap_err().to_string();
        assert!(error.contains("cannot compile regex `(unclosed`"), "{error}");
        assert!(regex(r"\w{1000}{1000}").is_err(), "a huge compiled regex is refused");
    }
}
