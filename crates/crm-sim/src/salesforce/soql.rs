//! `GET /query?q=` for a subset of SOQL: what an integration needs to find
//! records by a field, and nothing that would let an adapter rely on more.
//!
//! ```text
//! SELECT f1, f2 FROM Type
//!   [WHERE cond {AND cond} | cond {OR cond}]   -- parenthesise to mix AND/OR
//!   [ORDER BY f [ASC|DESC]] [LIMIT n]
//! cond := f = v | f != v | f IN (v, …) | f NOT IN (v, …) | ( … )
//! v    := 'text' (\' and \\ escapes) | TRUE | FALSE | NULL
//! ```
//!
//! Keywords, object and field names are case-insensitive; text comparisons
//! too ([V] SOQL comparison operators: "= … case-insensitive for most
//! fields" — [R] for every field type); ids compare in their 18-character
//! form. Anything else — `LIKE`, ranges, date literals, relationships,
//! functions, subqueries, `OFFSET` — is `MALFORMED_QUERY` (400) here; an
//! unknown object `INVALID_TYPE`, an unknown field `INVALID_FIELD` ("No such
//! column …"), and a long text area in `WHERE` or `ORDER BY` `INVALID_FIELD`
//! "field 'Description' can not be filtered in query call" ([V] SOQL
//! `fieldExpression`: "any field except a long text area field"; message
//! [D]). Answers: `{"totalSize","done":true,"records":[{"attributes":
//! {"type","url"}, …}]}` ([V] REST query resource); no paging
//! (`nextRecordsUrl`) is modelled, so `done` is always true.

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use super::error::SfError;
use super::schema::{FieldType, SObject};
use super::state::State;
use super::store::{normalize_id, Record};

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(u64),
    Punct(&'static str),
}

fn malformed(what: impl std::fmt::Display) -> SfError {
    SfError::bad_request("MALFORMED_QUERY", format!("unexpected token: {what}"))
}

fn tokenize(q: &str) -> Result<Vec<Tok>, SfError> {
    let chars: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(malformed("unterminated string")),
                    Some('\\') => {
                        let e = chars.get(i + 1).ok_or_else(|| malformed("\\"))?;
                        s.push(match e {
                            'n' => '\n',
                            'r' => '\r',
                            't' => '\t',
                            '\'' | '"' | '\\' => *e,
                            other => return Err(malformed(format!("\\{other}"))),
                        });
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let n: String = chars[start..i].iter().collect();
            out.push(Tok::Num(n.parse().map_err(|_| malformed(&n))?));
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let p = match (two.as_str(), c) {
                ("!=", _) => {
                    i += 1;
                    "!="
                }
                (_, '=') => "=",
                (_, ',') => ",",
                (_, '(') => "(",
                (_, ')') => ")",
                _ => return Err(malformed(c)),
            };
            i += 1;
            out.push(Tok::Punct(p));
        }
    }
    Ok(out)
}

#[derive(Clone, Debug, PartialEq)]
enum Lit {
    Text(String),
    Bool(bool),
    Null,
}

