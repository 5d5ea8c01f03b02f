//! Bounded memory through the real daemon and the harness Dovecot: backlogs delivered while the
//! daemon is stopped, caught up on its next start. 200 messages of 9 MB with a rule that reads
//! every body: the catch-up fetches the headers, then the bodies a byte budget at a time. 600
//! messages of ~1 MB that are nearly all header, with a rule that reads only the header: the
//! header pass fetches at most 64 KiB of each header and the longer ones whole, a byte budget at
//! a time. The daemon's peak RSS (VmHWM) must stay far below the backlog's size, and every
//! message must be moved exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::daemon::{Daemon, Setup};
use crate::harness::{TestEnv, User, message, wait_for};
use crate::hostile::{big_message, huge_header, with_headers};

/// Reads every body: no message can be decided on its header alone.
const RULE: &str = r#"if msg.text.contains("long body") { move_to("Done"); }"#;
const BACKLOG: usize = 200;
const SIZE: usize = 9_000_000;
/// The bound docs/bounds.md states for the default settings, with room for a debug build.
const CEILING_KB: u64 = 300 * 1024;

/// Reads only the header, so the header pass alone could decide every message.
const HEADER_RULE: &str = r#"if msg.subject.starts_with("long header") { move_to("Done"); }"#;
const HEADER_BACKLOG: usize = 600;
const HEADER_SIZE: usize = 1 << 20;
/// The bound docs/bounds.md states for the default settings (45 + 96 + 8 x 10 MiB = 221 MiB),
/// with room for a debug build; the 600 MB of headers (two slices of the header pass) are far over it.
const HEADER_CEILING_KB: u64 = 300 * 1024;

/// A size of process `pid` from /proc/<pid>/status (`VmHWM`: the peak resident set so far;
/// `VmRSS`: the resident set now), in KiB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("{field} in {status}"));
    line.split_whitespace().nth(1).and_then(|kb| kb.parse().ok()).expect("a size in kB")
}

/// Starts the daemon on the `count` messages waiting in the INBOX, waits until all are in Done
/// and stops it; checks that each was planned and moved exactly once. Returns the peak RSS in
/// KiB, printed with `what`.
async fn catch_up(env: &TestEnv, user: &User, setup: &Setup, count: usize, what: &str) -> u64 {
    let daemon = Daemon::start(&setup.config, 1);
    let done = wait_for(Duration::from_secs(900), env.with_logs("the whole backlog in Done"), || async {
        let done = env.list(user, "Done").await.unwrap_or_default();
        if done.len() >= count {
            return Ok(done);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        Err(format!("{} of {count} in Done; daemon log:\n{}", done.len(), daemon.log()))
    })
    .await;
    let peak = status_kb(daemon.pid(), "VmHWM:");
    // What the allocator kept afterwards (not asserted: glibc's arenas decide it).
    let now = status_kb(daemon.pid(), "VmRSS:");
    println!("peak RSS (VmHWM) catching up {what}: {} MiB; RSS after: {} MiB", peak / 1024, now / 1024);
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");

    let subjects: BTreeSet<String> = done.iter().filter_map(|m| m.subject.clone()).collect();
    assert_eq!((done.len(), subjects.len()), (count, count), "each message moved once");
    assert!(env.list(user, "INBOX").await.unwrap().is_empty(), "nothing left behind");
    // One plan per message: none decided twice, none skipped.
    let planned: usize = log
        .lines()
        .filter(|l| l.contains("plans stored"))
        .filter_map(|l| l.split("messages=").nth(1)?.split_whitespace().next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(planned, count, "plans stored once per message:\n{log}");
    peak
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_of_200_messages_of_9_mb_with_a_body_rule_stays_under_300_mb() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let setup = Setup::new(env, &user, &[("done.rhai", RULE)], "");
    setup.baseline().await;
    // Delivered while the daemon is down: the next start finds the whole backlog waiting.
    for i in 0..BACKLOG {
        let raw = big_message(&user, &format!("backlog {i}"), SIZE);
        env.append(&user, "INBOX", &raw, &[], None).await.unwrap();
    }
    let peak = catch_up(env, &user, &setup, BACKLOG, &format!("{BACKLOG} x {SIZE} bytes with a body rule")).await;
    assert!(peak < CEILING_KB, "peak RSS {} MiB, over {} MiB", peak / 1024, CEILING_KB / 1024);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_of_600_messages_of_1_mb_headers_stays_under_300_mb() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let setup = Setup::new(env, &user, &[("done.rhai", HEADER_RULE)], "");
    setup.baseline().await;
    // Nearly all header, well under max_message_size: a hostile sender's cheapest way to fill
    // a header pass.
    let header = huge_header(HEADER_SIZE);
    for i in 0..HEADER_BACKLOG {
        let raw = with_headers(&header, message("a@example.com", &user.address, &format!("long header {i}"), "small"));
        env.append(&user, "INBOX", &raw, &[], None).await.unwrap();
    }
    let what = format!("{HEADER_BACKLOG} messages with {HEADER_SIZE}-byte headers and a header rule");
    let peak = catch_up(env, &user, &setup, HEADER_BACKLOG, &what).await;
    assert!(peak < HEADER_CEILING_KB, "peak RSS {} MiB, over {} MiB", peak / 1024, HEADER_CEILING_KB / 1024);
}
