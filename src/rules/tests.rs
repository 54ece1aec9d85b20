use std::path::Path;

use http::{HeaderMap, HeaderValue, Method, Uri};

use super::*;
use crate::config::rules::Decision;

/// The rule set of a frontend with `keys` (matchers and rules), as the config loader builds it.
fn rule_set(keys: &str) -> RuleSet {
    let backend = match keys.contains("redirect_https") {
        true => "",
        false => "    backend: app\n",
    };
    let text = format!(
        "node: {{ name: a }}\nbackends:\n  - {{ name: app, servers: [{{ name: s, address: 127.0.0.1:1 }}] }}\n  - {{ name: api, servers: [{{ name: s, address: 127.0.0.1:2 }}] }}\n\
         frontends:\n  - name: web\n    listen: 127.0.0.1:8080\n    mode: http\n{backend}{keys}"
    );
    let config = crate::config::parse(&text, Path::new("/etc/tandem/tandem.yaml"))
        .unwrap_or_else(|errors| panic!("{errors}"));
    config.frontends[0].rules.clone()
}

struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    host: Option<&'static str>,
    client: SocketAddr,
    sni: Option<&'static str>,
    client_subject: Option<&'static str>,
}

impl Request {
    fn get(uri: &str) -> Request {
        Request {
            method: Method::GET,
            uri: uri.parse().unwrap(),
            headers: HeaderMap::new(),
            host: Some("www.example.com"),
            client: "192.0.2.10:40000".parse().unwrap(),
            sni: None,
            client_subject: None,
        }
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Request {
        self.headers.append(name, HeaderValue::from_static(value));
        self
    }

    fn view(&self) -> RequestView<'_> {
        RequestView {
            method: &self.method,
            uri: &self.uri,
            path: path_of(&self.uri),
            headers: &self.headers,
            host: self.host,
            client: self.client,
            sni: self.sni,
            scheme: "http",
            request_id: None,
            client_subject: self.client_subject,
        }
    }
}

/// Whether the only rule of `keys` matches `request`.
fn hit(keys: &str, request: &Request) -> bool {
    let set = rule_set(&format!(
        "    rules:\n      - {{ match: {keys}, deny: 403 }}\n"
    ));
    evaluate(&set, &request.view()).decided.is_some()
}

#[test]
fn host_matchers_take_names_wildcards_and_regexes() {
    let request = Request::get("/");
    assert!(hit("{ host: www.example.com }", &request));
    assert!(hit("{ host: [a.example, \"*.example.com\"] }", &request));
    assert!(!hit("{ host: example.com }", &request));
    assert!(hit("{ host_regex: \"^www\\\\.\" }", &request));
    assert!(!hit("{ host_regex: \"^api\" }", &request));
    let hostless = Request {
        host: None,
        ..Request::get("/")
    };
    assert!(!hit("{ host_regex: \".*\" }", &hostless));
    assert!(hit("{ not: { host: www.example.com } }", &hostless));
}

#[test]
fn path_matchers_compare_the_path_as_sent() {
    let request = Request::get("/api/v2/users?x=1");
    assert!(hit("{ path: /api/v2/users }", &request));
    assert!(!hit("{ path: /api/v2 }", &request));
    assert!(hit("{ path_prefix: [/static, /api/] }", &request));
    assert!(!hit("{ path_prefix: /API }", &request));
    assert!(hit("{ path_regex: \"^/api/v[0-9]+/\" }", &request));
    assert!(
        !hit("{ path_regex: \"x=1\" }", &request),
        "the query is not the path"
    );
    assert!(!hit("{ path: /a/b }", &Request::get("/a%2Fb")));
}

