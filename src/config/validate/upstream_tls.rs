//! `tls:` on a backend and its servers (TLS to servers), and a health check's `tls` and `sni`.
//!
//! The files are only named here: they are read when a config is applied (and by
//! `tandem check`), as the frontends' certificates are.

use super::super::model::*;
use super::super::schema::*;
use super::Validator;

impl Validator {
    /// One `tls:` map as written; what only holds once a server's keys are merged over its
    /// backend's is `merged_upstream_tls`.
    pub(super) fn upstream_tls_keys(&mut self, at: &str, spec: UpstreamTlsSpec) -> UpstreamTlsKeys {
        let mut file = |key: &str, text: Option<String>| {
            text.map(|text| self.file(format!("{at}.{key}"), &text))
        };
        let ca = file("ca", spec.ca);
        let client_cert = file("client_cert", spec.client_cert);
        let client_key = file("client_key", spec.client_key);
        if let Some(sni) = &spec.sni {
            self.server_name(format!("{at}.sni"), sni);
        }
        if let Some(alpn) = &spec.alpn {
            for (index, protocol) in alpn.iter().enumerate() {
                if alpn[..index].contains(protocol) {
                    self.error(format!("{at}.alpn[{index}]"), "offered twice");
                }
            }
        }
        UpstreamTlsKeys {
            verify: spec.verify,
            ca,
            sni: spec.sni.map(|sni| sni.to_ascii_lowercase()),
            client_cert,
            client_key,
            alpn: (spec.alpn).map(|alpn| {
                (alpn.into_iter())
                    .map(|protocol| match protocol {
                        AlpnSpec::H2 => Alpn::H2,
                        AlpnSpec::Http11 => Alpn::Http11,
                    })
                    .collect()
            }),
        }
    }

    /// What must hold of a server's TLS once its keys are merged over the backend's: a client
    /// certificate comes with its key, and `ca` is of no use without verification. Reported at
    /// the server when it has `tls` of its own, else at the backend.
    pub(super) fn merged_upstream_tls(&mut self, at: &str, backend: &Backend, server: &Server) {
        let Some(tls) = UpstreamTls::of(backend, server) else {
            return;
        };
        let own = server.tls.as_ref();
        let shared = backend.tls.as_ref();
        let has = |keys: Option<&UpstreamTlsKeys>, key: fn(&UpstreamTlsKeys) -> bool| {
            keys.is_some_and(key)
        };
        let cert =
            has(own, |k| k.client_cert.is_some()) || has(shared, |k| k.client_cert.is_some());
        let key = has(own, |k| k.client_key.is_some()) || has(shared, |k| k.client_key.is_some());
        let place = match own {
            Some(_) => format!("{at}.tls"),
            None => backend_tls_path(at),
        };
        if cert != key {
            let (given, missing) = match cert {
                true => ("client_cert", "client_key"),
                false => ("client_key", "client_cert"),
            };
            self.error(
                format!("{place}.{given}"),
                format!("needs {missing} too: a client certificate is presented with its key"),
            );
        }
        if !tls.verify && tls.ca.is_some() {
            self.error(
                format!("{place}.ca"),
                "has no use with verify: false; remove one of them",
            );
        }
    }

    /// A name to send as SNI and verify the server's certificate against.
    fn server_name(&mut self, field: String, name: &str) {
        if name.is_empty() {
            self.error(field, "must not be empty; leave it out to send no SNI");
        } else if name.parse::<std::net::IpAddr>().is_ok()
            || rustls::pki_types::DnsName::try_from(name).is_err()
        {
            self.error(
                field,
                format!("{name:?} is not a DNS name (SNI carries names, not addresses)"),
            );
        }
    }

    /// A health check's `tls` and `sni`: `sni` only for a check that goes over TLS.
    pub(super) fn check_tls(
        &mut self,
        at: &str,
        tls: Option<bool>,
        sni: Option<String>,
    ) -> Option<String> {
        if let Some(name) = &sni {
            if tls == Some(false) {
                self.error(
                    format!("{at}.sni"),
                    "only applies to checks over TLS; remove it or set tls: true",
                );
            }
            self.server_name(format!("{at}.sni"), name);
        }
        sni.map(|sni| sni.to_ascii_lowercase())
    }
}

