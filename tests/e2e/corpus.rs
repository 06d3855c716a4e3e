//! The normalization corpus: every input in `tests/corpus/*.json` with the
//! outcome ingest must give it, run through `lb_vendors::canonical::parse_with`
//! (no stack, no network). The format is described in `tests/corpus/README.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine;
use lb_vendors::{canonical, ParseError};
use serde_json::{Map, Value};

const BASE_EVENT: &str = "base_event.json";
const MIN_CASES: usize = 150;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// Replaces every `{"$repeat": s, "times": n}` with `s` repeated `n` times
/// (so a 1 MiB value does not have to be written out).
fn expand(v: Value) -> Result<Value, String> {
    Ok(match v {
        Value::Object(m) if m.contains_key("$repeat") => {
            let s = m["$repeat"].as_str().ok_or("$repeat must be a string")?;
            let n = m
                .get("times")
                .and_then(Value::as_u64)
                .ok_or("$repeat needs a whole number `times`")?;
            Value::String(s.repeat(usize::try_from(n).map_err(|e| e.to_string())?))
        }
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| expand(v).map(|v| (k, v)))
                .collect::<Result<_, _>>()?,
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(expand).collect::<Result<_, _>>()?),
        other => other,
    })
}

/// RFC 7396 JSON merge patch: objects merge, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// The bytes a case posts: `patch` (merged into the base event), `body` (a
/// whole JSON value), `raw` (a string, or a list of strings and `$repeat`s,
/// sent as UTF-8) or `base64` (any bytes, e.g. invalid UTF-8).
fn body_of(case: &Map<String, Value>, base: &Value) -> Result<Vec<u8>, String> {
    if let Some(p) = case.get("patch") {
        let mut body = base.clone();
        merge_patch(&mut body, &expand(p.clone())?);
        return serde_json::to_vec(&body).map_err(|e| e.to_string());
    }
    if let Some(b) = case.get("body") {
        return serde_json::to_vec(&expand(b.clone())?).map_err(|e| e.to_string());
    }
    if let Some(r) = case.get("raw") {
        return match expand(r.clone())? {
            Value::String(s) => Ok(s.into_bytes()),
            Value::Array(parts) => parts
                .iter()
                .map(|p| {
                    p.as_str()
                        .map(str::to_owned)
                        .ok_or("raw parts must be strings")
                })
                .collect::<Result<String, _>>()
                .map(String::into_bytes)
                .map_err(str::to_owned),
            _ => Err("raw must be a string or a list of parts".into()),
        };
    }
    if let Some(b) = case.get("base64").and_then(Value::as_str) {
        return base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|e| e.to_string());
    }
    Err("a case needs one of patch, body, raw, base64".into())
}

/// A value of the normalized event by dotted path (`visitor.phone`,
/// `transcript.lines.0.text`), or a derived one: `$first_name`, `$last_name`
/// (the CRM's split of `visitor.name`), `$contact_key` (its kind).
fn select(event: &lb_domain::LeadEvent, json: &Value, path: &str) -> Value {
    match path {
        "$first_name" => return event.first_last_name().0.map_or(Value::Null, Value::from),
        "$last_name" => return event.first_last_name().1.map_or(Value::Null, Value::from),
        "$contact_key" => {
            return event
                .contact_key()
                .map_or(Value::Null, |k| Value::from(k.kind()))
        }
        _ => {}
    }
    let mut at = json;
    for part in path.split('.') {
        at = match at {
            Value::Object(m) => m.get(part).unwrap_or(&Value::Null),
            Value::Array(a) => part
                .parse::<usize>()
                .ok()
                .and_then(|i| a.get(i))
                .unwrap_or(&Value::Null),
            _ => &Value::Null,
        };
    }
    at.clone()
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!(
            "{}… ({} chars)",
            s.chars().take(120).collect::<String>(),
            s.chars().count()
        )
    } else {
        s
    }
}

/// The canonical event's published JSON Schema.
fn schema() -> &'static jsonschema::Validator {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let raw: Value = serde_json::from_str(include_str!(
            "../../docs/schema/canonical-event.schema.json"
        ))
        .expect("the schema is JSON");
        jsonschema::validator_for(&raw).expect("the schema is a valid JSON Schema")
    })
}

