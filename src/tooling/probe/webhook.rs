//! A webhook endpoint, live: does it answer (a HEAD request, no event), and with
//! `--ping-webhooks` does it take a signed `tidings.test` event.

use super::report::{Mark, Table};
use crate::causes::error_chain;
use crate::exec::{Ran, webhook::Webhooks};

/// Runs the checks of endpoint `name` into `table`.
pub async fn probe(webhooks: &Webhooks, name: &str, ping: bool, table: &mut Table) {
    let Some(hook) = webhooks.endpoint(name) else { return };
    let host = hook.url.host_str().unwrap_or_default().to_owned();
    match webhooks.reach(name).await {
        Ok(status) => table.push("reach", Mark::Ok, format!("{host} answered HEAD with {status}")),
        Err(e) if e.is_timeout() => return table.push("reach", Mark::Fail, super::timed_out()),
        Err(e) => {
            let words = super::tls::certificate_problem(&e).unwrap_or_else(|| error_chain(&e));
            return table.push("reach", Mark::Fail, format!("cannot reach {host}: {words}"));
        }
    }
    if !ping {
        return;
    }
    let signed = if hook.secret.is_some() { "signed " } else { "" };
    match webhooks.ping(name).await {
        Ran::Done => table.push("test event", Mark::Ok, format!("a {signed}tidings.test event was accepted")),
        Ran::Transient(why) | Ran::Permanent(why) | Ran::RetryAfter(_, why) => {
            table.push("test event", Mark::Fail, format!("the {signed}tidings.test event was refused: {why}"));
        }
    }
}
