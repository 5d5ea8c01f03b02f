//! What scripts can call: one file per area, combined here.
//!
//! - [`message`]: the `msg` object (read-only getters) and `msg.auth`;
//! - [`address`]: the `Address` type, glob matching, domain tests;
//! - [`text`]: case-insensitive string tests and cached regexes;
//! - [`date`]: the `Date` type, `now()` and `date()`;
//! - [`actions`]: `move_to`, `copy_to`, `archive`, `flag`, `label`, `delete`, `stop`, ... which
//!   record decisions into the running evaluation's own plan, within per-message caps;
//! - [`outbound`]: `reply`, `forward`, `send`, and [`events`]: `webhook`, `command`, recorded
//!   the same way;
//! - [`schedule`]: `trigger()`, `msg.trigger`, and digests: `collect` in live rules,
//!   `collected` in a schedule's rule;
//! - [`reference`]: how each function is documented, and the generated reference.

pub mod actions;
pub mod address;
pub mod date;
pub mod events;
pub mod message;
pub mod outbound;
pub mod reference;
pub mod schedule;
pub mod text;

#[cfg(test)]
mod tests;

use rhai::{Dynamic, Engine, EvalAltResult, Position};

pub use events::{set_commands, set_webhooks};
use reference::Area;

/// The areas in the order the reference presents them.
pub const AREAS: &[Area] = &[
    Area {
        title: "The message: `msg`",
        intro: "Every rule sees the message as `msg`, read-only. Absent text is `\"\"` and absent lists `[]`, so a test on a header the message lacks is simply false, as in Sieve: `msg.list_id.contains(\"rust\")` needs no guard. Only the dates are `()` when unknown. To ask whether a header is there at all, use `msg.has_header(\"List-Id\")` (or `msg.list_id != \"\"`). Text is never `()`, so a rule comparing a text getter with `()` (`msg.list_id == ()`, the guard older rules wrote) is refused when the rules load, with the test to write instead.",
        register: message::register,
    },
    Area {
        title: "Authentication: `msg.auth`",
        intro: "The verdicts of the receiving server (its Authentication-Results header, the topmost one only), lowercased. Check `dmarc == \"pass\"` before trusting `msg.from`: anyone can write any From.",
        register: message::register_auth,
    },
    Area {
        title: "Addresses and domains",
        intro: "`msg.from`, `msg.to[0]` ... are `Address` values. All comparisons here ignore case.",
        register: address::register,
    },
    Area {
        title: "Text",
        intro: "Helpers Rhai lacks. Regexes use the `regex` crate's syntax (linear time: no pattern can stall a rule) and are compiled once per pattern; an invalid one fails the rule with the pattern named. Each helper first checks the rule's wall-clock limit (`limits: { wall_time }`), so a loop of them over a large body stops at the limit.",
        register: text::register,
    },
    Area {
        title: "Dates",
        intro: "`msg.date`, `msg.received`, `now()` and `date(...)` are `Date` values: an instant with the offset it was written in. Ages count from `now()`, the trigger's time (for a schedule, its fire time). Durations are written as in the config: `90s`, `30m`, `2h`, `1h30m`, `7d`, `2w`.",
        register: date::register,
    },
    Area {
        title: "Actions on the message",
        intro: "Each call records a decision; nothing happens until the plan is stored. Per message, all rules together: at most 50 actions. The plan runs flags first, then copies, then one disposition (the last `move_to`/`archive`/`delete` wins).",
        register: actions::register,
    },
    Area {
        title: "Outbound actions",
        intro: "Recorded in the plan after the disposition, carrying what they need of the message. Per message, all rules together: at most 5. Options are maps; an unknown option, a wrong type or a bad address the rule wrote fails the rule, but what the message holds never does: a reply with no usable envelope sender is recorded as suppressed with the reason, and header text from the message is made one line. They wait in the outbox until sent. Mail (reply, forward, send) goes out at most once, under the account's `daily_send_limit`; a reply goes to the envelope sender (Return-Path) and is not sent to lists, bulk or automatic mail, bounces, no-reply addresses, mail not addressed to the account, or a sender answered within `days`; a forward is not sent again by an account whose X-Loop marker the message carries, nor over `forward_rate` per destination and hour (each suppression is recorded with its reason). Webhooks and commands are delivered at least once, retried with backoff, and dead-lettered after their endpoint's `max_attempts` (see `tidings outbox`).\n\nWhat an outbound action carries (reply text, the forwarded original, a webhook's data) stays in the store only until it is done, suppressed or dropped; a failed one keeps it for `tidings outbox retry`. The memory of whom a reply answered is kept at least its `days`, whatever `retention:` says (docs/storage.md).",
        register: outbound::register,
    },
    Area {
        title: "Schedules and digests",
        intro: "A schedule's rule (a file in a subfolder of rules/, named by a schedule in the config) runs when the schedule fires: over each message its search selects, with `msg` and every function above, or once with no message (`run: once`, `msg` is `()`). `now()` is the fire time, and `msg.trigger` / `trigger()` say which schedule fired. Live rules `collect` data for it; its rule reads the data with `collected`.",
        register: schedule::register,
    },
];

/// Registers every area of the API on the engine.
pub fn register(engine: &mut Engine) {
    for area in AREAS {
        (area.register)(engine);
    }
}

/// The rule API reference (`docs/rules.md`), generated from the registered functions.
pub fn reference() -> String {
    reference::reference(AREAS)
}

/// Turns a host complaint into a script error; Rhai adds the position of the call.
pub fn fail(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(Dynamic::from(message.into()), Position::NONE))
}
