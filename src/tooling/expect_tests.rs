use super::*;
use crate::plan::Event;

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap()
}

fn parse(text: &str) -> Result<Expected, String> {
    Expected::parse(&yaml(text))
}

fn flags(kind: &str, names: &[&str]) -> Action {
    let flags = names.iter().map(|s| (*s).to_owned()).collect();
    if kind == "add" { Action::AddFlags { flags } } else { Action::RemoveFlags { flags } }
}

fn json(action: &Action) -> Map<String, Value> {
    match serde_json::to_value(action).unwrap() {
        Value::Object(map) => map,
        other => panic!("{other}"),
    }
}

#[test]
fn every_shorthand_reads_into_its_action() {
    let cases = [
        ("move: Lists/rust", Action::Move { mailbox: "Lists/rust".into() }),
        ("move: 2026", Action::Move { mailbox: "2026".into() }),
        ("copy: Backup", Action::Copy { mailbox: "Backup".into() }),
        ("flag: \\Flagged", flags("add", &["\\Flagged"])),
        ("flag: \"\\\\Flagged\"", flags("add", &["\\Flagged"])),
        ("label: receipt", flags("add", &["receipt"])),
        ("label: [a, \\Seen]", flags("add", &["a", "\\Seen"])),
        ("unflag: \\Seen", flags("remove", &["\\Seen"])),
        ("unlabel: x", flags("remove", &["x"])),
        ("mark_read", flags("add", &["\\Seen"])),
        ("mark_unread", flags("remove", &["\\Seen"])),
        ("delete", Action::Delete),
        ("{kind: move, mailbox: A}", Action::Move { mailbox: "A".into() }),
        ("move: {mailbox: A}", Action::Move { mailbox: "A".into() }),
    ];
    for (text, action) in cases {
        let expected = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(expected.0, json(&action), "{text}");
        assert!(expected.matches(&action), "{text}");
    }
}

#[test]
fn the_printed_form_reads_back_as_the_same_action() {
    for action in [
        Action::Move { mailbox: "Überweisungen/2026".into() },
        Action::Copy { mailbox: "a: b #c".into() },
        flags("add", &["\\Flagged"]),
        flags("add", &["yes", "$Label1"]),
        flags("remove", &["\\Seen", "\\Flagged"]),
        Action::Delete,
        Action::Webhook(Event::new("crm", serde_json::json!({"id": 7, "tags": ["a"]}))),
    ] {
        let form = fixture_form(&action);
        assert_eq!(parse(&form).map(|e| e.0), Ok(json(&action)), "{form}");
    }
}

#[test]
fn fields_left_out_are_not_compared() {
    let hook = Action::Webhook(Event::new("crm", serde_json::json!({"id": 7, "from": "a@b"})));
    assert!(parse("webhook").unwrap().matches(&hook));
    assert!(parse("webhook: {endpoint: crm}").unwrap().matches(&hook));
    assert!(parse("webhook: {data: {id: 7}}").unwrap().matches(&hook));
    assert!(!parse("webhook: {endpoint: other}").unwrap().matches(&hook));
    assert!(!parse("webhook: {data: {id: 8}}").unwrap().matches(&hook));
    assert!(!parse("delete").unwrap().matches(&hook));
    // Flags are a list: compared whole.
    assert!(!parse("flag: \\Seen").unwrap().matches(&flags("add", &["\\Seen", "x"])));
}

#[test]
fn a_wrong_action_is_named() {
    let error = parse("mvoe: A").unwrap_err();
    assert!(error.starts_with("`mvoe` is not an action: unknown variant `mvoe`"), "{error}");
    let error = parse("flag: {a: 1}").unwrap_err();
    assert!(error.contains("expected a flag name"), "{error}");
    let error = parse("webhook: {endpoint: [1]}").unwrap_err();
    assert!(error.contains("is not an action: invalid type"), "{error}");
    assert!(parse("[1, 2]").is_err());
}

#[test]
fn the_diff_shows_what_is_missing_and_what_is_extra() {
    let expected = [parse("flag: \\Flagged").unwrap(), parse("move: A").unwrap()];
    let got = [flags("add", &["\\Flagged"]), flags("add", &["x"]), Action::Move { mailbox: "B".into() }];
    let got: Vec<&Action> = got.iter().collect();
    assert!(!all_match(&expected, &got));
    assert_eq!(diff(&expected, &got), ["    flag: \\Flagged", "  - move: A", "  + label: x", "  + move: B"]);
    assert_eq!(diff(&[], &[&Action::Delete]), ["  + delete"]);
    assert!(all_match(&expected[..1], &got[..1]));
}
