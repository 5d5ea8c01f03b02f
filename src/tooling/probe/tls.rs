//! A refused certificate in words a person can act on: unknown CA, expired, another host's.

use tokio_rustls::rustls::{self, CertificateError};

/// What is wrong with the server's certificate, if `error` (an IMAP, SMTP or HTTP failure, with
/// its causes) is a certificate refusal.
pub fn certificate_problem(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        let rustls = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|i| i.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(certificate)) = rustls {
            return Some(words(certificate));
        }
        cause = e.source();
    }
    None
}

fn words(error: &CertificateError) -> String {
    match error {
        CertificateError::UnknownIssuer => "unknown CA: the certificate is signed by no CA this machine trusts \
            (give the server's CA as `ca_file`, or pin the certificate)"
            .to_owned(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "certificate expired".to_owned(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate not valid yet (is this machine's clock right?)".to_owned()
        }
        CertificateError::NotValidForNameContext { presented, .. } => {
            format!("certificate is for another host (names: {})", presented.join(", "))
        }
        CertificateError::NotValidForName => "certificate is for another host".to_owned(),
        CertificateError::Revoked => "certificate revoked".to_owned(),
        CertificateError::BadSignature | CertificateError::BadEncoding => "certificate is malformed".to_owned(),
        other => format!("certificate refused: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through_io(error: CertificateError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::InvalidCertificate(error))
    }

    #[test]
    fn refusals_are_named_in_words() {
        let unknown = certificate_problem(&through_io(CertificateError::UnknownIssuer)).unwrap();
        assert!(unknown.starts_with("unknown CA"), "{unknown}");
        assert_eq!(certificate_problem(&through_io(CertificateError::Expired)).unwrap(), "certificate expired");
        let other = CertificateError::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("mail.example.org").unwrap(),
            presented: vec!["DnsName(\"other.example\")".into()],
        };
        let named = certificate_problem(&through_io(other)).unwrap();
        assert!(named.starts_with("certificate is for another host (names: ") && named.contains("other.example"));
        assert_eq!(certificate_problem(&std::io::Error::other("reset")), None);
    }
}