#[derive(Debug)]
enum Cond {
    Cmp {
        field: String,
        negate: bool,
        values: Vec<Lit>,
    },
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn keyword(&mut self, k: &str) -> bool {
        match self.peek() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn expect_keyword(&mut self, k: &str) -> Result<(), SfError> {
        if self.keyword(k) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn punct(&mut self, p: &str) -> bool {
        if self.peek()
            == Some(&Tok::Punct(match p {
                "(" => "(",
                ")" => ")",
                "," => ",",
                "=" => "=",
                _ => "!=",
            }))
        {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn unexpected(&self) -> SfError {
        match self.peek() {
            None => malformed("<EOF>"),
            Some(Tok::Word(w)) => malformed(w),
            Some(Tok::Str(s)) => malformed(format!("'{s}'")),
            Some(Tok::Num(n)) => malformed(n),
            Some(Tok::Punct(p)) => malformed(p),
        }
    }

    fn ident(&mut self) -> Result<String, SfError> {
        match self.peek() {
            Some(Tok::Word(w)) => {
                let w = w.clone();
                self.at += 1;
                Ok(w)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn literal(&mut self) -> Result<Lit, SfError> {
        match self.peek().cloned() {
            Some(Tok::Str(s)) => {
                self.at += 1;
                Ok(Lit::Text(s))
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => {
                self.at += 1;
                Ok(Lit::Bool(true))
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => {
                self.at += 1;
                Ok(Lit::Bool(false))
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => {
                self.at += 1;
                Ok(Lit::Null)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn cond(&mut self) -> Result<Cond, SfError> {
        let first = self.atom()?;
        let mut items = vec![first];
        let mut connective: Option<&'static str> = None;
        loop {
            let c = if self.keyword("AND") {
                "AND"
            } else if self.keyword("OR") {
                "OR"
            } else {
                break;
            };
            if connective.is_some_and(|k| k != c) {
                // SOQL wants parentheses to mix AND and OR.
                return Err(malformed(c));
            }
            connective = Some(c);
            items.push(self.atom()?);
        }
        Ok(match (connective, items.len()) {
            (_, 1) => items.pop().expect("one"),
            (Some("OR"), _) => Cond::Or(items),
            _ => Cond::And(items),
        })
    }

    fn atom(&mut self) -> Result<Cond, SfError> {
        if self.punct("(") {
            let c = self.cond()?;
            if !self.punct(")") {
                return Err(self.unexpected());
            }
            return Ok(c);
        }
        let field = self.ident()?;
        if self.punct("=") {
            return Ok(Cond::Cmp {
                field,
                negate: false,
                values: vec![self.literal()?],
            });
        }
        if self.punct("!=") {
            return Ok(Cond::Cmp {
                field,
                negate: true,
                values: vec![self.literal()?],
            });
        }
        let negate = self.keyword("NOT");
        self.expect_keyword("IN")?;
        if !self.punct("(") {
            return Err(self.unexpected());
        }
        let mut values = vec![self.literal()?];
        while self.punct(",") {
            values.push(self.literal()?);
        }
        if !self.punct(")") {
            return Err(self.unexpected());
        }
        Ok(Cond::Cmp {
            field,
            negate,
            values,
        })
    }
}

struct Query {
    fields: Vec<String>,
    sobject: SObject,
    cond: Option<Cond>,
    order: Option<(String, bool)>,
    limit: Option<usize>,
}

fn parse(st: &State, q: &str) -> Result<Query, SfError> {
    let mut p = Parser {
        toks: tokenize(q)?,
        at: 0,
    };
    p.expect_keyword("SELECT")?;
    let mut fields = vec![p.ident()?];
    while p.punct(",") {
        fields.push(p.ident()?);
    }
    p.expect_keyword("FROM")?;
    let name = p.ident()?;
    let sobject = SObject::parse_soql(&name).ok_or_else(|| {
        SfError::bad_request(
            "INVALID_TYPE",
            format!("sObject type '{name}' is not supported."),
        )
    })?;
    let cond = if p.keyword("WHERE") {
        Some(p.cond()?)
    } else {
        None
    };
    let order = if p.keyword("ORDER") {
        p.expect_keyword("BY")?;
        let f = p.ident()?;
        let asc = if p.keyword("DESC") {
            false
        } else {
            p.keyword("ASC");
            true
        };
        Some((f, asc))
    } else {
        None
    };
    let limit = if p.keyword("LIMIT") {
        match p.next() {
            Some(Tok::Num(n)) => Some(n as usize),
            _ => return Err(malformed("LIMIT")),
        }
    } else {
        None
    };
    if p.peek().is_some() {
        return Err(p.unexpected());
    }
    // Names: known, and filterable where they filter or sort.
    let canonical = |name: &str, filter: bool| -> Result<String, SfError> {
        let f = st.schema.get_soql(sobject, name).ok_or_else(|| {
            SfError::bad_request(
                "INVALID_FIELD",
                format!(
                    "No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name.",
                    sobject.name()
                ),
            )
        })?;
        if filter && !f.filterable {
            return Err(SfError::bad_request(
                "INVALID_FIELD",
                format!("field '{}' can not be filtered in query call", f.name),
            ));
        }
        Ok(f.name.clone())
    };
    let fields = fields
        .iter()
        .map(|f| canonical(f, false))
        .collect::<Result<Vec<_>, _>>()?;
    fn names(c: &Cond, out: &mut Vec<String>) {
        match c {
            Cond::Cmp { field, .. } => out.push(field.clone()),
            Cond::And(v) | Cond::Or(v) => v.iter().for_each(|c| names(c, out)),
        }
    }
    let mut filtered = Vec::new();
    if let Some(c) = &cond {
        names(c, &mut filtered);
    }
    for f in &filtered {
        canonical(f, true)?;
    }
    let order = match order {
        Some((f, asc)) => Some((canonical(&f, true)?, asc)),
        None => None,
    };
    Ok(Query {
        fields,
        sobject,
        cond,
        order,
        limit,
    })
}

fn eval(st: &State, o: SObject, c: &Cond, r: &Record) -> bool {
    match c {
        Cond::And(v) => v.iter().all(|c| eval(st, o, c, r)),
        Cond::Or(v) => v.iter().any(|c| eval(st, o, c, r)),
        Cond::Cmp {
            field,
            negate,
            values,
        } => {
            let Some(def) = st.schema.get_soql(o, field) else {
                return false;
            };
            let have = r.value(&def.name);
            let hit = values.iter().any(|lit| match lit {
                Lit::Null => have.is_null() || have.as_str() == Some(""),
                Lit::Bool(b) => {
                    have.as_bool() == Some(*b)
                        || (!*b && have.is_null() && def.ftype == FieldType::Boolean)
                }
                Lit::Text(t) => match def.ftype {
                    FieldType::Id | FieldType::Reference => {
                        normalize_id(t).is_some_and(|id| have.as_str() == Some(id.as_str()))
                    }
                    _ => have
                        .as_str()
                        .is_some_and(|h| h.to_lowercase() == t.to_lowercase()),
                },
            });
            hit != *negate
        }
    }
}

/// Runs `q` against the state.
pub(crate) fn run(st: &State, q: &str) -> Result<Value, SfError> {
    let query = parse(st, q)?;
    let o = query.sobject;
    let mut hits: Vec<&Record> = st
        .store
        .of_type(o)
        .filter(|r| query.cond.as_ref().is_none_or(|c| eval(st, o, c, r)))
        .collect();
    hits.sort_by_key(|r| r.seq);
    if let Some((f, asc)) = &query.order {
        hits.sort_by(|a, b| {
            let ord = if f == "CreatedDate" {
                a.seq.cmp(&b.seq)
            } else {
                let (x, y) = (a.value(f), b.value(f));
                x.as_str()
                    .map(str::to_lowercase)
                    .cmp(&y.as_str().map(str::to_lowercase))
                    .then(Ordering::Equal)
            };
            if *asc {
                ord
            } else {
                ord.reverse()
            }
        });
    }
    if let Some(n) = query.limit {
        hits.truncate(n);
    }
    let records: Vec<Value> = hits
        .iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert(
                "attributes".into(),
                json!({"type": o.name(), "url": super::store::record_url(o, &r.id)}),
            );
            for f in &query.fields {
                m.insert(f.clone(), r.value(f));
            }
            Value::Object(m)
        })
        .collect();
    Ok(json!({"totalSize": records.len(), "done": true, "records": records}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::SalesforceSimConfig;

    fn state() -> State {
        let mut st = State::new(SalesforceSimConfig::default());
        let now = chrono::Utc::now();
        for (email, phone) in [
            ("a@x.io", "+14155550100"),
            ("B@X.io", "+14155550101"),
            ("c@x.io", ""),
        ] {
            let mut m = Map::new();
            m.insert("LastName".into(), json!("L"));
            m.insert("Company".into(), json!("C"));
            m.insert("Email".into(), json!(email));
            if !phone.is_empty() {
                m.insert("Phone".into(), json!(phone));
            }
            st.store.insert(SObject::Lead, m, now);
        }
        st
    }

    fn ids(v: &Value) -> usize {
        v["records"].as_array().map_or(0, Vec::len)
    }

    #[test]
    fn the_adapter_shapes_are_answered() {
        let st = state();
        let v = run(&st, "SELECT Id FROM Lead WHERE Email = 'b@x.io'").expect("ok");
        assert_eq!(v["totalSize"], 1, "case-insensitive");
        assert_eq!(v["records"][0]["attributes"]["type"], "Lead");
        let v = run(&st, "select id, phone from lead where Phone IN ('+14155550100','+14155550101') OR MobilePhone IN ('+14155550100')").expect("ok");
        assert_eq!(ids(&v), 2);
        assert!(v["records"][0].get("Phone").is_some(), "canonical names");
        let v = run(&st, "SELECT Id FROM Lead WHERE IsConverted = false AND (Email = 'a@x.io' OR Email = 'c@x.io') ORDER BY CreatedDate DESC LIMIT 1").expect("ok");
        assert_eq!(ids(&v), 1);
        let v = run(&st, "SELECT Id FROM Lead WHERE Email = 'it\\'s@x.io'").expect("escaped quote");
        assert_eq!(ids(&v), 0);
    }

    #[test]
    fn other_shapes_are_refused_like_salesforce() {
        let st = state();
        let code = |q: &str| run(&st, q).expect_err(q).code;
        assert_eq!(
            code("SELECT Id FROM Lead WHERE Email LIKE '%x%'"),
            "MALFORMED_QUERY"
        );
        assert_eq!(
            code("SELECT Id FROM Lead WHERE Email = 'a' AND Phone = 'b' OR Phone = 'c'"),
            "MALFORMED_QUERY"
        );
        assert_eq!(
            code("SELECT Id FROM Lead WHERE Email = 'a"),
            "MALFORMED_QUERY"
        );
        assert_eq!(code("SELECT Id FROM Account"), "INVALID_TYPE");
        assert_eq!(code("SELECT Nope FROM Lead"), "INVALID_FIELD");
        let e = run(&st, "SELECT Id FROM Task WHERE Description = 'x'").expect_err("long text");
        assert_eq!(e.code, "INVALID_FIELD");
        assert!(e.message.contains("can not be filtered"), "{}", e.message);
        assert!(
            run(&st, "SELECT Id, Description FROM Task").is_ok(),
            "selecting it is fine"
        );
    }
}
