//! Auto-replies, notices and their guards through the real daemon, Postfix and Dovecot.
//!
//! The tidings account is one harness user; the people writing to it are other harness users,
//! so a reply that Postfix delivers lands in a mailbox the test can read. A guard that failed
//! would show up as a message where none may be.

use std::time::Duration;

use tidings::store::{Action, ActionState, Store};

use crate::daemon::{Daemon, Setup};
use crate::harness::{TestEnv, User, wait_for};

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
    let replies = wait_for(Duration::from_secs(30), "the reply in Ann's INBOX", || async {
        let listed = env.list(&ann, "INBOX").await?;
        anyhow::ensure!(!listed.is_empty(), "no reply yet");
        Ok::<_, anyhow::Error>(listed)
    })
    .await;
    let raw = String::from_utf8(env.fetch_raw(&ann, "INBOX", replies[0].uid).await.unwrap()).unwrap();
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
    let got = wait_for(Duration::from_secs(30), "the forward in Ann's INBOX", || async {
        let listed = env.list(&ann, "INBOX").await?;
        anyhow::ensure!(!listed.is_empty(), "nothing yet");
        Ok::<_, anyhow::Error>(listed)
    })
    .await;
    daemon.stop();
    let forwarded = String::from_utf8(env.fetch_raw(&ann, "INBOX", got[0].uid).await.unwrap()).unwrap();
    assert_eq!(header(&forwarded, "Auto-Submitted").as_deref(), Some("auto-generated"), "{forwarded}");
    assert!(header(&forwarded, "Subject").unwrap_or_default().contains("Quarterly numbers"), "{forwarded}");
    assert!(forwarded.contains("FYI, see attached."), "{forwarded}");
    assert!(forwarded.to_lowercase().contains("message/rfc822"), "{forwarded}");
    assert!(forwarded.contains("X-Original-Marker: kept-intact"), "the original's own headers are inside: {forwarded}");
    assert!(forwarded.contains(&format!("<{id}>")), "{forwarded}");
}
