//! Validation of an http frontend's `compression`: the algorithms, the Content-Types and the
//! smallest size compressed, with defaults for each key left out.

use super::super::model::*;
use super::super::schema::*;
use super::super::size;
use super::Validator;

/// Offered when `algorithms` is left out: zstd and brotli compress text better than gzip at a
/// like cost, and every client that accepts any coding accepts gzip.
const DEFAULT_ALGORITHMS: [Algorithm; 3] = [Algorithm::Zstd, Algorithm::Brotli, Algorithm::Gzip];

/// Compressed when `types` is left out: text, and the text-based formats Caddy's `encode`
/// compresses by default. Images, audio, video and archives are compressed already.
const DEFAULT_TYPES: [&str; 17] = [
    "text/*",
    "application/json",
    "application/ld+json",
    "application/manifest+json",
    "application/geo+json",
    "application/vnd.api+json",
    "application/javascript",
    "application/x-javascript",
    "application/xml",
    "application/xhtml+xml",
    "application/atom+xml",
    "application/rss+xml",
    "application/wasm",
    "font/otf",
    "font/ttf",
    "image/svg+xml",
    "image/x-icon",
];

/// `min_size` left out: below about 1 KiB, what compression saves is lost in its framing and
/// the packet is not shorter (HAProxy and Caddy skip less than 512 bytes, nginx less than 20).
const DEFAULT_MIN_SIZE: u64 = 1024;

impl Validator {
    pub(super) fn compression(&mut self, at: &str, spec: CompressionSpec) -> Compression {
        let algorithms = match spec.algorithms {
            None => DEFAULT_ALGORITHMS.to_vec(),
            Some(names) => self.algorithms(&format!("{at}.algorithms"), &names),
        };
        let types = match spec.types {
            None => (DEFAULT_TYPES.iter())
                .map(|text| media_range(text).expect("the defaults are valid"))
                .collect(),
            Some(texts) => self.media_ranges(&format!("{at}.types"), &texts),
        };
        let min_size = match spec.min_size {
            None => DEFAULT_MIN_SIZE,
            Some(text) => size::parse(&text.0).unwrap_or_else(|message| {
                self.error(format!("{at}.min_size"), message);
                DEFAULT_MIN_SIZE
            }),
        };
        Compression {
            algorithms,
            types,
            min_size,
        }
    }

    fn algorithms(&mut self, at: &str, names: &[String]) -> Vec<Algorithm> {
        if names.is_empty() {
            self.error(
                at,
                "must name at least one algorithm; remove compression to send responses as \
                 they are, or leave algorithms out for [zstd, br, gzip]",
            );
        }
        let mut algorithms = Vec::with_capacity(names.len());
        for (index, name) in names.iter().enumerate() {
            let field = format!("{at}[{index}]");
            let Some(algorithm) = (DEFAULT_ALGORITHMS.into_iter()).find(|a| a.token() == name)
            else {
                let hint = match name.to_ascii_lowercase().as_str() {
                    "brotli" => "; brotli is written br, as in Content-Encoding",
                    "x-gzip" | "deflate" => "; use gzip",
                    _ => "",
                };
                self.error(
                    field,
                    format!("unknown algorithm {name:?}; use zstd, br or gzip{hint}"),
                );
                continue;
            };
            if algorithms.contains(&algorithm) {
                self.error(field, format!("{name} is listed twice"));
                continue;
            }
            algorithms.push(algorithm);
        }
        algorithms
    }

    fn media_ranges(&mut self, at: &str, texts: &[String]) -> Vec<MediaRange> {
        if texts.is_empty() {
            self.error(
                at,
                "must list at least one type; remove compression to compress nothing, or leave \
                 types out for the usual text types",
            );
        }
        let mut ranges = Vec::with_capacity(texts.len());
        for (index, text) in texts.iter().enumerate() {
            let field = format!("{at}[{index}]");
            match media_range(text) {
                Ok(range) if ranges.contains(&range) => {
                    self.error(
                        field,
                        format!("{text} is listed twice (types are case-insensitive)"),
                    );
                }
                Ok(range) => ranges.push(range),
                Err(message) => self.error(field, message),
            }
        }
        ranges
    }
}

