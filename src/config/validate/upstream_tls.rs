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
