//! Body and header templates of webhook endpoints: text with `{{path}}` placeholders into the
//! event payload, for receivers that want their own shape (Slack, Discord, ntfy).
//!
//! A template is parsed and its paths checked when the config is loaded, so a misspelt field
//! fails `tidings check` instead of a delivery. Rendering never fails: a path the payload does
//! not have (a `data` key the rule did not set) renders as nothing, or `null` with `| json`.
//!
//! - `{{message.subject}}` inserts the value as text: strings as they are, numbers and booleans
//!   as written, lists of plain values joined with `, `, null as nothing, maps as JSON. In a
//!   JSON body the text is escaped for use inside a JSON string (`"{{message.subject}}"`); in
//!   a form body (`application/x-www-form-urlencoded`) it is percent-encoded, so a Subject
//!   `x&channel=evil` stays one value instead of adding a parameter.
//! - `{{data | json}}` inserts the value as JSON (a string with its quotes, a map, `null`),
//!   percent-encoded too in a form body.

use serde_json::Value;

/// The payload fields a template may name (the payload is built in `exec::event`; a test there
/// checks that these are exactly its fields).
pub const FIELDS: &[&str] = &[
    "version",
    "id",
    "kind",
    "endpoint",
    "rule",
    "account",
    "mailbox",
    "uidvalidity",
    "uid",
    "created_at",
    "message",
    "data",
];
/// The fields of `message` every event has.
pub const MESSAGE_FIELDS: &[&str] =
    &["message_id", "from", "to", "cc", "subject", "date", "snippet", "labels", "flags"];
/// The fields of `message` an endpoint's `include` adds, by the word it is included with.
pub const INCLUDED_FIELDS: &[&str] = &["text", "html", "raw", "attachments"];
/// The fields of each of `message.attachments`.
pub const ATTACHMENT_FIELDS: &[&str] = &["name", "content_type", "size", "content"];
/// The `message` fields that are lists: an index may follow (`message.to.0`).
const LISTS: &[&str] = &["to", "cc", "labels", "flags", "attachments"];

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Field { path: Vec<String>, json: bool },
}

/// How plain placeholders (not `| json`) are inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// As they are (text bodies).
    None,
    /// Escaped for the inside of a JSON string (JSON bodies).
    Json,
    /// On one line, control characters dropped (header values).
    Header,
    /// Percent-encoded as a form value (`application/x-www-form-urlencoded` bodies).
    Form,
}

impl Escape {
    /// How a body of `content_type` (the endpoint's) escapes its placeholders.
    pub fn for_body(content_type: &str) -> Escape {
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if super::webhook::is_json(&essence) {
            Escape::Json
        } else if essence == "application/x-www-form-urlencoded" {
            Escape::Form
        } else {
            Escape::None
        }
    }
}

impl Template {
    /// Parses `source`; the error says what is wrong, for a config problem.
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("`{{{{` at byte {} is never closed", source.len() - rest.len() + start))?;
            parts.push(field(after[..end].trim())?);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { source: source.to_owned(), parts })
    }

    /// The text as written in the config.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The placeholders' paths, dotted (`message.subject`), in order.
    pub fn paths(&self) -> impl Iterator<Item = String> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Field { path, .. } => Some(path.join(".")),
            Part::Text(_) => None,
        })
    }

    /// Checks that every placeholder names a payload field; `included` are the `include` words
    /// of the endpoint (`message.text` needs `text`). The error names the first bad path.
    pub fn check(&self, included: &[&str]) -> Result<(), String> {
        for part in &self.parts {
            if let Part::Field { path, .. } = part {
                check_path(path, included)?;
            }
        }
        Ok(())
    }

    /// Fills the placeholders from `payload`.
    pub fn render(&self, payload: &Value, escape: Escape) -> String {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field { path, json: true } => {
                    let json = lookup(payload, path).map_or_else(|| "null".to_owned(), Value::to_string);
                    match escape {
                        Escape::Form => form_encode(&json, &mut out),
                        // JSON text has its control characters escaped: nothing to do for a header.
                        Escape::None | Escape::Json | Escape::Header => out.push_str(&json),
                    }
                }
                Part::Field { path, json: false } => {
                    let text = lookup(payload, path).map(plain).unwrap_or_default();
                    match escape {
                        Escape::None => out.push_str(&text),
                        Escape::Json => {
                            let quoted = Value::String(text).to_string();
                            out.push_str(&quoted[1..quoted.len() - 1]);
                        }
                        Escape::Header => out.extend(text.chars().map(|c| if c.is_control() { ' ' } else { c })),
                        Escape::Form => form_encode(&text, &mut out),
                    }
                }
            }
        }
        out
    }

    /// What the template gives for a stand-in payload: every plain placeholder as `x`, every
    /// `| json` one as `null`. A JSON body template that gives no JSON here never will (a
    /// placeholder outside quotes, a missing comma).
    pub fn sample(&self) -> String {
        let sample = |json: bool| if json { "null" } else { "x" };
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field { json, .. } => out.push_str(sample(*json)),
            }
        }
        out
    }
}

