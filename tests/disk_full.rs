//! A full disk under the SQLite store, for real: the state file on a small tmpfs, filled to the
//! last byte while the daemon runs. The mail delivered meanwhile is not lost (its checkpoint
//! stays), `/healthz` says why the account is down, and once space returns the account resumes
//! by itself, without a restart or SIGHUP, and sorts that mail once.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, Setup};
use crate::harness::{TestEnv, User, message, wait_for};
use crate::health::{free_port, get};
use crate::watch::{SORT_RULE, ids_in};

/// A tmpfs mounted for the test's life, unmounted when dropped (also after a failed assert).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .status();
        assert!(status.is_ok_and(|s| s.success()), "cannot mount a tmpfs on {} (the tests run as root)", dir.display());
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a daemon not yet reaped): detach it now, it goes when the last file closes.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Writes `path` until the file system has no byte left; returns how many bytes it took.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let mut written = 0;
    for chunk in [64 * 1024, 512, 1] {
        let bytes = vec![0u8; chunk];
        loop {
            match file.write(&bytes) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == ErrorKind::StorageFull => break,
                Err(e) => panic!("cannot fill {}: {e}", path.display()),
            }
        }
    }
    written
}

/// Waits until `n` messages are in Sorted.
async fn sorted(env: &TestEnv, user: &User, daemon: &Daemon, n: usize, why: &str) {
    wait_for(Duration::from_secs(30), format!("{why}\n{}", daemon.log()), || async {
        let got = ids_in(env, user, "Sorted").await.len();
        if got == n { Ok(()) } else { Err(got) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_stops_the_account_safely_and_it_resumes_when_space_returns() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let port = free_port();
    let top = format!("http: {{ listen: \"127.0.0.1:{port}\" }}\nhealth: {{ unhealthy_after: 2s }}\n");
    let setup = Setup::with_top(env, &user, &[("sort.rhai", SORT_RULE)], "", &top);
    // The store on its own small file system.
    let disk = setup.dir.path().join("disk");
    let _tmpfs = Tmpfs::mount(&disk, "2m");
    let yaml = std::fs::read_to_string(&setup.config).unwrap().replace("state: state.db\n", "state: disk/state.db\n");
    std::fs::write(&setup.config, yaml).unwrap();
    let state = disk.join("state.db");

    let daemon = Daemon::start(&setup.config, 1);
    env.deliver_lmtp(&user, &message("a@example.com", &user.address, "sort-me before", "x")).await.unwrap();
    sorted(env, &user, &daemon, 1, "the first message sorted").await;
    let store = tidings::store::Store::open(&state).await.unwrap();
    let before = store.checkpoint("t", "INBOX").await.unwrap().expect("a checkpoint");
    // Everything committed moved into the main file and the WAL cut to nothing: the next commit
    // must grow the WAL, which a full disk refuses (with room left in it, a few small commits
    // would still fit, however full the disk).
    rusqlite::Connection::open(&state).unwrap().query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    let filler = disk.join("filler");
    let filled = fill(&filler);
    eprintln!("disk full: {filled} bytes of filler on a 2 MiB tmpfs");

    env.deliver_lmtp(&user, &message("b@example.com", &user.address, "sort-me while full", "x")).await.unwrap();
    let body = wait_for(Duration::from_secs(30), format!("/healthz unhealthy\n{}", daemon.log()), || async {
        match get(port, "/healthz") {
            Ok((503, body)) => Ok(body),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    eprintln!("healthz while full: {}", body.trim());
    assert!(body.contains("watcher t/INBOX has been down for"), "{body}");
    assert!(body.contains("database or disk is full"), "{body}");
    // Nothing lost: the mail is still in the INBOX, the checkpoint did not pass it.
    assert_eq!(store.checkpoint("t", "INBOX").await.unwrap(), Some(before.clone()));
    assert_eq!(ids_in(env, &user, "Sorted").await.len(), 1);
    assert_eq!(ids_in(env, &user, "INBOX").await.len(), 1);
    // The account waits with backoff, trying again, rather than ending for good.
    daemon.wait_log_count("the store still refuses the account's writes", 2, Duration::from_secs(30));

    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    sorted(env, &user, &daemon, 2, "the message delivered while full sorted once space returned").await;
    let resumed = freed.elapsed();
    wait_for(Duration::from_secs(10), format!("/healthz healthy again\n{}", daemon.log()), || async {
        match get(port, "/healthz") {
            Ok((200, body)) => Ok(body),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let after = store.checkpoint("t", "INBOX").await.unwrap().expect("a checkpoint");
    assert!(after.last_uid > before.last_uid, "{before:?} -> {after:?}");
    drop(store);
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    for line in
        log.lines().filter(|l| ["afresh", "still refuses", "task stopped", "ended after"].iter().any(|w| l.contains(w)))
    {
        eprintln!("disk full: {line}");
    }
    let restarts = log.matches("had ended after a failure; started afresh").count();
    eprintln!(
        "disk full: sorted {:.1} s after space returned, the account started afresh {restarts} time(s)",
        resumed.as_secs_f64()
    );
    assert!(restarts >= 1, "{log}");
    // The backoff's cap: space back, the account is started within a minute and a bit.
    assert!(resumed < Duration::from_secs(75), "{resumed:?}");
    assert_eq!(ids_in(env, &user, "INBOX").await.len(), 0);
}
