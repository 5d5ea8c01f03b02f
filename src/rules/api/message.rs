//! The `msg` object rules read: getters only, so no rule can change what the next rule sees.

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine};

use crate::message::{Address, MessageView};

/// The message as a script value: a cheap handle on the shared, immutable view.
#[derive(Clone, Debug)]
pub struct Msg(pub Arc<MessageView>);

fn addresses(list: &[Address]) -> Array {
    list.iter().cloned().map(Dynamic::from).collect()
}

fn strings<S: AsRef<str>>(list: &[S]) -> Array {
    list.iter().map(|s| Dynamic::from(s.as_ref().to_owned())).collect()
}

fn opt(value: Option<&str>) -> Dynamic {
    value.map_or(Dynamic::UNIT, |s| Dynamic::from(s.to_owned()))
}

/// An address with every part empty, for a message without From: `msg.from.domain == "x"` is
/// then simply false instead of an error that stops the rule.
fn nobody() -> Address {
    Address { name: None, address: String::new(), domain: String::new() }
}

/// Registers `Message` and `Address`.
pub fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<Address>("Address")
        .register_get("address", |a: &mut Address| a.address.clone())
        .register_get("name", |a: &mut Address| a.name.clone().unwrap_or_default())
        .register_get("domain", |a: &mut Address| a.domain.clone())
        .register_fn("to_string", |a: &mut Address| a.address.clone())
        .register_fn("==", |a: Address, b: &str| a.address.eq_ignore_ascii_case(b));
    engine
        .register_type_with_name::<Msg>("Message")
        .register_get("from", |m: &mut Msg| m.0.from().cloned().unwrap_or_else(nobody))
        .register_get("sender", |m: &mut Msg| m.0.sender().cloned().unwrap_or_else(nobody))
        .register_get("to", |m: &mut Msg| addresses(m.0.to()))
        .register_get("cc", |m: &mut Msg| addresses(m.0.cc()))
        .register_get("reply_to", |m: &mut Msg| addresses(m.0.reply_to()))
        .register_get("recipients", |m: &mut Msg| {
            let mut all = addresses(m.0.to());
            all.extend(addresses(m.0.cc()));
            all
        })
        .register_get("subject", |m: &mut Msg| m.0.subject().to_owned())
        .register_get("message_id", |m: &mut Msg| opt(m.0.message_id()))
        .register_get("in_reply_to", |m: &mut Msg| strings(m.0.in_reply_to()))
        .register_get("references", |m: &mut Msg| strings(m.0.references()))
        .register_get("list_id", |m: &mut Msg| opt(m.0.list_id()))
        .register_get("text", |m: &mut Msg| m.0.text().to_owned())
        .register_get("html", |m: &mut Msg| opt(m.0.html()))
        .register_get("size", |m: &mut Msg| i64::try_from(m.0.size()).unwrap_or(i64::MAX))
        .register_get("flags", |m: &mut Msg| strings(m.0.flags()))
        .register_get("keywords", |m: &mut Msg| strings(m.0.keywords()))
        .register_get("labels", |m: &mut Msg| strings(m.0.keywords()))
        .register_get("delivered_to", |m: &mut Msg| strings(m.0.delivered_to()))
        .register_get("is_reply", |m: &mut Msg| m.0.is_reply())
        .register_get("is_auto_submitted", |m: &mut Msg| m.0.is_auto_submitted())
        .register_get("account", |m: &mut Msg| m.0.account().to_owned())
        .register_get("mailbox", |m: &mut Msg| m.0.mailbox().to_owned())
        .register_get("uid", |m: &mut Msg| i64::from(m.0.key().uid))
        .register_get("date", |m: &mut Msg| m.0.date().map_or(Dynamic::UNIT, |d| Dynamic::from(d.to_rfc3339())))
        .register_fn("header", |m: &mut Msg, name: &str| opt(m.0.header(name)))
        .register_fn("headers", |m: &mut Msg, name: &str| strings(&m.0.headers(name)))
        .register_fn("has_flag", |m: &mut Msg, flag: &str| m.0.has_flag(flag))
        .register_get("attachments", |m: &mut Msg| {
            m.0.attachments()
                .iter()
                .map(|a| {
                    let mut map = rhai::Map::new();
                    map.insert("name".into(), opt(a.name.as_deref()));
                    map.insert("type".into(), a.content_type.clone().into());
                    map.insert("size".into(), Dynamic::from(i64::try_from(a.size).unwrap_or(i64::MAX)));
                    Dynamic::from_map(map)
                })
                .collect::<Array>()
        });
}
