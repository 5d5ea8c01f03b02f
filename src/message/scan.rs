//! The hand scan: the last-resort reading of a message that mail-parser could not handle.
//!
//! It knows only RFC 5322's outline: headers up to the first blank line, `Name: value`, folded
//! lines start with a space or tab. Lines that fit none of that are skipped, never fatal.

use super::fields::RawHeader;

/// The longest header name accepted; longer "names" are body text or garbage.
const NAME_LIMIT: usize = 128;

/// The top-level headers (at most `limit`) and the offset where the body starts.
pub(super) fn headers(input: &[u8], limit: usize) -> (Vec<RawHeader<'_>>, usize) {
    let mut headers: Vec<RawHeader<'_>> = Vec::new();
    // The current header's value, as a byte range, until the next header starts.
    let mut current: Option<(String, usize, usize)> = None;
    let mut pos = 0;
    while pos < input.len() {
        let end = input[pos..].iter().position(|&b| b == b'\n').map_or(input.len(), |i| pos + i + 1);
        let line = &input[pos..end];
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.is_empty() {
            pos = end;
            break;
        }
        if matches!(content[0], b' ' | b'\t') {
            if let Some((_, _, value_end)) = current.as_mut() {
                *value_end = end;
            }
        } else {
            flush(&mut headers, current.take(), input, limit);
            current = header_start(content).map(|(name, value_at)| (name, pos + value_at, end));
        }
        pos = end;
    }
    flush(&mut headers, current, input, limit);
    (headers, pos.min(input.len()))
}

fn flush<'a>(headers: &mut Vec<RawHeader<'a>>, current: Option<(String, usize, usize)>, input: &'a [u8], limit: usize) {
    if let Some((name, start, end)) = current
        && headers.len() < limit
    {
        headers.push(RawHeader { name, value: &input[start..end] });
    }
}

/// `Name: value` -> (name, offset of the value in the line); `None` for lines that are no header.
fn header_start(line: &[u8]) -> Option<(String, usize)> {
    let colon = line.iter().take(NAME_LIMIT + 1).position(|&b| b == b':')?;
    let name = line[..colon].trim_ascii_end();
    let printable = |b: &u8| b.is_ascii_graphic() && *b != b':';
    (!name.is_empty() && name.iter().all(printable)).then(|| (String::from_utf8_lossy(name).into_owned(), colon + 1))
}

#[cfg(test)]
mod tests {
    use super::headers;

    #[test]
    fn scans_folds_and_skips_junk() {
        let input = b"From: a@b.example\r\nSubject: one\r\n two\r\nnot a header\r\nX-Empty:\r\n\r\nbody\r\n";
        let (found, body) = headers(input, 10);
        let names: Vec<&str> = found.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["From", "Subject", "X-Empty"]);
        assert_eq!(found[1].value, b" one\r\n two\r\n");
        assert_eq!(&input[body..], b"body\r\n");
    }

    #[test]
    fn respects_the_limit_and_odd_endings() {
        let (found, body) = headers(b"A: 1\nB: 2\nC: 3", 2);
        assert_eq!(found.len(), 2);
        assert_eq!(body, 14);
        assert!(headers(b"", 5).0.is_empty());
        assert!(headers(b":\n bad: name\n", 5).0.is_empty());
    }
}
