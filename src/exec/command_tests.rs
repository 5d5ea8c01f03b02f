//! Commands run for real: stdin, environment, exit status, the timeout (the whole process group
//! killed), output limits.

use std::path::Path;
use std::time::Instant;

use serde_json::json;

use super::*;
use crate::config::Config;

/// The command `name` of a config written into `dir` (so that relative paths land there).
fn command(dir: &Path, yaml: &str) -> Command {
    let config =
        Config::from_yaml(&format!("commands:\n  c:\n{yaml}"), &dir.join("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
    config.commands["c"].clone()
}

fn payload() -> Value {
    json!({"version": 1, "id": "work/INBOX/7/42/r.rhai#0", "data": {"who": "ann@example.com"}})
}

#[tokio::test]
async fn the_event_arrives_on_stdin_in_a_clean_environment() {
    let dir = tempfile::tempdir().unwrap();
    let c = command(
        dir.path(),
        "    run: [sh, -c, 'cat > in.json; env > env.txt; pwd > pwd.txt', ignored]\n    env: { TOPIC: mail }\n",
    );
    let ran = run(&c, &payload()).await;
    assert!(matches!(ran, Ran::Done), "{ran:?}");
    let got: Value = serde_json::from_slice(&std::fs::read(dir.path().join("in.json")).unwrap()).unwrap();
    assert_eq!(got, payload());
    let env = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    assert!(env.contains("TOPIC=mail\n") && env.contains("TIDINGS_EVENT_ID=work/INBOX/7/42/r.rhai#0\n"), "{env}");
    assert!(env.contains("PATH="), "{env}");
    // Cargo gives the test process CARGO_* variables; tidings' environment stays out.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    assert!(!env.contains("CARGO_"), "{env}");
    let pwd = std::fs::read_to_string(dir.path().join("pwd.txt")).unwrap();
    assert_eq!(Path::new(pwd.trim()).canonicalize().unwrap(), dir.path().canonicalize().unwrap());
}

#[tokio::test]
async fn a_failing_command_is_retried_with_its_last_words() {
    let dir = tempfile::tempdir().unwrap();
    let c = command(
        dir.path(),
        "    run: [sh, -c, 'echo starting; echo first >&2; echo \"cannot reach the bus\" >&2; exit 3']\n",
    );
    let (ran, output) = run_captured(&c, &payload()).await;
    let Ran::Transient(error) = ran else { panic!("{ran:?}") };
    assert_eq!(error, "command `c` exited with status 3: cannot reach the bus");
    let output = output.unwrap();
    assert_eq!(output.stdout, Captured { bytes: b"starting\n".to_vec(), total: 9 });
    let killed = command(dir.path(), "    run: [sh, -c, 'kill -TERM $$']\n");
    let ran = run(&killed, &payload()).await;
    assert!(matches!(&ran, Ran::Transient(e) if e == "command `c` was killed by signal 15"), "{ran:?}");
}

#[tokio::test]
async fn a_hanging_command_and_its_children_are_killed_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // The shell starts a child, notes its pid, and waits: the child must die too.
    let c = command(dir.path(), "    run: [sh, -c, 'sleep 30 & echo $! > child.pid; wait']\n    timeout: 500ms\n");
    let started = Instant::now();
    let ran = run(&c, &payload()).await;
    let took = started.elapsed();
    assert!(matches!(&ran, Ran::Transient(e) if e == "command `c` timed out after 500ms and was killed"), "{ran:?}");
    assert!(took >= Duration::from_millis(500) && took < Duration::from_millis(1500), "{took:?}");
    let pid = std::fs::read_to_string(dir.path().join("child.pid")).unwrap();
    assert!(gone(pid.trim()), "the child {pid} outlived the timeout");
}

/// Whether a process is gone: no /proc entry, or a zombie waiting for its (new) parent.
fn gone(pid: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) if stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')) => return true,
            Ok(_) if Instant::now() > deadline => return false,
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[tokio::test]
async fn output_is_captured_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let c = command(dir.path(), "    run: [sh, -c, 'head -c 100000 /dev/zero | tr \"\\\\0\" x; echo oops >&2']\n");
    let (ran, output) = run_captured(&c, &payload()).await;
    assert!(matches!(ran, Ran::Done), "{ran:?}");
    let output = output.unwrap();
    assert_eq!((output.stdout.bytes.len(), output.stdout.total), (OUTPUT_LIMIT, 100_000));
    assert!(output.stdout.truncated() && output.stdout.bytes.iter().all(|b| *b == b'x'));
    assert_eq!(output.stderr, Captured { bytes: b"oops\n".to_vec(), total: 5 });
}

#[tokio::test]
async fn a_program_that_ignores_a_large_input_still_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let c = command(dir.path(), "    run: [\"true\"]\n    timeout: 5s\n");
    let big = json!({"id": "k", "data": "x".repeat(1 << 20)});
    let started = Instant::now();
    assert!(matches!(run(&c, &big).await, Ran::Done));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_program_gone_since_the_config_was_read_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("notify.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let c = command(dir.path(), "    run: [./notify.sh]\n");
    assert!(matches!(run(&c, &payload()).await, Ran::Done));
    std::fs::remove_file(&script).unwrap();
    let ran = run(&c, &payload()).await;
    assert!(matches!(&ran, Ran::Transient(e) if e.starts_with("cannot start command `c`")), "{ran:?}");
}
