//! The conversation as a Task on the person ([V] Task object reference:
//! `WhoId` is a Lead or Contact; `Subject`, `Description`, `Status`,
//! `ActivityDate`): created in one `POST /composite/sobjects` per 200
//! (answers in order, [V]); found again by the event's tag in the
//! Description, read with `SELECT Id, Description FROM Task WHERE WhoId =
//! '…'` (Description, a long text area, cannot be filtered in SOQL, [V]) and
//! matched exactly here ([`lb_domain::note::carries_tag`]).

use chrono::{DateTime, Utc};
use lb_domain::{note, QueuedLead};
use lb_pipeline::CrmError;
use reqwest::Method;
use serde_json::{json, Value};

use super::{
    checked_id, describe_error, first_error, soql_quote, SalesforceCrm, BATCH_LIMIT, NOTE_MAX_CHARS,
};

/// Every Task's subject.
pub(super) const SUBJECT: &str = "Chatbot conversation";

/// A lead's note as plain text (a Task's Description is plain text): the
/// HTML note's paragraphs as lines, entities decoded; the tag stays last.
pub(super) fn note_text(lead: &QueuedLead) -> String {
    html_to_text(&note::render_html(&lead.event, NOTE_MAX_CHARS))
}

fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let Some(gt) = rest[lt..].find('>') else {
            out.push_str(&rest[lt..]);
            rest = "";
            break;
        };
        let tag = &rest[lt + 1..lt + gt];
        match tag {
            "/p" | "/ul" | "br" | "br/" => out.push('\n'),
            "li" => out.push_str("- "),
            "/li" => out.push('\n'),
            _ => {}
        }
        rest = &rest[lt + gt + 1..];
    }
    out.push_str(rest);
    let decoded = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded.trim_end().to_string()
}

impl SalesforceCrm {
    /// Creates one Task per `(who, description, at)`: one answer each, in order.
    pub(super) async fn create_tasks(
        &self,
        items: &[(String, String, DateTime<Utc>)],
    ) -> Vec<Result<String, CrmError>> {
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(BATCH_LIMIT) {
            let mut slots: Vec<Option<Result<String, CrmError>>> = Vec::new();
            let mut records = Vec::new();
            for (who, description, at) in chunk {
                match checked_id(&self.cfg.name, who) {
                    Ok(who) => {
                        slots.push(None);
                        records.push(json!({
                            "attributes": {"type": "Task"},
                            "WhoId": who,
                            "Subject": SUBJECT,
                            "Description": description,
                            "Status": "Completed",
                            "ActivityDate": at.format("%Y-%m-%d").to_string(),
                        }));
                    }
                    Err(e) => slots.push(Some(Err(e))),
                }
            }
            let mut answers = self.send_create(records, "task").await.into_iter();
            for slot in slots {
                out.push(slot.unwrap_or_else(|| {
                    answers
                        .next()
                        .unwrap_or_else(|| Err(self.no_answer("task")))
                }));
            }
        }
        out
    }

    /// `POST /composite/sobjects` with `records`: the created ids, in order.
    pub(super) async fn send_create(
        &self,
        records: Vec<Value>,
        what: &str,
    ) -> Vec<Result<String, CrmError>> {
        if records.is_empty() {
            return Vec::new();
        }
        let n = records.len();
        let body = json!({"allOrNone": false, "records": records});
        let a = match self
            .call(Method::POST, "/composite/sobjects", &[], Some(&body))
            .await
        {
            Ok(a) => a,
            Err(e) => return (0..n).map(|_| Err(e.clone())).collect(),
        };
        let results = a.body.as_array().cloned().unwrap_or_default();
        if results.len() != n {
            return (0..n).map(|_| Err(self.no_answer(what))).collect();
        }
        results
            .iter()
            .map(|r| {
                if r["success"] == true {
                    r["id"]
                        .as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.no_answer(what))
                } else {
                    Err(self.record_error(r, a.status, what, &[]))
                }
            })
            .collect()
    }

    /// The person's Tasks as `(id, description)`, oldest first (or newest first).
    pub(super) async fn tasks_of(
        &self,
        who: &str,
        newest_first: bool,
    ) -> Result<Vec<(String, String)>, CrmError> {
        let who = checked_id(&self.cfg.name, who)?;
        let order = if newest_first { "DESC" } else { "ASC" };
        let q = format!(
            "SELECT Id, Description FROM Task WHERE WhoId = {} ORDER BY CreatedDate {order}",
            soql_quote(who)
        );
        Ok(self
            .query(&q)
            .await?
            .iter()
            .filter_map(|r| {
                Some((
                    r["Id"].as_str()?.to_string(),
                    r["Description"].as_str().unwrap_or_default().to_string(),
                ))
            })
            .collect())
    }

    /// A per-record error as the item's error: Salesforce's status code as
    /// category, its message without the values sent (`sent`), the fields.
    pub(super) fn record_error(
        &self,
        result: &Value,
        status: u16,
        what: &str,
        sent: &[String],
    ) -> CrmError {
        let (code, message, fields) = first_error(result);
        let class = if code == "UNABLE_TO_LOCK_ROW" {
            lb_pipeline::ErrorClass::Transient
        } else {
            lb_pipeline::ErrorClass::Permanent
        };
        let mut e = self.err(
            class,
            Some(status),
            format!(
                "Salesforce refused the {what}: {}",
                describe_error(&code, &super::redact(&message, sent), &fields)
            ),
        );
        if !code.is_empty() {
            e.category = Some(code);
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_notes_read_as_text_with_the_tag_last() {
        let t = html_to_text("<p><strong>Summary:</strong> a &lt;b&gt; &amp; c</p><ul><li>x: 1</li></ul><p>Ref: leadbridge-event:evt_1</p>");
        assert_eq!(
            t,
            "Summary: a <b> & c\n- x: 1\n\nRef: leadbridge-event:evt_1"
        );
    }
}
