//! The documentation a new user follows: every relative link in README.md, CHANGELOG.md, docs/
//! and the rules and plugins READMEs reaches a file that exists (and a heading, when it names
//! one); the README opens with the two set-up commands; its minimal plain-IMAP and Gmail
//! configs pass `tidings check` as written.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files a user reads.
fn documents() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        ["README.md", "CHANGELOG.md", "rules/README.md", "plugins/README.md"].iter().map(|f| repo().join(f)).collect();
    for entry in std::fs::read_dir(repo().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files
}

/// The text outside fenced code blocks (a `# comment` in a shell block is not a heading, and
/// `](` in code is not a link).
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `text` without inline code spans (a run of backticks up to the next run of the same length).
fn without_code_spans(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let run = rest[start..].chars().take_while(|&c| c == '`').count();
        let after = &rest[start + run..];
        let fence = "`".repeat(run);
        match after.find(&fence) {
            Some(end) => rest = &after[end + run..],
            None => {
                out.push_str(&rest[start..start + run]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The targets of inline links `[text](target)` in prose.
fn links(text: &str) -> Vec<String> {
    let text = without_code_spans(&prose(text));
    let mut found = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            found.push(rest[..end].trim().to_owned());
        }
    }
    found
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors a Markdown file's headings make (a repeated one also as `-1`, `-2` ...).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in prose(text).lines() {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            let base = slug(&line[hashes..]);
            let mut anchor = base.clone();
            let mut n = 0;
            while !seen.insert(anchor.clone()) {
                n += 1;
                anchor = format!("{base}-{n}");
            }
        }
    }
    seen
}

#[test]
fn every_relative_link_in_the_docs_reaches_a_file_and_heading() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let name = doc.strip_prefix(repo()).unwrap().display().to_string();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = link.split_once('#').map_or((link.as_str(), None), |(p, a)| (p, Some(a)));
            let target = if path.is_empty() { doc.clone() } else { doc.parent().unwrap().join(path) };
            if !target.exists() {
                broken.push(format!("{name}: ({link}): no file {}", target.display()));
                continue;
            }
            if let Some(anchor) = anchor.filter(|_| target.extension().is_some_and(|e| e == "md")) {
                let headings = anchors(&std::fs::read_to_string(&target).unwrap());
                if !headings.contains(anchor) {
                    broken.push(format!("{name}: ({link}): no heading #{anchor} in {}", target.display()));
                }
            }
        }
    }
    println!("{checked} relative links checked");
    assert!(checked > 100, "only {checked} links found: is the link scan broken?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_check_finds_what_is_broken() {
    let text =
        "# A `title`: here\n[ok](#a-title-here) [gone](#nowhere) `[code](x)`\n```sh\n# not a heading\n[x](y)\n```\n";
    assert_eq!(links(text), ["#a-title-here", "#nowhere"]);
    assert_eq!(anchors(text), BTreeSet::from(["a-title-here".to_owned()]));
    assert_eq!(slug("Headless servers: a fixed port and `ssh -L`"), "headless-servers-a-fixed-port-and-ssh--l");
}

/// The fenced block after `marker` in `text`.
fn block_after<'a>(text: &'a str, marker: &str) -> &'a str {
    let at = text.find(marker).unwrap_or_else(|| panic!("no `{marker}` in README.md"));
    let open = at + text[at..].find("```yaml\n").expect("a ```yaml block after the marker") + "```yaml\n".len();
    let close = open + text[open..].find("```").unwrap();
    &text[open..close]
}

/// `tidings check` on `yaml` in a fresh directory with a rules folder holding one rule and the
/// CA file the plain config names; with the password variable set unless `skip_secrets`.
fn check(yaml: &str, skip_secrets: bool) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tidings.yaml"), yaml).unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("rules/10-github.rhai"),
        "if msg.from.domain == \"github.com\" { move_to(\"GitHub\"); }\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["imap.example.org".to_owned()]).unwrap();
    std::fs::write(dir.path().join("certs/example-ca.pem"), ca.cert.pem()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidings"));
    cmd.env_remove("TIDINGS_CONFIG").env_remove("RUST_LOG").env("XDG_STATE_HOME", dir.path().join("state"));
    cmd.arg("check").arg("--config").arg(dir.path().join("tidings.yaml"));
    if skip_secrets {
        cmd.arg("--skip-secrets").env_remove("TIDINGS_MAIL_PASSWORD");
    } else {
        cmd.env("TIDINGS_MAIL_PASSWORD", "an app password");
    }
    let out = cmd.output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

#[test]
fn the_readmes_minimal_configs_pass_check_as_written() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for marker in ["<!-- checked by tests/docs.rs: plain IMAP -->", "<!-- checked by tests/docs.rs: Gmail -->"] {
        let yaml = block_after(&readme, marker);
        for skip_secrets in [true, false] {
            let (ok, said) = check(yaml, skip_secrets);
            println!("{marker} (skip secrets: {skip_secrets}):\n{said}");
            assert!(ok && said.contains("ok (1 account, 1 live rule"), "{marker}:\n{yaml}\n{said}");
        }
    }
    let plain = block_after(&readme, "plain IMAP -->");
    for key in ["state:", "rules:", "host:", "port:", "tls:", "ca_file:", "username:", "password_env:", "smtp:"] {
        assert!(plain.contains(key), "the plain-IMAP config lacks `{key}`");
    }
    assert!(block_after(&readme, "Gmail -->").contains("provider: gmail"));
}

/// The developers' guide: the README begins with the two set-up commands.
#[test]
fn the_readme_opens_with_the_two_set_up_commands() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let commands: Vec<&str> = readme.split("```sh\n").skip(1).take(2).map(|b| b.lines().next().unwrap()).collect();
    assert_eq!(commands, ["examples/demo.sh", "tests/run.sh"]);
    let first_heading = readme.lines().find(|l| l.starts_with("## ")).unwrap();
    assert_eq!(first_heading, "## Set-up (fresh Debian machine)");
    for path in ["examples/demo.sh", "tests/run.sh"] {
        assert!(repo().join(path).is_file(), "{path}");
    }
}