/// One placeholder's inside: `path` or `path | json`.
fn field(inside: &str) -> Result<Part, String> {
    let (path, json) = match inside.split_once('|') {
        Some((path, "json")) => (path.trim(), true),
        Some((path, filter)) if filter.trim() == "json" => (path.trim(), true),
        Some((_, filter)) => {
            return Err(format!("`{{{{{inside}}}}}`: unknown filter `{}` (the one filter is `json`)", filter.trim()));
        }
        None => (inside, false),
    };
    let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
    let word = |s: &String| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !segments.iter().all(word) {
        return Err(format!(
            "`{{{{{inside}}}}}` is not a placeholder: write a dotted path such as `{{{{message.subject}}}}`"
        ));
    }
    Ok(Part::Field { path: segments, json })
}

fn check_path(path: &[String], included: &[&str]) -> Result<(), String> {
    let dotted = path.join(".");
    let unknown =
        |known: &[&str]| format!("`{{{{{dotted}}}}}` names no payload field (known here: {})", known.join(", "));
    let [first, rest @ ..] = path else { return Err(unknown(FIELDS)) };
    if !FIELDS.contains(&first.as_str()) {
        return Err(unknown(FIELDS));
    }
    match (first.as_str(), rest) {
        // The rule's own data: its keys are the rule's to choose.
        ("data", _) | (_, []) => Ok(()),
        ("message", [field, rest @ ..]) => {
            let all: Vec<&str> = MESSAGE_FIELDS.iter().chain(INCLUDED_FIELDS).copied().collect();
            if !all.contains(&field.as_str()) {
                return Err(unknown(&all));
            }
            if INCLUDED_FIELDS.contains(&field.as_str()) && !included.contains(&field.as_str()) {
                return Err(format!("`{{{{{dotted}}}}}` is only in the payload with `include: [{field}]`"));
            }
            check_message_rest(field, rest, &dotted)
        }
        _ => Err(format!("`{{{{{dotted}}}}}`: `{first}` has no fields")),
    }
}

/// What may follow `message.<field>`: an index into a list, then an attachment's field.
fn check_message_rest(field: &str, rest: &[String], dotted: &str) -> Result<(), String> {
    match rest {
        [] => Ok(()),
        [index, more @ ..] if LISTS.contains(&field) && index.parse::<usize>().is_ok() => match (field, more) {
            (_, []) => Ok(()),
            ("attachments", [f]) if ATTACHMENT_FIELDS.contains(&f.as_str()) => Ok(()),
            ("attachments", _) => {
                Err(format!("`{{{{{dotted}}}}}` names no attachment field (known: {})", ATTACHMENT_FIELDS.join(", ")))
            }
            _ => Err(format!("`{{{{{dotted}}}}}`: the items of `message.{field}` have no fields")),
        },
        _ if LISTS.contains(&field) => Err(format!(
            "`{{{{{dotted}}}}}`: `message.{field}` is a list: index it with a number (`message.{field}.0`)"
        )),
        _ => Err(format!("`{{{{{dotted}}}}}`: `message.{field}` has no fields")),
    }
}

/// Appends `text` as the form-urlencoded serializer of the URL standard writes a value:
/// ASCII letters, digits and `*-._` as they are, a space as `+`, every other byte of its UTF-8
/// as `%XX`. `&`, `=`, `+` and `%` from a message can then never start another parameter.
fn form_encode(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(char::from(byte)),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
        }
    }
}