/// `backends[i]` from `backends[i].servers[j]`.
fn backend_tls_path(server_at: &str) -> String {
    let backend = server_at
        .rsplit_once(".servers[")
        .map_or(server_at, |(backend, _)| backend);
    format!("{backend}.tls")
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    fn servers(tls: &str) -> String {
        format!(
            ", servers: [{{ name: s1, address: 127.0.0.1:81 }}, \
             {{ name: s2, address: 127.0.0.2:81{tls} }}]"
        )
    }

    #[test]
    fn a_server_s_keys_override_the_backend_s_one_by_one() {
        let text = one_backend(&format!(
            ", protocol: h2, tls: {{ ca: ca.pem, sni: api.test, client_cert: c.pem, client_key: c.key }}{}",
            servers(", tls: { sni: Other.test, verify: true, alpn: [http/1.1] }")
        ));
        let config = valid(&text);
        let backend = &config.backends[0];
        let first = UpstreamTls::of(backend, &backend.servers[0]).unwrap();
        let second = UpstreamTls::of(backend, &backend.servers[1]).unwrap();
        assert_eq!(
            first,
            UpstreamTls {
                verify: true,
                ca: Some(Path::new(TEST_BASE).join("ca.pem")),
                sni: Some("api.test".into()),
                client_certificate: Some(CertificateFiles {
                    cert: Path::new(TEST_BASE).join("c.pem"),
                    key: Path::new(TEST_BASE).join("c.key"),
                    ocsp: None,
                }),
                alpn: vec![Alpn::H2],
            },
            "verify defaults to true, alpn to the backend's protocol"
        );
        assert_eq!(second.sni.as_deref(), Some("other.test"));
        assert_eq!(second.alpn, [Alpn::Http11]);
        assert_eq!(
            (second.ca, second.client_certificate),
            (first.ca, first.client_certificate)
        );
    }

    #[test]
    fn only_servers_with_tls_somewhere_get_it() {
        let config = valid(&one_backend(&servers(", tls: { verify: false }")));
        let backend = &config.backends[0];
        assert_eq!(UpstreamTls::of(backend, &backend.servers[0]), None);
        let own = UpstreamTls::of(backend, &backend.servers[1]).unwrap();
        assert!(!own.verify);
        assert_eq!(own.ca, None, "the system's CAs");
        assert_eq!(own.alpn, [Alpn::Http11]);
    }

    #[test]
    fn a_client_certificate_needs_its_key_wherever_either_is_written() {
        let text = one_backend(&format!(
            ", tls: {{ client_cert: c.pem }}{}",
            servers(", tls: { client_key: c.key }")
        ));
        assert_eq!(
            problems(&text),
            [
                "backends[0].tls.client_cert: needs client_key too: a client certificate is \
              presented with its key"
            ]
        );
    }

    #[test]
    fn rejects_a_ca_without_verification_and_bad_names_and_lists() {
        let text = one_backend(
            ", tls: { verify: false, ca: ca.pem, alpn: [h2, h2] }, \
             servers: [{ name: s, address: 127.0.0.1:81, tls: { sni: 192.0.2.1 } }]",
        );
        assert_eq!(
            problems(&text),
            [
                "backends[0].servers[0].tls.sni: \"192.0.2.1\" is not a DNS name (SNI carries \
                 names, not addresses)",
                "backends[0].tls.alpn[1]: offered twice",
                "backends[0].servers[0].tls.ca: has no use with verify: false; remove one of them",
            ]
        );
        assert_eq!(
            problems(&one_backend(", tls: { sni: '' }")),
            ["backends[0].tls.sni: must not be empty; leave it out to send no SNI"]
        );
    }

    #[test]
    fn a_check_names_its_sni_only_over_tls() {
        let check = |keys: &str| one_backend(&format!(", health_check: {{ type: tcp{keys} }}"));
        let config = valid(&check(", tls: true, sni: Check.test"));
        let health_check = config.backends[0].health_check.as_ref().unwrap();
        assert_eq!(health_check.tls, Some(true));
        assert_eq!(health_check.sni.as_deref(), Some("check.test"));
        assert_eq!(
            problems(&check(", tls: false, sni: check.test")),
            [
                "backends[0].health_check.sni: only applies to checks over TLS; remove it or set \
              tls: true"
            ]
        );
    }
}
