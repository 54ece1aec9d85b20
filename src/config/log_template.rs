//! The access log's fields, and `format: { template: "..." }` parsed into them: a pure parser
//! run once at config load, so a worker renders a template without looking anything up.

use http::HeaderName;

/// A field of an access log line: a key of the JSON format and a template's `{name}`. The JSON
/// format writes every field, in this order (`request_id` and `client_subject` only when there
/// is one); a template
/// names the ones it wants. A new field is a new variant here, in `ALL` and `name`, and its
/// value in `access_log::format` (`value`, and the JSON writer, which a test holds to `ALL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogField {
    Time,
    Frontend,
    Backend,
    Server,
    Client,
    Method,
    Path,
    Status,
    Bytes,
    ConnectUs,
    FirstByteUs,
    TotalUs,
    RequestId,
    End,
    ClientSubject,
}

impl LogField {
    /// Every field, in the JSON format's order.
    pub const ALL: [LogField; 15] = [
        LogField::Time,
        LogField::Frontend,
        LogField::Backend,
        LogField::Server,
        LogField::Client,
        LogField::Method,
        LogField::Path,
        LogField::Status,
        LogField::Bytes,
        LogField::ConnectUs,
        LogField::FirstByteUs,
        LogField::TotalUs,
        LogField::RequestId,
        LogField::End,
        LogField::ClientSubject,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            LogField::Time => "time",
            LogField::Frontend => "frontend",
            LogField::Backend => "backend",
            LogField::Server => "server",
            LogField::Client => "client",
            LogField::Method => "method",
            LogField::Path => "path",
            LogField::Status => "status",
            LogField::Bytes => "bytes",
            LogField::ConnectUs => "connect_us",
            LogField::FirstByteUs => "first_byte_us",
            LogField::TotalUs => "total_us",
            LogField::RequestId => "request_id",
            LogField::End => "end",
            LogField::ClientSubject => "client_subject",
        }
    }
}

/// A parsed template: text and fields in order, and the headers it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTemplate {
    pub pieces: Vec<LogPiece>,
    /// Each header the template names, once: the request takes the values of these, and no
    /// others, for its line.
    pub headers: Vec<(HeaderSide, HeaderName)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogPiece {
    Text(String),
    Field(LogField),
    /// An index into `LogTemplate::headers`.
    Header(usize),
}

/// Whose header a template names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderSide {
    /// As the client sent it, before any rule changed it.
    Request,
    /// As the client got it, after the rules.
    Response,
}

/// A template that does not parse: why, and the byte offset in the template where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

impl LogTemplate {
    /// Parses `{field}`s, `{request_header.NAME}`s and `{response_header.NAME}`s out of `text`;
    /// `{{` and `}}` are literal braces.
    pub fn parse(text: &str) -> Result<LogTemplate, TemplateError> {
        // One record is one line (and one syslog message): its own text may not break it.
        if let Some(offset) = text.find(|c: char| c.is_control()) {
            return Err(TemplateError {
                offset,
                message: "a control character (a line break, a tab...): a record is one line"
                    .into(),
            });
        }
        let mut template = LogTemplate {
            pieces: Vec::new(),
            headers: Vec::new(),
        };
        let mut literal = String::new();
        let mut at = 0;
        while let Some(found) = text[at..].find(['{', '}']) {
            let brace = at + found;
            literal.push_str(&text[at..brace]);
            let rest = &text[brace..];
            if rest.starts_with("{{") || rest.starts_with("}}") {
                literal.push_str(&rest[..1]);
                at = brace + 2;
                continue;
            }
            if rest.starts_with('}') {
                return Err(TemplateError {
                    offset: brace,
                    message: "a } without a { (write }} for a brace)".into(),
                });
            }
            let Some(length) = rest.find('}') else {
                return Err(TemplateError {
                    offset: brace,
                    message: "a { without a } (write {{ for a brace)".into(),
                });
            };
            let piece = template
                .piece(&rest[1..length])
                .map_err(|message| TemplateError {
                    offset: brace,
                    message,
                })?;
            if !literal.is_empty() {
                let text = std::mem::take(&mut literal);
                template.pieces.push(LogPiece::Text(text));
            }
            template.pieces.push(piece);
            at = brace + length + 1;
        }
        literal.push_str(&text[at..]);
        if !literal.is_empty() {
            template.pieces.push(LogPiece::Text(literal));
        }
        Ok(template)
    }

