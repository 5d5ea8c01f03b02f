//! Modified UTF-7 (RFC 3501 section 5.1.3), the encoding of mailbox names on the wire.
//!
//! Rules and config name folders in UTF-8; the server wants `Überweisungen` as
//! `&ANw-berweisungen`. Printable ASCII stands for itself except `&`, which becomes `&-`;
//! every other run of characters is UTF-16BE in base64 (with `,` for `/`, no padding) between
//! `&` and `-`. This module only converts strings: it knows nothing of hierarchy delimiters
//! or namespaces (see `names`).

/// A name that is not valid modified UTF-7.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode mailbox name: invalid modified UTF-7 at byte {position}")]
pub struct DecodeError {
    /// Byte offset of the first bad byte or of the bad `&...-` run.
    pub position: usize,
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Encodes a UTF-8 mailbox name for the server.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush_run(&mut run, &mut out);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            run.extend(c.encode_utf16(&mut [0; 2]).iter());
        }
    }
    flush_run(&mut run, &mut out);
    out
}

fn flush_run(run: &mut Vec<u16>, out: &mut String) {
    if run.is_empty() {
        return;
    }
    let bytes: Vec<u8> = run.drain(..).flat_map(u16::to_be_bytes).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        // 1 byte gives 2 digits, 2 bytes 3, 3 bytes 4: no padding.
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize]));
        }
    }
    out.push('-');
}

/// Decodes a mailbox name as the server sends it (e.g. in LIST) into UTF-8.
pub fn decode(name: &str) -> Result<String, DecodeError> {
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'&' => {
                let end = bytes[i + 1..].iter().position(|&b| b == b'-').ok_or(DecodeError { position: i })? + i + 1;
                if end == i + 1 {
                    out.push('&');
                } else {
                    out.push_str(&decode_run(&bytes[i + 1..end]).ok_or(DecodeError { position: i })?);
                }
                i = end + 1;
            }
            b @ b' '..=b'~' => {
                out.push(char::from(b));
                i += 1;
            }
            _ => return Err(DecodeError { position: i }),
        }
    }
    Ok(out)
}

/// One base64 run (between `&` and `-`) to text; `None` if it is not valid.
fn decode_run(run: &[u8]) -> Option<String> {
    let mut bytes = Vec::with_capacity(run.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &digit in run {
        let value = ALPHABET.iter().position(|&a| a == digit)? as u32;
        acc = (acc << 6 | value) & 0x00ff_ffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
        }
    }
    // Leftover bits are padding: fewer than 6, all zero. The bytes are whole UTF-16 units.
    if bits >= 6 || acc & ((1 << bits) - 1) != 0 || bytes.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = bytes.chunks(2).map(|p| u16::from_be_bytes([p[0], p[1]])).collect();
    String::from_utf16(&units).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_rfc_examples_and_umlauts() {
        assert_eq!(encode("Überweisungen/2026"), "&ANw-berweisungen/2026");
        assert_eq!(encode("~peter/mail/台北/日本語"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(encode("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(encode("&"), "&-");
        assert_eq!(encode("INBOX"), "INBOX");
        assert_eq!(encode(""), "");
        // Outside the BMP: a surrogate pair in one run.
        assert_eq!(encode("📧"), "&2D3c5w-");
    }

    #[test]
    fn decodes_and_round_trips() {
        for name in ["~peter/mail/台北/日本語", "Überweisungen/2026", "a&b", "&", "Grüße & Küsse", "📧 mail", "x\ny"]
        {
            assert_eq!(decode(&encode(name)).as_deref(), Ok(name), "round trip of {name:?} via {}", encode(name));
        }
        assert_eq!(decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(), "~peter/mail/台北/日本語");
        assert_eq!(decode("&-").unwrap(), "&");
    }

    #[test]
    fn rejects_what_is_not_modified_utf7() {
        assert_eq!(decode("&ANw"), Err(DecodeError { position: 0 }), "unterminated run");
        assert_eq!(decode("ab&A!-"), Err(DecodeError { position: 2 }), "not a base64 digit");
        assert_eq!(decode("&AN-"), Err(DecodeError { position: 0 }), "half a UTF-16 unit");
        assert_eq!(decode("&2D0-"), Err(DecodeError { position: 0 }), "lone surrogate");
        assert_eq!(decode("Ü"), Err(DecodeError { position: 0 }), "raw 8-bit");
    }
}
