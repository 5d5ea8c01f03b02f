//! "Did you mean" for a rule's typos that only show at run time: `msg.form` ("Unknown property
//! 'form'") and `msg.subject.icontain("x")` ("Function not found: icontain ..."). The names come
//! from what the engine registers (the rule API's metadata, which also makes docs/rules.md, and
//! Rhai's standard library); the nearness test is the config loader's, so a typo in a rule and
//! one in tidings.yaml are judged alike.

use std::sync::LazyLock;

use rhai::{Engine, EvalAltResult};

use crate::config::diagnostics::closest;

/// Every property and function name a rule can use.
struct Names {
    properties: Vec<String>,
    functions: Vec<String>,
}

static NAMES: LazyLock<Names> = LazyLock::new(|| {
    #[derive(serde::Deserialize)]
    struct Metadata {
        #[serde(default)]
        functions: Vec<super::api::reference::Registered>,
    }
    let mut engine = Engine::new();
    super::api::register(&mut engine);
    // Metadata Rhai produced itself: a failure would be a Rhai bug, and would only cost the hint.
    let json = engine.gen_fn_metadata_to_json(true).unwrap_or_default();
    let functions = serde_json::from_str::<Metadata>(&json).map(|m| m.functions).unwrap_or_default();
    let mut names = Names { properties: Vec::new(), functions: Vec::new() };
    for f in functions {
        let list = match f.name.strip_prefix("get$") {
            Some(property) => Some((&mut names.properties, property.to_owned())),
            // Operators, setters and indexers are not names a rule misspells.
            None if f.name.starts_with(|c: char| c.is_alphabetic() || c == '_') && !f.name.contains('$') => {
                Some((&mut names.functions, f.name))
            }
            None => None,
        };
        if let Some((list, name)) = list.filter(|(list, name)| !list.contains(name)) {
            list.push(name);
        }
    }
    names
});

/// The name a rule most likely meant, for an unknown property or function; `None` for any other
/// error, or when nothing known is near.
pub fn did_you_mean(error: &EvalAltResult) -> Option<String> {
    match error {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) | EvalAltResult::ErrorInModule(_, inner, _) => {
            did_you_mean(inner)
        }
        EvalAltResult::ErrorDotExpr(text, _) => {
            let property = text.strip_prefix("Unknown property '")?.split('\'').next()?;
            nearest(property, &NAMES.properties)
        }
        EvalAltResult::ErrorFunctionNotFound(signature, _) => {
            let name = signature.split(['(', ' ']).next()?;
            nearest(name, &NAMES.functions)
        }
        _ => None,
    }
}

fn nearest(word: &str, known: &[String]) -> Option<String> {
    let known: Vec<&str> = known.iter().map(String::as_str).filter(|k| *k != word).collect();
    closest(word, &known).map(|near| format!("did you mean `{near}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_the_nearest_registered_name() {
        let property = EvalAltResult::ErrorDotExpr(
            "Unknown property 'form' - a getter is not registered for type 'Message'".into(),
            rhai::Position::NONE,
        );
        assert_eq!(did_you_mean(&property).as_deref(), Some("did you mean `from`?"));
        let function = EvalAltResult::ErrorFunctionNotFound(
            "icontain (&str | ImmutableString | String, &str | ImmutableString | String)".into(),
            rhai::Position::NONE,
        );
        assert_eq!(did_you_mean(&function).as_deref(), Some("did you mean `icontains`?"));
        // Rhai's own functions are names too.
        let std = EvalAltResult::ErrorFunctionNotFound("to_lowr (string)".into(), rhai::Position::NONE);
        assert_eq!(did_you_mean(&std).as_deref(), Some("did you mean `to_lower`?"));
        let far = EvalAltResult::ErrorFunctionNotFound("frobnicate_all (string)".into(), rhai::Position::NONE);
        assert_eq!(did_you_mean(&far), None);
    }
}
