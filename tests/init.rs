//! `tidings init` as a script runs it (no terminal): for every provider and a plain server the
//! files are written, `check --skip-secrets` passes as written and `check` once the variables
//! are set, and `tidings test` passes on the starter fixtures; nothing is ever overwritten;
//! a missing --email and --provider with --imap are refused.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::cli::tidings;
use crate::harness::Pki;

/// The files init writes under its DIR.
const FILES: &[&str] = &[
    "tidings.yaml",
    "rules/10-lists.rhai",
    "rules/20-newsletters.rhai",
    "rules/tests/10-lists.yaml",
    "rules/tests/20-newsletters.yaml",
];

fn run(args: &[&str], cwd: &Path) -> Output {
    // No variable of the user's may leak in: the config's are set only where a test says.
    tidings()
        .args(args)
        .current_dir(cwd)
        .env_remove("TIDINGS_HOME_PASSWORD")
        .env_remove("TIDINGS_HOME_CLIENT_SECRET")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn check(config: &Path, skip_secrets: bool, env: &[(&str, &str)]) -> Output {
    let mut cmd = tidings();
    cmd.arg("check")
        .arg("--config")
        .arg(config)
        .env_remove("TIDINGS_HOME_PASSWORD")
        .env_remove("TIDINGS_HOME_CLIENT_SECRET");
    if skip_secrets {
        cmd.arg("--skip-secrets");
    }
    cmd.envs(env.iter().copied()).output().unwrap()
}

/// Init with `args`, then every check a new user would run: `check --skip-secrets`, `check`
/// failing until `env` is set and `secrets` (what `tidings auth` does) has run, `tidings test`.
/// Returns init's stdout.
fn init_and_check(dir: &Path, args: &[&str], env: &[(&str, &str)], secrets: &dyn Fn()) -> String {
    let mut all = vec!["init", "--email", "me@example.org", "--name", "home", "--dir"];
    all.push(dir.to_str().unwrap());
    all.extend_from_slice(args);
    let out = run(&all, dir.parent().unwrap());
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    for file in FILES {
        assert!(dir.join(file).is_file(), "{args:?}: {file} not written");
    }
    let config = dir.join("tidings.yaml");
    let skip = check(&config, true, &[]);
    assert!(skip.status.success(), "{args:?}: check --skip-secrets: {}", text(&skip));
    assert!(String::from_utf8_lossy(&skip.stdout).contains("ok (1 account, 2 live rules"), "{}", text(&skip));
    let unset = check(&config, false, &[]);
    assert!(!unset.status.success(), "{args:?}: check passed without the secrets: {}", text(&unset));
    secrets();
    let with = check(&config, false, env);
    assert!(with.status.success(), "{args:?}: check with {env:?}: {}", text(&with));
    let test = tidings().arg("test").arg("--config").arg(&config).output().unwrap();
    let report = String::from_utf8_lossy(&test.stdout);
    assert!(test.status.success(), "{args:?}: tidings test: {}", text(&test));
    assert!(report.contains("fixtures: 9 cases, 9 passed, 0 failed"), "{report}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_provider_gets_a_config_that_checks_and_rules_that_pass_their_fixtures() {
    let root = tempfile::tempdir().unwrap();
    let password = [("TIDINGS_HOME_PASSWORD", "secret")];
    for provider in ["gmail", "fastmail", "mailcom", "gmx", "yahoo", "icloud"] {
        let stdout = init_and_check(&root.path().join(provider), &["--provider", provider], &password, &|| {});
        assert!(stdout.contains("assumed: --username me@example.org"), "{stdout}");
        let yaml = std::fs::read_to_string(root.path().join(provider).join("tidings.yaml")).unwrap();
        assert!(yaml.contains(&format!("    provider: {provider}\n")), "{yaml}");
        assert!(yaml.contains("    password_env: TIDINGS_HOME_PASSWORD\n"), "{yaml}");
    }
    let gmail = std::fs::read_to_string(root.path().join("gmail/tidings.yaml")).unwrap();
    assert!(gmail.contains("A Gmail app password"), "{gmail}");

    // OAuth2: `check` passes once the client secret is set and `tidings auth` stored the token.
    for provider in ["gmail-oauth2", "outlook"] {
        let dir = root.path().join(provider);
        let env = [("TIDINGS_HOME_CLIENT_SECRET", "client-secret")];
        let auth = || std::fs::write(dir.join("home.token"), "refresh-token-from-tidings-auth\n").unwrap();
        let stdout = init_and_check(&dir, &["--provider", provider], &env, &auth);
        let config = dir.join("tidings.yaml");
        assert!(stdout.contains(&format!("  tidings auth home --config {}\n", config.display())), "{stdout}");
        let yaml = std::fs::read_to_string(&config).unwrap();
        assert!(yaml.contains("    oauth2:\n") && yaml.contains("refresh_token_file: home.token"), "{yaml}");
    }
}

#[test]
fn a_plain_server_with_its_own_ca_and_smtp() {
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::write(root.path()).unwrap();
    // Given relative to where init runs (root), written absolute.
    let relative = pki.ca_file.strip_prefix(root.path()).unwrap().to_str().unwrap().to_owned();
    let dir = root.path().join("conf");
    let args = ["--imap", "imap.example.org", "--port", "1993", "--ca-file", &relative, "--smtp", "smtp.example.org"];
    let stdout = init_and_check(&dir, &args, &[("TIDINGS_HOME_PASSWORD", "secret")], &|| {});
    let config = dir.join("tidings.yaml");
    let shown = config.display();
    let next = format!(
        "next:\n  export TIDINGS_HOME_PASSWORD=...      # or password_file: / password_command: in the config\n  \
         tidings check --connect --config {shown}\n  tidings dry-run --config {shown} --since 30d\n  \
         tidings run --config {shown}\n"
    );
    assert!(stdout.ends_with(&next), "{stdout}");
    for assumed in
        ["--tls implicit", "--smtp-tls starttls", "--smtp-port 587", "the password in $TIDINGS_HOME_PASSWORD"]
    {
        assert!(stdout.contains(&format!("assumed: {assumed}\n")), "{assumed}: {stdout}");
    }
    let yaml = std::fs::read_to_string(&config).unwrap();
    assert!(yaml.contains(&format!("    ca_file: {}", pki.ca_file.display())), "{yaml}");
    assert!(yaml.contains("      host: imap.example.org\n      port: 1993\n      tls: implicit"), "{yaml}");
    assert!(yaml.contains("      host: smtp.example.org\n      port: 587\n      tls: starttls\n"), "{yaml}");
    assert!(!yaml.contains("allow_insecure"), "{yaml}");
}

#[test]
fn without_dir_the_files_go_where_tidings_looks_for_them() {
    let root = tempfile::tempdir().unwrap();
    let xdg = root.path().join("xdg");
    let out = tidings()
        .args(["init", "--imap", "localhost", "--tls", "none", "--email", "me@example.org"])
        .env("XDG_CONFIG_HOME", &xdg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for assumed in ["--name mail", "--port 143", &format!("--dir {}", xdg.join("tidings").display())] {
        assert!(stdout.contains(&format!("assumed: {assumed}\n")), "{assumed}: {stdout}");
    }
    let yaml = std::fs::read_to_string(xdg.join("tidings/tidings.yaml")).unwrap();
    assert!(yaml.contains("WARNING: `tls: none`") && yaml.contains("    allow_insecure: true\n"), "{yaml}");
    // `check` without --config finds it.
    let out = tidings().args(["check", "--skip-secrets"]).env("XDG_CONFIG_HOME", &xdg).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_second_init_overwrites_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("conf");
    let args = ["init", "--provider", "fastmail", "--email", "me@example.org", "--dir", dir.to_str().unwrap()];
    let first = run(&args, root.path());
    assert!(first.status.success(), "{}", text(&first));
    let before: Vec<Vec<u8>> = FILES.iter().map(|f| std::fs::read(dir.join(f)).unwrap()).collect();
    let again = run(
        &["init", "--imap", "imap.example.org", "--email", "you@example.org", "--dir", dir.to_str().unwrap()],
        root.path(),
    );
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains(&format!("{} exists", dir.join("tidings.yaml").display())), "{stderr}");
    let after: Vec<Vec<u8>> = FILES.iter().map(|f| std::fs::read(dir.join(f)).unwrap()).collect();
    assert!(before == after, "a file changed");

    // One rule file in the way is enough: it is named, and no other file is written.
    let other = root.path().join("other");
    std::fs::create_dir_all(other.join("rules")).unwrap();
    std::fs::write(other.join("rules/20-newsletters.rhai"), "// mine\n").unwrap();
    let out =
        run(&["init", "--provider", "gmx", "--email", "me@example.org", "--dir", other.to_str().unwrap()], root.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rules/20-newsletters.rhai exists"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(other.join("rules/20-newsletters.rhai")).unwrap(), "// mine\n");
    assert!(!other.join("tidings.yaml").exists() && !other.join("rules/10-lists.rhai").exists());
}

#[test]
fn without_a_terminal_a_missing_email_is_an_error_and_flags_that_conflict_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir: PathBuf = root.path().join("conf");
    let out = run(&["init", "--provider", "gmail", "--dir", dir.to_str().unwrap()], root.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--email"), "{}", text(&out));
    assert!(out.stdout.is_empty(), "nothing asked: {}", text(&out));

    let both = ["init", "--provider", "gmail", "--imap", "imap.example.org", "--email", "me@example.org", "--dir"];
    let out = run(&[&both[..], &[dir.to_str().unwrap()]].concat(), root.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--provider") && stderr.contains("--imap"), "{stderr}");

    let out = run(
        &["init", "--provider", "gmail", "--port", "993", "--email", "me@example.org", "--dir", dir.to_str().unwrap()],
        root.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!dir.exists(), "nothing written");
}