    fn piece(&mut self, name: &str) -> Result<LogPiece, String> {
        if let Some(field) = LogField::ALL.into_iter().find(|field| field.name() == name) {
            return Ok(LogPiece::Field(field));
        }
        let (side, header) = match (name.split_once('.'), name) {
            (Some(("request_header", header)), _) => (HeaderSide::Request, header),
            (Some(("response_header", header)), _) => (HeaderSide::Response, header),
            _ => return Err(format!("unknown field {{{name}}}; {}", known_fields())),
        };
        let header = HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| format!("{{{name}}}: {header:?} is not a header name"))?;
        let wanted = (side, header);
        let index = match self.headers.iter().position(|named| *named == wanted) {
            Some(index) => index,
            None => {
                self.headers.push(wanted);
                self.headers.len() - 1
            }
        };
        Ok(LogPiece::Header(index))
    }
}

/// The fields a template may name, for the message about one that is none of them.
fn known_fields() -> String {
    let mut known = String::from("fields are ");
    for field in LogField::ALL {
        known.push_str(field.name());
        known.push_str(", ");
    }
    known.push_str("request_header.NAME and response_header.NAME");
    known
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str) -> HeaderName {
        HeaderName::from_bytes(name.as_bytes()).unwrap()
    }

    #[test]
    fn reads_fields_headers_and_braces() {
        let template =
            LogTemplate::parse("{{{client}}} \"{request_header.User-Agent}\" {status} {response_header.server}{request_header.user-agent}")
                .unwrap();
        assert_eq!(
            template.pieces,
            [
                LogPiece::Text("{".into()),
                LogPiece::Field(LogField::Client),
                LogPiece::Text("} \"".into()),
                LogPiece::Header(0),
                LogPiece::Text("\" ".into()),
                LogPiece::Field(LogField::Status),
                LogPiece::Text(" ".into()),
                LogPiece::Header(1),
                LogPiece::Header(0),
            ]
        );
        assert_eq!(
            template.headers,
            [
                (HeaderSide::Request, header("user-agent")),
                (HeaderSide::Response, header("server")),
            ]
        );
    }

    #[test]
    fn every_json_field_can_be_named() {
        for field in LogField::ALL {
            let template = LogTemplate::parse(&format!("{{{}}}", field.name())).unwrap();
            assert_eq!(template.pieces, [LogPiece::Field(field)]);
        }
        assert_eq!(LogTemplate::parse("").unwrap().pieces, []);
        assert_eq!(
            LogTemplate::parse("plain }}").unwrap().pieces,
            [LogPiece::Text("plain }".into())]
        );
    }

    #[test]
    fn says_what_is_wrong_and_at_which_offset() {
        let error = |text: &str| {
            let error = LogTemplate::parse(text).unwrap_err();
            (error.offset, error.message)
        };
        let (offset, message) = error("{time} {agent}");
        assert_eq!(offset, 7);
        assert!(
            message.starts_with("unknown field {agent}; fields are time, frontend,"),
            "{message}"
        );
        assert!(message.ends_with("request_header.NAME and response_header.NAME"));
        assert_eq!(
            error("{status} {request_header.bad name}"),
            (
                9,
                "{request_header.bad name}: \"bad name\" is not a header name".into()
            )
        );
        assert_eq!(
            error("{status}\n{bytes}"),
            (
                8,
                "a control character (a line break, a tab...): a record is one line".into()
            )
        );
        assert_eq!(
            error("ab {status"),
            (3, "a { without a } (write {{ for a brace)".into())
        );
        assert_eq!(
            error("{status} }"),
            (9, "a } without a { (write }} for a brace)".into())
        );
        assert_eq!(error("{}").0, 0);
        assert_eq!(error("é{header.x}").0, 2);
    }
}
