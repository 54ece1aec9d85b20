//! A frontend's TLS settings beyond its certificates: versions, cipher suites and whose order
//! wins, session tickets and their key file, and client certificates (mTLS). The files they
//! name are read when the TLS is built (`tls::termination`), so `tandem check` and a reload
//! report a file that won't load.

use rustls::CipherSuite;

use super::super::model::*;
use super::super::rules::{Matcher, RuleSet, Var};
use super::super::schema::*;
use super::Validator;

/// The cipher suites tandem serves (those of rustls with aws-lc-rs): the IANA name, the name
/// OpenSSL (so HAProxy's `ciphers` and nginx's `ssl_ciphers`) gives it, and its version.
/// OpenSSL calls TLS 1.3 suites by their IANA names.
pub const CIPHER_SUITES: [(&str, &str, CipherSuite, TlsVersion); 9] = [
    (
        "TLS_AES_256_GCM_SHA384",
        "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
        TlsVersion::Tls13,
    ),
    (
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
        TlsVersion::Tls13,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        TlsVersion::Tls13,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TlsVersion::Tls12,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TlsVersion::Tls12,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TlsVersion::Tls12,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TlsVersion::Tls12,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TlsVersion::Tls12,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        TlsVersion::Tls12,
    ),
];

/// What `tls:` sets besides its certificates and ALPN.
pub(super) struct TlsKnobs {
    pub versions: TlsVersions,
    pub cipher_suites: Option<Vec<CipherSuite>>,
    pub prefer_server_ciphers: bool,
    pub session_tickets: SessionTickets,
    pub client_auth: Option<ClientAuth>,
}

impl Validator {
    pub(super) fn tls_knobs(&mut self, at: &str, spec: &TlsSpec) -> TlsKnobs {
        let versions = self.tls_versions(at, spec);
        let cipher_suites = (spec.cipher_suites.as_ref())
            .map(|names| self.cipher_suites(&format!("{at}.cipher_suites"), names, versions));
        let session_tickets = match (spec.session_tickets, &spec.session_ticket_keys) {
            (Some(false), Some(_)) => {
                self.error(
                    format!("{at}.session_ticket_keys"),
                    "session_tickets is false, so no ticket is made with these keys; remove \
                     one of the two",
                );
                SessionTickets::Off
            }
            (Some(false), None) => SessionTickets::Off,
            (_, Some(file)) => {
                SessionTickets::KeyFile(self.file(format!("{at}.session_ticket_keys"), file))
            }
            (_, None) => SessionTickets::Ephemeral,
        };
        let client_auth = (spec.client_auth.as_ref()).map(|client_auth| ClientAuth {
            ca: self.file(format!("{at}.client_auth.ca"), &client_auth.ca),
            required: client_auth.required.unwrap_or(true),
        });
        TlsKnobs {
            versions,
            cipher_suites,
            prefer_server_ciphers: spec.prefer_server_ciphers.unwrap_or(false),
            session_tickets,
            client_auth,
        }
    }

    fn tls_versions(&mut self, at: &str, spec: &TlsSpec) -> TlsVersions {
        let mut version = |key: &str, text: &Option<TlsVersionSpec>, default: TlsVersion| {
            let Some(TlsVersionSpec(text)) = text else {
                return default;
            };
            match text.as_str() {
                "1.2" => TlsVersion::Tls12,
                "1.3" => TlsVersion::Tls13,
                _ => {
                    self.error(
                        format!("{at}.{key}"),
                        format!(
                            "{text:?} is not a TLS version tandem serves: write \"1.2\" or \"1.3\" \
                             (TLS 1.0 and 1.1 are not supported)"
                        ),
                    );
                    default
                }
            }
        };
        let min = version("min_version", &spec.min_version, TlsVersion::Tls12);
        let max = version("max_version", &spec.max_version, TlsVersion::Tls13);
        if min > max {
            self.error(
                format!("{at}.max_version"),
                "is below min_version, which leaves no version to serve",
            );
        }
        TlsVersions { min, max }
    }

