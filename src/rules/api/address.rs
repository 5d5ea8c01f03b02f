//! Addresses and domains: the `Address` type, glob matching, domain and subdomain tests.
//!
//! All comparisons here ignore case: domains are case-insensitive, and although the local part
//! may in theory be case-sensitive, no mail system a rule writer meets treats it so.

use rhai::{Array, Engine};

use super::reference::{Doc, doc, function, getter};
use crate::message::Address;

const ADDRESS: Doc = doc(
    "address.address -> string",
    "The address itself, local@domain (the domain lowercased); \"\" when absent.",
    r#"msg.from.address == "alerts@bank.example""#,
);
const NAME: Doc = doc(
    "address.name -> string",
    "The display name, decoded (Jörg Müller); \"\" when absent.",
    r#"msg.from.name.icontains("GitHub")"#,
);
const DOMAIN: Doc = doc(
    "address.domain -> string",
    "The domain, lowercased; \"\" when the address has none.",
    r#"msg.from.domain == "github.com""#,
);
const TO_STRING: Doc = doc(
    "address.to_string() -> string",
    "The address itself, as used in strings and print.",
    r#"print("from " + msg.from)"#,
);
const COMPARE: Doc = doc(
    "address == text, address != text",
    "Compares the address with a string, ignoring case.",
    r#"msg.from == "Alerts@Bank.example""#,
);
const ADDRESS_MATCHES_GLOB: Doc = doc(
    "address.matches_glob(pattern) -> bool",
    "Whether the address matches a glob: * any run of characters, ? one character; case-insensitive.",
    r#"msg.from.matches_glob("*@*.example.com")"#,
);
const TEXT_MATCHES_GLOB: Doc = doc(
    "text.matches_glob(pattern) -> bool",
    "Whether a string matches a glob: * any run of characters, ? one character; case-insensitive.",
    r#"msg.list_id.matches_glob("*.lists.example.org")"#,
);
const IS_SUBDOMAIN_OF: Doc = doc(
    "domain.is_subdomain_of(parent) -> bool",
    "Whether a domain is parent itself or under it (a.b.example.com is under example.com, notexample.com is not); case-insensitive.",
    r#"msg.from.domain.is_subdomain_of("github.com")"#,
);
const IS_SUBDOMAIN_OF_ANY: Doc = doc(
    "domain.is_subdomain_of([parents]) -> bool",
    "Whether a domain is any of the parents or under one of them.",
    r#"msg.from.domain.is_subdomain_of(["github.com", "gitlab.com"])"#,
);

/// Registers `Address`, `matches_glob` and `is_subdomain_of`.
pub fn register(engine: &mut Engine) {
    let e = engine;
    e.register_type_with_name::<Address>("Address");
    getter(e, "address", ADDRESS, |a: &mut Address| a.address.clone());
    getter(e, "name", NAME, |a: &mut Address| a.name.clone().unwrap_or_default());
    getter(e, "domain", DOMAIN, |a: &mut Address| a.domain.clone());
    function(e, "to_string", TO_STRING, |a: &mut Address| a.address.clone());
    function(e, "==", COMPARE, |a: Address, b: &str| a.address.eq_ignore_ascii_case(b));
    function(e, "!=", COMPARE, |a: Address, b: &str| !a.address.eq_ignore_ascii_case(b));
    function(e, "matches_glob", ADDRESS_MATCHES_GLOB, |a: &mut Address, pattern: &str| glob(pattern, &a.address));
    function(e, "matches_glob", TEXT_MATCHES_GLOB, |text: &str, pattern: &str| glob(pattern, text));
    function(e, "is_subdomain_of", IS_SUBDOMAIN_OF, |domain: &str, parent: &str| is_subdomain_of(domain, parent));
    function(e, "is_subdomain_of", IS_SUBDOMAIN_OF_ANY, |domain: &str, parents: Array| {
        parents.iter().any(|p| p.read_lock::<rhai::ImmutableString>().is_some_and(|p| is_subdomain_of(domain, &p)))
    });
}

/// `domain` equals `parent` or ends with `.parent`, ignoring case and a trailing dot.
pub fn is_subdomain_of(domain: &str, parent: &str) -> bool {
    let domain = domain.trim_end_matches('.').to_lowercase();
    let parent = parent.trim_start_matches(['@', '.']).trim_end_matches('.').to_lowercase();
    if parent.is_empty() {
        return false;
    }
    domain == parent || domain.strip_suffix(&parent).is_some_and(|rest| rest.ends_with('.'))
}

/// `*` matches any run of characters, `?` one character; case-insensitive, nothing else special.
pub fn glob(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.to_lowercase().chars().collect();
    let text: Vec<char> = text.to_lowercase().chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was and the text position it currently stands for: on a mismatch the
    // star takes one more character. Each position is retried at most once per star, so this is
    // linear in practice and never exponential, whatever the pattern.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains() {
        assert!(is_subdomain_of("example.com", "example.com"));
        assert!(is_subdomain_of("a.b.Example.COM", "example.com"));
        assert!(is_subdomain_of("mail.example.com.", "@example.com"));
        assert!(!is_subdomain_of("notexample.com", "example.com"));
        assert!(!is_subdomain_of("example.com", "mail.example.com"));
        assert!(!is_subdomain_of("example.com", ""));
    }

    #[test]
    fn globs() {
        assert!(glob("*@*.example.com", "Bot@Mail.Example.com"));
        assert!(!glob("*@*.example.com", "bot@example.com"));
        assert!(glob("j?rg@*", "jörg@x"));
        assert!(glob("*", ""));
        assert!(!glob("a*b", "a"));
        // A pattern that is exponential for naive backtracking stays fast.
        let text = "a".repeat(5000);
        assert!(!glob(&"*a".repeat(50).replace("**", "*"), &(text + "b")));
    }
}
