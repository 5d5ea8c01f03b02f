//! Auto-replies, notices and their guards through the real daemon, Postfix and Dovecot.
//!
//! The tidings account is one harness user; the people writing to it are other harness users,
//! so a reply that Postfix delivers lands in a mailbox the test can read. A guard that failed
//! would show up as a message where none may be.

use std::time::Duration;

use tidings::store::{Action, ActionState, Store};

use crate::daemon::{Daemon, Setup};
use crate::harness::{Receiver, TestEnv, User, wait_for};

/// The account's SMTP settings: Postfix submission with STARTTLS, and its own address.
pub(crate) fn smtp_account(env: &TestEnv, user: &User, extra: &str) -> String {
    format!(
        "smtp: {{ host: 127.0.0.1, port: {port}, tls: starttls }}\naddresses: [{address}]\n{extra}",
        port = env.submission_port,
        address = user.address,
    )
}

/// A message to the account from `from`, with extra header lines.
pub(crate) fn mail(from: &str, to: &str, subject: &str, headers: &str) -> (String, Vec<u8>) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("out{n}.{}@sender.tidings.test", std::process::id());
    let raw = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{id}>\r\n\
         References: <thread-start@sender.tidings.test>\r\n{headers}MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nHello there.\r\n",
        date = chrono::Utc::now().to_rfc2822(),
    );
    (id, raw.into_bytes())
}

/// The outbox rows of `kind`, once `n` of them are settled (not pending, in flight or sending).
pub(crate) async fn settled(setup: &Setup, kind: &str, n: usize) -> Vec<Action> {
    let state = setup.state();
    let kind = kind.to_owned();
    wait_for(Duration::from_secs(60), format!("{n} settled {kind} rows"), || {
        let state = state.clone();
        let kind = kind.clone();
        async move {
            let store = Store::open(&state).await?;
            let rows: Vec<Action> =
                store.list_outbox(None, 10_000).await?.into_iter().filter(|a| a.kind == kind).collect();
            let open = [ActionState::Pending, ActionState::InFlight, ActionState::Sending];
            let done = rows.iter().filter(|a| !open.contains(&a.state)).count();
            anyhow::ensure!(done >= n, "{done} of {n} settled: {rows:?}");
            Ok::<_, anyhow::Error>(rows)
        }
    })
    .await
}

/// The raw text of the first message in `user`'s INBOX, once one arrived.
async fn first_in_inbox(env: &TestEnv, user: &User, what: &str) -> String {
    let listed = wait_for(Duration::from_secs(30), what, || async {
        let listed = env.list(user, "INBOX").await?;
        anyhow::ensure!(!listed.is_empty(), "nothing yet");
        Ok::<_, anyhow::Error>(listed)
    })
    .await;
    String::from_utf8(env.fetch_raw(user, "INBOX", listed[0].uid).await.unwrap()).unwrap()
}