/// A `types` item: `type/subtype` or `type/*`, each a token, kept lowercase.
fn media_range(text: &str) -> Result<MediaRange, String> {
    let expected = "write type/subtype or type/*, such as text/html or text/*";
    if text.contains(';') {
        return Err(format!(
            "type {text:?} has parameters, which matching ignores; {expected}"
        ));
    }
    let lower = text.to_ascii_lowercase();
    let Some((main, subtype)) = lower.split_once('/') else {
        return Err(format!("type {text:?} has no subtype; {expected}"));
    };
    if main == "*" {
        return Err(format!(
            "type {text:?} would compress images, video and archives too, which are compressed \
             already; {expected}"
        ));
    }
    if !is_token(main) || !(subtype == "*" || is_token(subtype)) {
        return Err(format!("type {text:?} is not a media type; {expected}"));
    }
    Ok(MediaRange {
        main: main.to_owned(),
        subtype: (subtype != "*").then(|| subtype.to_owned()),
    })
}

/// RFC 9110 `token`: one or more `tchar`.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && (text.bytes())
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{problems, valid};
    use super::*;

    fn frontend(keys: &str) -> String {
        format!(
            "node: {{ name: n }}\n\
             frontends: [{{ name: f, listen: 127.0.0.1:80, backend: b, {keys} }}]\n\
             backends: [{{ name: b, servers: [{{ name: s, address: 127.0.0.1:81 }}] }}]\n"
        )
    }

    fn range(main: &str, subtype: Option<&str>) -> MediaRange {
        MediaRange {
            main: main.into(),
            subtype: subtype.map(Into::into),
        }
    }

    #[test]
    fn reads_the_issue_example() {
        let config = valid(&frontend(
            "mode: http, compression: { algorithms: [zstd, br, gzip], \
             types: [text/*, application/json], min_size: 1KiB }",
        ));
        assert_eq!(
            config.frontends[0].compression,
            Some(Compression {
                algorithms: vec![Algorithm::Zstd, Algorithm::Brotli, Algorithm::Gzip],
                types: vec![range("text", None), range("application", Some("json"))],
                min_size: 1024,
            })
        );
    }

    #[test]
    fn keeps_the_written_order_and_lowercases_types() {
        let config = valid(&frontend(
            "mode: http, compression: { algorithms: [gzip, zstd], types: [Text/HTML, \
             APPLICATION/*], min_size: 0 }",
        ));
        let compression = config.frontends[0].compression.clone().unwrap();
        assert_eq!(compression.algorithms, [Algorithm::Gzip, Algorithm::Zstd]);
        assert_eq!(
            compression.types,
            [range("text", Some("html")), range("application", None)]
        );
        assert_eq!(compression.min_size, 0);
    }

    #[test]
    fn fills_in_defaults_for_each_key_left_out() {
        let config = valid(&frontend("mode: http, compression: {}"));
        let compression = config.frontends[0].compression.clone().unwrap();
        assert_eq!(compression.algorithms, DEFAULT_ALGORITHMS);
        assert_eq!(compression.min_size, 1024);
        assert_eq!(compression.types.len(), DEFAULT_TYPES.len());
        assert!(compression.types.contains(&range("text", None)));
        assert!(compression.types.contains(&range("image", Some("svg+xml"))));
        let config = valid(&frontend("mode: http, compression: { min_size: 2MiB }"));
        assert_eq!(
            config.frontends[0].compression.as_ref().unwrap().min_size,
            2 << 20
        );
        assert_eq!(
            valid(&frontend("mode: http")).frontends[0].compression,
            None
        );
    }

    #[test]
    fn rejects_unknown_and_repeated_algorithms_and_an_empty_list() {
        assert_eq!(
            problems(&frontend(
                "mode: http, compression: { algorithms: [gzip, brotli, lz4, deflate, gzip] }"
            )),
            [
                "frontends[0].compression.algorithms[1]: unknown algorithm \"brotli\"; use zstd, \
                 br or gzip; brotli is written br, as in Content-Encoding",
                "frontends[0].compression.algorithms[2]: unknown algorithm \"lz4\"; use zstd, br \
                 or gzip",
                "frontends[0].compression.algorithms[3]: unknown algorithm \"deflate\"; use zstd, \
                 br or gzip; use gzip",
                "frontends[0].compression.algorithms[4]: gzip is listed twice",
            ]
        );
        assert_eq!(
            problems(&frontend("mode: http, compression: { algorithms: [] }")),
            [
                "frontends[0].compression.algorithms: must name at least one algorithm; remove \
              compression to send responses as they are, or leave algorithms out for \
              [zstd, br, gzip]"
            ]
        );
    }

    #[test]
    fn rejects_malformed_types() {
        let found = problems(&frontend(
            "mode: http, compression: { types: [text, \"*/*\", \"text/html; charset=utf-8\", \
             \"te xt/html\", text/, /html, text/html, TEXT/html, \"text/a/b\"] }",
        ));
        assert_eq!(
            found,
            [
                "frontends[0].compression.types[0]: type \"text\" has no subtype; write \
                 type/subtype or type/*, such as text/html or text/*",
                "frontends[0].compression.types[1]: type \"*/*\" would compress images, video \
                 and archives too, which are compressed already; write type/subtype or type/*, \
                 such as text/html or text/*",
                "frontends[0].compression.types[2]: type \"text/html; charset=utf-8\" has \
                 parameters, which matching ignores; write type/subtype or type/*, such as \
                 text/html or text/*",
                "frontends[0].compression.types[3]: type \"te xt/html\" is not a media type; \
                 write type/subtype or type/*, such as text/html or text/*",
                "frontends[0].compression.types[4]: type \"text/\" is not a media type; write \
                 type/subtype or type/*, such as text/html or text/*",
                "frontends[0].compression.types[5]: type \"/html\" is not a media type; write \
                 type/subtype or type/*, such as text/html or text/*",
                "frontends[0].compression.types[7]: TEXT/html is listed twice (types are \
                 case-insensitive)",
                "frontends[0].compression.types[8]: type \"text/a/b\" is not a media type; write \
                 type/subtype or type/*, such as text/html or text/*",
            ]
        );
        assert_eq!(
            problems(&frontend("mode: http, compression: { types: [] }")),
            [
                "frontends[0].compression.types: must list at least one type; remove compression \
              to compress nothing, or leave types out for the usual text types"
            ]
        );
    }

    #[test]
    fn rejects_a_bad_size() {
        assert_eq!(
            problems(&frontend("mode: http, compression: { min_size: 1KB }")),
            [
                "frontends[0].compression.min_size: invalid size \"1KB\": \"KB\" is ambiguous; \
              write 1KiB for the binary unit (1KiB = 1024 bytes), or the number of bytes"
            ]
        );
        assert_eq!(
            problems(&frontend("mode: http, compression: { min_size: -1 }")),
            [
                "frontends[0].compression.min_size: invalid size \"-1\": expected a whole number \
              of bytes and an optional unit; use B, KiB, MiB or GiB, e.g. 512, 1KiB or 2MiB"
            ]
        );
    }

    #[test]
    fn rejects_compression_on_a_tcp_frontend() {
        assert_eq!(
            problems(&frontend("mode: tcp, compression: {}")),
            [
                "frontends[0].compression: compression needs mode: http; a tcp frontend relays \
              bytes as they are"
            ]
        );
    }
}
