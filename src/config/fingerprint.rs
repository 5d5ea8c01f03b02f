//! `tls_fingerprint: sha256:...`: a server's certificate pinned by the SHA-256 of its DER.
//!
//! For a home server with a self-signed certificate, which no CA vouches for and which rustls
//! refuses even as a `ca_file` (a CA certificate used as the server's own). With a pin, the
//! chain and host-name checks are replaced by an exact match of the leaf certificate: nothing
//! else is trusted, so a pin is as strict as a CA, only narrower. The handshake's signature is
//! still checked, so only the holder of the certificate's key gets through.
//!
//! Written the way `openssl x509 -noout -fingerprint -sha256` prints it, or as bare hex:
//! colons optional, any case.

use std::fmt;

/// The SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }

    /// Reads `sha256:` and 64 hex digits, colons allowed between them, in any case; the error
    /// says what is wrong.
    pub fn parse(text: &str) -> Result<Fingerprint, String> {
        let text = text.trim();
        let Some(hex) = text.get(..7).filter(|p| p.eq_ignore_ascii_case("sha256:")).map(|_| &text[7..]) else {
            return Err("it must start with `sha256:`".into());
        };
        let digits: Vec<u8> = hex.bytes().filter(|&b| b != b':').collect();
        if let Some(bad) = digits.iter().find(|b| !b.is_ascii_hexdigit()) {
            return Err(format!("`{}` is not a hex digit", char::from(*bad)));
        }
        if digits.len() != 64 {
            return Err(format!("a SHA-256 fingerprint has 64 hex digits, this one {}", digits.len()));
        }
        let mut bytes = [0; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
            // Both are ASCII hex digits (checked above), so the pair is valid UTF-8 and hex.
            let pair = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|e| e.to_string())?;
        }
        Ok(Fingerprint(bytes))
    }
}

/// `sha256:AB:CD:...`, as openssl prints it, so the two can be compared by eye.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for (i, byte) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ":" };
            write!(f, "{sep}{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `printf abc | sha256sum`.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn parses_with_or_without_colons_in_any_case() {
        let bare = Fingerprint::parse(&format!("sha256:{ABC}")).unwrap();
        assert_eq!(bare, Fingerprint::of(b"abc"));
        let colons: Vec<String> = ABC.as_bytes().chunks(2).map(|p| String::from_utf8_lossy(p).to_uppercase()).collect();
        assert_eq!(Fingerprint::parse(&format!("SHA256:{}", colons.join(":"))).unwrap(), bare);
        assert_eq!(Fingerprint::parse(&bare.to_string()).unwrap(), bare, "its own display reads back");
        assert!(bare.to_string().starts_with("sha256:BA:78:16:BF:"), "{bare}");
    }

    #[test]
    fn says_what_is_wrong() {
        assert_eq!(Fingerprint::parse(ABC).unwrap_err(), "it must start with `sha256:`");
        assert_eq!(Fingerprint::parse("sha1:ab").unwrap_err(), "it must start with `sha256:`");
        let short = Fingerprint::parse(&format!("sha256:{}", &ABC[..62])).unwrap_err();
        assert_eq!(short, "a SHA-256 fingerprint has 64 hex digits, this one 62");
        let bad = Fingerprint::parse(&format!("sha256:{}xz", &ABC[..62])).unwrap_err();
        assert_eq!(bad, "`x` is not a hex digit");
        assert!(Fingerprint::parse("sha256:é").is_err());
    }
}