/// Checks one case; `Err` says what differs.
fn check(case: &Map<String, Value>, base: &Value) -> Result<(), String> {
    let body = body_of(case, base)?;
    let expect = case
        .get("expect")
        .and_then(Value::as_object)
        .ok_or("no expect")?;
    let status = expect
        .get("status")
        .and_then(Value::as_str)
        .ok_or("no expect.status")?;
    // As ingest parses: strictly, with the clock-skew bound on occurred_at.
    let norm = canonical::Normalization {
        not_after: Some(chrono::Utc::now() + canonical::CLOCK_SKEW),
        ..canonical::Normalization::default()
    };
    let got = canonical::parse_with(&body, &norm);
    match (status, got) {
        ("invalid_json", Err(ParseError::NotJson(_))) => Ok(()),
        ("invalid", Err(ParseError::Invalid(errors))) => {
            let want: BTreeSet<(String, String)> = expect
                .get("errors")
                .and_then(Value::as_array)
                .ok_or("an invalid case lists its expect.errors")?
                .iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or_default().to_string(),
                        e["code"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            let got: BTreeSet<(String, String)> =
                errors.into_iter().map(|e| (e.field, e.code)).collect();
            // A structural refusal (a wrong type, a missing field, an event type or
            // id the contract does not have) is the published JSON Schema's too.
            let structural = [
                "invalid_type",
                "required",
                "unknown_event_type",
                "invalid_id",
                "out_of_range",
            ];
            if want.iter().all(|(_, c)| structural.contains(&c.as_str())) {
                if let Ok(input) = serde_json::from_slice::<Value>(&body) {
                    if schema().is_valid(&input) {
                        return Err(format!(
                            "docs/schema/canonical-event.schema.json accepts what ingest refuses as {want:?}"
                        ));
                    }
                }
            }
            if want == got {
                Ok(())
            } else {
                Err(format!("errors differ: want {want:?}, got {got:?}"))
            }
        }
        ("ok", Ok(event)) => {
            let json = serde_json::to_value(&event).map_err(|e| e.to_string())?;
            let mut diffs = Vec::new();
            // The published JSON Schema never refuses what ingest accepts.
            if let Ok(input) = serde_json::from_slice::<Value>(&body) {
                let refused: Vec<String> = schema()
                    .iter_errors(&input)
                    .map(|e| format!("{} at {}", e, e.instance_path()))
                    .collect();
                if !refused.is_empty() {
                    diffs.push(format!(
                        "docs/schema/canonical-event.schema.json refuses it: {}",
                        refused.join("; ")
                    ));
                }
            }
            if let Some(Value::Object(fields)) = expect.get("normalized") {
                for (path, want) in fields {
                    let want = expand(want.clone())?;
                    let got = select(&event, &json, path);
                    if got != want {
                        diffs.push(format!(
                            "{path}: want {}, got {}",
                            short(&want),
                            short(&got)
                        ));
                    }
                }
            }
            if diffs.is_empty() {
                Ok(())
            } else {
                Err(diffs.join("; "))
            }
        }
        (want, Ok(_)) => Err(format!("want {want}, got a valid event")),
        (want, Err(ParseError::NotJson(e))) => Err(format!("want {want}, got not-JSON: {e}")),
        (want, Err(ParseError::Invalid(errors))) => Err(format!(
            "want {want}, got field errors {:?}",
            errors
                .iter()
                .map(|e| format!("{}:{}", e.field, e.code))
                .collect::<Vec<_>>()
        )),
    }
}

#[test]
fn every_corpus_input_normalizes_or_fails_exactly_as_recorded() {
    let dir = corpus_dir();
    let base: Value = serde_json::from_slice(
        &std::fs::read(dir.join(BASE_EVENT)).expect("tests/corpus/base_event.json"),
    )
    .expect("the base event is JSON");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| p.file_name().is_some_and(|n| n != BASE_EVENT))
        .collect();
    files.sort();

    let mut names = BTreeSet::new();
    let mut mismatches = Vec::new();
    let mut total = 0;
    for file in &files {
        let file_name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        let file_name = file_name.unwrap_or_default();
        let cases: Vec<Map<String, Value>> = serde_json::from_slice(
            &std::fs::read(file).unwrap_or_else(|e| panic!("{file_name}: {e}")),
        )
        .unwrap_or_else(|e| panic!("{file_name} is not a JSON array of cases: {e}"));
        for case in &cases {
            total += 1;
            let name = case
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("(unnamed)")
                .to_string();
            if !names.insert(name.clone()) {
                mismatches.push(format!("{file_name}: {name}: the name is used twice"));
            }
            if let Err(why) = check(case, &base) {
                mismatches.push(format!("{file_name}: {name}: {why}"));
            }
        }
    }
    assert!(
        total >= MIN_CASES,
        "the corpus has {total} cases; it should have at least {MIN_CASES}"
    );
    assert!(
        mismatches.is_empty(),
        "{} of {total} corpus cases differ from what they record:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
