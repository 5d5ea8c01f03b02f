//! Text, regex, glob, domain and date helpers, used by rules.

use serde_json::json;

use super::{BARE, FULL, error, read};

#[test]
fn case_insensitive_tests() {
    let rule = r#"webhook("t", [
        msg.subject.icontains("YOUR ORDER"), msg.subject.icontains("refund"),
        msg.subject.istarts_with("re: your"), msg.subject.iends_with("SHIPPED"),
        "STRASSE".icontains("straße") , "ÄRGER".istarts_with("är"),
    ]);"#;
    assert_eq!(read(rule, FULL), json!([true, false, true, true, false, true]));
}

#[test]
fn regex_match_and_captures() {
    let rule = r##"webhook("t", #{
        matches: [msg.subject.matches("(?i)ORDER #\\d+"), msg.subject.matches("^order")],
        captures: msg.subject.captures("order #(\\d+) has (\\w+)( late)?"),
        none: msg.subject.captures("refund (\\d+)"),
        named: msg.text.named_captures("code: (?<kind>[A-Z]+)-(?<n>\\d+)"),
        no_named: msg.text.named_captures("(?<x>nothing here)"),
    });"##;
    assert_eq!(
        read(rule, FULL),
        json!({
            "matches": [true, false],
            "captures": ["order #4711 has shipped", "4711", "shipped", null],
            "none": null,
            "named": {"kind": "ZX", "n": "42"},
            "no_named": null,
        })
    );
    let bad = error(r#"let x = msg.subject.matches("(unclosed");"#, FULL);
    assert!(bad.contains("cannot compile regex `(unclosed`") && bad.contains("line 1"), "{bad}");
}

#[test]
fn globs_and_domains() {
    let rule = r#"webhook("t", [
        msg.from.matches_glob("*@*.shop.example"), msg.from.matches_glob("*@shop.example"),
        msg.list_id.matches_glob("news.*"), "Report-2026.PDF".matches_glob("report-????.pdf"),
        msg.from.domain.is_subdomain_of("shop.example"), msg.from.domain.is_subdomain_of("SHOP.example"),
        "notshop.example".is_subdomain_of("shop.example"), "shop.example".is_subdomain_of("mail.shop.example"),
        msg.from.domain.is_subdomain_of(["github.com", "shop.example"]), "x.org".is_subdomain_of(["github.com"]),
    ]);"#;
    assert_eq!(read(rule, FULL), json!([true, false, true, true, true, true, false, false, true, false]));
}

#[test]
fn now_is_the_trigger_time_and_dates_compare_and_convert() {
    let rule = r#"webhook("t", #{
        now: now(),
        age: [msg.date.age_days, msg.date.age_hours, msg.received.age_hours],
        future: date("2027-01-01").age_days,
        parsed: [date("2026-12-24"), date("2026-12-24T10:00:00+01:00"), date("2026-12-24T09:00:00Z")],
        compare: [date("2026-12-24T10:00:00+01:00") == date("2026-12-24T09:00:00Z"),
                  date("2026-12-24") < date("2026-12-25"), date("2026-12-24") <= date("2026-12-24"),
                  date("2026-12-25") > date("2026-12-24"), date("2026-12-24") >= date("2026-12-25"),
                  msg.date != now()],
        berlin: [now().in_tz("Europe/Berlin").hour, now().in_tz("Europe/Berlin").to_string()],
        tokyo_day: date("2026-12-24T20:00:00Z").in_tz("Asia/Tokyo").day,
        formatted: msg.date.format("%Y/%m %a %H:%M"),
        folder: "Archive/" + now().format("%Y"),
    });"#;
    assert_eq!(
        read(rule, FULL),
        json!({
            "now": "2026-12-26T12:00:00+00:00",
            // Sent 2026-12-24 09:30 UTC: 2 days and 2.5 hours before now().
            "age": [2, 50, 50],
            "future": -5,
            "parsed": ["2026-12-24T00:00:00+00:00", "2026-12-24T10:00:00+01:00", "2026-12-24T09:00:00+00:00"],
            "compare": [true, true, true, true, false, true],
            "berlin": [13, "2026-12-26T13:00:00+01:00"],
            "tokyo_day": 25,
            "formatted": "2026/12 Thu 10:30",
            "folder": "Archive/2026",
        })
    );
}

#[test]
fn bad_dates_zones_and_formats_fail_the_rule_with_the_value_named() {
    let bad = error(r#"let d = date("24.12.2026");"#, BARE);
    assert!(bad.contains("cannot read date `24.12.2026`"), "{bad}");
    let bad = error(r#"let d = now().in_tz("Mars/Olympus");"#, BARE);
    assert!(bad.contains("`Mars/Olympus` is not a time zone"), "{bad}");
    let bad = error(r#"let d = now().format("%Q");"#, BARE);
    assert!(bad.contains("cannot format a date with `%Q`"), "{bad}");
}