    /// The suites `names` lists, in order; each name may hold several joined by `:`, as
    /// OpenSSL writes a list.
    fn cipher_suites(
        &mut self,
        at: &str,
        names: &OneOrMany,
        versions: TlsVersions,
    ) -> Vec<CipherSuite> {
        let errors_before = self.errors.len();
        let mut suites = Vec::new();
        for (index, item) in names.0.iter().enumerate() {
            let field = format!("{at}[{index}]");
            for name in item.split(':').map(str::trim) {
                let found = (CIPHER_SUITES.iter()).find(|(iana, openssl, ..)| {
                    iana.eq_ignore_ascii_case(name) || openssl.eq_ignore_ascii_case(name)
                });
                let Some((_, _, suite, _)) = found else {
                    self.error(
                        field.clone(),
                        format!(
                            "unknown cipher suite {name:?}; tandem serves {}",
                            known_suites()
                        ),
                    );
                    continue;
                };
                if suites.contains(suite) {
                    self.error(field.clone(), format!("{name} is listed twice"));
                    continue;
                }
                suites.push(*suite);
            }
        }
        if names.0.is_empty() {
            self.error(
                at.to_owned(),
                "must list at least one suite; leave it out for the default list",
            );
            return suites;
        }
        for (version, text, other) in [
            (TlsVersion::Tls12, "1.2", "min_version: \"1.3\""),
            (TlsVersion::Tls13, "1.3", "max_version: \"1.2\""),
        ] {
            let listed = (CIPHER_SUITES.iter())
                .any(|(.., suite, of)| *of == version && suites.contains(suite));
            // Not when a name was not understood: it may be the suite missing.
            if versions.contains(version) && !listed && self.errors.len() == errors_before {
                self.error(
                    at.to_owned(),
                    format!(
                        "lists no TLS {text} suite, so TLS {text} clients could not connect; add \
                         one, or set {other}"
                    ),
                );
            }
        }
        suites
    }

    /// Reports each rule that reads the client certificate's subject on a frontend without
    /// `tls.client_auth`, where no request has one.
    pub(super) fn client_subject_needs_client_auth(
        &mut self,
        at: &str,
        tls: Option<&Tls>,
        rules: &RuleSet,
    ) {
        if tls.is_some_and(|tls| tls.client_auth.is_some()) {
            return;
        }
        for rule in &rules.rules {
            let reads = (rule.matcher.as_ref()).is_some_and(reads_client_subject)
                || (rule.templates())
                    .any(|template| template.uses(|var| *var == Var::ClientSubject));
            if reads {
                self.error(
                    format!("{at}.rules"),
                    format!(
                        "rule {} reads the client certificate's subject, but this frontend asks \
                         for no client certificate; add tls: {{ client_auth: {{ ca: FILE }} }}",
                        rule.name
                    ),
                );
            }
        }
    }
}

fn reads_client_subject(matcher: &Matcher) -> bool {
    match matcher {
        Matcher::ClientSubject(_) => true,
        Matcher::All(all) | Matcher::Any(all) => all.iter().any(reads_client_subject),
        Matcher::Not(inner) => reads_client_subject(inner),
        Matcher::Named(inner) => reads_client_subject(inner),
        _ => false,
    }
}

