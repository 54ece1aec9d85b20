//! Client certificates on a frontend (mTLS): the verifier a `client_auth` builds, and the
//! subject of a verified certificate as rules and the access log see it, worked out once per
//! connection.

use std::fmt::Write as _;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;

use super::{read, roots, FileRole, TlsError, PROVIDER};
use crate::config;

/// Checks client certificates against `client_auth.ca`; a client without one is refused
/// at the handshake when a certificate is required, and let through otherwise. Also the CA
/// file's contents as read, which the frontend's session tickets are bound to: the very
/// certificates the verifier trusts.
pub fn verifier(
    client_auth: &config::ClientAuth,
) -> Result<(Arc<dyn ClientCertVerifier>, Vec<u8>), TlsError> {
    let ca = read(&client_auth.ca, FileRole::ClientCa)?;
    let roots = roots(&client_auth.ca, FileRole::ClientCa, &ca)?;
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), PROVIDER.clone());
    let builder = match client_auth.required {
        true => builder,
        false => builder.allow_unauthenticated(),
    };
    let verifier = builder
        .build()
        .map_err(|error| TlsError::Setup(rustls::Error::General(error.to_string())))?;
    Ok((verifier, ca))
}

/// The subject of the leaf certificate a client presented, as RFC 4514 writes a name and
/// `openssl x509 -nameopt RFC2253` and nginx's `$ssl_client_s_dn` print it: most specific
/// first, `CN=alice,OU=ops,O=Example`. Bytes outside printable ASCII are escaped (`\C3\A9`),
/// so the text fits a header value and a log line as it is.
pub fn subject(chain: &[CertificateDer<'_>]) -> Option<Box<str>> {
    let (_, leaf) = x509_parser::parse_x509_certificate(chain.first()?).ok()?;
    let mut out = String::new();
    let rdns: Vec<_> = leaf.subject().iter().collect();
    for rdn in rdns.into_iter().rev() {
        for (index, attribute) in rdn.iter().enumerate() {
            let separator = match index {
                0 if out.is_empty() => None,
                0 => Some(','),
                _ => Some('+'),
            };
            out.extend(separator);
            let oid = attribute.attr_type().to_id_string();
            out.push_str(short_name(&oid).unwrap_or(&oid));
            out.push('=');
            match attribute.as_str() {
                Ok(value) => escape(value.as_bytes(), &mut out),
                // Not a string type RFC 4514 can write as text (a BMPString, say).
                Err(_) => {
                    out.push('#');
                    for byte in attribute.as_slice() {
                        let _ = write!(out, "{byte:02X}");
                    }
                }
            }
        }
    }
    Some(out.into_boxed_str())
}

/// The names RFC 4514 (and OpenSSL, for emailAddress and serialNumber) gives attribute types.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// An attribute value escaped as RFC 4514 asks (`,+"\<>;`, a leading `#` or space, a trailing
/// space), and every byte outside printable ASCII as `\XX`.
fn escape(value: &[u8], out: &mut String) {
    for (index, &byte) in value.iter().enumerate() {
        let special = b",+\"\\<>;".contains(&byte)
            || (index == 0 && (byte == b'#' || byte == b' '))
            || (index == value.len() - 1 && byte == b' ');
        match byte {
            b' '..=b'~' if special => {
                out.push('\\');
                out.push(char::from(byte));
            }
            b' '..=b'~' => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\{byte:02X}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    use super::*;

    fn subject_of(name: DistinguishedName) -> String {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name = name;
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        subject(&[cert.der().clone()]).unwrap().into()
    }

    #[test]
    fn most_specific_first_with_rfc_4514_names() {
        let mut name = DistinguishedName::new();
        name.push(DnType::CountryName, "DE");
        name.push(DnType::OrganizationName, "Example GmbH");
        name.push(DnType::OrganizationalUnitName, "ops");
        name.push(DnType::CommonName, "alice");
        assert_eq!(subject_of(name), "CN=alice,OU=ops,O=Example GmbH,C=DE");
    }

    #[test]
    fn special_and_non_ascii_characters_are_escaped() {
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "Acme, Inc.");
        name.push(DnType::CommonName, " #René+x ");
        assert_eq!(subject_of(name), "CN=\\ #Ren\\C3\\A9\\+x\\ ,O=Acme\\, Inc.");
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "#tag\u{1}");
        assert_eq!(subject_of(name), "CN=\\#tag\\01");
    }

    #[test]
    fn an_empty_subject_is_empty_text_and_garbage_none() {
        assert_eq!(subject_of(DistinguishedName::new()), "");
        assert_eq!(subject(&[CertificateDer::from(vec![0x30, 0x00])]), None);
        assert_eq!(subject(&[]), None);
    }
}