#[test]
fn method_header_query_and_cookie_matchers() {
    let request = Request::get("/?debug=1&flag&x=%20")
        .header("x-role", "editor")
        .header("x-role", "admin")
        .header("cookie", "session=abc; theme=dark");
    assert!(hit("{ method: [PUT, GET] }", &request));
    assert!(!hit("{ method: POST }", &request));
    assert!(hit("{ header: { X-Role: admin } }", &request), "any value");
    assert!(!hit("{ header: { X-Role: \"!admin\" } }", &request));
    assert!(hit("{ header: { X-Role: \"!root\" } }", &request));
    assert!(
        hit("{ header: { X-Other: \"!admin\" } }", &request),
        "absent is not admin"
    );
    assert!(hit("{ header: { X-Role: \"~^ed\" } }", &request));
    assert!(hit("{ header: { X-Role: \"!~^root\" } }", &request));
    assert!(hit(
        "{ header: { X-Role: true, X-Other: false } }",
        &request
    ));
    assert!(!hit("{ header: { X-Other: true } }", &request));
    assert!(hit("{ query: { debug: \"1\", flag: true } }", &request));
    assert!(
        hit("{ query: { x: \"%20\" } }", &request),
        "values as written"
    );
    assert!(!hit("{ query: { debug: \"0\" } }", &request));
    assert!(!hit("{ query: { deb: true } }", &request));
    assert!(hit(
        "{ cookie: { theme: dark, session: \"~^a\" } }",
        &request
    ));
    assert!(!hit("{ cookie: { theme: light } }", &request));
    assert!(hit("{ cookie: { lang: false } }", &request));
}

#[test]
fn client_and_sni_matchers() {
    let mut request = Request::get("/");
    assert!(hit("{ client: [192.0.2.0/24, 2001:db8::/32] }", &request));
    assert!(!hit("{ client: 192.0.2.11 }", &request));
    request.client = "[::ffff:192.0.2.10]:1".parse().unwrap();
    assert!(
        hit("{ client: 192.0.2.10 }", &request),
        "an IPv4 client on an IPv6 socket"
    );
    request.client = "[2001:db8::5]:1".parse().unwrap();
    assert!(hit("{ client: 2001:db8::/32 }", &request));
    assert!(!hit("{ sni: www.example.com }", &request));
    request.sni = Some("www.example.com");
    assert!(hit("{ sni: \"*.example.com\" }", &request));
}

/// The keys of a frontend asking for client certificates, which rules on them need.
const CLIENT_AUTH: &str =
    "    tls: { certificates: [{ cert: c.pem, key: c.key }], client_auth: { ca: ca.pem } }\n";

#[test]
fn client_certificate_subject_matcher_and_variable() {
    let hit = |keys: &str, request: &Request| {
        let set = rule_set(&format!(
            "{CLIENT_AUTH}    rules:\n      - {{ match: {keys}, deny: 403 }}\n"
        ));
        evaluate(&set, &request.view()).decided.is_some()
    };
    let mut request = Request::get("/");
    assert!(hit("{ client_cert: { subject: false } }", &request));
    assert!(!hit("{ client_cert: { subject: true } }", &request));
    assert!(!hit(
        "{ client_cert: { subject: \"~^CN=alice,\" } }",
        &request
    ));
    assert!(hit(
        "{ client_cert: { subject: \"!~^CN=alice,\" } }",
        &request
    ));
    request.client_subject = Some("CN=alice,OU=ops,O=Example");
    assert!(hit("{ client_cert: { subject: true } }", &request));
    assert!(hit(
        "{ client_cert: { subject: \"CN=alice,OU=ops,O=Example\" } }",
        &request
    ));
    assert!(hit(
        "{ client_cert: { subject: \"~^CN=alice,\" } }",
        &request
    ));
    assert!(!hit(
        "{ client_cert: { subject: \"~^CN=bob,\" } }",
        &request
    ));
    assert!(!hit("{ client_cert: { subject: CN=alice } }", &request));

    let set = rule_set(&format!(
        "{CLIENT_AUTH}    rules:\n      - set_request_headers: {{ X-Client-DN: \"<{{client_subject}}>\" }}\n"
    ));
    let template = &set.rules[0].request_headers.set[0].1;
    let render = |request: &Request| template::render(template, &request.view(), None).unwrap();
    assert_eq!(render(&request), "<CN=alice,OU=ops,O=Example>");
    assert_eq!(render(&Request::get("/")), "<>");
}