/// The suite names for a message: IANA's, and OpenSSL's where it differs.
fn known_suites() -> String {
    let names: Vec<String> = (CIPHER_SUITES.iter())
        .map(|(iana, openssl, ..)| match iana == openssl {
            true => iana.to_string(),
            false => format!("{iana} ({openssl})"),
        })
        .collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{problems, valid, TEST_BASE};
    use super::*;
    use std::path::PathBuf;

    fn frontend(tls: &str) -> String {
        format!(
            "node: {{ name: n }}\n\
             frontends: [{{ name: f, listen: 127.0.0.1:443, mode: http, backend: b,\n\
               tls: {{ certificates: [{{ cert: c.pem, key: c.key }}]{tls} }} }}]\n\
             backends: [{{ name: b, servers: [{{ name: s, address: 127.0.0.1:81 }}] }}]\n"
        )
    }

    fn tls(keys: &str) -> Tls {
        valid(&frontend(keys)).frontends[0].tls.clone().unwrap()
    }

    #[test]
    fn every_suite_named_is_one_the_tls_stack_has() {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let available: Vec<CipherSuite> = (provider.cipher_suites.iter())
            .map(|suite| suite.suite())
            .collect();
        for (iana, _, suite, version) in CIPHER_SUITES {
            assert!(available.contains(&suite), "{iana}");
            let tls13 = iana.starts_with("TLS_AES") || iana.starts_with("TLS_CHACHA");
            assert_eq!(version == TlsVersion::Tls13, tls13, "{iana}");
        }
        assert_eq!(
            available.len(),
            CIPHER_SUITES.len(),
            "a suite has no name here"
        );
    }

    #[test]
    fn defaults_are_what_tandem_did_before_these_keys() {
        let tls = tls("");
        assert_eq!(tls.versions, TlsVersions::ALL);
        assert_eq!(tls.cipher_suites, None);
        assert!(!tls.prefer_server_ciphers);
        assert_eq!(tls.session_tickets, SessionTickets::Ephemeral);
        assert_eq!(tls.client_auth, None);
        assert_eq!(tls.certificates[0].ocsp, None);
    }

    #[test]
    fn reads_every_key() {
        let tls = tls(
            ", min_version: \"1.3\", max_version: 1.3, cipher_suites: [TLS_AES_256_GCM_SHA384, \
             tls_chacha20_poly1305_sha256], prefer_server_ciphers: true, \
             session_tickets: true, session_ticket_keys: keys/tickets, \
             client_auth: { ca: /srv/clients.pem, required: false }",
        );
        assert_eq!(
            tls.versions,
            TlsVersions {
                min: TlsVersion::Tls13,
                max: TlsVersion::Tls13
            }
        );
        assert_eq!(
            tls.cipher_suites,
            Some(vec![
                CipherSuite::TLS13_AES_256_GCM_SHA384,
                CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            ])
        );
        assert!(tls.prefer_server_ciphers);
        assert_eq!(
            tls.session_tickets,
            SessionTickets::KeyFile(PathBuf::from(format!("{TEST_BASE}/keys/tickets")))
        );
        assert_eq!(
            tls.client_auth,
            Some(ClientAuth {
                ca: PathBuf::from("/srv/clients.pem"),
                required: false
            })
        );
        let tls = self::tls(", session_tickets: false, client_auth: { ca: ca.pem }");
        assert_eq!(tls.session_tickets, SessionTickets::Off);
        assert!(tls.client_auth.unwrap().required, "required by default");
    }

    #[test]
    fn openssl_names_and_colon_lists_are_read_in_order() {
        let tls = tls(
            ", cipher_suites: \"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:\
             TLS_AES_128_GCM_SHA256\"",
        );
        assert_eq!(
            tls.cipher_suites,
            Some(vec![
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                CipherSuite::TLS13_AES_128_GCM_SHA256,
            ])
        );
    }

    #[test]
    fn an_ocsp_file_is_per_certificate() {
        let config = valid(
            "node: { name: n }\n\
             frontends: [{ name: f, listen: 127.0.0.1:443, mode: http, backend: b,\n\
               tls: { certificates: [{ cert: a.pem, key: a.key, ocsp: a.ocsp }, \
                                     { cert: b.pem, key: b.key }] } }]\n\
             backends: [{ name: b, servers: [{ name: s, address: 127.0.0.1:81 }] }]\n",
        );
        let certificates = &config.frontends[0].tls.as_ref().unwrap().certificates;
        assert_eq!(
            certificates[0].ocsp,
            Some(PathBuf::from(format!("{TEST_BASE}/a.ocsp")))
        );
        assert_eq!(certificates[1].ocsp, None);
    }

    #[test]
    fn rejects_versions_other_than_12_and_13() {
        for (keys, expected) in [
            (
                ", min_version: \"1.1\"",
                "frontends[0].tls.min_version: \"1.1\" is not a TLS version tandem serves: write \
                 \"1.2\" or \"1.3\" (TLS 1.0 and 1.1 are not supported)",
            ),
            (
                ", max_version: TLSv1.3",
                "frontends[0].tls.max_version: \"TLSv1.3\" is not a TLS version tandem serves: \
                 write \"1.2\" or \"1.3\" (TLS 1.0 and 1.1 are not supported)",
            ),
            (
                ", min_version: 1.3, max_version: 1.2",
                "frontends[0].tls.max_version: is below min_version, which leaves no version to \
                 serve",
            ),
        ] {
            assert_eq!(problems(&frontend(keys)), [expected], "{keys}");
        }
    }

    #[test]
    fn rejects_unknown_repeated_and_insufficient_cipher_suites() {
        let found = problems(&frontend(
            ", cipher_suites: [TLS_AES_128_GCM_SHA256, \"ECDHE-RSA-AES128-SHA:DHE-RSA-AES256-GCM-SHA384\"]",
        ));
        assert_eq!(found.len(), 2, "{found:?}");
        let listed = "tandem serves TLS_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256, \
                      TLS_CHACHA20_POLY1305_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 \
                      (ECDHE-ECDSA-AES256-GCM-SHA384)";
        assert!(
            found[0].starts_with(&format!(
                "frontends[0].tls.cipher_suites[1]: unknown cipher suite \"ECDHE-RSA-AES128-SHA\"; \
                 {listed}"
            )),
            "{found:?}"
        );
        assert!(found[1].contains("\"DHE-RSA-AES256-GCM-SHA384\""));
        assert_eq!(
            problems(&frontend(
                ", cipher_suites: [TLS_AES_128_GCM_SHA256, tls_aes_128_gcm_sha256]"
            )),
            ["frontends[0].tls.cipher_suites[1]: tls_aes_128_gcm_sha256 is listed twice"]
        );
        assert_eq!(
            problems(&frontend(", cipher_suites: [TLS_AES_128_GCM_SHA256]")),
            [
                "frontends[0].tls.cipher_suites: lists no TLS 1.2 suite, so TLS 1.2 clients could \
                 not connect; add one, or set min_version: \"1.3\""
            ]
        );
        assert_eq!(
            problems(&frontend(
                ", max_version: \"1.3\", cipher_suites: [ECDHE-ECDSA-AES128-GCM-SHA256]"
            )),
            [
                "frontends[0].tls.cipher_suites: lists no TLS 1.3 suite, so TLS 1.3 clients could \
                 not connect; add one, or set max_version: \"1.2\""
            ]
        );
        assert_eq!(
            problems(&frontend(", cipher_suites: []")),
            [
                "frontends[0].tls.cipher_suites: must list at least one suite; leave it out for \
                 the default list"
            ]
        );
        // Enough for the versions served.
        tls(", min_version: \"1.3\", cipher_suites: [TLS_AES_128_GCM_SHA256]");
        tls(", max_version: \"1.2\", cipher_suites: [ECDHE-ECDSA-AES128-GCM-SHA256]");
    }

    #[test]
    fn the_client_subject_needs_client_auth() {
        let rules = "rules: [{ match: { any: [{ not: { client_cert: { subject: true } } }] }, \
                     deny: 403 }, { name: dn, set_request_headers: { X-DN: \"{client_subject}\" } }]";
        let text = |tls: &str| {
            format!(
                "node: {{ name: n }}\n\
                 frontends: [{{ name: f, listen: 127.0.0.1:443, mode: http, backend: b{tls}, {rules} }}]\n\
                 backends: [{{ name: b, servers: [{{ name: s, address: 127.0.0.1:81 }}] }}]\n"
            )
        };
        let why = "reads the client certificate's subject, but this frontend asks for no client \
                   certificate; add tls: { client_auth: { ca: FILE } }";
        let expected = [
            format!("frontends[0].rules: rule 0 {why}"),
            format!("frontends[0].rules: rule dn {why}"),
        ];
        assert_eq!(problems(&text("")), expected);
        let tls = ", tls: { certificates: [{ cert: c.pem, key: c.key }] }";
        assert_eq!(problems(&text(tls)), expected);
        valid(&text(
            ", tls: { certificates: [{ cert: c.pem, key: c.key }], client_auth: { ca: ca.pem } }",
        ));
    }

    #[test]
    fn rejects_ticket_keys_without_tickets_and_empty_file_names() {
        assert_eq!(
            problems(&frontend(
                ", session_tickets: false, session_ticket_keys: tickets.key"
            )),
            [
                "frontends[0].tls.session_ticket_keys: session_tickets is false, so no ticket is \
                 made with these keys; remove one of the two"
            ]
        );
        assert_eq!(
            problems(&frontend(
                ", session_ticket_keys: \"\", client_auth: { ca: \"\" }"
            )),
            [
                "frontends[0].tls.session_ticket_keys: must not be empty",
                "frontends[0].tls.client_auth.ca: must not be empty",
            ]
        );
    }
}