fn lookup<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, segment| match v {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A value as text: strings bare, lists of plain values joined, maps as JSON.
fn plain(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(items) if items.iter().all(|i| !i.is_array() && !i.is_object()) => {
            items.iter().map(plain).collect::<Vec<_>>().join(", ")
        }
        Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn payload() -> Value {
        json!({
            "version": 1, "id": "k", "account": "work", "uid": 42, "rule": null,
            "message": { "subject": "Tab\there \"quoted\" \\ \u{1}", "to": ["a@x.example", "b@x.example"],
                         "attachments": [{ "name": "a.pdf", "size": 3 }] },
            "data": { "n": 1.5, "ok": true, "deep": { "k": [1, 2] }, "multi": "one\r\ntwo" },
        })
    }

    #[test]
    fn renders_plain_values_and_json() {
        let t = Template::parse(
            "{{ account }}/{{uid}} to {{message.to}}: {{data.ok}} {{data.n}} {{rule}}|{{data.missing}}|",
        )
        .unwrap();
        assert_eq!(t.render(&payload(), Escape::None), "work/42 to a@x.example, b@x.example: true 1.5 ||");
        let t = Template::parse(
            "{{data.deep}} {{data.deep | json}} {{data.missing|json}} {{account|json}} {{message.to.1}}",
        )
        .unwrap();
        assert_eq!(t.render(&payload(), Escape::None), r#"{"k":[1,2]} {"k":[1,2]} null "work" b@x.example"#);
        let t = Template::parse("{{message.attachments.0.name}} ({{message.attachments.0.size}} bytes)").unwrap();
        assert_eq!(t.render(&payload(), Escape::None), "a.pdf (3 bytes)");
    }

    #[test]
    fn json_bodies_escape_strings_and_stay_json() {
        let t = Template::parse(r#"{"text": "{{message.subject}} {{data.multi}}", "data": {{data | json}}}"#).unwrap();
        let body = t.render(&payload(), Escape::Json);
        let parsed: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(parsed["text"], "Tab\there \"quoted\" \\ \u{1} one\r\ntwo");
        assert_eq!(parsed["data"]["deep"]["k"], json!([1, 2]));
        assert!(serde_json::from_str::<Value>(&t.sample()).is_ok());
        let unquoted = Template::parse(r#"{"text": {{message.subject}}}"#).unwrap();
        assert!(serde_json::from_str::<Value>(&unquoted.sample()).is_err());
    }

    #[test]
    fn header_values_stay_on_one_line() {
        let t = Template::parse("{{data.multi}} {{message.subject}}").unwrap();
        assert_eq!(t.render(&payload(), Escape::Header), "one  two Tab here \"quoted\" \\  ");
    }

    /// `template` rendered over the test payload with the message's Subject `subject`.
    fn render_with_subject(template: &str, subject: &str, escape: Escape) -> String {
        let mut payload = payload();
        payload["message"]["subject"] = json!(subject);
        Template::parse(template).unwrap().render(&payload, escape)
    }

    /// A form body: every value percent-encoded, so what a sender writes cannot add or change a
    /// parameter; the template's own `&` and `=` stay.
    #[test]
    fn form_bodies_percent_encode_every_value() {
        let body = render_with_subject(
            "text={{message.subject}}&to={{message.to}}&d={{data.deep | json}}",
            "x&channel=evil 100% + ü=\r\n",
            Escape::Form,
        );
        assert_eq!(
            body,
            "text=x%26channel%3Devil+100%25+%2B+%C3%BC%3D%0D%0A&to=a%40x.example%2C+b%40x.example&d=%7B%22k%22%3A%5B1%2C2%5D%7D"
        );
        let pairs: Vec<(&str, &str)> = body.split('&').map(|p| p.split_once('=').unwrap()).collect();
        assert_eq!(pairs.iter().map(|p| p.0).collect::<Vec<_>>(), ["text", "to", "d"], "no parameter added");
        assert_eq!(Escape::for_body("application/x-www-form-urlencoded; charset=utf-8"), Escape::Form);
        assert_eq!(Escape::for_body("Application/X-WWW-Form-Urlencoded"), Escape::Form);
        assert_eq!(Escape::for_body("application/json"), Escape::Json);
        assert_eq!(Escape::for_body("application/problem+json; charset=utf-8"), Escape::Json);
        assert_eq!(Escape::for_body("text/plain"), Escape::None);
    }

    /// A header value never holds CR or LF, whatever the message or the `| json` filter gives.
    #[test]
    fn header_values_hold_no_line_break_even_through_the_json_filter() {
        let value = render_with_subject(
            "{{message.subject}} {{message.subject | json}} {{data | json}}",
            "a\r\nX-Injected: 1",
            Escape::Header,
        );
        assert!(!value.contains('\r') && !value.contains('\n'), "{value:?}");
        assert!(value.starts_with("a  X-Injected: 1 "), "{value:?}");
    }

    #[test]
    fn paths_are_checked_against_the_payload() {
        let check = |s: &str, inc: &[&str]| Template::parse(s).and_then(|t| t.check(inc));
        for ok in ["{{message.subject}}", "{{data.anything.at.all}}", "{{message}}", "{{message.to.0}}", "{{id}}"] {
            assert_eq!(check(ok, &[]), Ok(()), "{ok}");
        }
        assert_eq!(check("{{message.attachments.1.content}}", &["attachments"]), Ok(()));
        let cases = [
            ("{{mesage.subject}}", "names no payload field (known here: version, id,"),
            ("{{message.subjet}}", "names no payload field (known here: message_id, from,"),
            ("{{message.text}}", "only in the payload with `include: [text]`"),
            ("{{message.to.first}}", "`message.to` is a list: index it with a number"),
            ("{{message.subject.x}}", "`message.subject` has no fields"),
            ("{{account.name}}", "`account` has no fields"),
            ("{{message.attachments.0.body}}", "names no attachment field"),
            ("{{ message subject }}", "is not a placeholder"),
            ("{{data | upper}}", "unknown filter `upper`"),
            ("hello {{account", "is never closed"),
        ];
        for (source, needle) in cases {
            let inc: &[&str] = if source.contains("attachments") { &["attachments"] } else { &[] };
            let error = check(source, inc).unwrap_err();
            assert!(error.contains(needle), "{source}: {error}");
        }
    }
}