#[test]
fn combinators_and_named_matchers() {
    let set = rule_set(
        "    matchers:\n      office: { client: 192.0.2.0/24 }\n      admin: { path_prefix: /admin, not: office }\n      either: { any: [admin, { path: /x }] }\n\
         \x20   rules:\n      - { match: either, deny: 403 }\n",
    );
    let decided = |request: &Request| evaluate(&set, &request.view()).decided;
    assert_eq!(decided(&Request::get("/admin")), None, "from the office");
    let outside = Request {
        client: "198.51.100.1:1".parse().unwrap(),
        ..Request::get("/admin/x")
    };
    assert_eq!(decided(&outside), Some(0));
    assert_eq!(decided(&Request::get("/x")), Some(0));
    assert_eq!(decided(&Request::get("/y")), None);
}

#[test]
fn the_first_decision_wins_and_every_matching_edit_applies() {
    let set = rule_set(
        "    rules:\n\
         \x20     - { match: { path_prefix: /api }, set_request_headers: { X-A: a } }\n\
         \x20     - { match: { path_prefix: /api }, backend: api }\n\
         \x20     - { match: { path_prefix: /api }, deny: 403 }\n\
         \x20     - { match: { path: /nothing }, set_request_headers: { X-B: b } }\n\
         \x20     - { set_response_headers: { X-C: c } }\n\
         \x20     - { match: { path_prefix: /api }, backend: app }\n",
    );
    let verdict = evaluate(&set, &Request::get("/api/x").view());
    assert_eq!(verdict.decided, Some(1));
    assert_eq!(verdict.matched.iter().collect::<Vec<_>>(), [0, 1, 4]);
    assert!(matches!(set.rules[1].decision, Some(Decision::Backend(0))));
    assert_eq!(set.backends, [1, 0]);
    let verdict = evaluate(&set, &Request::get("/other").view());
    assert_eq!(verdict.decided, None, "the frontend's backend then");
    assert_eq!(verdict.matched.iter().collect::<Vec<_>>(), [4]);
}

#[test]
fn matched_holds_any_number_of_rules() {
    let mut matched = Matched::default();
    assert!(matched.is_empty());
    for index in [0, 5, 127, 128, 300, 1000] {
        matched.insert(index);
    }
    assert_eq!(
        matched.iter().collect::<Vec<_>>(),
        [0, 5, 127, 128, 300, 1000]
    );
    assert!(matched.contains(300) && !matched.contains(301) && !matched.contains(5000));
}

#[test]
fn templates_render_request_values() {
    let set = rule_set(
        "    rules:\n      - match: { path_regex: \"^/u/([a-z]+)/(.*)$\" }\n        set_request_headers:\n          X-All: \"{method} {scheme}://{host}{path}{query} from {client_ip}:{client_port}\"\n          X-Parts: \"{1}|{2}|{header.x-role}|{cookie.theme}|{sni}|{header.absent}\"\n",
    );
    let request = Request::get("/u/ann/p/q?z=1")
        .header("x-role", "ed")
        .header("cookie", "a=1; theme=dark");
    let view = request.view();
    let rule = &set.rules[0];
    let captures = captures(rule, &view);
    let rendered: Vec<HeaderValue> = (rule.request_headers.set.iter())
        .map(|(_, template)| template::render(template, &view, captures.as_ref()).unwrap())
        .collect();
    assert_eq!(
        rendered,
        [
            "GET http://www.example.com/u/ann/p/q?z=1 from 192.0.2.10:40000",
            "ann|p/q|ed|dark||",
        ]
    );
}

#[test]
fn the_https_shorthand_keeps_path_and_query_and_names_other_ports() {
    let location = |port: u16, uri: &str, host: Option<&'static str>| {
        let set = rule_set(&format!("    redirect_https: {port}\n"));
        let request = Request {
            host,
            ..Request::get(uri)
        };
        let Some(Decision::Redirect { location, status }) = &set.rules[0].decision else {
            panic!("a redirect");
        };
        assert_eq!(status.as_u16(), 308);
        template::render(location, &request.view(), None).unwrap()
    };
    assert_eq!(
        location(443, "/a/b%2Fc?x=1&y=%20", Some("example.com")),
        "https://example.com/a/b%2Fc?x=1&y=%20"
    );
    assert_eq!(
        location(8443, "*", Some("example.com")),
        "https://example.com:8443/"
    );
    assert_eq!(
        location(443, "/x", Some("[2001:db8::1]")),
        "https://[2001:db8::1]/x"
    );
}
