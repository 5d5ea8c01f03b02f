#!/bin/sh
# Writes starting corpora and dictionaries for the fuzz targets into $1 (default
# /tmp/tidings-fuzz), from the repository's own files only: examples/, rules/, plugins/, the
# config keys in src/config. Run from the repository root. See docs/fuzzing.md.
set -eu
out=${1:-/tmp/tidings-fuzz}
mkdir -p "$out/config" "$out/message" "$out/rules"

# config: the complete example, and small configs of every top-level section.
cp examples/tidings.yaml "$out/config/example.yaml"
printf 'accounts: {}\n' > "$out/config/empty.yaml"
printf 'accounts:\n  me:\n    provider: gmail\n    username: me@gmail.com\n    password_env: P\n' > "$out/config/gmail.yaml"
printf 'limits: { operations: 5, wall_time: 10ms }\nschedules:\n  s: { cron: "0 7 * * 1-5", account: a, run: once, rule: sweeps/x.rhai }\n' > "$out/config/schedule.yaml"
printf 'webhooks:\n  w: { url: "https://h.example/x", secret_file: s, include: [text], max_attempts: 3 }\ncommands:\n  c: { run: ["true"], timeout: 5s }\n' > "$out/config/hooks.yaml"
# Every quoted snake_case word in the config code is likely a key or a choice.
grep -oh '"[a-z][a-z0-9_]*"' src/config/*.rs | sort -u > "$out/config.dict"

# message: the sample mail, with the first byte selecting the fetch metadata (0: whole message).
for f in examples/mail/*.eml; do
    n=$(basename "$f" .eml)
    { printf '\000'; cat "$f"; } > "$out/message/$n"
    { printf '\001'; cat "$f"; } > "$out/message/$n-truncated"
done
printf '"From:"\n"Subject:"\n"Content-Type: multipart/mixed; boundary="\n"Content-Transfer-Encoding: base64"\n"=?UTF-8?B?"\n"=?ISO-8859-1?Q?"\n"\\x0d\\x0a\\x0d\\x0a"\n"--"\n"List-Id:"\n"Authentication-Results:"\n"message/rfc822"\n"text/html"\n' > "$out/message.dict"

# rules: the shipped rules over the sample mail (even first byte), and each shipped rule as a
# fuzzed rule (odd first byte: source, NUL, message).
for f in examples/mail/*.eml; do
    { printf '\000'; cat "$f"; } > "$out/rules/shipped-$(basename "$f" .eml)"
done
for r in rules/*.rhai rules/sweeps/*.rhai plugins/*.rhai; do
    { printf '\010'; cat "$r"; printf '\000'; cat examples/mail/2-receipt.eml; } > "$out/rules/rule-$(basename "$r" .rhai)"
done
grep -oh '`msg\.[a-z_]*\|`[a-z_]*(' docs/rules.md | tr -d '`' | sort -u | sed 's/.*/"&"/' > "$out/rules.dict"
echo "corpora and dictionaries in $out"
