//! Authentication-Results (RFC 8601): the receiving server's DKIM, SPF and DMARC verdicts.
//!
//! Only the topmost header counts: it is the one our own server added. Lower ones were added
//! (or forged) further along the path, so a rule that trusted them could be fooled by a sender.

use serde::Serialize;

/// The verdicts of the receiving server, lowercased as written (`pass`, `fail`, `softfail`,
/// `neutral`, `none`, `temperror`, `permerror`, `policy`); `None` when it did not say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuthResults {
    /// DKIM: `pass` when any signature passed (a message may carry several), else the first.
    pub dkim: Option<String>,
    /// SPF: the first `spf=` result.
    pub spf: Option<String>,
    /// DMARC: the first `dmarc=` result.
    pub dmarc: Option<String>,
}

impl AuthResults {
    /// Reads one Authentication-Results value (already unfolded and decoded).
    pub fn parse(value: &str) -> Self {
        let mut results = Self::default();
        for statement in strip_comments(value).split(';') {
            let Some((method, result)) = method_result(statement) else { continue };
            let slot = match method.as_str() {
                "dkim" => {
                    if results.dkim.as_deref() != Some("pass") && (result == "pass" || results.dkim.is_none()) {
                        results.dkim = Some(result);
                    }
                    continue;
                }
                "spf" => &mut results.spf,
                "dmarc" => &mut results.dmarc,
                _ => continue,
            };
            slot.get_or_insert(result);
        }
        results
    }
}

/// `dkim/1=pass header.d=x` -> (`dkim`, `pass`). The authserv-id statement has no `=` and
/// gives `None`, so a header without one (non-conforming, but seen) is still read.
fn method_result(statement: &str) -> Option<(String, String)> {
    let first = statement.split_whitespace().next()?;
    let (method, result) = first.split_once('=')?;
    let method = method.split('/').next()?.trim().to_ascii_lowercase();
    let result = result.trim().to_ascii_lowercase();
    (!method.is_empty() && !result.is_empty()).then_some((method, result))
}

/// Removes `(comments)`, which may nest and may hold `;` or `=`; quoted strings are kept.
fn strip_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(' ');
                }
            }
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::AuthResults;

    fn verdicts(value: &str) -> (Option<String>, Option<String>, Option<String>) {
        let r = AuthResults::parse(value);
        (r.dkim, r.spf, r.dmarc)
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn reads_the_three_verdicts() {
        let value = "mx.example.org; dkim=pass (2048-bit key; unprotected) header.d=example.com \
                     header.i=@example.com; spf=softfail (domain of x does not designate 192.0.2.1) \
                     smtp.mailfrom=x@example.com; dmarc=FAIL (p=reject dis=none) header.from=example.com";
        assert_eq!(verdicts(value), (s("pass"), s("softfail"), s("fail")));
    }

    #[test]
    fn comments_cannot_inject_verdicts() {
        let value = "mx.example.org; spf=fail (note; dmarc=pass (nested; dkim=pass)) smtp.mailfrom=a@b";
        assert_eq!(verdicts(value), (None, s("fail"), None));
    }

    #[test]
    fn any_passing_dkim_signature_wins() {
        let value = "mx.example.org 1; dkim=fail header.d=a.example; dkim/1=pass header.d=b.example; dkim=neutral";
        assert_eq!(verdicts(value).0, s("pass"));
        assert_eq!(verdicts("mx; dkim=neutral; dkim=fail").0, s("neutral"));
    }

    #[test]
    fn none_and_missing_authserv_id() {
        assert_eq!(verdicts("mx.example.org; none"), (None, None, None));
        assert_eq!(verdicts("spf=pass smtp.mailfrom=a@b"), (None, s("pass"), None));
        assert_eq!(verdicts(""), (None, None, None));
        assert_eq!(verdicts("mx; spf=; =pass; dkim"), (None, None, None));
    }
}