/// A header's value, unfolded, from the header block of `raw`.
fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next().unwrap_or(raw).replace("\r\n ", " ").replace("\r\n\t", " ");
    head.lines()
        .find(|l| {
            l.len() > name.len() && l[..name.len()].eq_ignore_ascii_case(name) && l.as_bytes()[name.len()] == b':'
        })
        .map(|l| l[name.len() + 1..].trim().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_auto_reply_is_sent_once_threaded_and_saved_and_a_second_message_gets_none() {
    let env = TestEnv::shared();
    let (me, ann) = (env.new_user(), env.new_user());
    let rule = r#"reply(#{ body: "I am away until Monday.", days: 7 });"#;
    let account = smtp_account(env, &me, "save_sent: true");
    let setup = Setup::new(env, &me, &[("away.rhai", rule)], &account);
    let daemon = Daemon::start(&setup.config, 1);

    let (first_id, first) = mail(&ann.address, &me.address, "Lunch?", "");
    env.deliver_lmtp_to(&ann.address, &[&me.address], &first).await.unwrap();
    let raw = first_in_inbox(env, &ann, "the reply in Ann's INBOX").await;
    assert_eq!(header(&raw, "Subject").as_deref(), Some("Re: Lunch?"), "{raw}");
    assert_eq!(header(&raw, "In-Reply-To"), Some(format!("<{first_id}>")), "{raw}");
    let references = header(&raw, "References").unwrap_or_default();
    assert!(references.contains("<thread-start@sender.tidings.test>"), "{raw}");
    assert!(references.contains(&format!("<{first_id}>")), "{raw}");
    assert_eq!(header(&raw, "Auto-Submitted").as_deref(), Some("auto-replied"), "{raw}");
    assert!(header(&raw, "From").unwrap_or_default().contains(&me.address), "{raw}");
    assert!(raw.contains("I am away until Monday."), "{raw}");

    // The same sender again within `days`: no second reply.
    let (_, second) = mail(&ann.address, &me.address, "Lunch tomorrow then?", "");
    env.deliver_lmtp_to(&ann.address, &[&me.address], &second).await.unwrap();
    let rows = settled(&setup, "reply", 2).await;
    let states: Vec<ActionState> = rows.iter().map(|a| a.state).collect();
    assert_eq!(states.iter().filter(|s| **s == ActionState::Done).count(), 1, "{rows:?}");
    let suppressed: Vec<&Action> = rows.iter().filter(|a| a.state == ActionState::Suppressed).collect();
    assert_eq!(suppressed.len(), 1, "{rows:?}");
    let reason = suppressed[0].last_error.as_deref().unwrap_or_default();
    assert!(reason.contains(&ann.address.to_lowercase()), "the reason names the sender: {reason}");

    // The sent reply is in the account's \Sent folder.
    wait_for(Duration::from_secs(20), "the reply in Sent", || async {
        let sent = env.list(&me, "Sent").await?;
        anyhow::ensure!(sent.iter().any(|l| l.subject.as_deref() == Some("Re: Lunch?")), "not in Sent: {sent:?}");
        Ok::<_, anyhow::Error>(())
    })
    .await;
    let (_, log) = daemon.stop();
    assert_eq!(env.list(&ann, "INBOX").await.unwrap().len(), 1, "exactly one reply reached Ann\n{log}");
    // The log says how many it went to, and where the copy went; never who.
    let sent = log.lines().find(|l| l.contains(": sent message_id="));
    assert!(sent.is_some_and(|l| l.contains("recipients=1") && !l.contains(&ann.address)), "{log}");
    let saved = log.lines().find(|l| l.contains("sent message saved"));
    assert!(saved.is_some_and(|l| l.contains("to=Sent")), "{log}");
}

/// One message per guard (and one that passes), all from a sender whose INBOX the test reads.
#[tokio::test(flavor = "multi_thread")]
async fn every_guard_stops_its_reply_and_says_why() {
    let env = TestEnv::shared();
    let (me, ann, other) = (env.new_user(), env.new_user(), env.new_user());
    let rule = r#"reply("Got it.");"#;
    let setup = Setup::new(env, &me, &[("ack.rhai", rule)], &smtp_account(env, &me, ""));
    let daemon = Daemon::start(&setup.config, 1);
    let to_me = me.address.as_str();
    // (envelope sender, From, To, extra headers, what the suppression reason must mention)
    let cases: Vec<(String, String, String, &str, &str)> = vec![
        (ann.address.clone(), ann.address.clone(), to_me.into(), "List-Id: <talk.lists.example>\r\n", "list-id"),
        (
            ann.address.clone(),
            ann.address.clone(),
            to_me.into(),
            "List-Unsubscribe: <mailto:u@x.example>\r\n",
            "list-unsubscribe",
        ),
        (ann.address.clone(), ann.address.clone(), to_me.into(), "Precedence: bulk\r\n", "precedence"),
        (ann.address.clone(), ann.address.clone(), to_me.into(), "Precedence: junk\r\n", "precedence"),
        (ann.address.clone(), ann.address.clone(), to_me.into(), "Precedence: list\r\n", "precedence"),
        (ann.address.clone(), ann.address.clone(), to_me.into(), "Auto-Submitted: auto-replied\r\n", "auto-submitted"),
        (
            ann.address.clone(),
            ann.address.clone(),
            to_me.into(),
            "X-Auto-Response-Suppress: OOF\r\n",
            "x-auto-response-suppress",
        ),
        (
            ann.address.clone(),
            ann.address.clone(),
            to_me.into(),
            "X-Auto-Response-Suppress: All\r\n",
            "x-auto-response-suppress",
        ),
        (String::new(), ann.address.clone(), to_me.into(), "", "<>"),
        (ann.address.clone(), ann.address.clone(), other.address.clone(), "", "to or cc"),
        (ann.address.clone(), me.address.clone(), to_me.into(), "", "own address"),
        (ann.address.clone(), "MAILER-DAEMON@tidings.test".into(), to_me.into(), "", "mailer-daemon"),
        (ann.address.clone(), "noreply@tidings.test".into(), to_me.into(), "", "noreply"),
        (ann.address.clone(), "owner-talk@tidings.test".into(), to_me.into(), "", "owner-"),
        (ann.address.clone(), "talk-request@tidings.test".into(), to_me.into(), "", "-request"),
        (ann.address.clone(), "LISTSERV@tidings.test".into(), to_me.into(), "", "listserv"),
        (ann.address.clone(), "majordomo@tidings.test".into(), to_me.into(), "", "majordomo"),
    ];
    let mut expected = Vec::new();
    for (n, (envelope, from, to, headers, why)) in cases.iter().enumerate() {
        let (id, raw) = mail(from, to, &format!("guard case {n}"), headers);
        env.deliver_lmtp_to(envelope, &[&me.address], &raw).await.unwrap();
        expected.push((id, *why));
    }
    let (_, passing) = mail(&ann.address, &me.address, "a plain question", "");
    env.deliver_lmtp_to(&ann.address, &[&me.address], &passing).await.unwrap();

    let rows = settled(&setup, "reply", cases.len() + 1).await;
    let (_, log) = daemon.stop();
    let done: Vec<&Action> = rows.iter().filter(|a| a.state == ActionState::Done).collect();
    assert_eq!(done.len(), 1, "only the plain question is answered: {rows:#?}\n{log}");
    let mut report = Vec::new();
    for row in rows.iter().filter(|a| a.state != ActionState::Done) {
        assert_eq!(row.state, ActionState::Suppressed, "{row:?}");
        let reason = row.last_error.clone().unwrap_or_default();
        report.push(format!("uid {:?}: {reason}", row.uid));
    }
    report.sort();
    eprintln!("suppressed replies:\n  {}", report.join("\n  "));
    // Each case's reason names its guard (rows follow delivery order, by uid).
    let mut by_uid: Vec<&Action> = rows.iter().filter(|a| a.state == ActionState::Suppressed).collect();
    by_uid.sort_by_key(|a| a.uid);
    for ((_, why), row) in expected.iter().zip(&by_uid) {
        let reason = row.last_error.as_deref().unwrap_or_default().to_lowercase();
        assert!(reason.contains(&why.to_lowercase()), "expected a reason about {why:?}, got {reason:?}");
    }
    let inbox = env.list(&ann, "INBOX").await.unwrap();
    assert_eq!(inbox.len(), 1, "Ann got exactly the one reply: {inbox:?}");
    assert_eq!(inbox[0].subject.as_deref(), Some("Re: a plain question"));
    assert!(log.contains("suppressed"), "suppressions are logged:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daily_limit_stops_a_flood_and_the_rest_is_dead_lettered() {
    let env = TestEnv::shared();
    let (me, ann) = (env.new_user(), env.new_user());
    let rule = format!(r#"send(#{{ to: "{}", subject: "notice: " + msg.subject, body: "see INBOX" }});"#, ann.address);
    let setup = Setup::new(env, &me, &[("notice.rhai", &rule)], &smtp_account(env, &me, "daily_send_limit: 3"));
    let daemon = Daemon::start(&setup.config, 1);
    for n in 0..6 {
        let (_, raw) = mail("someone@example.com", &me.address, &format!("flood {n}"), "");
        env.deliver_lmtp(&me, &raw).await.unwrap();
    }
    let rows = settled(&setup, "send", 6).await;
    let (_, log) = daemon.stop();
    let count = |state| rows.iter().filter(|a| a.state == state).count();
    assert_eq!((count(ActionState::Done), count(ActionState::Failed)), (3, 3), "{rows:#?}\n{log}");
    for row in rows.iter().filter(|a| a.state == ActionState::Failed) {
        let error = row.last_error.as_deref().unwrap_or_default();
        assert!(error.contains("daily send limit"), "{error}");
    }
    let inbox = env.list(&ann, "INBOX").await.unwrap();
    assert_eq!(inbox.len(), 3, "{inbox:?}");
    let raw = String::from_utf8(env.fetch_raw(&ann, "INBOX", inbox[0].uid).await.unwrap()).unwrap();
    assert_eq!(header(&raw, "Auto-Submitted").as_deref(), Some("auto-generated"), "{raw}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forward_as_attachment_carries_the_whole_original() {
    let env = TestEnv::shared();
    let (me, ann) = (env.new_user(), env.new_user());
    let rule = format!(r#"forward(#{{ to: "{}", note: "FYI, see attached.", attach: true }});"#, ann.address);
    let setup = Setup::new(env, &me, &[("fwd.rhai", &rule)], &smtp_account(env, &me, ""));
    let daemon = Daemon::start(&setup.config, 1);
    let (id, raw) = mail("boss@example.com", &me.address, "Quarterly numbers", "X-Original-Marker: kept-intact\r\n");
    env.deliver_lmtp(&me, &raw).await.unwrap();
    let forwarded = first_in_inbox(env, &ann, "the forward in Ann's INBOX").await;
    daemon.stop();
    assert_eq!(header(&forwarded, "Auto-Submitted").as_deref(), Some("auto-generated"), "{forwarded}");
    assert!(header(&forwarded, "Subject").unwrap_or_default().contains("Quarterly numbers"), "{forwarded}");
    assert!(forwarded.contains("FYI, see attached."), "{forwarded}");
    assert!(forwarded.to_lowercase().contains("message/rfc822"), "{forwarded}");
    assert!(forwarded.contains("X-Original-Marker: kept-intact"), "the original's own headers are inside: {forwarded}");
    assert!(forwarded.contains(&format!("<{id}>")), "{forwarded}");
}

/// The rows of `kind` settled so far, by state.
fn count(rows: &[Action], state: ActionState) -> usize {
    rows.iter().filter(|a| a.state == state).count()
}

/// 30 messages a sender shaped to break `reply()` (a null MAIL FROM, `From: "Postmaster" <>`, no
/// From, a Reply-To that does not parse, a Reply-To naming a third party), then one legitimate
/// message, to a rule that fires a webhook and replies: every message gets its webhook (the
/// rule never failed), only the legitimate one is answered, at its envelope sender, and nothing
/// reaches the third party.
#[tokio::test(flavor = "multi_thread")]
async fn senders_who_break_reply_get_no_reply_and_switch_nothing_off() {
    let env = TestEnv::shared();
    let (me, ann, victim) = (env.new_user(), env.new_user(), env.new_user());
    let receiver = Receiver::start();
    let rule = r#"webhook("hook", #{ s: msg.subject }); reply("I am away until Monday.");"#;
    let top = format!("webhooks:\n  hook:\n    url: {}\n", receiver.url("/hook"));
    let setup = Setup::with_top(env, &me, &[("away.rhai", rule)], &smtp_account(env, &me, ""), &top);
    let daemon = Daemon::start(&setup.config, 1);
    let third_party = format!("Reply-To: {}\r\n", victim.address);
    let shapes: [(&str, String); 5] = [
        ("\"Postmaster\" <>", String::new()),
        ("\"Postmaster\" <>", third_party.clone()),
        (ann.address.as_str(), third_party.clone()),
        (ann.address.as_str(), "Reply-To: ,,,@@ <@>\r\n".to_owned()),
        ("", third_party.clone()),
    ];
    let mut hostile = 0;
    for n in 0..30 {
        let (from, headers) = &shapes[n % shapes.len()];
        let (_, raw) = mail(from, &me.address, &format!("hostile {n}"), headers);
        // A From line of its own for the "no From" shape: `mail` always writes one.
        let raw = if from.is_empty() {
            String::from_utf8(raw).unwrap().replacen("From: \r\n", "", 1).into_bytes()
        } else {
            raw
        };
        env.deliver_lmtp_to("", &[&me.address], &raw).await.unwrap();
        hostile += 1;
    }
    let (_, legit) = mail(&ann.address, &me.address, "a real question", &third_party);
    env.deliver_lmtp_to(&ann.address, &[&me.address], &legit).await.unwrap();

    let hooks = receiver.wait_for(hostile + 1, Duration::from_secs(60));
    let rows = settled(&setup, "reply", hostile + 1).await;
    let (_, log) = daemon.stop();
    let subjects: std::collections::BTreeSet<String> = hooks
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["data"]["s"].as_str().unwrap_or("").to_owned()
        })
        .collect();
    assert_eq!(subjects.len(), hostile + 1, "one webhook per message, none dropped: {subjects:?}\n{log}");
    assert_eq!((count(&rows, ActionState::Done), count(&rows, ActionState::Suppressed)), (1, hostile), "{rows:#?}");
    for row in rows.iter().filter(|a| a.state == ActionState::Suppressed) {
        let reason = row.last_error.as_deref().unwrap_or_default();
        assert!(reason.contains("envelope sender is <>"), "{reason}");
    }
    assert!(!log.contains("rule failed"), "no rule failed:\n{log}");
    let answered = env.list(&ann, "INBOX").await.unwrap();
    assert_eq!(answered.len(), 1, "Ann, the envelope sender of the real question, got one reply: {answered:?}");
    assert_eq!(answered[0].subject.as_deref(), Some("Re: a real question"));
    assert!(env.list(&victim, "INBOX").await.unwrap().is_empty(), "nothing went to the Reply-To third party");
    eprintln!("{} webhooks, replies: 1 sent, {hostile} suppressed (envelope sender <>)", hooks.len());
}

/// The shipped out-of-office rule, switched on: its reply goes to the envelope sender, not to a
/// Reply-To that names somebody else (RFC 3834 section 4).
#[tokio::test(flavor = "multi_thread")]
async fn a_vacation_reply_goes_to_the_envelope_sender_not_a_third_party_reply_to() {
    let env = TestEnv::shared();
    let (me, ann, victim) = (env.new_user(), env.new_user(), env.new_user());
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/60-out-of-office.rhai")).unwrap();
    let setup = Setup::new(env, &me, &[("60-out-of-office.rhai", &shipped)], &smtp_account(env, &me, ""));
    let now = chrono::Utc::now();
    let data = format!(
        "away:\n  from: \"{}\"\n  to: \"{}\"\n  text: \"Away this week.\"\n",
        (now - chrono::Duration::days(1)).to_rfc3339(),
        (now + chrono::Duration::days(1)).to_rfc3339()
    );
    std::fs::create_dir_all(setup.dir.path().join("rules/data")).unwrap();
    std::fs::write(setup.dir.path().join("rules/data/out_of_office.yaml"), data).unwrap();
    let daemon = Daemon::start(&setup.config, 1);
    let (_, raw) = mail(&ann.address, &me.address, "Meeting?", &format!("Reply-To: {}\r\n", victim.address));
    env.deliver_lmtp_to(&ann.address, &[&me.address], &raw).await.unwrap();
    let rows = settled(&setup, "reply", 1).await;
    let (_, log) = daemon.stop();
    assert_eq!(rows[0].state, ActionState::Done, "{rows:#?}\n{log}");
    assert_eq!(rows[0].payload["to"], ann.address.as_str());
    let reply = first_in_inbox(env, &ann, "the vacation reply at Ann").await;
    assert!(reply.contains("Away this week."), "{reply}");
    assert!(env.list(&victim, "INBOX").await.unwrap().is_empty(), "nothing went to the Reply-To third party");
}

/// Two accounts whose rules forward everything to each other: A -> B -> A stops at A, whose loop
/// marker the message carries by then: two forwards, not a flood up to the daily cap; a
/// legitimate send after the loop still goes out.
#[tokio::test(flavor = "multi_thread")]
async fn a_forward_loop_between_two_accounts_ends_after_two_forwards_and_the_cap_stays_usable() {
    let env = TestEnv::shared();
    let (a, b, ann) = (env.new_user(), env.new_user(), env.new_user());
    let to_b = format!(
        r#"if msg.subject.starts_with("notify") {{ send(#{{ to: "{ann}", subject: "notice", body: "x" }}); }} else {{ forward("{b}"); }}"#,
        ann = ann.address,
        b = b.address,
    );
    let to_a = format!(r#"forward("{}");"#, a.address);
    let setup_a = Setup::new(env, &a, &[("fwd.rhai", &to_b)], &smtp_account(env, &a, "daily_send_limit: 3"));
    let setup_b = Setup::new(env, &b, &[("fwd.rhai", &to_a)], &smtp_account(env, &b, "daily_send_limit: 3"));
    let (daemon_a, daemon_b) = (Daemon::start(&setup_a.config, 1), Daemon::start(&setup_b.config, 1));
    let (_, raw) = mail(&ann.address, &a.address, "ping-pong", "");
    env.deliver_lmtp_to(&ann.address, &[&a.address], &raw).await.unwrap();

    // A forwards it (1), B forwards that back (2), A suppresses the third.
    let rows_a = settled(&setup_a, "forward", 2).await;
    let rows_b = settled(&setup_b, "forward", 1).await;
    assert_eq!((count(&rows_a, ActionState::Done), count(&rows_a, ActionState::Suppressed)), (1, 1), "{rows_a:#?}");
    assert_eq!(count(&rows_b, ActionState::Done), 1, "{rows_b:#?}");
    let stopped = rows_a.iter().find(|r| r.state == ActionState::Suppressed).unwrap();
    let reason = stopped.last_error.as_deref().unwrap_or_default();
    assert!(reason.contains("this account's loop marker") && reason.contains(&a.address), "{reason}");
    // Nothing more moves for a while: the loop is over.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (inbox_a, inbox_b) = (env.list(&a, "INBOX").await.unwrap(), env.list(&b, "INBOX").await.unwrap());
    assert_eq!((inbox_a.len(), inbox_b.len()), (2, 1), "the original and one forward at A, one at B");
    let back = String::from_utf8(env.fetch_raw(&a, "INBOX", inbox_a[1].uid).await.unwrap()).unwrap();
    let markers: Vec<&str> = back.lines().filter_map(|l| l.strip_prefix("X-Loop: ")).collect();
    assert_eq!(markers, [a.address.as_str(), b.address.as_str()], "{back}");

    // The daily cap (3) is not used up: a notice A sends now goes out.
    let (_, notify) = mail(&ann.address, &a.address, "notify me", "");
    env.deliver_lmtp_to(&ann.address, &[&a.address], &notify).await.unwrap();
    let sent = settled(&setup_a, "send", 1).await;
    let ((_, log_a), (_, log_b)) = (daemon_a.stop(), daemon_b.stop());
    assert_eq!(sent[0].state, ActionState::Done, "{sent:#?}\n{log_a}\n{log_b}");
    let notices = env.list(&ann, "INBOX").await.unwrap();
    assert_eq!(notices.len(), 1, "{notices:?}");
    eprintln!("forward loop: A sent 1 forward and suppressed 1 (X-Loop), B sent 1; A's notice after it went out");
}

/// A message with 20,000 To addresses, to a rule that reads `msg.to` (Rhai refuses arrays over
/// 10,000) and replies: the rule sees the first 1,000, `msg.capped` says so, nothing fails, the
/// reply goes to the envelope sender.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_with_20000_recipients_is_capped_not_a_rule_failure() {
    let env = TestEnv::shared();
    let (me, ann) = (env.new_user(), env.new_user());
    let receiver = Receiver::start();
    let rule = r#"webhook("hook", #{ n: msg.to.len(), capped: msg.capped, mine: msg.to.some(|a| a.address == MY) });
        reply("Got it.");"#;
    let rule = rule.replace("MY", &format!("{:?}", me.address));
    let top = format!("webhooks:\n  hook:\n    url: {}\n", receiver.url("/hook"));
    let setup = Setup::with_top(env, &me, &[("big.rhai", &rule)], &smtp_account(env, &me, ""), &top);
    let daemon = Daemon::start(&setup.config, 1);
    let many: Vec<String> = (0..20_000).map(|i| format!("r{i}@many.tidings.test")).collect();
    let to = format!("{}, {}", me.address, many.join(",\r\n "));
    let (_, raw) = mail(&ann.address, &to, "to everybody", "");
    env.deliver_lmtp_to(&ann.address, &[&me.address], &raw).await.unwrap();
    let hooks = receiver.wait_for(1, Duration::from_secs(60));
    let rows = settled(&setup, "reply", 1).await;
    let (_, log) = daemon.stop();
    let body: serde_json::Value = serde_json::from_slice(&hooks[0].body).unwrap();
    assert_eq!(body["data"], serde_json::json!({ "n": 1000, "capped": true, "mine": true }), "{log}");
    assert!(!log.contains("rule failed"), "{log}");
    assert_eq!(rows[0].state, ActionState::Done, "{rows:#?}");
    eprintln!("20,000 To addresses: msg.to.len() = {}, capped = {}", body["data"]["n"], body["data"]["capped"]);
}
